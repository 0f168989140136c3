// Per-VDI commands vs the SR's size: does a vdi_snapshot (vdi_clone, vdi_update,
// vdi_delete, sr_update) on one disk cost more when the SR holds thousands of other
// objects? One measured disk, made through the XAPI simulator (VDI.create); around it,
// "filler" objects made WITHOUT the plugin by the backend classes in this process (VDIs
// with 5 snapshots each, 1 GiB sparse, no data), which xapi never sees: no scan runs, so
// the per-VDI calls are the only thing that could look at them. At each SR size N
// (filler objects), --runs times, the cycle
//     VDI.snapshot(disk)  -> vdi_snapshot + vdi_update
//     VDI.clone(snapshot) -> vdi_clone + vdi_update
//     VDI.update(disk)    -> vdi_update
//     VDI.destroy(clone)  -> vdi_delete   (a clone of a snapshot)
//     VDI.destroy(snap)   -> vdi_delete   (a snapshot without dependants)
//     SR.update           -> sr_update
// is timed at the client (synchronous XenAPI calls) and in the plugin (its own "<cmd> ok in
// N ms", so Node start-up is excluded), with the zfs commands each run made (debug log).
//
// Usage: node bench/per-vdi.mjs [--quick] [--backends xfs,zfs] [--xfs-sizes 0,600,6000]
//        [--zfs-sizes 0,300,1800] [--runs 3] [--label before|after] [--record]
//   needs root and make build; --record writes bench/results/per-vdi-<label>.json
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { MiB, flag, fmtMs, loadTs, machine, now, opt, pluginIdentity, preflight, round, runBench, stats, writeResult } from './lib/common.mjs';
import { BenchSim } from './lib/sim.mjs';
import { xfsLoop, zfsPool } from './lib/storage.mjs';

preflight('per-vdi', { needs: ['zfs', 'mkfs.xfs', 'losetup'] });
process.env.FLATSNAP_SMLOG ??= '/dev/null'; // this process's own backend instances log nowhere
const QUICK = flag('quick');
const RUNS = Number(opt('runs', QUICK ? 1 : 3));
const BACKENDS = String(opt('backends', 'xfs,zfs')).split(',');
const SIZES = {
  xfs: String(opt('xfs-sizes', QUICK ? '0,60' : '0,600,6000')).split(',').map(Number),
  zfs: String(opt('zfs-sizes', QUICK ? '0,60' : '0,300,1800')).split(',').map(Number),
};
const LABEL = String(opt('label', 'current'));
const SNAPS_PER_VDI = 5;
const CONCURRENCY = 8;

const { openBackend } = await loadTs('src/backends/type-analysis.ts');
const { formatSnapshotName } = await loadTs('src/lineage/names.ts');
const { xapiTime, EPOCH } = await loadTs('src/sr/xapi-sync.ts');

const T0 = Date.UTC(2026, 0, 1);

/** Fills the SR up to `objects` filler objects (groups of a VDI and its 5 snapshots). */
async function fill(backend, state, objects) {
  const groups = Math.ceil(objects / (1 + SNAPS_PER_VDI));
  const worker = async () => {
    while (state.groups < groups) {
      const i = state.groups++;
      const id = randomUUID();
      const created = T0 + i * 3600_000;
      const meta = { name_label: `filler${i}`, name_description: '', vdi_type: 'user', is_a_snapshot: false, snapshot_time: EPOCH, snapshot_of: '', read_only: false };
      const vol = await backend.create(id, meta, 1024 * MiB, created);
      for (let k = 1; k <= SNAPS_PER_VDI; k++) {
        const sid = randomUUID();
        const t = created + k * 60_000;
        await backend.snapshot(sid, vol, formatSnapshotName(t, sid), 'snapshot', { ...meta, is_a_snapshot: true, snapshot_time: xapiTime(t), snapshot_of: id, read_only: true });
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  return state.groups * (1 + SNAPS_PER_VDI);
}

/** One synchronous call and the plugin runs it caused: [result, api ms, runs]. */
async function measured(sim, method, ...params) {
  const mark = sim.log.mark();
  const smMark = sim.smLog().length;
  const [v, ms] = await sim.timed(method, ...params);
  const runs = sim.log.runsSince(mark);
  const cmds = sim.smLog().slice(smMark).map((e) => e.cmd);
  if (cmds.includes('sr_scan')) throw new Error(`${method}: an sr_scan ran in between`);
  return [v, ms, runs];
}

const STEPS = ['VDI.snapshot', 'VDI.clone', 'VDI.update', 'VDI.destroy(clone)', 'VDI.destroy(snapshot)', 'SR.update'];

async function cycle(sim, disk) {
  const out = {};
  const note = (step, ms, runs, cmd) => {
    const r = runs.find((x) => x.cmd === cmd);
    out[step] = { api_ms: ms, cmd, plugin_ms: r?.ms ?? NaN, zfs: r?.zfs ?? 0, zfs_list: r?.zfsArgs ?? [] };
  };
  const [snap, a, ra] = await measured(sim, 'VDI.snapshot', disk, {});
  note('VDI.snapshot', a, ra, 'vdi_snapshot');
  const [clone, b, rb] = await measured(sim, 'VDI.clone', snap, {});
  note('VDI.clone', b, rb, 'vdi_clone');
  const [, c, rc] = await measured(sim, 'VDI.update', disk);
  note('VDI.update', c, rc, 'vdi_update');
  const [, d, rd] = await measured(sim, 'VDI.destroy', clone);
  note('VDI.destroy(clone)', d, rd, 'vdi_delete');
  const [, e, re] = await measured(sim, 'VDI.destroy', snap);
  note('VDI.destroy(snapshot)', e, re, 'vdi_delete');
  const [, f, rf] = await measured(sim, 'SR.update', sim.sr);
  note('SR.update', f, rf, 'sr_update');
  return out;
}

async function benchBackend(cleanup, backend) {
  console.log(`\n== ${backend} ==`);
  const out = { backend, sizes: [] };
  let dc;
  if (backend === 'zfs') {
    const pool = await zfsPool(cleanup, { sizeMiB: 16 * 1024, tag: 'pervdi' });
    dc = { dataset: `${pool.name}/sr` };
    out.storage = `${pool.flavor} pool on a sparse image file`;
  } else {
    const fs = await xfsLoop(cleanup, { sizeMiB: 8 * 1024 });
    mkdirSync(join(fs.mountpoint, 'sr'));
    dc = { path: join(fs.mountpoint, 'sr') };
    out.storage = 'XFS (reflink=1, 4 KiB blocks) on a loop device over a sparse 8 GiB image';
  }
  const sim = await BenchSim.start(cleanup, { debug: true });
  await sim.createSr(dc);
  const disk = await sim.createVdi('measured', 64 * MiB);
  const be = await openBackend(dc);
  const state = { groups: 0 };
  for (const want of SIZES[backend]) {
    const t0 = now();
    const filler = want === 0 ? 0 : await fill(be, state, want);
    const fillS = (now() - t0) / 1000;
    const cycles = [];
    for (let i = 0; i < RUNS; i++) cycles.push(await cycle(sim, disk));
    const row = { filler_objects: filler, fill_s: round(fillS, 1), steps: {} };
    for (const step of STEPS) {
      const xs = cycles.map((c) => c[step]);
      row.steps[step] = {
        cmd: xs[0].cmd,
        api_ms: stats(xs.map((x) => x.api_ms)),
        plugin_ms: stats(xs.map((x) => x.plugin_ms)),
        zfs_commands: xs[0].zfs,
        ...(backend === 'zfs' ? { zfs_command_list: xs[0].zfs_list } : {}),
      };
    }
    out.sizes.push(row);
    console.log(`${filler} filler objects (made in ${fillS.toFixed(1)} s):`);
    for (const step of STEPS) {
      const s = row.steps[step];
      console.log(`   ${step.padEnd(22)} api ${fmtMs(s.api_ms.median).padStart(9)}  plugin ${s.cmd.padEnd(12)} ${fmtMs(s.plugin_ms.median).padStart(9)}${backend === 'zfs' ? `  zfs ${s.zfs_commands}` : ''}`);
    }
  }
  await sim.unplugSr();
  return out;
}

await runBench(async (cleanup) => {
  const m = machine();
  const build = pluginIdentity();
  const results = [];
  for (const b of BACKENDS) results.push(await benchBackend(cleanup, b));
  const result = {
    benchmark: 'per-vdi',
    label: LABEL,
    date: new Date().toISOString(),
    quick: QUICK,
    machine: m,
    build,
    method: {
      filler: `groups of one VDI (1 GiB sparse, no data) + ${SNAPS_PER_VDI} snapshots, made by the backend classes in-process, not known to xapi`,
      cycle: STEPS.join(', ') + ` on one 64 MiB disk made through xapi; ${RUNS} cycles per SR size (median)`,
      api_ms: 'synchronous XenAPI call timed at the client (includes Node start-up of every plugin run it causes)',
      plugin_ms: "the plugin's own in-process time for the named command (its log: '<cmd> ok in N ms')",
      zfs_commands: 'zfs/zpool commands that plugin run made, from its debug log (feature detection included)',
    },
    target: 'per-VDI commands flat in the SR size; sr_update without a full inventory',
    backends: results,
  };
  if (flag('record') && !QUICK) writeResult(`per-vdi-${LABEL}.json`, result);
  else if (flag('record')) console.log('(--quick: not recorded)');
});
