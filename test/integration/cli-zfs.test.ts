// The built operator command on a ZFS SR (a real pool: zfs-fuse or OpenZFS), where the
// lineage is a storage dependency: a snapshot lives in its dataset, a clone needs its
// origin. Objects are made with the ZfsBackend itself; leftovers of interrupted deletes
// (tombstones written, destroys not done) are planted with markTombstone, and gc must
// destroy exactly what nothing needs, children first, keeping a tombstoned disk whose
// snapshot is still a VDI.
//
// Needs root and ZFS: skipped locally without them, failing under CI=true.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { execa } from 'execa';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StoredObject, VdiMeta } from '../../src/backends/backend.js';
import { ZfsBackend } from '../../src/backends/zfs/backend.js';
import { formatInternalSnapshotName, formatSnapshotName } from '../../src/lineage/names.js';
import { describeZfs } from './harness/zfs-pool.js';
import { searchPath } from './harness/real-storage.js';

const CLI = join(process.cwd(), 'plugin', 'flatsnap');
const HOUR = 3600_000;
const T0 = Date.UTC(2026, 10, 20);
type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

const meta = (label: string, snapshotOf = ''): VdiMeta => ({
  name_label: label,
  name_description: '',
  vdi_type: 'user',
  is_a_snapshot: snapshotOf !== '',
  snapshot_time: '19700101T00:00:00Z',
  snapshot_of: snapshotOf,
  read_only: false,
});

describeZfs(
  'flatsnap command on a ZFS SR',
  (ctx) => {
    let work: string;
    let env: Record<string, string>;
    let root: string;
    let disk: StoredObject;
    let s1: StoredObject;
    let s2: StoredObject;
    let internal: StoredObject;
    let clone: StoredObject;

    const cli = async (...args: string[]) => {
      const r = await execa(CLI, args, { env, extendEnv: false, reject: false, stdin: 'ignore' });
      return { code: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr };
    };
    const json = async (...args: string[]): Promise<{ code: number; doc: Json }> => {
      const r = await cli(...args, '--json');
      return { code: r.code, doc: JSON.parse(r.stdout) as Json };
    };
    const datasets = async (): Promise<string[]> =>
      (await execa('zfs', ['list', '-H', '-o', 'name', '-t', 'all', '-r', root], { env: { PATH: searchPath().join(':') } })).stdout.split('\n').sort();

    beforeAll(async () => {
      if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run make build first`);
      work = mkdtempSync(join(tmpdir(), 'flatsnap-cli-zfs-'));
      env = { PATH: searchPath().join(':'), FLATSNAP_LOCK_DIR: join(work, 'lock'), FLATSNAP_SMLOG: join(work, 'SMlog') };
      root = `${ctx.pool.name}/sr`;
      const b = new ZfsBackend(root, { mountpoint: join(ctx.pool.mountBase, 'sr') });
      await b.createSr(randomUUID());
      disk = await b.create(randomUUID(), meta('zdisk'), 4 << 20, T0);
      const id1 = randomUUID();
      s1 = await b.snapshot(id1, disk, formatSnapshotName(T0 + HOUR, id1), 'snapshot', meta('zsnap 1', disk.id));
      const id2 = randomUUID();
      s2 = await b.snapshot(id2, disk, formatSnapshotName(T0 + 2 * HOUR, id2), 'snapshot', meta('zsnap 2', disk.id));
      const iid = randomUUID();
      internal = await b.snapshot(iid, disk, formatInternalSnapshotName(T0 + 3 * HOUR, iid), 'internal-snapshot');
      clone = await b.clone(randomUUID(), internal, meta('zclone'), T0 + 4 * HOUR);
    }, 180_000);

    afterAll(() => {
      if (work) rmSync(work, { recursive: true, force: true });
    });

    test('tree: snapshots in their dataset by time, the clone under the internal snapshot it needs', async () => {
      const r = await cli('tree', '--dataset', root);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('5 objects: 2 volumes, 2 snapshots, 1 internal snapshot, 0 tombstones; 4 VDIs visible to xapi');
      const lines = r.stdout.split('\n');
      const rows = lines.slice(lines.findIndex((l) => l.startsWith('OBJECT')) + 1);
      expect(rows.map((l) => [disk, s1, s2, internal, clone].find((o) => l.includes(o.id))?.id)).toEqual([disk.id, s1.id, s2.id, internal.id, clone.id]);
      expect(rows[3]).toMatch(/^└── \S+ \[internal\] +snapshot/);
      expect(rows[4]).toMatch(/^ {4}└── \S+ +volume .*"zclone"$/);
      const { doc } = await json('tree', '--dataset', root);
      expect(doc.sr).toMatchObject({ backend: 'zfs', location: expect.stringContaining(root) });
      const handles = (doc.objects as Json[]).map((o) => o.handle as string);
      expect(handles.filter((h) => h.includes('@'))).toHaveLength(3);
    });

    test('seek through the clone: before it existed, the disk it came from', async () => {
      const { doc } = await json('seek', '--dataset', root, '--vdi', clone.id, '--at', '2026-11-20T02:30:00Z');
      expect(doc.snapshot).toMatchObject({ id: s2.id, own: false, volume: disk.id });
    });

    test('interrupted deletes: check reports them, gc destroys children first and keeps what a VDI needs', async () => {
      // vdi_delete of snapshot 1 and of the clone, both stopped after their tombstone;
      // and of the disk itself, which its snapshot 2 keeps as a tombstone.
      const b = new ZfsBackend(root);
      const inv = new Map((await b.inventory()).map((o) => [o.id, o]));
      for (const id of [s1.id, clone.id, disk.id]) await b.markTombstone(inv.get(id)!);

      const chk = await json('check', '--dataset', root, '--no-health');
      expect(chk.code).toBe(1);
      expect(chk.doc.findings).toEqual([]);
      expect((chk.doc.reclaimable as Json[]).map((r) => [r.op, r.object])).toEqual([
        ['destroy', s1.id],
        ['destroy', clone.id],
        ['destroy', internal.id],
      ]);

      const before = await datasets();
      const dry = await cli('gc', '--dataset', root, '--dry-run');
      expect(dry.code).toBe(0);
      expect(await datasets()).toEqual(before);

      const gc = await json('gc', '--dataset', root);
      expect(gc.code).toBe(0);
      expect(gc.doc.complete).toBe(true);
      expect((gc.doc.actions as Json[]).map((a) => [a.op, a.object, a.status])).toEqual([
        ['destroy', s1.id, 'done'],
        ['destroy', clone.id, 'done'],
        ['destroy', internal.id, 'done'],
      ]);
      const after = await datasets();
      expect(after.some((d) => d.includes(s1.id) || d.includes(clone.id) || d.includes(internal.id))).toBe(false);
      expect(after.some((d) => d.endsWith(`/${disk.id}`))).toBe(true);
      expect(after.some((d) => d.includes(`-${s2.id}`))).toBe(true);

      const tree = await cli('tree', '--dataset', root);
      expect(tree.stdout).toMatch(new RegExp(`^${disk.id} \\[deleted\\] +volume`, 'm'));
      expect((await cli('check', '--dataset', root, '--no-health')).code).toBe(0);
      // The tombstoned disk is no VDI any more; its snapshot still is.
      expect((await cli('seek', '--dataset', root, '--vdi', disk.id, '--at', 'now')).code).toBe(3);
      expect((await json('seek', '--dataset', root, '--vdi', s2.id, '--at', 'now')).doc.snapshot).toMatchObject({ id: s2.id });
    });
  },
  { tag: 'cli' },
);
