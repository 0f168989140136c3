// Fragmenting a reflink disk the way a snapshotted guest does: snapshot, then rewrite
// random 64 KiB blocks (each write into a block shared with the snapshot goes somewhere
// new). Shared by the relayout tests on XFS (test/integration/reflink-relayout.test.ts)
// and on OCFS2 in the kernel tier's guest (test/kernel/guest/ocfs2.guest.ts), and by the
// OCFS2 fragmentation measurement (test/kernel/guest/ocfs2-fragmentation.ts).
import { randomBytes, randomUUID } from 'node:crypto';
import { statfsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { execa } from 'execa';
import type { StoredObject } from '../../../src/backends/backend.js';
import type { ReflinkBackend } from '../../../src/backends/reflink/backend.js';
import { formatSnapshotName } from '../../../src/lineage/names.js';
import { snapshotMeta, vdiMeta } from '../../conformance/backend-conformance.js';

const MiB = 1024 * 1024;
export const REWRITE_UNIT = 64 * 1024;

/** A small seeded PRNG (mulberry32): the same blocks every run. */
export function prng(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export async function syncFs(path: string): Promise<void> {
  await execa('sync', ['-f', path], { stdin: 'ignore' });
}

/** Bytes in use on the filesystem holding `path` (statfs). */
export function usedBytes(path: string): number {
  const s = statfsSync(path);
  return (s.blocks - s.bfree) * s.bsize;
}

/** Writes `size` bytes of random data over the whole file, 4 MiB at a time, and fsyncs. */
export async function fillRandom(path: string, size: number): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    for (let off = 0; off < size; off += 4 * MiB) {
      const n = Math.min(4 * MiB, size - off);
      await fh.write(randomBytes(n), 0, n, off);
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/**
 * The order of a cycle's writes. XFS makes a new extent of every 64 KiB write into a shared
 * block whatever the order; OCFS2 copies a shared range in 1 MiB pieces
 * (ocfs2_refcount_cal_cow_clusters), allocated in the order they are first written, so
 * writes in file order come out physically contiguous and only writes in random order
 * (as a guest makes them) fragment the disk.
 */
export type WriteOrder = 'file' | 'random';

/** Rewrites `count` distinct random blocks of `unit` bytes of a `size`-byte image with random bytes, and fsyncs. */
export async function rewriteRandom(path: string, size: number, count: number, rnd: () => number, unit = REWRITE_UNIT, order: WriteOrder = 'file'): Promise<void> {
  const fh = await open(path, 'r+');
  try {
    const picks = new Set<number>();
    while (picks.size < count) picks.add(Math.floor(rnd() * (size / unit)));
    const blocks = order === 'file' ? [...picks].sort((x, y) => x - y) : [...picks]; // a Set keeps the random order it was filled in
    for (const p of blocks) await fh.write(randomBytes(unit), 0, unit, p * unit);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export interface FragmentOptions {
  size: number;
  /** Cycles of (snapshot, rewrite); one more snapshot follows the last. */
  cycles: number;
  /** Share of the disk rewritten per cycle (0.25: a quarter). */
  share: number;
  unit?: number;
  order?: WriteOrder;
  rnd: () => number;
  /** The clock of the snapshots' names and times (ms, increasing). */
  tick: () => number;
}

export async function snapshotOf(b: ReflinkBackend, v: StoredObject, t: number): Promise<StoredObject> {
  const sid = randomUUID();
  return b.snapshot(sid, v, formatSnapshotName(t, sid), 'snapshot', snapshotMeta(v.id, t));
}

/** A disk written in full, then `cycles` x (snapshot, `share` rewritten in `unit` blocks), then one more snapshot. */
export async function fragmentedDisk(b: ReflinkBackend, o: FragmentOptions): Promise<{ v: StoredObject; snaps: StoredObject[] }> {
  const unit = o.unit ?? REWRITE_UNIT;
  const v = await b.create(randomUUID(), vdiMeta('fragmented'), o.size, o.tick());
  await fillRandom(v.handle, o.size);
  const snaps: StoredObject[] = [];
  for (let c = 0; c < o.cycles; c++) {
    snaps.push(await snapshotOf(b, v, o.tick()));
    await rewriteRandom(v.handle, o.size, Math.round((o.size / unit) * o.share), o.rnd, unit, o.order);
  }
  snaps.push(await snapshotOf(b, v, o.tick()));
  return { v, snaps };
}
