// sr_scan at scale: an SR holding V VDIs and 5 snapshots of each (1,000 + 5,000 = 6,000
// VDIs by default), scanned through the XAPI simulator.
//   - first scan: the SR is sr-introduced into a FRESH simulator database (SR.introduce,
//     PBD.create, PBD.plug), then one synchronous SR.scan: every VDI is db_introduced,
//     snapshots with snapshot_of resolved. xapi's SR.scan re-runs sr_scan + sr_update while
//     a run changed the SR's VDI set, so the call is sr_scan, sr_update, sr_scan, sr_update.
//   - no-op rescan: SR.scan again (median of --rescans, 3): sr_scan + sr_update, no writes.
// Measured: wall time at the client; per plugin run its in-process time, its XenAPI calls
// (counted by a pass-through proxy in front of the simulator, with the time the simulator
// took to answer them) and the zfs commands it ran (plugin log at debug level).
// "plugin excl. XAPI" = in-process time minus the time spent waiting for XenAPI answers:
// the simulator answers each write after rewriting (and fsyncing) its whole JSON database,
// so on the first scan its share grows with n per call (O(n^2) in all); real xapi keeps
// its database in memory.
//
// The objects are made WITHOUT the plugin, by the backend classes the plugin uses
// (src/backends, openBackend(device_config)) in this process: create + snapshot per VDI,
// 1 GiB sparse disks with no data, snapshot metadata as vdi_snapshot writes it
// (is_a_snapshot, snapshot_of, snapshot_time). Creation time is measured on a pilot of
// 96 objects first and extrapolated; on zfs, if 6,000 would take longer than
// --zfs-budget seconds (90), the zfs variant uses as many VDIs (x6 objects) as fit.
// Finally VDI.snapshot of one disk in the big SR is timed (median of 3), to show what
// every per-VDI call pays for the SR's size (one full inventory per plugin run).
//
// Usage: node bench/scan.mjs [--quick] [--vdis 1000] [--backends xfs,zfs] [--zfs-budget S] [--record]
//   needs root and make build; --quick: 50 VDIs (300 objects), nothing recorded
//   --record writes bench/results/scan.json
import { randomUUID } from 'node:crypto';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { MiB, pluginIdentity, flag, fmtMs, loadTs, machine, median, now, opt, preflight, round, runBench, stats, sum, writeResult } from './lib/common.mjs';
import { BenchSim } from './lib/sim.mjs';
import { countByMethod } from './lib/xapi-proxy.mjs';
import { xfsLoop, zfsPool } from './lib/storage.mjs';

preflight('scan', { needs: ['zfs', 'mkfs.xfs', 'losetup'] });
process.env.FLATSNAP_SMLOG ??= '/dev/null'; // this process's own backend instances log nowhere
const QUICK = flag('quick');
const VDIS = Number(opt('vdis', QUICK ? 50 : 1000));
const SNAPS_PER_VDI = 5;
const RESCANS = Number(opt('rescans', QUICK ? 2 : 3));
const BACKENDS = String(opt('backends', 'xfs,zfs')).split(',');
const ZFS_BUDGET_S = Number(opt('zfs-budget', 90));
const PILOT_VDIS = 16; // x6 = 96 objects
const CONCURRENCY = 8;

const { openBackend } = await loadTs('src/backends/type-analysis.ts');
const { formatSnapshotName } = await loadTs('src/lineage/names.ts');
const { xapiTime, EPOCH } = await loadTs('src/sr/xapi-sync.ts');

const T0 = Date.UTC(2026, 0, 1);

/** Makes VDIs [from, to) with SNAPS_PER_VDI snapshots each, CONCURRENCY VDIs at a time. */
async function populate(backend, from, to) {
  let next = from;
  const worker = async () => {
    while (next < to) {
      const i = next++;
      const id = randomUUID();
      const created = T0 + i * 3600_000;
      const meta = { name_label: `vm${i}-disk0`, name_description: `disk of vm${i}`, vdi_type: 'user', is_a_snapshot: false, snapshot_time: EPOCH, snapshot_of: '', read_only: false };
      const vol = await backend.create(id, meta, 1024 * MiB, created);
      for (let k = 1; k <= SNAPS_PER_VDI; k++) {
        const sid = randomUUID();
        const t = created + k * 60_000;
        const smeta = { ...meta, is_a_snapshot: true, snapshot_time: xapiTime(t), snapshot_of: id, read_only: true };
        await backend.snapshot(sid, vol, formatSnapshotName(t, sid), 'snapshot', smeta);
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
}

/** One timed SR.scan with everything the plugin did during it. */
async function scanOnce(sim) {
  const logMark = sim.log.mark();
  const smMark = sim.smLog().length;
  const callMark = sim.proxy.calls.length;
  const [, ms] = await sim.timed('SR.scan', sim.sr);
  const cmds = sim.smLog().slice(smMark).map((e) => e.cmd);
  const runs = sim.log.runsSince(logMark).filter((r) => r.cmd === 'sr_scan' || r.cmd === 'sr_update');
  const calls = sim.proxy.calls.slice(callMark);
  // Calls group by plugin run through their session (a fresh one per run, in run order).
  const bySession = new Map();
  for (const c of calls) {
    if (!bySession.has(c.session)) bySession.set(c.session, []);
    bySession.get(c.session).push(c);
  }
  const groups = [...bySession.values()];
  const perRun = runs.map((r, i) => {
    const g = groups.length === runs.length ? groups[i] : [];
    const xapiMs = sum(g.map((c) => c.ms));
    return {
      cmd: r.cmd,
      plugin_ms: round(r.ms),
      xapi_calls: g.length,
      xapi_calls_by_method: countByMethod(g),
      xapi_wait_ms: round(xapiMs),
      plugin_excl_xapi_ms: round(r.ms - xapiMs),
      zfs_commands: r.zfs,
      zfs_command_list: r.zfsArgs,
    };
  });
  // The simulator's answer time per db_introduce, by tenth of the sequence (it grows with n).
  const intro = calls.filter((c) => c.method === 'VDI.db_introduce').map((c) => c.ms);
  const tenths = intro.length >= 10 ? Array.from({ length: 10 }, (_, i) => round(median(intro.slice(Math.floor((i * intro.length) / 10), Math.floor(((i + 1) * intro.length) / 10))), 2)) : undefined;
  return {
    api_ms: round(ms),
    sm_runs: cmds,
    ...(tenths ? { db_introduce_sim_ms_median_by_tenth: tenths } : {}),
    runs: perRun,
    xapi_calls: calls.length,
    xapi_calls_by_method: countByMethod(calls),
    xapi_wait_ms: round(sum(calls.map((c) => c.ms))),
    zfs_commands: sum(runs.map((r) => r.zfs)),
  };
}

async function benchBackend(cleanup, backend) {
  console.log(`\n== ${backend} ==`);
  const out = { backend };
  const srUuid = randomUUID();
  let dc;
  if (backend === 'zfs') {
    const pool = await zfsPool(cleanup, { sizeMiB: 16 * 1024, tag: 'scan' });
    dc = { dataset: `${pool.name}/sr` };
    out.storage = `${pool.flavor} pool on a sparse image file`;
  } else {
    const fs = await xfsLoop(cleanup, { sizeMiB: 8 * 1024 });
    mkdirSync(join(fs.mountpoint, 'sr'));
    dc = { path: join(fs.mountpoint, 'sr') };
    out.storage = 'XFS (reflink=1, 4 KiB blocks) on a loop device over a sparse 8 GiB image';
  }
  const be = await openBackend(dc);
  await be.createSr(srUuid);

  // Pilot, extrapolation, then the rest.
  let t0 = now();
  await populate(be, 0, PILOT_VDIS);
  const pilotS = (now() - t0) / 1000;
  const perVdiS = pilotS / PILOT_VDIS;
  const wantS = perVdiS * VDIS;
  let vdis = VDIS;
  if (backend === 'zfs' && wantS > ZFS_BUDGET_S) vdis = Math.max(PILOT_VDIS, Math.floor(ZFS_BUDGET_S / perVdiS / 50) * 50);
  out.creation = {
    pilot_objects: PILOT_VDIS * (1 + SNAPS_PER_VDI),
    pilot_s: round(pilotS, 2),
    extrapolated_s_for_requested: round(wantS, 1),
    requested_vdis: VDIS,
    vdis,
    concurrency: CONCURRENCY,
  };
  console.log(
    `creation pilot: ${PILOT_VDIS * (1 + SNAPS_PER_VDI)} objects in ${pilotS.toFixed(1)} s -> ${VDIS * (1 + SNAPS_PER_VDI)} objects ~${wantS.toFixed(0)} s` +
      (vdis !== VDIS ? `; over the ${ZFS_BUDGET_S} s budget: using ${vdis} VDIs (${vdis * (1 + SNAPS_PER_VDI)} objects)` : ''),
  );
  t0 = now();
  await populate(be, PILOT_VDIS, vdis);
  out.creation.total_s = round(pilotS + (now() - t0) / 1000, 1);
  out.vdis = vdis;
  out.snapshots = vdis * SNAPS_PER_VDI;
  const total = vdis * (1 + SNAPS_PER_VDI);
  console.log(`made ${vdis} VDIs + ${vdis * SNAPS_PER_VDI} snapshots in ${out.creation.total_s} s`);

  // First scan into a fresh database.
  const sim = await BenchSim.start(cleanup, { debug: true, proxy: true });
  await sim.introduceSr(srUuid, dc);
  let first;
  try {
    first = await scanOnce(sim);
  } catch (e) {
    // recorded, then the state is checked like after a good scan (a failed run may have
    // introduced everything; a rescan then shows the fixed point)
    first = { error: e instanceof Error ? e.message : String(e), runs: [], sm_runs: [] };
    console.log(`first scan FAILED: ${first.error}`);
  }
  const recs = await sim.call('VDI.get_all_records_where', `field "SR" = "${sim.sr}"`);
  const rows = Object.values(recs);
  const byRef = new Set(Object.keys(recs));
  const snapsLinked = rows.filter((r) => r.is_a_snapshot && byRef.has(r.snapshot_of)).length;
  if (rows.length !== total || snapsLinked !== vdis * SNAPS_PER_VDI) {
    throw new Error(`first scan: ${rows.length} VDIs in xapi (want ${total}), ${snapsLinked} snapshots linked (want ${vdis * SNAPS_PER_VDI})`);
  }
  out.first_scan = first;
  const fr = first.runs.find((r) => r.cmd === 'sr_scan') ?? {};
  if (!first.error) console.log(
    `first scan: ${fmtMs(first.api_ms)} (${first.sm_runs.join(', ')}); ${first.xapi_calls} XenAPI calls, simulator answering ${fmtMs(first.xapi_wait_ms)}; ` +
      `zfs commands ${first.zfs_commands}; introducing sr_scan: plugin ${fmtMs(fr.plugin_ms)}, excl. XAPI ${fmtMs(fr.plugin_excl_xapi_ms)}`,
  );
  for (const r of first.runs) console.log(`   ${r.cmd.padEnd(9)} ${fmtMs(r.plugin_ms).padStart(9)}  xapi ${String(r.xapi_calls).padStart(5)} calls (${fmtMs(r.xapi_wait_ms)})  zfs ${r.zfs_commands} [${r.zfs_command_list.join('; ')}]  ${JSON.stringify(r.xapi_calls_by_method)}`);

  // No-op rescans.
  const re = [];
  for (let i = 0; i < RESCANS; i++) {
    const r = await scanOnce(sim);
    if (r.sm_runs.join() !== 'sr_scan,sr_update') throw new Error(`rescan was not a fixed point: ${r.sm_runs.join(', ')}`);
    re.push(r);
  }
  const med = re[re.map((r) => r.api_ms).indexOf(median(re.map((r) => r.api_ms)))] ?? re[0];
  out.rescan = {
    api_ms: stats(re.map((r) => r.api_ms)),
    sr_scan_plugin_ms: stats(re.map((r) => r.runs[0]?.plugin_ms)),
    sr_scan_excl_xapi_ms: stats(re.map((r) => r.runs[0]?.plugin_excl_xapi_ms)),
    sr_update_plugin_ms: stats(re.map((r) => r.runs[1]?.plugin_ms)),
    xapi_calls: med.xapi_calls,
    xapi_calls_by_method: med.xapi_calls_by_method,
    zfs_commands: med.zfs_commands,
    runs_of_median: med.runs,
  };
  console.log(`no-op rescan: ${fmtMs(out.rescan.api_ms.median)} median of ${RESCANS}; ${med.xapi_calls} XenAPI calls ${JSON.stringify(med.xapi_calls_by_method)}; zfs commands ${med.zfs_commands}`);
  for (const r of med.runs) console.log(`   ${r.cmd.padEnd(9)} ${fmtMs(r.plugin_ms).padStart(9)}  xapi ${r.xapi_calls} calls (${fmtMs(r.xapi_wait_ms)})  zfs ${r.zfs_commands} [${r.zfs_command_list.join('; ')}]`);

  // A per-VDI call in the big SR.
  const disk = rows.find((r) => !r.is_a_snapshot);
  const diskRef = Object.keys(recs).find((k) => recs[k] === disk);
  const snaps = [];
  for (let i = 0; i < 3; i++) {
    const logMark = sim.log.mark();
    const [, ms] = await sim.timed('VDI.snapshot', diskRef, {});
    const r = sim.log.runsSince(logMark).find((x) => x.cmd === 'vdi_snapshot');
    snaps.push({ api: ms, plugin: r?.ms ?? NaN, zfs: r?.zfs ?? 0 });
  }
  out.snapshot_in_big_sr = { api_ms: stats(snaps.map((s) => s.api)), plugin_ms: stats(snaps.map((s) => s.plugin)), zfs_commands: snaps[0].zfs };
  console.log(`VDI.snapshot in this SR: ${fmtMs(out.snapshot_in_big_sr.api_ms.median)} (plugin ${fmtMs(out.snapshot_in_big_sr.plugin_ms.median)})`);
  await sim.unplugSr();
  return out;
}

await runBench(async (cleanup) => {
  const m = machine();
  const build = pluginIdentity(); // what is measured (each simulator runs a private copy of it)
  const results = [];
  for (const b of BACKENDS) results.push(await benchBackend(cleanup, b));
  const result = {
    benchmark: 'scan',
    date: new Date().toISOString(),
    quick: QUICK,
    machine: m,
    build,
    method: {
      objects: `V VDIs (1 GiB sparse, no data) with ${SNAPS_PER_VDI} snapshots each, made by the plugin's backend classes in-process (not through the plugin), ${CONCURRENCY} VDIs at a time`,
      first_scan: 'SR.introduce + PBD.create + PBD.plug into a fresh simulator database, then one synchronous SR.scan (xapi re-runs sr_scan + sr_update once the VDI set changed)',
      rescan: `SR.scan again, ${RESCANS} times (median)`,
      xapi_calls: 'counted by a pass-through proxy between the plugin and the simulator (FLATSNAP_XAPI_URL); xapi_wait_ms is the simulator\'s answer time for them',
      zfs_commands: 'zfs/zpool commands the plugin ran, from its debug log (the feature-detection `zfs version` included)',
      simulator: 'state on tmpfs, auto-scan off; the simulator rewrites its whole JSON database before each answer (O(n) per write call)',
    },
    target: 'rescan: XenAPI calls O(1) (no writes), 1 zfs get per plugin run; first scan: one db_introduce per VDI, nothing else per VDI',
    backends: results,
  };
  if (flag('record') && !QUICK) writeResult('scan.json', result);
  else if (flag('record')) console.log('(--quick: not recorded)');
});
