// The reflink layer on real filesystems: XFS (reflink=1, 4 KiB and 2 KiB blocks)
// and btrfs on loop devices, ext4 and tmpfs as the filesystems that cannot
// reflink. No mocks: every FICLONE, fsync and statfs goes to the kernel.
import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readFile, readdir, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { SmError } from '../../src/errors.js';
import { fsyncDir } from '../../src/backends/reflink/atomic.js';
import { FS_MAGIC, identifyFs, probeReflink } from '../../src/backends/reflink/fsinfo.js';
import { listVdis, removeStaleTemps } from '../../src/backends/reflink/listing.js';
import { TEMP_PREFIX, sidecarPath, tempPath, volumePath } from '../../src/backends/reflink/names.js';
import { readSidecar, writeSidecar, type VdiMeta } from '../../src/backends/reflink/sidecar.js';
import {
  createSparse,
  extentCount,
  extentStats,
  growFile,
  reflinkCopy,
  reflinkInto,
  volumeSize,
} from '../../src/backends/reflink/volume.js';
import { createLoopFs, describeLoopFs, type LoopFs, type LoopFsKind, type LoopFsOptions } from './harness/loopfs.js';
import { fillFile } from '../helpers/fill.js';

const MiB = 1024 * 1024;
let uuidSeq = 0;
const newUuid = (): string => `0f1a5a40-0000-4000-8000-${(++uuidSeq).toString(16).padStart(12, '0')}`;

const meta = (uuid: string, over: Partial<VdiMeta> = {}): VdiMeta => ({
  uuid,
  nameLabel: `disk ${uuid.slice(-4)}`,
  nameDescription: 'made by reflink-fs.test',
  parent: null,
  isSnapshot: false,
  snapshotTime: null,
  ...over,
});

async function sha256(path: string): Promise<string> {
  return createHash('sha256').update(await readFile(path)).digest('hex');
}

/** Writes `mib` MiB of distinct data sequentially and fsyncs. */
async function writeData(path: string, mib: number, flag = 'wx'): Promise<void> {
  const fh = await open(path, flag);
  try {
    for (let i = 0; i < mib; i++) await fh.write(Buffer.alloc(MiB, i + 1));
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function pwrite(path: string, offset: number, data: Buffer): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    await fh.write(data, 0, data.length, offset);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

async function temps(dir: string): Promise<string[]> {
  return (await readdir(dir)).filter((n) => n.startsWith(TEMP_PREFIX));
}

/** The SmError `fn` rejects with (fails the test if it resolves or throws something else). */
async function smError(fn: () => Promise<unknown>): Promise<SmError> {
  try {
    await fn();
  } catch (e) {
    if (e instanceof SmError) return e;
    throw e;
  }
  throw new Error('expected an SmError, got success');
}


interface Target {
  name: string;
  kind: LoopFsKind;
  opts?: LoopFsOptions;
  magic: number;
}

const REFLINK_TARGETS: Target[] = [
  { name: 'xfs (reflink=1)', kind: 'xfs', magic: FS_MAGIC.xfs },
  { name: 'xfs (reflink=1, 2 KiB blocks)', kind: 'xfs', opts: { mkfsArgs: ['-b', 'size=2048'] }, magic: FS_MAGIC.xfs },
  { name: 'btrfs', kind: 'btrfs', magic: FS_MAGIC.btrfs },
];

describeLoopFs('reflink layer on real filesystems', ['xfs', 'btrfs', 'ext4', 'tmpfs'], () => {
  describe.each(REFLINK_TARGETS)('$name', (t) => {
    let fs: LoopFs;
    let dir: string;

    beforeAll(async () => {
      fs = await createLoopFs(t.kind, t.opts);
      dir = fs.mountpoint;
    });
    afterAll(async () => {
      await fs?.teardown();
    });
    afterEach(async () => {
      // Every operation cleans up after itself, failed ones included.
      expect(await temps(dir)).toEqual([]);
    });

    test('identifyFs reads the magic, the mount flags and the free space', () => {
      const info = identifyFs(dir);
      expect(info.kind).toBe(t.kind);
      expect(info.magic).toBe(t.magic);
      expect(info.readonly).toBe(false);
      expect(info.totalBytes).toBeGreaterThan(64 * MiB);
      expect(info.availBytes).toBeGreaterThan(0);
      expect(info.availBytes).toBeLessThanOrEqual(info.freeBytes);
      expect(info.freeBytes).toBeLessThanOrEqual(info.totalBytes);
    });

    test('probeReflink proves FICLONE works and leaves nothing behind', async () => {
      expect(await probeReflink(dir)).toEqual({ ok: true });
    });

    test('a reflink copy is independent of its source, both ways', async () => {
      const a = volumePath(dir, newUuid());
      const b = volumePath(dir, newUuid());
      await writeData(a, 8);
      // A hole in the middle and data past it: the clone must keep both.
      await pwrite(a, 32 * MiB, randomBytes(64 * 1024));
      const h0 = await sha256(a);

      await reflinkInto(a, b, { fail: 'VDISnapshot' });
      expect(await sha256(b)).toBe(h0);
      expect((await volumeSize(b)).size).toBe((await volumeSize(a)).size);
      const sharedAfterClone = await extentStats(b);
      expect(sharedAfterClone.shared).toBe(sharedAfterClone.extents);

      await pwrite(b, 4 * MiB + 4096, randomBytes(4096));
      expect(await sha256(a)).toBe(h0);
      const hb = await sha256(b);
      expect(hb).not.toBe(h0);

      await pwrite(a, 0, randomBytes(4096));
      expect(await sha256(b)).toBe(hb);
      expect(await sha256(a)).not.toBe(h0);
    });

    test('a reflink copy holds writes that were never fsynced (the source is flushed first)', async () => {
      const a = volumePath(dir, newUuid());
      const b = volumePath(dir, newUuid());
      const fh = await open(a, 'wx');
      await fh.write(Buffer.alloc(MiB, 0x11));
      // No fsync here: reflinkCopy fsyncs the source (and FICLONE flushes it too).
      const expected = createHash('sha256').update(Buffer.alloc(MiB, 0x11)).digest('hex');
      await reflinkInto(a, b);
      await fh.write(Buffer.alloc(4096, 0x22), 0, 4096, 0);
      await fh.close();
      expect(await sha256(b)).toBe(expected);
    });

    test('reflink refuses to overwrite and reports a missing source', async () => {
      const a = volumePath(dir, newUuid());
      const b = volumePath(dir, newUuid());
      await writeData(a, 1);
      await writeData(b, 1);
      const hb = await sha256(b);
      expect((await smError(() => reflinkInto(a, b))).kind).toBe('VDIExists');
      expect(await sha256(b)).toBe(hb);
      expect((await smError(() => reflinkCopy(a, b))).kind).toBe('VDIExists');

      const missing = volumePath(dir, newUuid());
      const e = await smError(() => reflinkInto(missing, volumePath(dir, newUuid())));
      expect(e.kind).toBe('VolNotFound');
    });

    test('sparse create allocates nothing; grow keeps data and refuses to shrink', async () => {
      const p = volumePath(dir, newUuid());
      await createSparse(p, 10 * 1024 * MiB);
      let s = await volumeSize(p);
      expect(s.size).toBe(10 * 1024 * MiB);
      expect(s.allocated).toBe(0);

      const data = randomBytes(8192);
      await pwrite(p, 5 * MiB, data);
      expect(await growFile(p, 20 * 1024 * MiB)).toBe(10 * 1024 * MiB);
      s = await volumeSize(p);
      expect(s.size).toBe(20 * 1024 * MiB);
      expect(s.allocated).toBeLessThan(MiB);
      const fh = await open(p, 'r');
      const back = Buffer.alloc(8192);
      await fh.read(back, 0, 8192, 5 * MiB);
      await fh.close();
      expect(back.equals(data)).toBe(true);

      expect(await growFile(p, 20 * 1024 * MiB)).toBe(20 * 1024 * MiB); // same size: no-op
      expect((await smError(() => growFile(p, MiB))).kind).toBe('VDISize');
      expect((await volumeSize(p)).size).toBe(20 * 1024 * MiB);

      expect((await smError(() => createSparse(p, MiB))).kind).toBe('VDIExists');
      expect((await smError(() => growFile(volumePath(dir, newUuid()), MiB))).kind).toBe('VolNotFound');
    });

    test('sidecars are written atomically and read back validated; listing pairs them with images', async () => {
      const sub = join(dir, `sr-${newUuid()}`);
      await mkdir(sub);
      const u1 = newUuid();
      const u2 = newUuid();
      const u3 = newUuid();
      await createSparse(volumePath(sub, u1), 4 * MiB);
      await writeSidecar(sub, meta(u1));
      await reflinkInto(volumePath(sub, u1), volumePath(sub, u2), { fail: 'VDISnapshot' });
      const snap = meta(u2, { parent: u1, isSnapshot: true, snapshotTime: '20261125T01:02:03Z', type: 'user' });
      await writeSidecar(sub, snap);
      expect(await readSidecar(sub, u2)).toEqual(snap);

      // Overwrite: the new content replaces the old in one rename.
      await writeSidecar(sub, meta(u1, { nameLabel: 'renamed' }));
      expect((await readSidecar(sub, u1)).nameLabel).toBe('renamed');

      // An image without sidecar, a sidecar without image, a corrupt sidecar, foreign files.
      await createSparse(volumePath(sub, u3), MiB);
      const u4 = newUuid();
      await writeSidecar(sub, meta(u4));
      const u5 = newUuid();
      await createSparse(volumePath(sub, u5), MiB);
      await writeFile(sidecarPath(sub, u5), '{"format":"flatsnap-vdi","version":1,');
      await writeFile(join(sub, 'README'), 'not ours');

      const l = await listVdis(sub);
      expect(l.vdis.map((v) => v.uuid)).toEqual([u1, u2, u3, u5]);
      const byUuid = new Map(l.vdis.map((v) => [v.uuid, v]));
      expect(byUuid.get(u1)?.meta?.nameLabel).toBe('renamed');
      expect(byUuid.get(u1)?.size).toBe(4 * MiB);
      expect(byUuid.get(u2)?.meta).toEqual(snap);
      expect(byUuid.get(u3)?.meta).toBeNull();
      expect(byUuid.get(u3)?.problem).toBe('no sidecar');
      expect(byUuid.get(u5)?.meta).toBeNull();
      expect(byUuid.get(u5)?.problem).toMatch(/not JSON/);
      expect(l.orphanSidecars).toEqual([u4]);
      expect(l.other).toEqual(['README']);
      expect(l.temps).toEqual([]);
      expect((await smError(() => readSidecar(sub, u5))).kind).toBe('VDIUnavailable');
      expect((await smError(() => readSidecar(sub, u3))).kind).toBe('VolNotFound');

      // A crash's leftovers: listed as temps, removed by removeStaleTemps (not this pid's).
      const stale = join(sub, `${TEMP_PREFIX}999999999-abcdef.leftover`);
      await writeFile(stale, 'x');
      const mine = tempPath(sub, 'mine');
      await writeFile(mine, 'x');
      await fsyncDir(sub);
      const l2 = await listVdis(sub);
      expect(l2.temps).toHaveLength(2);
      expect(await removeStaleTemps(sub, l2.temps, 0)).toEqual([`${TEMP_PREFIX}999999999-abcdef.leftover`]);
      expect((await listVdis(sub)).temps).toEqual([mine.slice(sub.length + 1)]);
      await unlink(mine);
    });

    test('random rewrites of a reflinked file raise its extent count; FIEMAP sees the sharing', async () => {
      const a = volumePath(dir, newUuid());
      const b = volumePath(dir, newUuid());
      await writeData(a, 16);
      const fresh = await extentStats(a);
      expect(fresh.bytes).toBe(16 * MiB);
      expect(fresh.shared).toBe(0);
      expect(await extentCount(a)).toBe(fresh.extents);

      await reflinkInto(a, b);
      const cloned = await extentStats(b);
      expect(cloned.extents).toBe(fresh.extents);
      expect(cloned.sharedBytes).toBe(16 * MiB);

      // 200 scattered 4 KiB rewrites of the clone, each one copy-on-write.
      let seed = 12345;
      const rnd = (): number => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) / 0x80000000;
      const fh = await open(b, 'r+');
      for (let i = 0; i < 200; i++) await fh.write(randomBytes(4096), 0, 4096, Math.floor(rnd() * 4096) * 4096);
      await fh.sync();
      await fh.close();

      const after = await extentStats(b);
      expect(await extentCount(b)).toBe(after.extents);
      expect(after.extents).toBeGreaterThan(fresh.extents + 100);
      expect(after.fragments).toBeGreaterThan(fresh.fragments + 100);
      expect(after.sharedBytes).toBeLessThan(16 * MiB);
      expect(after.shared).toBeGreaterThan(0);
      // The source was not rewritten: physically it is as contiguous as before, even
      // where XFS reports it split at every shared/unshared boundary.
      const src = await extentStats(a);
      expect(src.fragments).toBe(fresh.fragments);
      expect(src.bytes).toBe(16 * MiB);
    });

    test('a read-only mount: identifyFs says so, writes map to SharedFileSystemNoWrite', async () => {
      const u = newUuid();
      await createSparse(volumePath(dir, u), MiB);
      await fs.remount(['ro']);
      try {
        expect(identifyFs(dir).readonly).toBe(true);
        expect((await smError(() => writeSidecar(dir, meta(u)))).kind).toBe('SharedFileSystemNoWrite');
        expect((await smError(() => createSparse(volumePath(dir, newUuid()), MiB))).kind).toBe('SharedFileSystemNoWrite');
        expect((await smError(() => reflinkInto(volumePath(dir, u), volumePath(dir, newUuid())))).kind).toBe(
          'SharedFileSystemNoWrite',
        );
        const p = await probeReflink(dir);
        expect(p).toMatchObject({ ok: false, code: 'EROFS' });
      } finally {
        await fs.remount(['rw']);
      }
      expect(identifyFs(dir).readonly).toBe(false);
    });
  });

  describe.each([
    { name: 'xfs', kind: 'xfs' as const, opts: {} },
    { name: 'btrfs', kind: 'btrfs' as const, opts: { sizeMiB: 128 } },
  ])('ENOSPC on a full $name', ({ kind, opts }) => {
    let fs: LoopFs;
    beforeAll(async () => {
      fs = await createLoopFs(kind, opts);
    });
    afterAll(async () => {
      await fs?.teardown();
    });

    test('a sidecar write fails with SRNoSpace, keeps the old content and leaves no temp file', async () => {
      const dir = fs.mountpoint;
      const u = newUuid();
      await createSparse(volumePath(dir, u), 64 * MiB);
      await writeSidecar(dir, meta(u, { nameLabel: 'before' }));
      await fillFile(join(dir, 'ballast'));
      expect(identifyFs(dir).availBytes).toBeLessThan(MiB);

      const e = await smError(() => writeSidecar(dir, meta(u, { nameLabel: 'after', nameDescription: 'x'.repeat(8192) })));
      expect(e.kind).toBe('SRNoSpace');
      expect(e.code).toBe(44);
      expect((await readSidecar(dir, u)).nameLabel).toBe('before');
      expect(await temps(dir)).toEqual([]);

      // Writing into the sparse image itself fails the same way once mapped.
      const fh = await open(volumePath(dir, u), 'r+');
      let code: string | undefined;
      try {
        for (let i = 0; i < 64; i++) await fh.write(Buffer.alloc(MiB, 1), 0, MiB, i * MiB);
        await fh.sync();
      } catch (err) {
        code = (err as { code?: string }).code;
      } finally {
        await fh.close();
      }
      expect(code).toBe('ENOSPC');
    });
  });

  describe('filesystems without reflink', () => {
    const cases: { name: string; kind: LoopFsKind }[] = [
      { name: 'ext4', kind: 'ext4' },
      { name: 'tmpfs', kind: 'tmpfs' },
    ];
    describe.each(cases)('$name', ({ kind }) => {
      let fs: LoopFs;
      beforeAll(async () => {
        fs = await createLoopFs(kind);
      });
      afterAll(async () => {
        await fs?.teardown();
      });

      test('identifyFs says other, probeReflink says EOPNOTSUPP, a clone fails cleanly', async () => {
        const dir = fs.mountpoint;
        expect(identifyFs(dir).kind).toBe('other');
        const p = await probeReflink(dir);
        expect(p.ok).toBe(false);
        if (!p.ok) {
          expect(p.code).toBe('EOPNOTSUPP');
          expect(p.reason).toMatch(/does not support reflink/);
        }
        const a = volumePath(dir, newUuid());
        await writeData(a, 1);
        const e = await smError(() => reflinkInto(a, volumePath(dir, newUuid()), { fail: 'VDISnapshot' }));
        expect(e.kind).toBe('VDISnapshot');
        expect(e.message).toMatch(/no reflink support/);
        expect(await temps(dir)).toEqual([]);
        expect((await readdir(dir)).filter((n) => n !== 'lost+found')).toEqual([a.slice(dir.length + 1)]);
      });
    });
  });

  describe('across filesystems', () => {
    let x: LoopFs;
    let b: LoopFs;
    beforeAll(async () => {
      x = await createLoopFs('xfs');
      b = await createLoopFs('btrfs');
    });
    afterAll(async () => {
      await x?.teardown();
      await b?.teardown();
    });

    test('FICLONE between two mounts is EXDEV, reported with the caller’s kind', async () => {
      const a = volumePath(x.mountpoint, newUuid());
      await writeData(a, 1);
      const e = await smError(() => reflinkInto(a, volumePath(b.mountpoint, newUuid()), { fail: 'VDIClone' }));
      expect(e.kind).toBe('VDIClone');
      expect(e.message).toMatch(/EXDEV/);
      expect(await temps(b.mountpoint)).toEqual([]);
    });
  });
});
