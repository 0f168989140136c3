// The reflink Backend on real filesystems: the shared conformance suite on XFS
// (reflink=1), btrfs and (allow-copy) ext4 loop filesystems, then what is
// particular to files: the layout `ls` shows, filesystems that cannot reflink,
// crashes at every step of a swap, crash leftovers, read-only mounts.
import { execa } from 'execa';
import { randomUUID } from 'node:crypto';
import { mkdir, open, readdir, readFile, rm, unlink, utimes, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { StoredObject } from '../../src/backends/backend.js';
import { ReflinkBackend, type ReflinkBackendOptions } from '../../src/backends/reflink/backend.js';
import { SR_MARKER, TEMP_PREFIX, tempPath } from '../../src/backends/reflink/names.js';
import { writeSidecar } from '../../src/backends/reflink/sidecar.js';
import type { SwapStep } from '../../src/backends/reflink/swap.js';
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
import { createLoopFs, describeLoopFs, type LoopFs, type LoopFsKind } from './harness/loopfs.js';

const MiB = 1024 * 1024;
// allow-copy logs every full copy as a warning: keep the test output readable.
process.env.FLATSNAP_LOG_LEVEL ??= 'error';


async function syncFs(path: string): Promise<void> {
  await execa('sync', ['-f', path], { stdin: 'ignore' });
}

/** A conformance target: a loop filesystem with the SR in `<mnt>/sr`, ballast and foreign roots beside it. */
function loopTarget(kind: LoopFsKind, given: ReflinkBackendOptions = {}, sizeMiB?: number): () => Promise<ConformanceTarget> {
  // No background unshare after the suite's snapshots (the default, unshare=auto): it
  // changes files' allocated bytes between the inventories the suite compares. The
  // unshare has its own tests (reflink-unshare.test.ts) and runs in the e2e suites.
  const opts: ReflinkBackendOptions = { unshare: 'off', ...given };
  return async () => {
    const fs = await createLoopFs(kind, sizeMiB === undefined ? {} : { sizeMiB });
    const dir = join(fs.mountpoint, 'sr');
    await mkdir(dir);
    const ballast = join(fs.mountpoint, 'ballast');
    return {
      backend: new ReflinkBackend(dir, opts),
      reopen: () => new ReflinkBackend(dir, opts),
      listRoot: async () => (await readdir(dir)).filter((n) => n !== SR_MARKER).sort(),
      teardown: () => fs.teardown(),
      fill: () => fillFile(ballast),
      unfill: async () => {
        await rm(ballast, { force: true });
        await syncFs(fs.mountpoint);
      },
      foreign: async () => {
        const f = join(fs.mountpoint, `foreign-${randomUUID()}`);
        await mkdir(f);
        await writeFile(join(f, 'disk.img'), 'somebody else’s data');
        return new ReflinkBackend(f, opts);
      },
    };
  };
}

describeLoopFs('reflink backend', ['xfs', 'btrfs', 'ext4', 'tmpfs'], () => {
  backendConformance('reflink on xfs (reflink=1)', loopTarget('xfs'));
  backendConformance('reflink on btrfs', loopTarget('btrfs'));
  backendConformance('reflink with allow-copy on ext4', loopTarget('ext4', { allowCopy: true }, 256));

  describe('reflink specifics on xfs', () => {
    let fs: LoopFs;
    let dir: string;
    let b: ReflinkBackend;
    const sr = randomUUID();
    let clock = Date.now();
    const tick = (): number => (clock = Math.max(clock + 1, Date.now()));
    const SIZE = 48 * MiB;
    const ls = async (): Promise<string[]> => (await readdir(dir)).sort();

    beforeAll(async () => {
      fs = await createLoopFs('xfs');
      dir = join(fs.mountpoint, 'sr');
      await mkdir(dir);
      b = new ReflinkBackend(dir);
      await b.createSr(sr);
      await b.attachSr(sr);
    });
    afterAll(async () => {
      await fs?.teardown();
    });
    afterEach(async () => {
      expect((await ls()).filter((n) => n.startsWith(TEMP_PREFIX) || n.startsWith('.flatsnap-swap.'))).toEqual([]);
    });

    test('ls shows one image and one sidecar per object: <vdi> for VDIs, <id>.hidden for the rest', async () => {
      const v = await b.create(randomUUID(), vdiMeta('layout'), SIZE, tick());
      expect(await b.datapath(v)).toBe(join(dir, v.id));
      expect(v.handle).toBe(join(dir, v.id));
      const iid = randomUUID();
      const i = await b.snapshot(iid, v, formatInternalSnapshotName(tick(), iid), 'internal-snapshot');
      expect(await b.datapath(i)).toBe(join(dir, `${iid}.hidden`));
      const names = await ls();
      expect(names).toEqual(expect.arrayContaining([SR_MARKER, v.id, `${v.id}.json`, `${iid}.hidden`, `${iid}.hidden.json`]));
      const side = JSON.parse(await readFile(join(dir, `${v.id}.json`), 'utf8')) as Record<string, unknown>;
      expect(side).toMatchObject({ format: 'flatsnap-vdi', version: 2, id: v.id, kind: 'volume', vdi: v.id, deleted: false });
      const marker = JSON.parse(await readFile(join(dir, SR_MARKER), 'utf8')) as Record<string, unknown>;
      expect(marker).toMatchObject({ format: 'flatsnap-sr', version: 1, sr_uuid: sr });
      await b.destroy(i);
      await b.markTombstone(v);
      await b.destroy(v);
      expect(await ls()).toEqual([SR_MARKER]);
    });

    test('snapshots and clones share extents (reflink), and health reports it', async () => {
      const v = await b.create(randomUUID(), vdiMeta('shared'), SIZE, tick());
      await writePattern(b, v, 'shared');
      const sid = randomUUID();
      const t = tick();
      const s = await b.snapshot(sid, v, formatSnapshotName(t, sid), 'snapshot', snapshotMeta(v.id, t));
      const h = await b.health!(s);
      expect(h.shared_bytes).toBe(4 * MiB);
      expect(h.mapped_bytes).toBe(4 * MiB);
      expect(h.extents).toBeGreaterThan(0);
      const before = await b.stats();
      const c = await b.clone(randomUUID(), s, vdiMeta('shared clone'), tick());
      const after = await b.stats();
      expect(after.physical_utilisation - before.physical_utilisation).toBeLessThan(2 * MiB);
      for (const o of [c, s, v]) {
        if (o.vdi) await b.markTombstone(o);
        await b.destroy(o);
      }
    });

    async function revertSetup(): Promise<{ v: StoredObject; s: StoredObject; fresh: StoredObject; hOld: string; hNew: string }> {
      const v = await b.create(randomUUID(), vdiMeta('revert me'), SIZE, tick());
      const hOld = await writePattern(b, v, 'old');
      const sid = randomUUID();
      const t = tick();
      const s = await b.snapshot(sid, v, formatSnapshotName(t, sid), 'snapshot', snapshotMeta(v.id, t));
      const hNew = await writePattern(b, v, 'new');
      const fresh = await b.clone(randomUUID(), s, undefined, tick());
      return { v, s, fresh, hOld, hNew };
    }

    test('swapVdi renames over <vdi>: the path stays, the old volume moves to <id>.hidden; stale handles still work', async () => {
      const { v, s, fresh, hOld, hNew } = await revertSetup();
      await b.swapVdi(v.id, v, fresh);
      expect(await hashOf(join(dir, v.id))).toBe(hOld);
      expect(await hashOf(join(dir, `${v.id}.hidden`))).toBe(hNew);
      expect(await b.datapath(fresh)).toBe(join(dir, v.id)); // `fresh` is the pre-swap handle
      expect(await b.datapath(v)).toBe(join(dir, `${v.id}.hidden`)); // so is `v`
      await b.markTombstone(v);
      await b.destroy(v);
      const inv = await b.inventory();
      expect(inv.find((o) => o.id === fresh.id)).toMatchObject({ vdi: v.id, meta: v.meta, parent: s.id });
      expect(inv.some((o) => o.id === v.id)).toBe(false);
      for (const o of [fresh, s]) {
        await b.markTombstone(o);
        await b.destroy(o);
      }
      expect(await ls()).toEqual([SR_MARKER]);
    });

    const STEPS: SwapStep[] = ['intent', 'link-old', 'rename-new', 'old-sidecar', 'new-sidecar', 'drop-sidecar', 'done'];
    test.each(STEPS)('a crash after swap step "%s" is rolled forward by the next inventory', async (step) => {
      const { v, s, fresh, hOld, hNew } = await revertSetup();
      const crashing = new ReflinkBackend(dir, {
        afterSwapStep: (at) => {
          if (at === step) throw new Error(`simulated crash after ${at}`);
        },
      });
      await expect(crashing.swapVdi(v.id, v, fresh)).rejects.toThrow(/simulated crash/);
      if (step === 'intent' || step === 'link-old' || step === 'rename-new') {
        // Reads do not complete swaps (they may run on any host): the VDI is unavailable until then.
        expect((await smError(new ReflinkBackend(dir).datapath(v))).code).toBe(46);
      }
      const inv = await new ReflinkBackend(dir).inventory();
      const now = inv.find((o) => o.vdi === v.id);
      expect(now).toMatchObject({ id: fresh.id, kind: 'volume', deleted: false, meta: v.meta, parent: s.id, handle: join(dir, v.id) });
      const old = inv.find((o) => o.id === v.id)!;
      expect(old.vdi).toBeUndefined();
      expect(old.handle).toBe(join(dir, `${v.id}.hidden`));
      expect(await hashOf(now!.handle)).toBe(hOld);
      expect(await hashOf(old.handle)).toBe(hNew);
      expect(inv.filter((o) => o.id === v.id || o.id === fresh.id)).toHaveLength(2);
      for (const o of [old, now!, s]) {
        if (o.vdi && !o.deleted) await b.markTombstone(o);
        await b.destroy(o);
      }
      expect(await ls()).toEqual([SR_MARKER]);
    });

    test('an interrupted swap is also completed by the next change, before it runs', async () => {
      const { v, s, fresh, hOld } = await revertSetup();
      const crashing = new ReflinkBackend(dir, {
        afterSwapStep: (at) => {
          if (at === 'link-old') throw new Error('simulated crash');
        },
      });
      await expect(crashing.swapVdi(v.id, v, fresh)).rejects.toThrow(/simulated crash/);
      const next = new ReflinkBackend(dir);
      await next.setMeta(fresh, vdiMeta('renamed after the revert'));
      expect(await hashOf(join(dir, v.id))).toBe(hOld);
      const inv = await next.inventory();
      expect(inv.find((o) => o.vdi === v.id)).toMatchObject({ id: fresh.id, meta: { name_label: 'renamed after the revert' } });
      for (const o of inv.filter((x) => [v.id, fresh.id, s.id].includes(x.id))) {
        if (o.vdi && !o.deleted) await b.markTombstone(o);
        await b.destroy(o);
      }
      expect(await ls()).toEqual([SR_MARKER]);
    });

    test('a crash mid-create leaves only an orphan sidecar and a temp file: ignored, then reaped by attach', async () => {
      const id = randomUUID();
      // What a crash between "sidecar created" and "image published" leaves.
      const v = await b.create(id, vdiMeta('crashed create'), SIZE, tick());
      const tmp = tempPath(dir, id).replace(`${TEMP_PREFIX}${process.pid}-`, `${TEMP_PREFIX}999999999-`);
      await writeFile(tmp, '');
      await unlink(join(dir, id));
      expect((await b.inventory()).some((o) => o.id === id)).toBe(false);
      // Young leftovers may be another host's work in progress: kept.
      await b.attachSr(sr);
      expect(await ls()).toEqual(expect.arrayContaining([`${id}.json`]));
      const old = new Date(Date.now() - 3600_000);
      await utimes(tmp, old, old);
      await utimes(join(dir, `${id}.json`), old, old);
      await b.attachSr(sr);
      expect(await ls()).toEqual([SR_MARKER]);
      // The id can be used again.
      const again = await b.create(id, vdiMeta('again'), SIZE, tick());
      expect(again.meta?.name_label).toBe('again');
      expect(again.id).toBe(v.id);
      await b.markTombstone(again);
      await b.destroy(again);
    });

    test('a version 1 sidecar is read as a volume or snapshot VDI', async () => {
      const id = randomUUID();
      await writeFile(join(dir, id), '');
      await writeSidecar(dir, { uuid: id, nameLabel: 'legacy', nameDescription: 'v1', parent: null, isSnapshot: false, snapshotTime: null });
      const o = (await b.inventory()).find((x) => x.id === id);
      expect(o).toMatchObject({ id, kind: 'volume', vdi: id, deleted: false, meta: { name_label: 'legacy', vdi_type: 'user' } });
      await b.markTombstone(o!); // rewrites it as version 2
      const side = JSON.parse(await readFile(join(dir, `${id}.json`), 'utf8')) as Record<string, unknown>;
      expect(side).toMatchObject({ version: 2, deleted: true });
      await b.destroy(o!);
    });

    test('files that are not ours are listed as nothing and left alone', async () => {
      await writeFile(join(dir, 'README'), 'hello');
      const id = randomUUID();
      await writeFile(join(dir, id), 'an image without a sidecar');
      expect(await b.inventory()).toEqual([]);
      await b.attachSr(sr);
      expect(await ls()).toEqual([SR_MARKER, id, 'README'].sort());
      await expect(b.deleteSr(sr)).rejects.toMatchObject({ code: 39 });
      await unlink(join(dir, 'README'));
      await unlink(join(dir, id));
    });

    test('a read-only mount: attachSr fails with SharedFileSystemNoWrite (461), writes too', async () => {
      const v = await b.create(randomUUID(), vdiMeta('ro'), SIZE, tick());
      await fs.remount(['ro']);
      try {
        expect((await smError(b.attachSr(sr))).code).toBe(461);
        expect((await smError(b.setMeta(v, vdiMeta('ro2')))).code).toBe(461);
        expect((await smError(b.create(randomUUID(), vdiMeta('ro3'), SIZE))).code).toBe(461);
        expect((await b.inventory()).map((o) => o.id)).toEqual([v.id]);
      } finally {
        await fs.remount(['rw']);
      }
      await b.attachSr(sr);
      await b.markTombstone(v);
      await b.destroy(v);
    });

    test('createSr refuses a missing path and a file (47); the constructor a relative path', async () => {
      expect((await smError(new ReflinkBackend(join(dir, 'missing')).createSr(randomUUID()))).code).toBe(47);
      await writeFile(join(fs.mountpoint, 'a-file'), '');
      expect((await smError(new ReflinkBackend(join(fs.mountpoint, 'a-file')).createSr(randomUUID()))).code).toBe(47);
      expect(() => new ReflinkBackend('relative/sr')).toThrow(/absolute/);
    });
  });

  describe.each([
    { kind: 'ext4' as const, sizeMiB: 64 },
    { kind: 'tmpfs' as const, sizeMiB: 64 },
  ])('on $kind (no reflink)', ({ kind, sizeMiB }) => {
    let fs: LoopFs;
    beforeAll(async () => {
      fs = await createLoopFs(kind, { sizeMiB });
    });
    afterAll(async () => {
      await fs?.teardown();
    });

    test('createSr and attachSr are refused (47) unless allow-copy, leaving the directory as it was', async () => {
      const dir = join(fs.mountpoint, 'sr');
      await mkdir(dir);
      const sr = randomUUID();
      const e = await smError(new ReflinkBackend(dir).createSr(sr));
      expect(e.code).toBe(47);
      expect(e.message).toMatch(/cannot reflink/);
      expect(e.message).toMatch(/allow-copy/);
      expect(await readdir(dir)).toEqual([]);
      // Made with allow-copy, then attached without: refused too.
      await new ReflinkBackend(dir, { allowCopy: true }).createSr(sr);
      expect((await smError(new ReflinkBackend(dir).attachSr(sr))).code).toBe(47);
    });

    test('with allow-copy: snapshots and clones are full, sparse, independent copies', async () => {
      const dir = join(fs.mountpoint, 'sr2');
      await mkdir(dir);
      const sr = randomUUID();
      const b = new ReflinkBackend(dir, { allowCopy: true });
      await b.createSr(sr);
      await b.attachSr(sr);
      expect(b.describe()).toMatch(/allow-copy/);
      const v = await b.create(randomUUID(), vdiMeta('copied'), 32 * MiB, Date.now());
      const fh = await open(await b.datapath(v), 'r+');
      await fh.write(Buffer.alloc(MiB, 7), 0, MiB, 8 * MiB);
      await fh.sync();
      await fh.close();
      const h = await hashOf(await b.datapath(v));
      const sid = randomUUID();
      const t = Date.now() + 1;
      const s = await b.snapshot(sid, v, formatSnapshotName(t, sid), 'snapshot', snapshotMeta(v.id, t));
      expect(await hashOf(await b.datapath(s))).toBe(h);
      expect(s.physical_utilisation).toBeLessThan(2 * MiB); // holes stayed holes
      expect(s.virtual_size).toBe(32 * MiB);
      const c = await b.clone(randomUUID(), s, vdiMeta('copied clone'), t + 1);
      const fc = await open(await b.datapath(c), 'r+');
      await fc.write(Buffer.alloc(MiB, 9), 0, MiB, 0);
      await fc.close();
      expect(await hashOf(await b.datapath(s))).toBe(h);
      expect(await hashOf(await b.datapath(v))).toBe(h);
      for (const o of [c, s, v]) {
        await b.markTombstone(o);
        await b.destroy(o);
      }
      await b.deleteSr(sr);
      expect(await readdir(dir)).toEqual([]);
    });
  });
});
