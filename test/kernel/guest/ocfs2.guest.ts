// Runs INSIDE the kernel tier's guest: the reflink backend's conformance suite, unchanged,
// on OCFS2 in local mode (mkfs.ocfs2 -M local, refcount feature), which only a real kernel
// has. Then what is specific to OCFS2: the backend knows it is on OCFS2, snapshots
// share extents (FIEMAP's shared flag) instead of copying, and the relayout
// (src/backends/reflink/relayout.ts: FIDEDUPERANGE into the image, FICLONERANGE into its
// snapshots) works on OCFS2's refcount trees as on XFS.
//
// Environment (set by test/kernel/vm.test.ts):
//   KT_OCFS2_MNT   where the host mounted the OCFS2 filesystem in the guest
import { randomUUID } from 'node:crypto';
import { mkdir, open, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { ReflinkBackend } from '../../../src/backends/reflink/backend.js';
import { SR_MARKER, TEMP_PREFIX } from '../../../src/backends/reflink/names.js';
import { extentsFrom, sameBlocks } from '../../../src/backends/reflink/extent-map.js';
import { relayoutVdi } from '../../../src/backends/reflink/relayout.js';
import { sys } from '../../../src/backends/reflink/sys.js';
import { formatSnapshotName } from '../../../src/lineage/names.js';
import { backendConformance, hashOf, snapshotMeta, vdiMeta, writePattern, type ConformanceTarget } from '../../conformance/backend-conformance.js';
import { fragmentedDisk, prng, syncFs, usedBytes } from '../../integration/harness/fragment.js';
import { env, fillFile } from './fill.js';

const MiB = 1024 * 1024;
const MNT = env('KT_OCFS2_MNT');

function ocfs2Target(tag: string): () => Promise<ConformanceTarget> {
  return async () => {
    const base = join(MNT, tag);
    const dir = join(base, 'sr');
    await mkdir(dir, { recursive: true });
    const ballast = join(base, 'ballast');
    return {
      backend: new ReflinkBackend(dir),
      reopen: () => new ReflinkBackend(dir),
      listRoot: async () => (await readdir(dir)).filter((n) => n !== SR_MARKER).sort(),
      teardown: async () => undefined, // the filesystem goes with the VM
      fill: () => fillFile(ballast),
      unfill: async () => {
        await rm(ballast, { force: true });
        await execa('sync', ['-f', base], { stdin: 'ignore' });
      },
      foreign: async () => {
        const f = join(base, `foreign-${randomUUID()}`);
        await mkdir(f);
        await writeFile(join(f, 'disk.img'), 'somebody else’s data');
        return new ReflinkBackend(f);
      },
    };
  };
}

backendConformance('reflink on OCFS2 (local mode)', ocfs2Target('conf'));

describe('OCFS2 specifics', () => {
  const dir = join(MNT, 'spec', 'sr');
  const sr = randomUUID();
  let b: ReflinkBackend;

  beforeAll(async () => {
    await mkdir(dir, { recursive: true });
    b = new ReflinkBackend(dir);
    await b.createSr(sr);
    await b.attachSr(sr);
  });

  test('the backend sees OCFS2; a snapshot shares every extent with its source, and a write unshares only what it touches', async () => {
    expect(b.describe()).toMatch(/^ocfs2 at /);
    const v = await b.create(randomUUID(), vdiMeta('shared'), 48 * MiB, Date.now());
    const h = await writePattern(b, v, 'shared');
    const before = await b.stats();
    const sid = randomUUID();
    const t = Date.now() + 1;
    const s = await b.snapshot(sid, v, formatSnapshotName(t, sid), 'snapshot', snapshotMeta(v.id, t));
    const after = await b.stats();
    expect(after.physical_utilisation - before.physical_utilisation).toBeLessThan(2 * MiB);
    const hs = await b.health(s);
    expect(hs.mapped_bytes).toBe(4 * MiB);
    expect(hs.shared_bytes).toBe(4 * MiB);
    expect(await hashOf(await b.datapath(s))).toBe(h);
    await writePattern(b, v, 'rewritten');
    expect(await hashOf(await b.datapath(s))).toBe(h);
    const hv = await b.health(v);
    expect(hv.shared_bytes).toBeLessThan(4 * MiB);
    for (const o of [s, v]) {
      await b.markTombstone(o);
      await b.destroy(o);
    }
    expect((await readdir(dir)).filter((n) => n !== SR_MARKER)).toEqual([]);
  });

  // As test/integration/reflink-relayout.test.ts on XFS, smaller (TCG): 32 MiB, two windows.
  // OCFS2 copies a shared range on write in 1 MiB pieces, whatever the write's size, so the
  // disk fragments into at most one run per MiB, and only when the guest writes in random
  // order (in file order the pieces are allocated one after the other). A 16 MiB window
  // then has at most 16 runs, the relayout's default minimum: a lower one here, so that the
  // windows qualify whatever the allocator did. Few writes per cycle (3 %): with more, every
  // MiB is copied at every cycle and the older snapshots share nothing with the disk.
  test('relayout: the fragmented disk comes out in fewer runs, every byte of it and its snapshots kept, still shared, no space used', async () => {
    const size = 32 * MiB;
    let clock = Date.now();
    const { v, snaps } = await fragmentedDisk(b, { size, cycles: 3, share: 0.03, order: 'random', rnd: prng(11), tick: () => ++clock });
    const all = [v, ...snaps];
    const hashes = (): Promise<string[]> => Promise.all(all.map((o) => hashOf(o.handle)));
    const before = await hashes();
    const hv0 = await b.health(v);
    expect(Number(hv0.fragments)).toBeGreaterThanOrEqual(12);
    await syncFs(dir);
    const used = usedBytes(dir);

    const r = await relayoutVdi(dir, v.id, { minWindowExtents: 4 });
    expect(r).toMatchObject({
      windows: 2,
      windows_selected: 2,
      windows_changed: 0,
      windows_left: 0,
      windows_not_better: 0,
      bytes_deduped: size,
      family_objects: snaps.length,
      family_objects_remapped: snaps.length,
    });
    expect(r.skipped).toBeUndefined();

    expect(await hashes()).toEqual(before);
    const hv = await b.health(v);
    // Fewer runs, though not one per window: the copy lands in whatever free space the
    // snapshots' scattered 1 MiB pieces and OCFS2's local allocation window leave.
    expect(Number(hv.fragments)).toBeLessThan(Number(hv0.fragments));
    expect(Number(hv.extents)).toBeLessThan(Number(hv0.extents));
    // FIEMAP's shared flags: the disk still shares everything (with its newest snapshot,
    // identical to it), and that snapshot is on the same new blocks, all shared.
    expect(hv.shared_bytes).toBe(size);
    const newest = await b.health(snaps[snaps.length - 1]!);
    expect(newest.fragments).toBe(hv.fragments);
    expect(newest.shared_bytes).toBe(size);
    // Every older snapshot still shares blocks (with the disk or the other snapshots).
    for (const s of snaps) expect(Number((await b.health(s)).shared_bytes)).toBeGreaterThan(0);
    // OCFS2 frees released clusters through its truncate log, flushed a few seconds later.
    let after = usedBytes(dir);
    for (let i = 0; i < 40 && after - used > MiB; i++) {
      await new Promise((res) => setTimeout(res, 500));
      await syncFs(dir);
      after = usedBytes(dir);
    }
    expect(after - used).toBeLessThanOrEqual(MiB);
    expect((await readdir(dir)).filter((n) => n.startsWith(TEMP_PREFIX))).toEqual([]);

    for (const o of [...snaps].reverse()) {
      await b.markTombstone(o);
      await b.destroy(o);
    }
    await b.markTombstone(v);
    await b.destroy(v);
  }, 300_000);

  // The unshare (src/backends/reflink/unshare.ts, device-config:unshare=on) through the same
  // VFS remap calls on OCFS2: after each snapshot the disk ends up sharing nothing, every
  // byte kept, and a second snapshot copies only what the guest wrote (onto the first one's
  // blocks elsewhere).
  /** Bytes at which two files map the same physical block. */
  async function commonBlocks(x: string, y: string): Promise<number> {
    const map = async (p: string) => {
      const fh = await open(p, 'r');
      try {
        return extentsFrom(sys().fiemapMap(fh.fd));
      } finally {
        await fh.close();
      }
    };
    return sameBlocks(await map(x), await map(y)).reduce((n, r) => n + r.end - r.start, 0);
  }

  /** `len` bytes of `byte` at `off` (a counter in each 4 KiB, so that blocks differ), fsynced. */
  async function fillWith(path: string, off: number, len: number, byte: number): Promise<void> {
    const fh = await open(path, 'r+');
    try {
      const buf = Buffer.alloc(MiB, byte);
      for (let p = 0; p < len; p += MiB) {
        for (let k = 0; k < MiB; k += 4096) buf.writeUInt32LE((off + p + k) / 4096, k);
        await fh.write(buf, 0, Math.min(MiB, len - p), off + p);
      }
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  test('unshare: after a snapshot the disk shares nothing; a second snapshot costs what the guest wrote', async () => {
    const size = 16 * MiB;
    let clock = Date.now();
    const v = await b.create(randomUUID(), vdiMeta('unshared'), size, ++clock);
    await fillWith(v.handle, 0, size, 0x33);
    const snap = async () => {
      const id = randomUUID();
      const t = ++clock;
      return b.snapshot(id, v, formatSnapshotName(t, id), 'snapshot', snapshotMeta(v.id, t));
    };
    const s1 = await snap();
    const r1 = await relayoutVdi(dir, v.id, { unshare: true, rewrite: false });
    // OCFS2 keeps an extent's refcounted flag (FIEMAP's "shared") when its count drops to
    // one, so shared_bytes_after says nothing there: what counts is that the snapshot no
    // longer maps a block of the disk.
    expect(r1.unshare).toMatchObject({ shared_bytes_before: size, holders: 1, holders_moved: 1, bytes_copied: size });
    expect(await commonBlocks(v.handle, s1.handle)).toBe(0);

    await fillWith(v.handle, 4 * MiB, MiB, 0x44);
    const s2 = await snap();
    const all = [v, s1, s2];
    const before = await Promise.all(all.map((o) => hashOf(o.handle)));
    const r2 = await relayoutVdi(dir, v.id, { unshare: true, rewrite: false });
    expect(r2.unshare).toMatchObject({ holders: 1, holders_moved: 1 });
    // What was written (1 MiB), give or take OCFS2's cluster-sized pieces.
    expect(r2.unshare!.bytes_copied).toBeGreaterThanOrEqual(MiB);
    expect(r2.unshare!.bytes_copied).toBeLessThanOrEqual(2 * MiB);
    expect(r2.unshare!.bytes_to_donor + r2.unshare!.bytes_copied).toBe(size);
    expect(await Promise.all(all.map((o) => hashOf(o.handle)))).toEqual(before);
    expect(await commonBlocks(v.handle, s2.handle)).toBe(0);
    expect(await commonBlocks(v.handle, s1.handle)).toBe(0);
    expect(Number((await b.health(s2)).shared_bytes)).toBeGreaterThanOrEqual(size - 2 * MiB); // with s1
    expect((await readdir(dir)).filter((n) => n.startsWith(TEMP_PREFIX))).toEqual([]);

    for (const o of [s2, s1, v]) {
      await b.markTombstone(o);
      await b.destroy(o);
    }
  }, 300_000);

  afterAll(async () => {
    await b?.deleteSr(sr).catch(() => undefined);
  });
});
