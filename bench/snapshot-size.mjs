// vdi_snapshot cost against disk size, end to end: the built plugin under the XAPI
// simulator, a synchronous VDI.snapshot timed from the client (xapi's flow: vdi_snapshot,
// then vdi_update of the new VDI), and the plugin's own in-process time of vdi_snapshot
// from its log. Two disks in the same SR, 256 MiB and 8 GiB, holding the SAME data:
// the first 64 MiB plus 16 scattered 1 MiB extents, written through the attach path;
// before every snapshot 1 MiB more is written at a random place (untimed), so each
// snapshot captures a change. Snapshots of the two disks alternate (which goes first
// alternates too), one warm-up snapshot each is not counted; median of --runs (7).
// Target: median(8 GiB) / median(256 MiB) <= 1.2.
//
// Backends: zfs (zfs-fuse here: a dataset per VDI with a sparse disk.raw) and xfs
// (reflink backend on an XFS reflink=1 loop filesystem). On xfs the same images are also
// copied without the driver, to show what reflink avoids: `cp --reflink=always` (FICLONE,
// the storage step of a reflink snapshot), `dd bs=4M conv=fsync` (a plain full copy:
// reads and writes every byte, holes included) and `dd bs=4M conv=sparse,fsync` (reads
// every byte, writes only non-zero blocks: what a sparse-aware copy costs). Page cache
// warm (the data was just written). The 8 GiB full copies are fewer (--copy-runs-big, 3).
//
// Usage: node bench/snapshot-size.mjs [--quick] [--runs N] [--backends zfs,xfs] [--record]
//   needs root and make build; --quick: 2 runs, 1 GiB instead of 8 GiB, nothing recorded
//   --record writes bench/results/snapshot-size.json
import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { GiB, pluginIdentity, MiB, flag, fmtMs, machine, median, now, opt, preflight, prng, round, runBench, stats, writeResult } from './lib/common.mjs';
import { writeRandom, writeRanges } from './lib/disk.mjs';
import { BenchSim } from './lib/sim.mjs';
import { run, syncFs, xfsLoop, zfsPool } from './lib/storage.mjs';

preflight('snapshot-size', { needs: ['zfs', 'mkfs.xfs', 'losetup', 'dd'] });
const QUICK = flag('quick');
const RUNS = Number(opt('runs', QUICK ? 2 : 7));
const COPY_RUNS_BIG = Number(opt('copy-runs-big', QUICK ? 1 : 3));
const BACKENDS = String(opt('backends', 'zfs,xfs')).split(',');
const SMALL = 256 * MiB;
const BIG = QUICK ? 1 * GiB : 8 * GiB;
const HEAD = 64 * MiB;
const SCATTERED = 16;

/** The data layout: first 64 MiB, then 16 x 1 MiB spread over the rest of the disk. */
function initialRanges(size) {
  const ranges = [[0, HEAD]];
  const step = Math.floor((size - HEAD) / SCATTERED / MiB) * MiB;
  for (let i = 0; i < SCATTERED; i++) ranges.push([HEAD + i * step + Math.floor(step / 2 / MiB) * MiB, MiB]);
  return ranges;
}

async function benchBackend(cleanup, backend) {
  console.log(`\n== ${backend} ==`);
  const out = { backend };
  let dc;
  let mnt;
  let pool;
  let sim;
  if (backend === 'zfs') {
    pool = await zfsPool(cleanup, { sizeMiB: 20 * 1024, tag: 'snapsize' });
    dc = { dataset: `${pool.name}/sr` };
    out.storage = `${pool.flavor} pool on a sparse 20 GiB image file (${pool.name})`;
  } else {
    const fs = await xfsLoop(cleanup, { sizeMiB: 24 * 1024 });
    mnt = fs.mountpoint;
    mkdirSync(join(mnt, 'sr'));
    dc = { path: join(mnt, 'sr') };
    out.storage = 'XFS (mkfs.xfs -m reflink=1, 4 KiB blocks) on a loop device over a sparse 24 GiB image';
  }
  sim = await BenchSim.start(cleanup);
  await sim.createSr(dc);

  const disks = [];
  for (const size of [SMALL, BIG]) {
    const vdi = await sim.createVdi(`disk-${size / MiB}M`, size);
    const path = await sim.attachPath(vdi);
    const t0 = now();
    await writeRanges(path, initialRanges(size));
    const written = initialRanges(size).reduce((a, [, l]) => a + l, 0);
    console.log(`${size / MiB} MiB disk: wrote ${written / MiB} MiB in ${fmtMs(now() - t0)} (${path})`);
    disks.push({ size, vdi, path, written, client: [], plugin: [], update: [], first: undefined });
  }

  const rnd = prng(42);
  const snapOnce = async (d) => {
    await writeRandom(d.path, Math.floor(rnd() * (d.size / MiB - 1)) * MiB, MiB);
    const logMark = sim.log.mark();
    const smMark = sim.smLog().length;
    const [, ms] = await sim.timed('VDI.snapshot', d.vdi, {});
    const cmds = sim.smLog().slice(smMark).map((e) => e.cmd);
    if (cmds.join() !== 'vdi_snapshot,vdi_update') throw new Error(`unexpected plugin runs during VDI.snapshot: ${cmds.join(', ')}`);
    const runs = sim.log.runsSince(logMark);
    const snap = runs.find((r) => r.cmd === 'vdi_snapshot');
    const upd = runs.find((r) => r.cmd === 'vdi_update');
    return { client: ms, plugin: snap?.ms ?? NaN, update: upd?.ms ?? NaN };
  };
  for (const d of disks) d.first = await snapOnce(d); // warm-up, not counted
  for (let i = 0; i < RUNS; i++) {
    const order = i % 2 ? [disks[1], disks[0]] : disks;
    for (const d of order) {
      const r = await snapOnce(d);
      d.client.push(r.client);
      d.plugin.push(r.plugin);
      d.update.push(r.update);
    }
  }
  out.disks = disks.map((d) => ({
    virtual_size: d.size,
    data_written_bytes: d.written + (RUNS + 1) * MiB,
    snapshot_api_ms: stats(d.client),
    vdi_snapshot_plugin_ms: stats(d.plugin),
    vdi_update_plugin_ms: stats(d.update),
    warmup_snapshot: { api_ms: round(d.first.client), plugin_ms: round(d.first.plugin) },
  }));
  out.ratio_api = round(median(disks[1].client) / median(disks[0].client), 3);
  out.ratio_plugin = round(median(disks[1].plugin) / median(disks[0].plugin), 3);
  for (const d of out.disks) {
    console.log(
      `${String(d.virtual_size / MiB).padStart(5)} MiB: VDI.snapshot ${fmtMs(d.snapshot_api_ms.median)} (min ${fmtMs(d.snapshot_api_ms.min)}, max ${fmtMs(d.snapshot_api_ms.max)}), ` +
        `plugin vdi_snapshot ${fmtMs(d.vdi_snapshot_plugin_ms.median)}`,
    );
  }
  console.log(`ratio ${BIG / MiB} MiB / 256 MiB: API ${out.ratio_api}, plugin ${out.ratio_plugin} (target <= 1.2)`);

  if (backend === 'xfs') {
    // What a copy without reflink costs, on the same files.
    const copyTo = join(mnt, 'copy.img');
    const copy = async (cmd, args) => {
      rmSync(copyTo, { force: true });
      await syncFs(mnt);
      const t0 = now();
      await run(cmd, args);
      if (cmd === 'cp') await syncFs(mnt);
      const ms = now() - t0;
      rmSync(copyTo, { force: true });
      await syncFs(mnt);
      return ms;
    };
    out.copies = [];
    for (const d of disks) {
      const n = d.size === SMALL ? RUNS : COPY_RUNS_BIG;
      const row = { virtual_size: d.size, runs: n, reflink: [], full: [], sparse: [] };
      for (let i = 0; i < n; i++) {
        row.reflink.push(await copy('cp', ['--reflink=always', d.path, copyTo]));
        row.full.push(await copy('dd', [`if=${d.path}`, `of=${copyTo}`, 'bs=4M', 'conv=fsync', 'status=none']));
        row.sparse.push(await copy('dd', [`if=${d.path}`, `of=${copyTo}`, 'bs=4M', 'conv=sparse,fsync', 'status=none']));
      }
      const r = { virtual_size: d.size, runs: n, cp_reflink_ms: stats(row.reflink), dd_full_copy_ms: stats(row.full), dd_sparse_copy_ms: stats(row.sparse) };
      out.copies.push(r);
      console.log(
        `${String(d.size / MiB).padStart(5)} MiB copies (median of ${n}): cp --reflink=always ${fmtMs(r.cp_reflink_ms.median)}, ` +
          `dd full ${fmtMs(r.dd_full_copy_ms.median)}, dd sparse ${fmtMs(r.dd_sparse_copy_ms.median)}`,
      );
    }
  }
  await sim.unplugSr();
  return out;
}

await runBench(async (cleanup) => {
  const m = machine();
  const build = pluginIdentity(); // what is measured (each simulator runs a private copy of it)
  const results = [];
  for (const b of BACKENDS) results.push(await benchBackend(cleanup, b));
  const result = {
    benchmark: 'snapshot-size',
    date: new Date().toISOString(),
    quick: QUICK,
    machine: m,
    build,
    method: {
      what: 'synchronous VDI.snapshot through the XAPI simulator (vdi_snapshot + vdi_update plugin runs), wall time at the client; plugin in-process time of vdi_snapshot from its log ("ok in N ms", excludes Node start-up)',
      data: `each disk holds the first 64 MiB + ${SCATTERED} x 1 MiB scattered over the disk (same ${HEAD / MiB + SCATTERED} MiB on both sizes), plus 1 MiB at a random offset before each snapshot`,
      runs: RUNS,
      order: 'one uncounted warm-up snapshot per disk, then the two disks alternate, first disk alternating',
      simulator: 'state on tmpfs, auto-scan off; plugin exec through a 2-line sh wrapper (sets FLATSNAP_SMLOG)',
    },
    target: { ratio_max: 1.2 },
    backends: results,
    pass: results.every((r) => r.ratio_api <= 1.2),
  };
  if (flag('record') && !QUICK) writeResult('snapshot-size.json', result);
  else if (flag('record')) console.log('(--quick: not recorded)');
});
