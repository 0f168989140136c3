// The ZFS command layer on a real pool (zfs-fuse here and in CI; OpenZFS if
// the machine has it). No mocks: every command goes to zfs/zpool. Skipped
// locally without root or ZFS, failing under CI=true (harness/real-storage.ts).
import { open, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { ZfsCli, type ZfsLogger } from '../../src/backends/zfs/cli.js';
import { ZfsError } from '../../src/backends/zfs/errors.js';
import { execaExec, type Exec } from '../../src/backends/zfs/exec.js';
import { createSparseFile, rawFilePath, sparseFileSize } from '../../src/backends/zfs/rawfile.js';
import { describeZfs } from './harness/zfs-pool.js';

const MiB = 1024 * 1024;
const GiB = 1024 * MiB;
const quiet: ZfsLogger = { debug: () => undefined, info: () => undefined, warn: () => undefined };

/** A ZfsCli whose commands are counted. */
function countingCli(retry?: { attempts: number; initialDelayMs: number; maxDelayMs: number }) {
  const calls: string[][] = [];
  const exec: Exec = (file, args, o) => {
    calls.push([file, ...args]);
    return execaExec(file, args, o);
  };
  const cli = new ZfsCli({ exec, logger: quiet, timeoutMs: 60_000, ...(retry ? { retry } : {}) });
  return { cli, calls };
}

async function caught(p: Promise<unknown>): Promise<ZfsError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof ZfsError) return e;
    throw e;
  }
  throw new Error('expected a ZfsError');
}

const U1 = '5d2b7a10-1c4e-4c8e-9b61-2f3d4e5f6a70';
const S1 = '8e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b';
const C1 = '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d';
const USER = ['flatsnap:uuid', 'flatsnap:name', 'flatsnap:description', 'flatsnap:is-a-snapshot', 'flatsnap:snapshot-time', 'flatsnap:parent', 'flatsnap:sr'];

describeZfs('zfs command layer on a real pool', (ctx) => {
  const { cli, calls } = countingCli();
  let sr = '';
  let srMount = '';
  const vdi = () => `${sr}/${U1}`;
  const snap = () => `${vdi()}@${S1}`;
  const clone = () => `${sr}/${C1}`;

  test('feature detection', async () => {
    const f = await cli.features();
    if (ctx.flavor === 'zfs-fuse') {
      expect(f).toMatchObject({
        flavor: 'zfs-fuse',
        volumes: false,
        parsableList: false,
        getTypeFilter: false,
        multiSet: false,
        renameMounted: false,
        destroyMounted: false,
        snapshotProps: true,
        deferDestroy: true,
        snapdir: false,
      });
    } else {
      expect(f.flavor).toBe('openzfs');
      expect(f.volumes).toBe(true);
    }
  });

  test('SR root and a VDI dataset with user properties (any text round-trips)', async () => {
    sr = `${ctx.pool.name}/sr`;
    srMount = join(ctx.pool.mountBase, 'sr');
    await cli.createFilesystem(sr, { props: { mountpoint: srMount }, user: { 'flatsnap:sr': 'sr-uuid' } });
    const label = 'Debian 12 \u2713 \t "root" 100%';
    const desc = 'line one\nline two\n';
    await cli.createFilesystem(vdi(), {
      user: { 'flatsnap:uuid': U1, 'flatsnap:name': label, 'flatsnap:description': desc, 'flatsnap:is-a-snapshot': 'false' },
    });
    const d = await cli.getDataset(vdi(), USER);
    expect(d?.type).toBe('filesystem');
    expect(d?.mounted).toBe(true);
    expect(d?.mountpoint).toBe(join(srMount, U1));
    expect(d?.user).toEqual({ 'flatsnap:uuid': U1, 'flatsnap:name': label, 'flatsnap:description': desc, 'flatsnap:is-a-snapshot': 'false' });
    // Inherited from the SR root, so visible raw but not as the VDI's own.
    expect(d?.props.get('flatsnap:sr')).toEqual({ value: 'sr-uuid', source: 'inherited', inheritedFrom: sr });
    expect(await cli.exists(vdi())).toBe(true);
    expect(await cli.exists(`${sr}/nope`)).toBe(false);
  });

  test('a sparse raw file in the dataset', async () => {
    const mp = await cli.mountpointOf(vdi());
    expect(mp).toBe(join(srMount, U1));
    const f = rawFilePath(mp!);
    await createSparseFile(f, 10 * GiB);
    const fh = await open(f, 'r+');
    try {
      await fh.write(Buffer.alloc(MiB, 0xab), 0, MiB, 0);
      await fh.sync();
    } finally {
      await fh.close();
    }
    const s = await sparseFileSize(f);
    expect(s.size).toBe(10 * GiB);
    expect(s.allocated).toBeLessThan(64 * MiB);
    await expect(createSparseFile(f, 1)).rejects.toMatchObject({ code: 'EEXIST' });
  });

  test('snapshot with properties, clone with properties', async () => {
    await cli.snapshot(snap(), {
      user: { 'flatsnap:uuid': S1, 'flatsnap:is-a-snapshot': 'true', 'flatsnap:snapshot-time': '20261125T02:10:00Z', 'flatsnap:name': 'before upgrade' },
    });
    await cli.clone(snap(), clone(), { user: { 'flatsnap:uuid': C1, 'flatsnap:parent': S1 } });
    const c = await cli.getDataset(clone(), USER);
    expect(c?.origin).toBe(snap());
    expect(c?.user).toEqual({ 'flatsnap:uuid': C1, 'flatsnap:parent': S1 });
    // The clone sees the snapshot's data.
    const fh = await open(rawFilePath(c!.mountpoint!), 'r');
    try {
      const { buffer } = await fh.read(Buffer.alloc(4), 0, 4, MiB - 4);
      expect(buffer).toEqual(Buffer.from([0xab, 0xab, 0xab, 0xab]));
    } finally {
      await fh.close();
    }
  });

  test('bulk scan: one zfs get for the whole subtree, parsed', async () => {
    const before = calls.length;
    const r = await cli.scan(sr, USER);
    expect(calls.length - before).toBe(1);
    expect(calls.at(-1)?.[1]).toBe('get');
    expect(r.warnings).toEqual([]);
    expect([...r.datasets.keys()].sort()).toEqual([sr, vdi(), snap(), clone()].sort());
    const s = r.datasets.get(snap())!;
    expect(s.type).toBe('snapshot');
    expect(s.user).toEqual({
      'flatsnap:uuid': S1,
      'flatsnap:is-a-snapshot': 'true',
      'flatsnap:snapshot-time': '20261125T02:10:00Z',
      'flatsnap:name': 'before upgrade',
    });
    expect(s.deferDestroy).toBe(false);
    expect(s.referenced).toBeGreaterThan(MiB);
    expect(r.datasets.get(clone())!.origin).toBe(snap());
    expect(r.datasets.get(vdi())!.used).toBeGreaterThan(MiB);
    expect(r.datasets.get(sr)!.user).toEqual({ 'flatsnap:sr': 'sr-uuid' });
  });

  test('set, inherit, refquota', async () => {
    await cli.set(clone(), { user: { 'flatsnap:name': 'renamed label', 'flatsnap:description': '' } });
    await cli.setRefquota(clone(), 5 * GiB);
    let c = await cli.getDataset(clone(), USER);
    expect(c?.user['flatsnap:name']).toBe('renamed label');
    expect(c?.user['flatsnap:description']).toBe('');
    expect(c?.refquota).toBe(5 * GiB);
    await cli.inherit(clone(), 'flatsnap:description');
    await cli.setRefquota(clone(), null);
    c = await cli.getDataset(clone(), USER);
    expect(c?.user['flatsnap:description']).toBeUndefined();
    expect(c?.refquota).toBe(0);
  });

  test('destroy rules: refused with typed errors, never collateral', async () => {
    const withSnap = await caught(cli.destroy(vdi()));
    expect(withSnap.kind).toBe('HasChildren');
    expect(withSnap.dependents).toEqual([snap()]);
    expect(withSnap.toSmError().kind).toBe('VDIRemove');
    // Still there and still mounted after the refused destroy.
    expect((await cli.getDataset(vdi()))?.mounted).toBe(true);

    const withClone = await caught(cli.destroy(snap()));
    expect(withClone.kind).toBe('HasClones');
    expect(withClone.dependents).toEqual([clone()]);

    const recursive = await caught(cli.destroy(vdi(), { recursive: true }));
    expect(recursive.kind).toBe('HasClones');
    expect(await cli.exists(snap())).toBe(true);

    expect((await caught(cli.destroy(`${sr}/nope`))).kind).toBe('NotFound');
    await cli.destroy(`${sr}/nope`, { missingOk: true });
  });

  test('deferred destroy: the snapshot goes with its last clone', async () => {
    await cli.destroy(snap(), { defer: true });
    expect((await cli.getDataset(snap()))?.deferDestroy).toBe(true);
    await cli.destroy(clone());
    expect(await cli.exists(clone())).toBe(false);
    expect(await cli.exists(snap())).toBe(false);
  });

  test('rename of a mounted, used dataset (zfs-fuse: via unmount/mount)', async () => {
    const to = `${sr}/renamed-${U1}`;
    const before = await cli.getDataset(vdi());
    expect(before?.mounted).toBe(true);
    await writeFile(join(before!.mountpoint!, 'marker'), 'hello');
    await cli.rename(vdi(), to);
    const after = await cli.getDataset(to);
    expect(after?.mounted).toBe(true);
    expect(after?.mountpoint).toBe(join(srMount, `renamed-${U1}`));
    expect(await readFile(join(after!.mountpoint!, 'marker'), 'utf8')).toBe('hello');
    expect(await cli.exists(vdi())).toBe(false);
    await cli.rename(to, vdi());
    expect((await cli.getDataset(vdi()))?.mounted).toBe(true);
  });

  test('renaming onto an existing dataset: Exists, the source stays mounted', async () => {
    const other = `${sr}/other`;
    await cli.createFilesystem(other);
    const e = await caught(cli.rename(other, vdi()));
    expect(e.kind).toBe('Exists');
    expect(e.toSmError().kind).toBe('VDIExists');
    expect((await cli.getDataset(other))?.mounted).toBe(true);
    await cli.destroy(other);
  });

  test('unmount while a file is open: Busy after bounded retries -> VDIInUse; then fine', async () => {
    const fast = countingCli({ attempts: 3, initialDelayMs: 50, maxDelayMs: 100 });
    const mp = (await cli.mountpointOf(vdi()))!;
    const fh = await open(join(mp, 'marker'), 'r');
    let e: ZfsError;
    try {
      e = await caught(fast.cli.unmount(vdi()));
    } finally {
      await fh.close();
    }
    expect(e.kind).toBe('Busy');
    expect(e.attempts).toBe(3);
    expect(fast.calls.filter((c) => c[1] === 'unmount')).toHaveLength(3);
    expect(e.toSmError().code).toBe(24);
    await cli.unmount(vdi());
    await cli.unmount(vdi()); // idempotent
    expect(await cli.mountAll(sr)).toEqual([vdi()]);
    await cli.mount(vdi()); // idempotent
    expect(await readFile(join(mp, 'marker'), 'utf8')).toBe('hello');
  });

  test('destroy of a mounted, used dataset with its snapshot (-r)', async () => {
    await cli.snapshot(`${vdi()}@last`);
    await cli.destroy(vdi(), { recursive: true });
    expect(await cli.exists(vdi())).toBe(false);
  });

  test('space and pool stats', async () => {
    const sp = await cli.space(sr);
    expect(sp.available).toBeGreaterThan(GiB);
    expect(sp.used).toBeGreaterThan(0);
    const ps = await cli.poolStats(ctx.pool.name);
    expect(ps.health).toBe('ONLINE');
    expect(ps.size).toBeGreaterThan(1.5 * GiB);
    expect(ps.size).toBeLessThanOrEqual(2 * GiB);
    expect(await cli.requireHealthyPool(ctx.pool.name)).toBe('ONLINE');
    await expect(cli.poolStats('fstest-no-such-pool')).rejects.toMatchObject({ kind: 'NoPool' });
  });

  test('zvols: created where supported, refused cleanly on zfs-fuse', async () => {
    const f = await cli.features();
    if (!f.volumes) {
      const e = await caught(cli.createVolume(`${sr}/vol`, GiB));
      expect(e.kind).toBe('Unsupported');
      expect(await cli.exists(`${sr}/vol`)).toBe(false);
      return;
    }
    const size = await cli.createVolume(`${sr}/vol`, GiB + 1, { user: { 'flatsnap:uuid': 'v' } });
    const v = await cli.getDataset(`${sr}/vol`, ['flatsnap:uuid']);
    expect(v?.type).toBe('volume');
    expect(v?.volsize).toBe(size);
    expect(v?.refreservation).toBe(0);
    await cli.destroy(`${sr}/vol`);
  });
});

describeZfs(
  'zfs command layer: out of space on a tiny pool',
  (ctx) => {
    const { cli } = countingCli();

    test('a reservation larger than the pool -> NoSpace -> SRNoSpace (44)', async () => {
      const e = await caught(cli.createFilesystem(`${ctx.pool.name}/big`, { props: { refreservation: String(GiB) } }));
      expect(e.kind).toBe('NoSpace');
      const sm = e.toSmError();
      expect(sm.kind).toBe('SRNoSpace');
      expect(sm.code).toBe(44);
      expect(await cli.exists(`${ctx.pool.name}/big`)).toBe(false);
    });

    test('a full pool refuses new datasets and snapshots with NoSpace', async () => {
      const fsName = `${ctx.pool.name}/fill`;
      const mp = join(ctx.pool.mountBase, 'fill');
      await cli.createFilesystem(fsName, { props: { mountpoint: mp } });
      const fh = await open(join(mp, 'filler'), 'w');
      const chunk = Buffer.alloc(MiB, 0x5a);
      let full = false;
      try {
        for (let i = 0; i < 256 && !full; i++) {
          try {
            await fh.write(chunk);
          } catch (err) {
            expect((err as { code?: string }).code).toMatch(/ENOSPC|EDQUOT/);
            full = true;
          }
        }
        await fh.sync().catch(() => undefined);
      } finally {
        await fh.close().catch(() => undefined);
      }
      expect(full).toBe(true);
      expect((await caught(cli.createFilesystem(`${ctx.pool.name}/more`))).toSmError().kind).toBe('SRNoSpace');
      expect((await caught(cli.snapshot(`${fsName}@s`))).kind).toBe('NoSpace');
    });
  },
  { sizeMiB: 64, tag: 'nospace' },
);
