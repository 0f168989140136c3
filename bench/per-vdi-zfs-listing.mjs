// What each form of ZFS listing costs at n objects (groups of a volume + 5 snapshots), to
// choose what a per-VDI lookup may afford (bench/README.md, "Per-VDI commands"). Prints
// medians of 3; records nothing.
//   node bench/per-vdi-zfs-listing.mjs [--groups 300]   (root; 300 groups = 1,800 objects)
import { randomUUID } from 'node:crypto';
import { execa } from 'execa';
import { MiB, loadTs, now, median, opt, preflight, runBench } from './lib/common.mjs';
import { zfsPool } from './lib/storage.mjs';
process.env.FLATSNAP_SMLOG ??= '/dev/null';
const { openBackend } = await loadTs('src/backends/type-analysis.ts');
const { formatSnapshotName } = await loadTs('src/lineage/names.ts');
const { xapiTime, EPOCH } = await loadTs('src/sr/xapi-sync.ts');
const { NATIVE_PROPS, OBJECT_PROPS } = await loadTs('src/backends/zfs/records.ts');
const GROUPS = Number(opt('groups', 300));
preflight('per-vdi-zfs-listing', { needs: ['zfs'] });
await runBench(async (cleanup) => {
  const pool = await zfsPool(cleanup, { sizeMiB: 8192, tag: 'lst' });
  const root = `${pool.name}/sr`;
  const be = await openBackend({ dataset: root });
  await be.createSr(randomUUID());
  let g = 0;
  const names = [];
  const worker = async () => {
    while (g < GROUPS) {
      const i = g++;
      const id = randomUUID();
      const meta = { name_label: `f${i}`, name_description: '', vdi_type: 'user', is_a_snapshot: false, snapshot_time: EPOCH, snapshot_of: '', read_only: false };
      const vol = await be.create(id, meta, 1024 * MiB, Date.UTC(2026, 0, 1) + i * 3600_000);
      names.push(`${root}/${id}`);
      for (let k = 1; k <= 5; k++) {
        const sid = randomUUID();
        const t = vol.created + k * 60_000;
        await be.snapshot(sid, vol, formatSnapshotName(t, sid), 'snapshot', { ...meta, is_a_snapshot: true, snapshot_time: xapiTime(t), snapshot_of: id, read_only: true });
      }
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  const time = async (what, args) => {
    const xs = [];
    let lines = 0;
    for (let i = 0; i < 3; i++) {
      const t0 = now();
      const r = await execa('zfs', args);
      xs.push(now() - t0);
      lines = r.stdout.split('\n').length;
    }
    console.log(`${what.padEnd(60)} ${median(xs).toFixed(0).padStart(6)} ms  ${lines} lines`);
  };
  const props = [...NATIVE_PROPS, ...OBJECT_PROPS].join(',');
  console.log(`${GROUPS * 6} objects`);
  await time('inventory: get -r all props', ['get', '-H', '-p', '-r', '-o', 'name,property,value,source', props, root]);
  await time('get -r 3 props', ['get', '-H', '-p', '-r', '-o', 'name,property,value,source', 'type,origin,flatsnap:vdi', root]);
  await time('list -r all types: name,origin,flatsnap:vdi', ['list', '-H', '-t', 'filesystem,volume,snapshot', '-r', '-o', 'name,origin,flatsnap:vdi', root]);
  await time('list -r all types: name', ['list', '-H', '-t', 'filesystem,volume,snapshot', '-r', '-o', 'name', root]);
  await time('list -r volumes only: name,origin,flatsnap:vdi', ['list', '-H', '-t', 'filesystem,volume', '-r', '-o', 'name,origin,flatsnap:vdi', root]);
  await time('list -t snapshot -d1 of one volume', ['list', '-H', '-t', 'snapshot', '-d', '1', '-o', 'name', names[0]]);
  await time('list -t snapshot -r of one volume', ['list', '-H', '-t', 'snapshot', '-r', '-o', 'name', names[0]]);
  await time('get -d1 all props of one volume (+snapshots)', ['get', '-H', '-p', '-d', '1', '-o', 'name,property,value,source', props, names[0]]);
  await time('get all props of one volume', ['get', '-H', '-p', '-o', 'name,property,value,source', props, names[0]]);
  await time('get used,available root', ['get', '-H', '-p', '-o', 'name,property,value,source', 'used,available', root]);
});
