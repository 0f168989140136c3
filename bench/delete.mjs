// Deleting a snapshot after the live disk diverged: vdi_delete does no data copy, and its
// time does not grow with how much the disk changed since the snapshot.
//
// For N = 16, 64, 256 MiB, --reps times (5): take a snapshot of a 1 GiB disk whose first
// 256 MiB hold data, rewrite the first N MiB of the live disk (random data, fsync), let
// the storage settle, then time a synchronous VDI.destroy of the snapshot from the client
// (one plugin run, vdi_delete) and take the plugin's in-process time from its log. Around
// the delete (storage settled before and after):
//   - bytes written to the storage device (/sys/block/loopN/stat of the loop device under
//     the pool or the filesystem), minus what one settle alone writes (median of --reps
//     empty settles): what the delete wrote, metadata included;
//   - space used before/after: ZFS `used` of the SR root dataset and the snapshot's own
//     `used` (its unique bytes) just before the delete; XFS statfs used blocks.
// Settling: ZFS `zfs set` of a user property on the pool (a sync task: returns once its
// transaction group is on disk); XFS syncfs.
// Next to it, what a VHD SR would do: deleting a snapshot leaves the live leaf as the
// only child of the former parent, and SM's GC coalesces the leaf's differencing data
// (N MiB, the blocks written since the snapshot) into the parent: N MiB read + N MiB
// written. For scale, a plain copy of N MiB on the same storage (dd bs=4M conv=fsync into
// a scratch file on the same pool / filesystem) is timed too.
//
// Backends: zfs (zfs-fuse pool on a loop device over a sparse image) and xfs (reflink
// backend on XFS reflink=1 on a loop device).
// Usage: node bench/delete.mjs [--quick] [--reps N] [--backends zfs,xfs] [--record]
//   needs root and make build; --quick: N = 16, 64 and 1 rep, nothing recorded
//   --record writes bench/results/delete.json
import { mkdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { MiB, pluginIdentity, flag, fmtBytes, fmtMs, machine, median, now, opt, preflight, round, runBench, sleep, stats, writeResult } from './lib/common.mjs';
import { writeRandom } from './lib/disk.mjs';
import { BenchSim } from './lib/sim.mjs';
import { deviceWrittenBytes, fsUsedBytes, run, syncFs, xfsLoop, zfsPool, zfsProps, zfsQuiesce } from './lib/storage.mjs';

preflight('delete', { needs: ['zfs', 'mkfs.xfs', 'losetup', 'dd'] });
const QUICK = flag('quick');
const REPS = Number(opt('reps', QUICK ? 1 : 5));
const NS = QUICK ? [16, 64] : [16, 64, 256];
const BACKENDS = String(opt('backends', 'zfs,xfs')).split(',');
const DISK = 1024 * MiB;
const DATA = 256 * MiB;

async function benchBackend(cleanup, backend) {
  console.log(`\n== ${backend} ==`);
  const out = { backend };
  let sim;
  let dc;
  let settle;
  let used;
  let device;
  let scratchDir;
  if (backend === 'zfs') {
    scratchDir = join('/tmp', `flatsnap-bench-scratch-${process.pid}`);
    // registered first, so it runs after the pool (and its scratch mount) is gone
    cleanup.add(`remove ${scratchDir}`, () => rmSync(scratchDir, { recursive: true, force: true }));
    const pool = await zfsPool(cleanup, { sizeMiB: 8 * 1024, tag: 'delete', loop: true });
    device = pool.device;
    const root = `${pool.name}/sr`;
    dc = { dataset: root };
    settle = () => zfsQuiesce(pool.name);
    used = async () => (await zfsProps(root, ['used'])).used;
    await run('zfs', ['create', '-o', `mountpoint=${scratchDir}`, `${pool.name}/scratch`]);
    out.storage = `${pool.flavor} pool on ${device} (loop device over a sparse 8 GiB image)`;
  } else {
    const fs = await xfsLoop(cleanup, { sizeMiB: 8 * 1024 });
    device = fs.device;
    mkdirSync(join(fs.mountpoint, 'sr'));
    dc = { path: join(fs.mountpoint, 'sr') };
    settle = () => syncFs(fs.mountpoint);
    used = async () => fsUsedBytes(fs.mountpoint);
    scratchDir = fs.mountpoint;
    out.storage = `XFS (reflink=1, 4 KiB blocks) on ${device} (loop device over a sparse 8 GiB image)`;
  }
  sim = await BenchSim.start(cleanup);
  await sim.createSr(dc);
  const disk = await sim.createVdi('disk', DISK);
  const path = await sim.attachPath(disk);
  await writeRandom(path, 0, DATA);
  const diskUuid = await sim.call('VDI.get_uuid', disk);

  // What one settle writes by itself (subtracted from the delete's writes).
  await settle();
  const empty = [];
  for (let i = 0; i < Math.max(3, REPS); i++) {
    const w0 = deviceWrittenBytes(device);
    await settle();
    empty.push(deviceWrittenBytes(device) - w0);
  }
  const settleBytes = median(empty);
  out.settle_only_written_bytes = stats(empty, 0);
  console.log(`one settle alone writes ${fmtBytes(settleBytes)} (median of ${empty.length})`);

  // The ZFS snapshot holding a VDI's object: <root>/<volume id>@<time>-<vdi uuid>.
  const zfsSnapUsed = async (root, uuid) => {
    // (zfs-fuse has no `zfs list -p` nor `zfs get -t`)
    const list = await run('zfs', ['get', '-Hp', '-r', '-o', 'name,value', 'used', root]);
    const line = list.split('\n').find((l) => l.split('\t')[0].includes('@') && l.split('\t')[0].endsWith(`-${uuid}`));
    return line ? Number(line.split('\t')[1]) : NaN;
  };

  out.rows = [];
  for (const n of NS) {
    const row = { rewritten_mib: n, delete_api_ms: [], delete_plugin_ms: [], written_bytes: [], freed_bytes: [], snapshot_unique_bytes: [], copy_n_mib_ms: [] };
    for (let rep = 0; rep < REPS; rep++) {
      const snap = await sim.call('VDI.snapshot', disk, {});
      const snapUuid = await sim.call('VDI.get_uuid', snap);
      await writeRandom(path, 0, n * MiB);
      await settle();
      await sleep(200);
      await settle();
      if (backend === 'zfs') row.snapshot_unique_bytes.push(await zfsSnapUsed(dc.dataset, snapUuid));
      else row.snapshot_unique_bytes.push(statSync(join(dc.path, snapUuid)).blocks * 512); // allocated, shared or not
      const u0 = await used();
      const w0 = deviceWrittenBytes(device);
      const logMark = sim.log.mark();
      const smMark = sim.smLog().length;
      const [, ms] = await sim.timed('VDI.destroy', snap);
      const cmds = sim.smLog().slice(smMark).map((e) => e.cmd);
      if (cmds.join() !== 'vdi_delete') throw new Error(`unexpected plugin runs during VDI.destroy: ${cmds.join(', ')}`);
      await settle();
      const w1 = deviceWrittenBytes(device);
      const u1 = await used();
      const r = sim.log.runsSince(logMark).find((x) => x.cmd === 'vdi_delete');
      row.delete_api_ms.push(ms);
      row.delete_plugin_ms.push(r?.ms ?? NaN);
      row.written_bytes.push(w1 - w0 - settleBytes);
      row.freed_bytes.push(u0 - u1);

      // For scale: copying N MiB on the same storage (what a coalesce's data copy costs at least).
      const dst = join(scratchDir, 'copy.img');
      const t0 = now();
      await run('dd', [`if=${path}`, `of=${dst}`, 'bs=4M', `count=${n / 4}`, 'conv=fsync', 'status=none']);
      row.copy_n_mib_ms.push(now() - t0);
      rmSync(dst, { force: true });
      await settle();
    }
    const r = {
      rewritten_mib: n,
      vhd_coalesce_bytes: n * MiB,
      delete_api_ms: stats(row.delete_api_ms),
      delete_plugin_ms: stats(row.delete_plugin_ms),
      delete_written_bytes: stats(row.written_bytes, 0),
      freed_bytes: stats(row.freed_bytes, 0),
      snapshot_bytes_before_delete: stats(row.snapshot_unique_bytes, 0),
      dd_copy_n_mib_ms: stats(row.copy_n_mib_ms),
    };
    out.rows.push(r);
    console.log(
      `N=${String(n).padStart(3)} MiB: VDI.destroy ${fmtMs(r.delete_api_ms.median)} (plugin ${fmtMs(r.delete_plugin_ms.median)}), ` +
        `device writes ${fmtBytes(r.delete_written_bytes.median)}, freed ${fmtBytes(r.freed_bytes.median)}; ` +
        `VHD coalesce would copy ${n} MiB; dd of ${n} MiB here ${fmtMs(r.dd_copy_n_mib_ms.median)}`,
    );
  }
  const first = out.rows[0];
  const last = out.rows[out.rows.length - 1];
  out.time_ratio_api = round(last.delete_api_ms.median / first.delete_api_ms.median, 3);
  out.time_ratio_plugin = round(last.delete_plugin_ms.median / first.delete_plugin_ms.median, 3);
  console.log(`delete time N=${last.rewritten_mib} / N=${first.rewritten_mib}: API ${out.time_ratio_api}, plugin ${out.time_ratio_plugin}`);
  await sim.unplugSr();
  return { ...out, disk_uuid: diskUuid };
}

await runBench(async (cleanup) => {
  const m = machine();
  const build = pluginIdentity(); // what is measured (each simulator runs a private copy of it)
  const results = [];
  for (const b of BACKENDS) results.push(await benchBackend(cleanup, b));
  const result = {
    benchmark: 'delete',
    date: new Date().toISOString(),
    quick: QUICK,
    machine: m,
    build,
    method: {
      what: 'synchronous VDI.destroy of a snapshot through the XAPI simulator (one vdi_delete plugin run), wall time at the client; plugin in-process time from its log',
      setup: `1 GiB disk, first 256 MiB written; per rep: VDI.snapshot, rewrite the first N MiB of the live disk (random data, fsync), settle, delete the snapshot; ${REPS} reps per N`,
      written: 'bytes written to the loop device under the storage between a settle before and a settle after the delete, minus the median bytes of one settle alone (ZFS: zfs set of a user property = one synced txg; XFS: syncfs)',
      freed: 'ZFS: used of the SR root dataset before - after; XFS: statfs used before - after',
      vhd: 'a VHD SR deleting this snapshot coalesces the live leaf (N MiB of differencing data written since the snapshot) into the parent: N MiB read + N MiB written (vhd-util coalesce copies the sectors set in the leaf\'s block bitmaps; here the rewrite is N MiB contiguous and 2 MiB-aligned, so exactly N MiB)',
      dd_copy: 'dd bs=4M count=N/4 conv=fsync from the live disk into a scratch file on the same pool (separate dataset) / filesystem: a floor for the coalesce\'s data copy alone',
    },
    target: 'delete time flat in N (O(1) in the data changed); no data copied (device writes << N MiB)',
    backends: results,
  };
  if (flag('record') && !QUICK) writeResult('delete.json', result);
  else if (flag('record')) console.log('(--quick: not recorded)');
});
