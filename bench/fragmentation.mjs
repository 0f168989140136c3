// Reflink fragmentation baseline (issue 5 groundwork), WITHOUT any fragmentation measure
// in the driver: how snapshot latency, small random I/O and extent counts move as a disk
// accumulates diverged snapshots on XFS with 2 KiB blocks.
//
// Setup: XFS (mkfs.xfs -m reflink=1 -b size=2048) on a loop device with direct I/O on
// (losetup --direct-io=on: I/O reaches the virtual disk, not the host page cache); a
// flatsnap reflink SR on it through the XAPI simulator; one 1 GiB VDI written in full
// (sequential random data). Then 32 cycles of: VDI.snapshot, rewrite 10 % of the disk
// (1,638 distinct random 64 KiB-aligned blocks of 64 KiB, random data, fsync). N = the
// number of diverged snapshots so far.
// At N = 0 (before the first snapshot), 4, 8 and 32:
//   - extents of the live image: backend.health() of the reflink backend (FIEMAP: extents,
//     physically contiguous fragments, shared extents) and `filefrag`;
//   - fio 3.x, O_DIRECT, libaio, iodepth 16, fixed seed: on the live image 2 KiB random
//       reads for --fio-seconds (5) and a 1 MiB sequential read of the whole image (where
//       fragmentation shows most); 2 KiB random writes, 16 MiB in all (8,192 writes,
//       end_fsync), on a fresh reflink copy of the live image: the same extent map, every
//       block shared, so each write is copy-on-write like the first write after a
//       snapshot, and the test does not fragment the live image (8,192 small CoW writes
//       would add more extents than a cycle's rewrite); at N = 0 also in place on the
//       live image (no snapshot yet: no CoW, no new extents); each test 3 times, the
//       median run is reported (every run's IOPS in the results file);
//   - snapshot latency: 5 synchronous VDI.snapshot calls back to back (client wall time
//     and the plugin's in-process vdi_snapshot time); the first stays as the series'
//     snapshot, the other 4 are deleted again; plus FICLONE alone (the ioctl of the live
//     image into a new scratch file through the driver's native addon, timed around the
//     ioctl; the copy is then removed and syncfs'd untimed, so that XFS's background
//     freeing of it does not slow the next clone), median of 5.
// Every snapshot of the series is timed too (the curve in the results file).
//
// Usage: node bench/fragmentation.mjs [--quick] [--fio-seconds S] [--record]
//   needs root, make build and fio (apt-get install -y fio); --quick: 4 cycles
//   (N = 0, 2, 4), one 2 s fio run per test, nothing recorded.
//   --record writes bench/results/fragmentation.json
import { execFileSync } from 'node:child_process';
import { closeSync, mkdirSync, openSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { MiB, pluginIdentity, flag, fmtMs, loadTs, machine, now, opt, preflight, prng, round, runBench, stats, writeResult } from './lib/common.mjs';
import { writeRandom, writeRanges } from './lib/disk.mjs';
import { BenchSim } from './lib/sim.mjs';
import { filefragExtents, run, syncFs, xfsLoop } from './lib/storage.mjs';

preflight('fragmentation', { needs: ['mkfs.xfs', 'losetup', 'filefrag', 'fio'] });
process.env.FLATSNAP_SMLOG ??= '/dev/null';
const QUICK = flag('quick');
const CYCLES = QUICK ? 4 : 32;
const CHECKPOINTS = QUICK ? [0, 2, 4] : [0, 4, 8, 32];
const FIO_SECONDS = Number(opt('fio-seconds', QUICK ? 2 : 5));
const FIO_RUNS = QUICK ? 1 : 3;
const SNAPS_PER_CHECKPOINT = QUICK ? 3 : 5;
const DISK = 1024 * MiB;
const BLOCK = 64 * 1024;
const BLOCKS = DISK / BLOCK;
const PER_CYCLE = Math.round(BLOCKS * 0.1);

const { openBackend } = await loadTs('src/backends/type-analysis.ts');
const native = (await loadTs('src/native.ts')).loadNative();
const RANDWRITE = ['--rw=randwrite', '--bs=2k', '--io_size=16m', '--end_fsync=1'];

/** Runs a fio test FIO_RUNS times: the run with the median IOPS, plus every run's IOPS. */
async function repeat(test) {
  const runs = [];
  for (let i = 0; i < FIO_RUNS; i++) runs.push(await test());
  const sorted = [...runs].sort((a, b) => a.iops - b.iops);
  return { ...sorted[Math.floor(sorted.length / 2)], iops_runs: runs.map((r) => r.iops), bw_mib_s_runs: runs.map((r) => r.bw_mib_s) };
}

function fio(path, name, args) {
  const out = execFileSync(
    'fio',
    [`--name=${name}`, `--filename=${path}`, '--direct=1', '--ioengine=libaio', '--iodepth=16', '--randrepeat=1', '--randseed=1234', '--output-format=json', ...args],
    { encoding: 'utf8', maxBuffer: 64 * MiB },
  );
  const job = JSON.parse(out.slice(out.indexOf('{'))).jobs[0];
  const side = job.read.io_bytes > 0 ? job.read : job.write;
  return { iops: round(side.iops, 0), bw_mib_s: round(side.bw_bytes / MiB, 1), lat_us_mean: round(side.lat_ns.mean / 1000, 1), io_bytes: side.io_bytes, runtime_ms: job.job_runtime ?? side.runtime };
}

await runBench(async (cleanup) => {
  const m = machine();
  const build = pluginIdentity(); // what is measured (each simulator runs a private copy of it)
  m.fio = execFileSync('fio', ['--version'], { encoding: 'utf8' }).trim();
  const fs = await xfsLoop(cleanup, { sizeMiB: 10 * 1024, mkfsArgs: ['-b', 'size=2048'], directIo: true });
  const srDir = join(fs.mountpoint, 'sr');
  mkdirSync(srDir);
  const dc = { path: srDir };
  const sim = await BenchSim.start(cleanup);
  await sim.createSr(dc);
  const be = await openBackend(dc);
  const disk = await sim.createVdi('disk', DISK);
  const diskUuid = await sim.call('VDI.get_uuid', disk);
  const path = await sim.attachPath(disk);
  let t0 = now();
  await writeRandom(path, 0, DISK);
  console.log(`wrote the 1 GiB disk in ${fmtMs(now() - t0)}`);

  const health = async () => {
    const o = (await be.inventory()).find((x) => x.vdi === diskUuid && x.kind === 'volume');
    return be.health(o);
  };
  const snapshot = async () => {
    const logMark = sim.log.mark();
    const smMark = sim.smLog().length;
    const [ref, ms] = await sim.timed('VDI.snapshot', disk, {});
    const cmds = sim.smLog().slice(smMark).map((e) => e.cmd);
    if (cmds.join() !== 'vdi_snapshot,vdi_update') throw new Error(`unexpected plugin runs during VDI.snapshot: ${cmds.join(', ')}`);
    const r = sim.log.runsSince(logMark).find((x) => x.cmd === 'vdi_snapshot');
    return { ref, api: ms, plugin: r?.ms ?? NaN };
  };
  const scratch = join(fs.mountpoint, 'ficlone.img');
  // FICLONE alone: the ioctl the backend makes, through the same native addon, timed
  // around the ioctl only (source already fsynced by the checkpoint's syncfs).
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
    // XFS frees an unlinked file's extents in the background (inodegc); a clone right
    // after would wait for that. syncfs flushes it, untimed.
    await syncFs(fs.mountpoint);
    return ms;
  };

  const rnd = prng(5);
  const series = [];
  const checkpoints = [];
  for (let n = 0; n <= CYCLES; n++) {
    let snaps;
    if (CHECKPOINTS.includes(n)) {
      await syncFs(fs.mountpoint);
      const h = await health();
      const frag = await filefragExtents(path);
      const randread = await repeat(() => fio(path, 'randread', ['--rw=randread', '--bs=2k', `--runtime=${FIO_SECONDS}`, '--time_based=1']));
      const seqread = await repeat(() => fio(path, 'seqread', ['--rw=read', '--bs=1m']));
      // Random writes go to a reflink copy of the live image (same extent map, every block
      // shared: each write is copy-on-write, as the first write after a snapshot), so that
      // the 8,192 small writes do not fragment the live image the series measures.
      const randwrite = await repeat(async () => {
        await run('cp', ['--reflink=always', path, scratch]);
        const r = fio(scratch, 'randwrite-clone', RANDWRITE);
        rmSync(scratch, { force: true });
        await syncFs(fs.mountpoint);
        return r;
      });
      // Before any snapshot, the same writes in place (unshared blocks: no CoW, no new extents).
      const inPlace = n === 0 ? await repeat(() => fio(path, 'randwrite-live', RANDWRITE)) : undefined;
      await syncFs(fs.mountpoint);
      const fic = [];
      for (let i = 0; i < SNAPS_PER_CHECKPOINT; i++) fic.push(await ficlone());
      snaps = [];
      for (let i = 0; i < SNAPS_PER_CHECKPOINT; i++) snaps.push(await snapshot());
      for (const s of snaps.slice(1)) await sim.call('VDI.destroy', s.ref);
      await syncFs(fs.mountpoint);
      const c = {
        n,
        extents: h.extents,
        fragments: h.fragments,
        shared_extents: h.shared_extents,
        shared_bytes: h.shared_bytes,
        filefrag_extents: frag,
        randread_2k: randread,
        randwrite_2k_cow: randwrite,
        ...(inPlace ? { randwrite_2k_in_place: inPlace } : {}),
        seqread_1m: seqread,
        snapshot_api_ms: stats(snaps.map((s) => s.api)),
        snapshot_plugin_ms: stats(snaps.map((s) => s.plugin)),
        ficlone_ms: stats(fic, 3),
      };
      checkpoints.push(c);
      console.log(
        `N=${String(n).padStart(2)}: extents ${h.extents} (fragments ${h.fragments}, shared ${h.shared_extents}; filefrag ${frag}); ` +
          `2K randread ${randread.iops} IOPS, 2K randwrite (CoW) ${randwrite.iops} IOPS${inPlace ? ` (in place ${inPlace.iops})` : ''}, 1M seq read ${seqread.bw_mib_s} MiB/s; ` +
          `VDI.snapshot ${fmtMs(c.snapshot_api_ms.median)} (plugin ${fmtMs(c.snapshot_plugin_ms.median)}), FICLONE ${fmtMs(c.ficlone_ms.median)}`,
      );
    } else {
      snaps = [await snapshot()];
    }
    series.push({ n, api_ms: round(snaps[0].api), plugin_ms: round(snaps[0].plugin) });
    if (n < CYCLES) {
      // 10 % of the disk in distinct random 64 KiB blocks
      const pick = new Set();
      while (pick.size < PER_CYCLE) pick.add(Math.floor(rnd() * BLOCKS));
      await writeRanges(path, [...pick].sort((a, b) => a - b).map((b) => [b * BLOCK, BLOCK]));
    }
  }
  const final = await health();
  console.log(`after ${CYCLES} cycles + the last snapshot: live image ${final.extents} extents (${final.fragments} fragments)`);
  await sim.unplugSr();

  const c0 = checkpoints[0];
  const cN = checkpoints[checkpoints.length - 1];
  const result = {
    benchmark: 'fragmentation',
    date: new Date().toISOString(),
    quick: QUICK,
    machine: m,
    build,
    storage: 'XFS (mkfs.xfs -m reflink=1 -b size=2048) on a loop device with --direct-io=on over a sparse 10 GiB image on the VM disk',
    method: {
      disk: '1 GiB VDI of the flatsnap reflink SR, written in full sequentially (random data) through the attach path',
      cycle: `VDI.snapshot, then ${PER_CYCLE} distinct random 64 KiB-aligned 64 KiB blocks (10 %) rewritten with random data, fsync`,
      extents: 'ReflinkBackend.health() of the live image (FIEMAP) and filefrag, before the fio runs',
      fio: `each test ${FIO_RUNS} times, median run; O_DIRECT, libaio, iodepth 16, randseed 1234; randread bs=2k ${FIO_SECONDS} s and read bs=1m of the whole file on the live image; randwrite bs=2k io_size=16m end_fsync=1 on a fresh reflink copy of the live image (all blocks shared: copy-on-write writes; the live image is not fragmented by the test), removed afterwards; at N=0 also in place on the live image (no CoW)`,
      snapshot: `${SNAPS_PER_CHECKPOINT} synchronous VDI.snapshot at each checkpoint (first kept, rest deleted), client wall time and plugin in-process time; FICLONE alone = the FICLONE ioctl (native addon) of the live image into a new file, timed around the ioctl`,
      baseline: 'no fragmentation measure in the driver (defrag, extent size hints, cowextsize): the reference for issue 5',
    },
    checkpoints,
    series,
    final_extents: final.extents,
    summary: {
      extents: `${c0.extents} -> ${cN.extents}`,
      randread_2k_iops_ratio: round(cN.randread_2k.iops / c0.randread_2k.iops, 3),
      randwrite_2k_cow_iops_ratio: round(cN.randwrite_2k_cow.iops / c0.randwrite_2k_cow.iops, 3),
      randwrite_2k_vs_in_place_at_0: round(cN.randwrite_2k_cow.iops / c0.randwrite_2k_in_place.iops, 3),
      seqread_1m_ratio: round(cN.seqread_1m.bw_mib_s / c0.seqread_1m.bw_mib_s, 3),
      snapshot_plugin_ms_ratio: round(cN.snapshot_plugin_ms.median / c0.snapshot_plugin_ms.median, 3),
      ficlone_ms_ratio: round(cN.ficlone_ms.median / c0.ficlone_ms.median, 3),
    },
  };
  console.log(`N=${cN.n} vs N=0: ${JSON.stringify(result.summary)}`);
  if (flag('record') && !QUICK) writeResult('fragmentation.json', result);
  else if (flag('record')) console.log('(--quick: not recorded)');
});
