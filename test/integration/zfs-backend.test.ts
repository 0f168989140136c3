// The ZFS backend on a real pool (zfs-fuse here and in CI: the raw-file layout; the
// zvol layout is covered by test/unit/zfs-backend.test.ts). First the backend-agnostic
// conformance suite, unchanged; then what is specific to ZFS. Every zfs command any
// test runs is recorded, and none may be recursive, forced, deferred or a promote.
import { randomUUID } from 'node:crypto';
import { open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import type { StoredObject } from '../../src/backends/backend.js';
import { ZfsBackend, type ZfsBackendOptions } from '../../src/backends/zfs/backend.js';
import { ZfsCli, type ZfsLogger } from '../../src/backends/zfs/cli.js';
import { execaExec, type Exec } from '../../src/backends/zfs/exec.js';
import { PROP, TRUNCATION_MARK } from '../../src/backends/zfs/records.js';
import { formatInternalSnapshotName, formatSnapshotName } from '../../src/lineage/names.js';
import {
  backendConformance,
  hashOf,
  smError,
  snapshotMeta,
  vdiMeta,
  writePattern,
  type ConformanceTarget,
} from '../conformance/backend-conformance.js';
import { fillFile } from '../helpers/fill.js';
import { describeZfs, type ZfsTestContext } from './harness/zfs-pool.js';

const MiB = 1024 * 1024;

/** Every command the backends under test ran, for the "never recursive" check. */
const ran: string[][] = [];
const recording: Exec = (file, args, o) => {
  ran.push([file.split('/').pop() ?? file, ...args]);
  return execaExec(file, args, o);
};

function collectingLogger(): ZfsLogger & { warnings: string[] } {
  const warnings: string[] = [];
  return { warnings, debug: () => undefined, info: () => undefined, warn: (m) => warnings.push(m) };
}

const quiet = collectingLogger();


function zfsTarget(ctx: ZfsTestContext, tag: string): () => Promise<ConformanceTarget> {
  return async () => {
    const pool = ctx.pool;
    const root = `${pool.name}/${tag}/sr`; // createSr makes the parents
    const opts: ZfsBackendOptions = { exec: recording, logger: quiet, mountpoint: join(pool.mountBase, tag) };
    const cli = new ZfsCli({ logger: quiet });
    const ballast = `${pool.name}/${tag}-ballast`;
    return {
      backend: new ZfsBackend(root, opts),
      reopen: () => new ZfsBackend(root, opts),
      listRoot: async () => ((await cli.exists(root)) ? (await cli.listNames(root, { recursive: true })).filter((n) => n !== root).sort() : []),
      teardown: async () => undefined, // the pool goes with the describe block
      fill: async () => {
        const mp = join(pool.mountBase, `${tag}-ballast`);
        await cli.createFilesystem(ballast, { props: { mountpoint: mp, compression: 'off' } });
        await fillFile(join(mp, 'ballast'));
      },
      unfill: async () => {
        await cli.destroy(ballast);
      },
      foreign: async () => {
        const f = `${pool.name}/${tag}-foreign-${randomUUID().slice(0, 8)}`;
        await cli.createFilesystem(f);
        await cli.createFilesystem(`${f}/somebody-elses-data`);
        return new ZfsBackend(f, opts);
      },
    };
  };
}

describeZfs(
  'zfs backend',
  (ctx) => {
    backendConformance('zfs (zfs-fuse: raw files in datasets; OpenZFS: zvols)', zfsTarget(ctx, 'conf'));

    describe('ZFS specifics', () => {
      const cli = new ZfsCli({ logger: quiet });
      const sr = randomUUID();
      let root = '';
      let mp = '';
      let b: ZfsBackend;
      let log: ReturnType<typeof collectingLogger>;
      let clock = Date.now();
      const tick = (): number => (clock = Math.max(clock + 1, Date.now()));
      const SIZE = 16 * MiB;
      const user = async (name: string, props: string[]): Promise<Record<string, string>> =>
        (await cli.getDataset(name, props))?.user ?? {};
      const names = async (): Promise<string[]> => (await cli.listNames(root, { recursive: true })).filter((n) => n !== root).sort();
      const snap = (of: StoredObject, label = 'snap'): Promise<StoredObject> => {
        const id = randomUUID();
        const t = tick();
        return b.snapshot(id, of, formatSnapshotName(t, id), 'snapshot', snapshotMeta(of.vdi ?? of.id, t, label));
      };
      const gone = async (...objs: StoredObject[]): Promise<void> => {
        for (const o of objs) {
          if (o.vdi !== undefined) await b.markTombstone(o);
          await b.destroy(o);
        }
      };

      beforeAll(async () => {
        root = `${ctx.pool.name}/spec/sr`;
        mp = join(ctx.pool.mountBase, 'spec');
        log = collectingLogger();
        b = new ZfsBackend(root, { exec: recording, logger: log, mountpoint: mp });
        await b.createSr(sr);
        await b.attachSr(sr);
      });
      afterEach(async () => {
        expect(await names()).toEqual([]);
      });

      test('layout: <root>/<id> datasets with their record in flatsnap:* properties; snapshots <id>@<time>-<uuid>; clones by origin', async () => {
        const t0 = tick();
        const m = vdiMeta('layout');
        const v = await b.create(randomUUID(), m, SIZE + 1, t0);
        expect(v.handle).toBe(`${root}/${v.id}`);
        expect(v.virtual_size).toBe(SIZE + 512); // whole sectors
        const path = await b.datapath(v);
        expect(path).toBe(join(mp, v.id, 'disk.raw'));
        expect((await stat(path)).size).toBe(SIZE + 512);
        const d = await cli.getDataset(v.handle, Object.values(PROP), ['recordsize', 'atime']);
        expect(d?.type).toBe('filesystem');
        expect(d?.props.get('recordsize')?.value).toBe('16384');
        expect(d?.user).toEqual({
          [PROP.id]: v.id,
          [PROP.kind]: 'volume',
          [PROP.vdi]: v.id,
          [PROP.created]: String(t0),
          [PROP.deleted]: '0',
          [PROP.size]: String(SIZE + 512),
          [PROP.nameLabel]: 'layout',
          [PROP.nameDescription]: m.name_description,
          [PROP.vdiType]: 'user',
          [PROP.isASnapshot]: 'false',
          [PROP.snapshotTime]: m.snapshot_time,
          [PROP.snapshotOf]: '',
          [PROP.readOnly]: 'false',
        });
        expect((await cli.getDataset(root, [PROP.sr]))?.user[PROP.sr]).toBe(sr);

        const s = await snap(v);
        expect(s.handle).toBe(`${root}/${v.id}@${formatSnapshotName(s.created, s.id)}`);
        expect(await user(s.handle, [PROP.kind, PROP.vdi, PROP.parent, PROP.size])).toEqual({
          [PROP.kind]: 'snapshot',
          [PROP.vdi]: s.id,
          [PROP.parent]: v.id,
          [PROP.size]: String(SIZE + 512),
        });
        const iid = randomUUID();
        const it = tick();
        const i = await b.snapshot(iid, v, formatInternalSnapshotName(it, iid), 'internal-snapshot');
        expect(i.handle).toBe(`${root}/${v.id}@${formatInternalSnapshotName(it, iid)}`);
        const c = await b.clone(randomUUID(), i, vdiMeta('clone'), tick());
        expect((await cli.getDataset(c.handle))?.origin).toBe(i.handle);
        expect(c).toMatchObject({ parent: iid, virtual_size: SIZE + 512 });

        // The inventory is one command.
        const before = ran.length;
        const inv = await b.inventory();
        expect(ran.length - before).toBe(1);
        expect(ran.at(-1)?.slice(0, 3)).toEqual(['zfs', 'get', '-H']);
        expect(inv.map((o) => o.id).sort()).toEqual([v.id, s.id, iid, c.id].sort());
        await gone(c, i, s, v);
      });

      test('a label or description too long for a property is cut at a character and marked', async () => {
        const long = `${'ü'.repeat(1000)}${'x'.repeat(4000)}`; // 6000 UTF-8 bytes, 10000 encoded
        const v = await b.create(randomUUID(), vdiMeta(long, { name_description: long }), SIZE, tick());
        for (const text of [v.meta!.name_label, v.meta!.name_description]) {
          expect(text.endsWith(TRUNCATION_MARK)).toBe(true);
          expect(long.startsWith(text.slice(0, -TRUNCATION_MARK.length))).toBe(true);
          expect(text.length).toBeGreaterThan(400);
        }
        await b.setMeta(v, vdiMeta('short again'));
        expect((await b.inventory()).find((o) => o.id === v.id)?.meta?.name_label).toBe('short again');
        await gone(v);
      });

      test('a snapshot reads through a read-only view clone on zfs-fuse; it goes with the snapshot', async () => {
        const v = await b.create(randomUUID(), vdiMeta('viewed'), SIZE, tick());
        const h = await writePattern(b, v, 'view');
        const s = await snap(v);
        const p = await b.datapath(s);
        if (ctx.flavor === 'zfs-fuse') {
          expect(p).toBe(join(mp, `${s.id}.view`, 'disk.raw'));
          expect(await names()).toContain(`${root}/${s.id}.view`);
          await expect(open(p, 'r+')).rejects.toMatchObject({ code: 'EROFS' });
          // Mounted read-write behind our back (a plain `zfs mount`): the next datapath makes it read-only again.
          await cli.unmount(`${root}/${s.id}.view`);
          await cli.mount(`${root}/${s.id}.view`);
          expect(await b.datapath(s)).toBe(p);
          await expect(open(p, 'r+')).rejects.toMatchObject({ code: 'EROFS' });
        }
        expect(await hashOf(p)).toBe(h);
        expect(await b.datapath(s)).toBe(p); // made once
        expect((await b.inventory()).map((o) => o.id).sort()).toEqual([v.id, s.id].sort());
        await gone(s, v);
      });

      test('ZFS refuses what the model never asks: destroy with dependants (64), rollback past a newer snapshot (202); nothing changes', async () => {
        const v = await b.create(randomUUID(), vdiMeta('guarded'), SIZE, tick());
        const h0 = await writePattern(b, v, 'g0');
        const s1 = await snap(v, 's1');
        const h1 = await writePattern(b, v, 'g1');
        const s2 = await snap(v, 's2');
        const h2 = await writePattern(b, v, 'g2');
        const c = await b.clone(randomUUID(), s1, vdiMeta('clone of s1'), tick());
        const inv = await b.inventory();
        expect((await smError(b.destroy(v))).code).toBe(1); // still a visible VDI
        await b.markTombstone(v);
        expect((await smError(b.destroy(v))).code).toBe(64); // has snapshots
        await b.markTombstone(s1);
        expect((await smError(b.destroy(s1))).code).toBe(64); // has a clone
        const e = await smError(b.rollback(v, s1));
        expect(e.code).toBe(202);
        expect(e.message).toMatch(/newer snapshot/);
        expect((await b.inventory()).map((o) => o.id)).toEqual(inv.map((o) => o.id));
        expect(await hashOf(await b.datapath(v))).toBe(h2);
        expect(await hashOf(await b.datapath(s1))).toBe(h0);
        expect(await hashOf(await b.datapath(s2))).toBe(h1);
        await b.rollback(v, s2);
        expect(await hashOf(await b.datapath(v))).toBe(h1);
        await gone(c);
        await b.destroy(s1);
        await gone(s2);
        await b.destroy(v);
      });

      test('foreign datasets and snapshots under the root are left alone, logged, and keep the SR from being deleted (39)', async () => {
        const v = await b.create(randomUUID(), vdiMeta('with a foreign snapshot'), SIZE, tick());
        await cli.createFilesystem(`${root}/not-ours`);
        await cli.snapshot(`${v.handle}@manual`);
        log.warnings.length = 0;
        expect((await b.inventory()).map((o) => o.id)).toEqual([v.id]);
        expect(log.warnings.join('\n')).toMatch(/not-ours is not a flatsnap object/);
        expect(log.warnings.join('\n')).toMatch(/@manual is not a flatsnap object/);
        await b.markTombstone(v);
        expect((await smError(b.destroy(v))).code).toBe(64);
        expect((await smError(b.deleteSr(sr))).code).toBe(39);
        await cli.destroy(`${v.handle}@manual`);
        await cli.destroy(`${root}/not-ours`);
        await b.destroy(v);
      });

      test('attachSr mounts what a restarted zfs-fuse daemon left unmounted', async () => {
        const v = await b.create(randomUUID(), vdiMeta('remount'), SIZE, tick());
        const h = await writePattern(b, v, 'remount');
        await cli.unmount(v.handle);
        await cli.unmount(root);
        expect((await cli.getDataset(v.handle))?.mounted).toBe(false);
        await b.attachSr(sr);
        expect((await cli.getDataset(root))?.mounted).toBe(true);
        expect((await cli.getDataset(v.handle))?.mounted).toBe(true);
        expect(await hashOf(join(mp, v.id, 'disk.raw'))).toBe(h);
        await gone(v);
      });

      test('resize of a raw disk: file and flatsnap:size grow together; snapshots keep their size', async () => {
        const v = await b.create(randomUUID(), vdiMeta('grow'), SIZE, tick());
        const s = await snap(v);
        expect(await b.resize(v, 3 * SIZE + 100)).toBe(3 * SIZE + 512);
        expect((await stat(await b.datapath(v))).size).toBe(3 * SIZE + 512);
        const inv = await b.inventory();
        expect(inv.find((o) => o.id === v.id)?.virtual_size).toBe(3 * SIZE + 512);
        expect(inv.find((o) => o.id === s.id)?.virtual_size).toBe(SIZE);
        expect((await smError(b.resize(s, 4 * SIZE))).code).toBe(1);
        await gone(s, v);
      });

      test('swapVdi binds the new volume before unbinding the old; a retry after it is a no-op', async () => {
        const v = await b.create(randomUUID(), vdiMeta('swapped'), SIZE, tick());
        const s = await snap(v);
        const fresh = await b.clone(randomUUID(), s, undefined, tick());
        const sets = ran.length;
        await b.swapVdi(v.id, v, fresh);
        const cmds = ran.slice(sets).filter((a) => a[1] === 'set' || a[1] === 'inherit');
        expect(cmds.at(-2)).toEqual(['zfs', 'set', `${PROP.vdi}=${v.id}`, fresh.handle]);
        expect(cmds.at(-1)).toEqual(['zfs', 'inherit', PROP.vdi, v.handle]);
        await b.swapVdi(v.id, v, fresh);
        const inv = await b.inventory();
        expect(inv.find((o) => o.id === fresh.id)).toMatchObject({ vdi: v.id, meta: v.meta });
        expect(inv.find((o) => o.id === v.id)?.vdi).toBeUndefined();
        await b.markTombstone(v);
        await gone({ ...fresh, vdi: v.id });
        await gone(s);
        await b.destroy(v);
      });

      test('createSr adopts an empty dataset and deleteSr only releases it; nesting an SR inside one is refused (42)', async () => {
        const adopt = `${ctx.pool.name}/spec-adopted`;
        await cli.createFilesystem(adopt, { props: { mountpoint: join(ctx.pool.mountBase, 'spec-adopted') } });
        const a = new ZfsBackend(adopt, { exec: recording, logger: quiet });
        const asr = randomUUID();
        await a.createSr(asr);
        await a.attachSr(asr);
        expect(await a.probe()).toEqual([expect.objectContaining({ sr_uuid: asr, handle: adopt })]);
        const inner = new ZfsBackend(`${adopt}/x/y`, { exec: recording, logger: quiet });
        expect((await smError(inner.createSr(randomUUID()))).message).toMatch(/inside flatsnap SR/);
        await a.deleteSr(asr);
        expect(await cli.exists(adopt)).toBe(true);
        expect((await cli.getDataset(adopt, [PROP.sr]))?.user).toEqual({});
        expect(await a.probe()).toEqual([]);
        await cli.destroy(adopt);
      });
    });

    afterAll(() => {
      const bad = ran.filter((a) => a[0] === 'zfs' && (a.includes('-r') || a.includes('-R') || a.includes('-d') || a.includes('-f') || a[1] === 'promote'));
      // `zfs get -r` (the one bulk scan) and `get/list -d 1` are reads: allowed.
      expect(bad.filter((a) => !['get', 'list'].includes(a[1]!))).toEqual([]);
    });
  },
  { sizeMiB: 768, tag: 'zfsbackend' },
);
