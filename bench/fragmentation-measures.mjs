// Reflink fragmentation WITH and WITHOUT the measures (issue 5): the baseline series of
// bench/fragmentation.mjs, run once per variant on a fresh filesystem each:
//   none        device-config:relayout=off: the driver as in the baseline
//   cowextsize  relayout=off, and the SR directory given an XFS copy-on-write extent size
//               hint of 1 MiB (xfs_io -c "cowextsize 1m"; new images inherit it, FICLONE
//               copies it): the filesystem's own measure, set by hand here
//   relayout    unshare=off: after a snapshot, a live image with >= 2048 extents
//               is rewritten contiguously in the background (`flatsnap relayout`,
//               src/backends/reflink/relayout.ts), its snapshots moved onto the new blocks,
//               then the blocks only the snapshots still hold compacted (relayout-compact.ts)
//   unshare     the driver's default (device-config:unshare=auto, relayout auto; on this
//               10 GiB filesystem always more than 20 % free, so as unshare=on): after a
//               snapshot the background run first moves the snapshots off the live image's
//               blocks (src/backends/reflink/unshare.ts: onto the previous snapshot's equal
//               blocks, the rest onto a copy), so the guest then writes in place
//   periodic    relayout as above, plus `flatsnap relayout --all` run between the writes
//               and the next snapshot (as cron would run it): what a snapshot meets when the
//               relayout also follows the writes made since the last snapshot
//
// Series (as the baseline): XFS (-b size=2048 unless --block) on a loop device with
// --direct-io=on; a flatsnap reflink SR through the XAPI simulator; one 1 GiB VDI written
// in full; then 32 cycles of VDI.snapshot + 10 % of the disk rewritten (1,638 distinct
// random 64 KiB blocks, random data, fsync). With relayout, the bench waits after each
// snapshot for the background relayout the driver started (its log line), as a real
// disk's snapshots are minutes apart; its time, extents before/after and bytes copied are
// recorded per cycle.
// At N = 0, 8 and 32 (and 4): extents and physically contiguous fragments of the live
// image (FIEMAP), space used on the filesystem (statfs, after syncfs) and its free space
// (xfs_spaceman freesp: free extents, average, largest); fio 2 KiB random
// reads on the live image, 2 KiB random writes on a fresh reflink copy of it (copy on
// write, as the first writes after a snapshot) and at N = 0 in place; FICLONE alone (the
// ioctl of the live image into a scratch file, 5 times); snapshot latency:
//   - at N = 0: 5 VDI.snapshot of the fresh disk back to back (4 deleted again), median;
//   - at N > 0: the series' own snapshots N-4..N (each after a cycle of writes since the
//     previous snapshot and, with relayout, since the previous relayout), median, plus the
//     snapshot at N alone. Back-to-back repeats would measure a just-relaid disk.
// Targets (issue 5): snapshot latency at N = 8 and 32 at most 2x that at N = 0; 2 KiB
// random IOPS at N at least 0.9 of N = 0.
//
// Usage: node bench/fragmentation-measures.mjs [--variants none,cowextsize,relayout]
//          [--block 2048] [--quick] [--fio-seconds S] [--record [--out FILE.json]]
//   needs root, make build and fio; --quick: 6 cycles (N = 0, 2, 6), one 2 s fio run per
//   test, nothing recorded. --record writes bench/results/fragmentation-measures[-4k].json
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { MiB, pluginIdentity, flag, fmtMs, loadTs, machine, now, opt, preflight, prng, round, runBench, sleep, stats, writeResult } from './lib/common.mjs';
import { writeRandom, writeRanges } from './lib/disk.mjs';
import { BenchSim } from './lib/sim.mjs';
import { fsUsedBytes, run, syncFs, xfsLoop } from './lib/storage.mjs';

preflight('fragmentation-measures', { needs: ['mkfs.xfs', 'losetup', 'xfs_io', 'xfs_spaceman', 'fio'] });
const QUICK = flag('quick');
const CYCLES = QUICK ? 6 : 32;
const CHECKPOINTS = QUICK ? [0, 2, 6] : [0, 4, 8, 32];
const WINDOW = 5; // series snapshots per latency checkpoint
const FIO_SECONDS = Number(opt('fio-seconds', QUICK ? 2 : 5));
const FIO_RUNS = QUICK ? 1 : 3;
const BLOCK_SIZE = Number(opt('block', '2048'));
const VARIANTS = String(opt('variants', 'none,cowextsize,relayout')).split(',');
for (const v of VARIANTS) if (!['none', 'cowextsize', 'relayout', 'periodic', 'unshare'].includes(v)) throw new Error(`unknown variant ${v}`);
const DISK = 1024 * MiB;
const BLOCK = 64 * 1024;
const BLOCKS = DISK / BLOCK;
const PER_CYCLE = Math.round(BLOCKS * 0.1);
const RELAYOUT_TIMEOUT_MS = 15 * 60 * 1000;

const native = (await loadTs('src/native.ts')).loadNative();
const RANDWRITE = ['--rw=randwrite', '--bs=2k', '--io_size=16m', '--end_fsync=1'];

async function repeat(test) {
  const runs = [];
  for (let i = 0; i < FIO_RUNS; i++) runs.push(await test(i));
  const sorted = [...runs].sort((a, b) => a.iops - b.iops);
  return { ...sorted[Math.floor(sorted.length / 2)], iops_runs: runs.map((r) => r.iops) };
}

function fio(path, name, args, seed = 1234) {
  const out = execFileSync(
    'fio',
    [`--name=${name}`, `--filename=${path}`, '--direct=1', '--ioengine=libaio', '--iodepth=16', '--randrepeat=1', `--randseed=${seed}`, '--output-format=json', ...args],
    { encoding: 'utf8', maxBuffer: 64 * MiB },
  );
  const job = JSON.parse(out.slice(out.indexOf('{'))).jobs[0];
  const side = job.read.io_bytes > 0 ? job.read : job.write;
  return { iops: round(side.iops, 0), bw_mib_s: round(side.bw_bytes / MiB, 1), lat_us_mean: round(side.lat_ns.mean / 1000, 1) };
}

/** FIEMAP of a file through the addon: extents, physically contiguous fragments, shared. */
function mapStats(path) {
  const fd = openSync(path, 'r');
  try {
    return native.fiemapStats(fd);
  } finally {
    closeSync(fd);
  }
}

const RELAYOUT_DONE =
  /relayout of VDI ([0-9a-f-]{36}): (?:extents (\d+) -> (\d+), (\d+)\/(\d+) windows \((\d+) changed meanwhile(?:, (\d+) not better)?\), (\d+) bytes copied, (\d+)\/(\d+) family objects remapped in (\d+) ms|nothing done: (.*))/;
/** The compaction's part of the same line (since the compaction exists). */
const COMPACT_DONE =
  /compacted (\d+) bytes of pinned blocks \((\d+) -> (\d+) runs; (\d+)\/(\d+) windows; pinned (\d+) bytes, (\d+) -> (\d+) runs\) into (\d+) objects in (\d+) ms/;

function compactionOf(line) {
  const c = COMPACT_DONE.exec(line);
  if (!c) return undefined;
  const [bytes, runsBefore, runsAfter, windowsSelected, windows, pinnedBytes, pinnedRunsBefore, pinnedRunsAfter, objects, ms] = c.slice(1).map(Number);
  return {
    bytes,
    runs_before: runsBefore,
    runs_after: runsAfter,
    windows_selected: windowsSelected,
    windows,
    pinned_mib: round(pinnedBytes / MiB, 1),
    pinned_runs_before: pinnedRunsBefore,
    pinned_runs_after: pinnedRunsAfter,
    objects,
    ms,
  };
}

/** The unshare's part of the same line (device-config:unshare). */
const UNSHARE_DONE =
  /unshared the live image: (\d+) -> (\d+) shared bytes, (\d+)\/(\d+) holders moved, (\d+) bytes onto the previous snapshot's blocks, (\d+) bytes copied in (\d+) ms/;

function unshareOf(line) {
  const u = UNSHARE_DONE.exec(line);
  if (!u) return undefined;
  const [before, after, moved, holders, toDonor, copied, ms] = u.slice(1).map(Number);
  return { shared_mib_before: round(before / MiB, 1), shared_mib_after: round(after / MiB, 1), holders_moved: moved, holders, to_donor_mib: round(toDonor / MiB, 1), copied_mib: round(copied / MiB, 1), ms };
}

/** Free space of the filesystem at `mountpoint` (xfs_spaceman freesp -s): extents, average and largest size. */
async function freeSpace(mountpoint, blockSize) {
  const out = await run('xfs_spaceman', ['-c', 'freesp -s', mountpoint]);
  const rows = [...out.matchAll(/^\s*(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+[\d.]+\s*$/gm)].map((m) => m.slice(1).map(Number));
  const extents = Number(/total free extents (\d+)/.exec(out)?.[1] ?? NaN);
  const blocks = Number(/total free blocks (\d+)/.exec(out)?.[1] ?? NaN);
  const top = rows[rows.length - 1];
  return {
    extents,
    free_mib: round((blocks * blockSize) / MiB, 0),
    avg_kib: round((blocks / extents) * blockSize / 1024, 0),
    // The histogram's last bucket: the largest free extent is at least this big.
    largest_bucket_mib: top ? round((top[0] * blockSize) / MiB, 1) : 0,
    histogram: rows.map(([from, to, ext, blk]) => ({ from_blocks: from, to_blocks: to, extents: ext, blocks: blk })),
  };
}

/** Lines of the plugin log (driver and the relayout processes it starts) after `mark`. */
function linesSince(sim, mark) {
  return sim.log.runsSince(mark).flatMap((r) => r.lines);
}

/** After a snapshot: the relayout the driver started, waited for; null if it started none. */
async function awaitRelayout(sim, mark, vdi) {
  if (!linesSince(sim, mark).some((l) => l.includes(`VDI ${vdi} has`) && l.includes('relayout started'))) return null;
  const t0 = now();
  for (;;) {
    for (const l of linesSince(sim, mark)) {
      const m = RELAYOUT_DONE.exec(l);
      if (!m || m[1] !== vdi) continue;
      if (m[12] !== undefined) return { skipped: m[12], waited_ms: round(now() - t0) };
      const compaction = compactionOf(l);
      const unshare = unshareOf(l);
      return {
        extents_before: Number(m[2]),
        extents_after: Number(m[3]),
        windows_selected: Number(m[4]),
        windows: Number(m[5]),
        windows_changed: Number(m[6]),
        windows_not_better: m[7] === undefined ? null : Number(m[7]),
        bytes_copied: Number(m[8]),
        family_remapped: Number(m[9]),
        family: Number(m[10]),
        ms: Number(m[11]),
        ...(compaction ? { compaction } : {}),
        ...(unshare ? { unshare } : {}),
        waited_ms: round(now() - t0),
      };
    }
    const failed = linesSince(sim, mark).find((l) => l.includes(`relayout of VDI ${vdi} failed`));
    if (failed) throw new Error(failed);
    if (now() - t0 > RELAYOUT_TIMEOUT_MS) throw new Error(`the relayout of ${vdi} did not finish in ${RELAYOUT_TIMEOUT_MS / 1000} s`);
    await sleep(100);
  }
}

async function series(cleanup, sim, variant) {
  const fs = await xfsLoop(cleanup, { sizeMiB: 10 * 1024, mkfsArgs: ['-b', `size=${BLOCK_SIZE}`], directIo: true });
  const srDir = join(fs.mountpoint, 'sr');
  mkdirSync(srDir);
  if (variant === 'cowextsize') await run('xfs_io', ['-c', 'cowextsize 1m', srDir]);
  const dc = {
    path: srDir,
    ...(variant === 'relayout' || variant === 'periodic' || variant === 'unshare' ? {} : { relayout: 'off' }),
    ...(variant === 'unshare' ? {} : { unshare: 'off' }),
  };
  const cli = join(dirname(sim.plugin), 'flatsnap');
  await sim.createSr(dc, `bench-${variant}`);
  const disk = await sim.createVdi('disk', DISK);
  const diskUuid = await sim.call('VDI.get_uuid', disk);
  const path = await sim.attachPath(disk);
  let t0 = now();
  await writeRandom(path, 0, DISK);
  console.log(`[${variant}] wrote the 1 GiB disk in ${fmtMs(now() - t0)}`);
  const hint = variant === 'cowextsize' ? (await run('xfs_io', ['-c', 'cowextsize', path])).trim() : null;

  const snapshot = async () => {
    const mark = sim.log.mark();
    const smMark = sim.smLog().length;
    const [ref, ms] = await sim.timed('VDI.snapshot', disk, {});
    const cmds = sim.smLog().slice(smMark).map((e) => e.cmd);
    if (cmds.join() !== 'vdi_snapshot,vdi_update') throw new Error(`unexpected plugin runs during VDI.snapshot: ${cmds.join(', ')}`);
    const r = sim.log.runsSince(mark).find((x) => x.cmd === 'vdi_snapshot');
    const relayout = await awaitRelayout(sim, mark, diskUuid);
    return { ref, api: ms, plugin: r?.ms ?? NaN, relayout };
  };
  const scratch = join(fs.mountpoint, 'ficlone.img');
  const ficlone = async () => {
    const src = openSync(path, 'r');
    const dst = openSync(scratch, 'wx', 0o600);
    let ms;
    try {
      const t = now();
      native.ficlone(src, dst);
      ms = now() - t;
    } finally {
      closeSync(dst);
      closeSync(src);
    }
    rmSync(scratch, { force: true });
    await syncFs(fs.mountpoint);
    return ms;
  };

  const rnd = prng(5);
  const cycles = [];
  const checkpoints = [];
  for (let n = 0; n <= CYCLES; n++) {
    let extra = [];
    let c;
    let periodic;
    if (variant === 'periodic' && n > 0) {
      const t = now();
      const out = await run(cli, ['relayout', '--path', srDir, '--all', '--json']);
      const rs = JSON.parse(out);
      periodic = {
        ms: round(now() - t),
        extents_before: rs[0]?.extents_before ?? null,
        extents_after: rs[0]?.extents_after ?? null,
        bytes_copied: rs[0]?.bytes_copied ?? 0,
        ...(rs[0]?.compact_bytes !== undefined
          ? {
              compaction: {
                bytes: rs[0].compact_bytes,
                runs_before: rs[0].compact_runs_before,
                runs_after: rs[0].compact_runs_after,
                pinned_mib: round(rs[0].pinned_bytes / MiB, 1),
                pinned_runs_before: rs[0].pinned_runs_before,
                pinned_runs_after: rs[0].pinned_runs_after,
                objects: rs[0].compact_objects_remapped,
                ms: rs[0].compact_ms,
              },
            }
          : {}),
      };
    }
    if (CHECKPOINTS.includes(n)) {
      await syncFs(fs.mountpoint);
      const st = mapStats(path);
      const used = fsUsedBytes(fs.mountpoint);
      const free = await freeSpace(fs.mountpoint, BLOCK_SIZE);
      const randread = await repeat(() => fio(path, 'randread', ['--rw=randread', '--bs=2k', `--runtime=${FIO_SECONDS}`, '--time_based=1']));
      const randwrite = await repeat(async () => {
        await run('cp', ['--reflink=always', path, scratch]);
        const r = fio(scratch, 'randwrite-clone', RANDWRITE);
        rmSync(scratch, { force: true });
        await syncFs(fs.mountpoint);
        return r;
      });
      const inPlace = n === 0 ? await repeat(() => fio(path, 'randwrite-live', RANDWRITE)) : undefined;
      await syncFs(fs.mountpoint);
      const fic = [];
      for (let i = 0; i < 5; i++) fic.push(await ficlone());
      c = {
        n,
        extents: st.extents,
        fragments: st.fragments,
        shared_extents: st.shared,
        fs_used_mib: round(used / MiB, 1),
        free_space: free,
        randread_2k: randread,
        randwrite_2k_cow: randwrite,
        ...(inPlace ? { randwrite_2k_in_place: inPlace } : {}),
        ficlone_ms: stats(fic, 3),
      };
    }
    const s = await snapshot();
    if (n === 0) {
      for (let i = 0; i < 4; i++) extra.push(await snapshot());
      for (const x of extra) await sim.call('VDI.destroy', x.ref);
      await syncFs(fs.mountpoint);
    }
    if (c && n > 0) {
      // What the guest meets after this snapshot and its background run: 2 KiB random writes
      // on the live image itself (a new seed per run: the blocks a run writes are its own
      // after). The first run is the guest's first writes after the snapshot; on a shared
      // image the later runs are faster because XFS keeps the copy-on-write blocks the first
      // one allocated around each write (cowextsize) for the next writes nearby.
      c.randwrite_2k_live = await repeat((i) => fio(path, 'randwrite-live', RANDWRITE, 4321 + 97 * n + i));
      c.randwrite_2k_live.first_iops = c.randwrite_2k_live.iops_runs[0];
      await syncFs(fs.mountpoint);
    }
    const cyc = { n, api_ms: round(s.api), plugin_ms: round(s.plugin), relayout: s.relayout, ...(periodic ? { periodic_relayout: periodic } : {}) };
    cycles.push(cyc);
    if (c) {
      const sample = n === 0 ? [s, ...extra] : cycles.slice(-WINDOW).map((x) => ({ api: x.api_ms, plugin: x.plugin_ms }));
      c.snapshot_api_ms = stats(sample.map((x) => x.api));
      c.snapshot_plugin_ms = stats(sample.map((x) => x.plugin));
      c.snapshot_at_n = { api_ms: round(s.api), plugin_ms: round(s.plugin) };
      c.relayout_after_snapshot = s.relayout;
      checkpoints.push(c);
      console.log(
        `[${variant}] N=${String(n).padStart(2)}: extents ${c.extents} (fragments ${c.fragments}, shared ${c.shared_extents}), used ${c.fs_used_mib} MiB; ` +
          `free ${c.free_space.extents} extents (avg ${c.free_space.avg_kib} KiB, largest >= ${c.free_space.largest_bucket_mib} MiB); ` +
          `2K randread ${c.randread_2k.iops}, 2K CoW write ${c.randwrite_2k_cow.iops}${inPlaceText(c)}${c.randwrite_2k_live ? `, live write after the snapshot ${c.randwrite_2k_live.first_iops} first, ${c.randwrite_2k_live.iops} median` : ''} IOPS; ` +
          `FICLONE ${fmtMs(c.ficlone_ms.median)}; VDI.snapshot ${fmtMs(c.snapshot_api_ms.median)} (plugin ${fmtMs(c.snapshot_plugin_ms.median)}, at N ${fmtMs(s.plugin)})` +
          (s.relayout ? `; relayout ${s.relayout.skipped ? `skipped (${s.relayout.skipped})` : `${s.relayout.extents_before} -> ${s.relayout.extents_after} extents in ${fmtMs(s.relayout.ms)}`}` : ''),
      );
    } else if (s.relayout) {
      const cp = s.relayout.compaction;
      console.log(
        `[${variant}] N=${String(n).padStart(2)}: snapshot plugin ${fmtMs(s.plugin)}; relayout ${s.relayout.skipped ? 'skipped' : `${s.relayout.extents_before} -> ${s.relayout.extents_after} in ${fmtMs(s.relayout.ms)}`}` +
          (cp ? `; compacted ${round(cp.bytes / MiB, 1)} MiB (${cp.runs_before} -> ${cp.runs_after} runs, pinned runs ${cp.pinned_runs_before} -> ${cp.pinned_runs_after}) in ${fmtMs(cp.ms)}` : ''),
      );
    } else if (periodic) {
      console.log(`[${variant}] N=${String(n).padStart(2)}: periodic relayout ${periodic.extents_before} -> ${periodic.extents_after} in ${fmtMs(periodic.ms)}; snapshot plugin ${fmtMs(s.plugin)}`);
    }
    if (n < CYCLES) {
      const pick = new Set();
      while (pick.size < PER_CYCLE) pick.add(Math.floor(rnd() * BLOCKS));
      t0 = now();
      await writeRanges(path, [...pick].sort((a, b) => a - b).map((b) => [b * BLOCK, BLOCK]));
    }
  }
  await syncFs(fs.mountpoint);
  const final = mapStats(path);
  const finalUsed = fsUsedBytes(fs.mountpoint);
  await sim.unplugSr();
  await fs.teardown();
  const relayouts = cycles.flatMap((x) => [x.relayout, x.periodic_relayout]).filter((r) => r && r.skipped === undefined && r.bytes_copied > 0);
  const c0 = checkpoints[0];
  const at = (k) => checkpoints.find((x) => x.n === k) ?? checkpoints[checkpoints.length - 1];
  const ratios = Object.fromEntries(
    CHECKPOINTS.filter((k) => k > 0).map((k) => [
      `n${k}`,
      {
        snapshot_plugin: round(at(k).snapshot_plugin_ms.median / c0.snapshot_plugin_ms.median, 2),
        snapshot_api: round(at(k).snapshot_api_ms.median / c0.snapshot_api_ms.median, 2),
        randread_2k: round(at(k).randread_2k.iops / c0.randread_2k.iops, 2),
        randwrite_2k_cow: round(at(k).randwrite_2k_cow.iops / c0.randwrite_2k_cow.iops, 2),
        randwrite_2k_cow_vs_in_place_at_0: round(at(k).randwrite_2k_cow.iops / c0.randwrite_2k_in_place.iops, 2),
        ...(at(k).randwrite_2k_live
          ? {
              randwrite_2k_live_first_vs_in_place_at_0: round(at(k).randwrite_2k_live.first_iops / c0.randwrite_2k_in_place.iops, 2),
              randwrite_2k_live_vs_in_place_at_0: round(at(k).randwrite_2k_live.iops / c0.randwrite_2k_in_place.iops, 2),
            }
          : {}),
      },
    ]),
  );
  return {
    variant,
    device_config: dc,
    cowextsize_of_the_image: hint,
    checkpoints,
    cycles,
    final: { extents: final.extents, fragments: final.fragments, fs_used_mib: round(finalUsed / MiB, 1) },
    relayouts: {
      count: relayouts.length,
      ms: relayouts.length ? stats(relayouts.map((r) => r.ms), 0) : null,
      bytes_copied_total_mib: round(relayouts.reduce((a, r) => a + r.bytes_copied, 0) / MiB, 0),
      compacted_total_mib: round(relayouts.reduce((a, r) => a + (r.compaction?.bytes ?? 0), 0) / MiB, 0),
      compaction_ms: relayouts.some((r) => r.compaction) ? stats(relayouts.filter((r) => r.compaction).map((r) => r.compaction.ms), 0) : null,
    },
    ratios,
  };
}

function inPlaceText(c) {
  return c.randwrite_2k_in_place ? ` (in place ${c.randwrite_2k_in_place.iops})` : '';
}

await runBench(async (cleanup) => {
  const m = machine();
  const build = pluginIdentity();
  m.fio = execFileSync('fio', ['--version'], { encoding: 'utf8' }).trim();
  const sim = await BenchSim.start(cleanup);
  const variants = [];
  for (const v of VARIANTS) variants.push(await series(cleanup, sim, v));
  for (const v of variants) console.log(`[${v.variant}] ratios to N=0: ${JSON.stringify(v.ratios)}; final ${JSON.stringify(v.final)}; relayouts ${JSON.stringify(v.relayouts)}`);
  const result = {
    benchmark: 'fragmentation-measures',
    date: new Date().toISOString(),
    quick: QUICK,
    machine: m,
    build,
    storage: `XFS (mkfs.xfs -m reflink=1 -b size=${BLOCK_SIZE}) on a loop device with --direct-io=on over a sparse 10 GiB image, one per variant`,
    method: {
      disk: '1 GiB VDI of a flatsnap reflink SR, written in full (random data) through the attach path',
      cycle: `VDI.snapshot (with relayout: then the wait for the background relayout it started), then ${PER_CYCLE} distinct random 64 KiB blocks (10 %) rewritten, fsync`,
      fio: `each test ${FIO_RUNS} times, median run; O_DIRECT, libaio, iodepth 16; randread bs=2k ${FIO_SECONDS} s on the live image; randwrite bs=2k 16 MiB end_fsync on a fresh reflink copy of it (copy on write: the first writes after a snapshot), at N=0 also in place (never snapshotted); at N>0 also on the live image itself after the snapshot at N and its background run (a new random seed per run), what the guest meets for the rest of the cycle (first run: its first writes after the snapshot; median of the runs). In the variants without unshare those writes are copy on write and add ~8,000 extents each to the live image before the next snapshot: the snapshot latency of the series after a checkpoint carries them (the earlier results files, without this test, are the ones for snapshot latency)`,
      snapshot: `N=0: 5 VDI.snapshot back to back, median; N>0: median of the series snapshots N-${WINDOW - 1}..N, each after one cycle of writes; plugin = in-process vdi_snapshot time`,
      ficlone: 'the FICLONE ioctl of the live image into a scratch file through the native addon, 5 times, median',
      variants:
        'none = relayout off, unshare off; cowextsize = none + xfs_io cowextsize 1m on the SR directory; relayout = unshare off (background relayout at >= 2048 extents after each snapshot); periodic = relayout plus `flatsnap relayout --all` between the writes and the next snapshot; unshare = the default (unshare auto, relayout auto: after each snapshot the snapshots move off the live image\'s blocks, then the usual relayout)',
    },
    variants,
  };
  const file = opt('out', BLOCK_SIZE === 2048 ? 'fragmentation-measures.json' : `fragmentation-measures-${BLOCK_SIZE / 1024}k.json`);
  if (flag('record') && !QUICK) writeResult(file, result);
  else if (flag('record')) console.log('(--quick: not recorded)');
});
