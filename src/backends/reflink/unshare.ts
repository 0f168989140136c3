// Unshare: after a snapshot, giving the live image blocks of its own again, so that the
// guest's writes go in place instead of through copy on write, while the snapshots keep
// sharing their blocks with each other.
//
// Why: right after a reflink snapshot every block of the live image is shared, and on
// XFS the first write into a shared block costs an allocation and a remap transaction
// under the inode's lock. With several writes in flight (tapdisk opens raw images with
// O_DIRECT and queues them) that is 4-8x fewer 2 KiB writes per second than in place
// (bench/results/fragmentation-measures*.json, docs/fragmentation.md), on every block
// until the guest has written it once. No layout or hint removes it; only a live image
// that shares nothing does. And an image written in place also keeps its layout: the
// next snapshot copies a short extent map.
//
// How, for each immutable family object H that maps blocks of the live image (right
// after a snapshot: that snapshot; after a revert also the snapshot reverted to), newest
// first; the live image itself is never written nor remapped here, its blocks simply
// stop being shared as H moves off them:
//   1. R = where H maps the very blocks live maps (FIEMAP of both);
//   2. a donor D: the holder moved just before, else the newest other immutable object
//      of the family (normally the previous snapshot), which holds other blocks there;
//   3. piece by piece over R: read H and D; where they are equal block for block,
//      FIDEDUPERANGE D -> H (the kernel compares again before it remaps): H shares D's
//      blocks, as the two snapshots would have if the live image had been left shared;
//   4. the rest of R (what the guest wrote between the two snapshots; all of it when
//      there is no donor) is copied from H into a temp file T at the same offsets, and
//      after an fsync T -> H by FIDEDUPERANGE too;
//   5. remove T.
// Where another VDI's disk (a clone, written by its own guest) shares the live image's
// blocks, moving the snapshots would not help; and where several snapshots hold them with
// no donor (after a revert) each would need a copy. There the live image itself moves, onto a
// fresh copy of its bytes (FIDEDUPERANGE copy -> live, which the kernel refuses where the
// guest wrote meanwhile), and the snapshots keep sharing with the clone.
// Every change is a remap between files that hold equal bytes, so an interruption at any
// point leaves every file with its exact content; what remains is T (reaped as any temp
// file, names.ts) and the live image still sharing what was not done yet (the next run
// does it). A write to the live image meanwhile goes elsewhere and H keeps the old block,
// whose bytes are the ones compared and copied.
//
// Space: H then holds, besides the donor's blocks, what differs from it: the guest's
// writes since the previous snapshot (the whole disk for a first snapshot). So a disk with
// snapshots costs one full copy more than when its live image shares with the newest
// snapshot; that is the trade (docs/fragmentation.md). Not enough free space for a piece
// stops the run with the rest still shared: slower writes, never a failed one.
import { open, type FileHandle } from 'node:fs/promises';
import { discard } from './atomic.js';
import { type Range, alignRanges, dataRanges, intersect, sameBlocks } from './extent-map.js';
import { identifyFs } from './fsinfo.js';
import type { VdiEntry } from './listing.js';
import { tempPath } from './names.js';
import { copyRanges, dedupeAll, mapOf, openIfExists } from './remap.js';
import { equalRuns, pieces, sharedRanges, subtract, union } from './unshare-plan.js';
import { sys } from './sys.js';

/** Read, compared and copied at a time. */
const PIECE = 4 * 1024 * 1024;
/** Copied into T before an fsync and the dedupe back: what an interruption can leave held twice. */
const BATCH = 64 * 1024 * 1024;
/** The live image is deduped in units this big: a unit the guest writes meanwhile is copied again, once. */
const LIVE_UNIT = 1024 * 1024;

export type UnshareStep = 'unshare-donor' | 'unshare-copied';

export interface UnshareResult {
  /** Bytes of the live image shared with another file, before and after. */
  shared_bytes_before: number;
  shared_bytes_after: number;
  /** Immutable family objects that held blocks of the live image, and how many of them were moved off. */
  holders: number;
  holders_moved: number;
  /** Bytes remapped onto the donor's equal blocks (no new space). */
  bytes_to_donor: number;
  /** Bytes copied into new blocks (the space the run costs). */
  bytes_copied: number;
  /** Of those, bytes of the live image itself moved (where another VDI's disk shares its blocks). */
  live_bytes_moved: number;
  ms: number;
  /** Why the run stopped before the end, when it did. */
  stopped?: string;
  /**
   * The live image sharing nothing, XFS was asked to drop its reflink flag (see
   * releaseReflinkFlag); false where the filesystem has no such call (btrfs, OCFS2).
   */
  reflink_flag_released: boolean;
}

export interface UnshareContext {
  blockSize: number;
  /** Free space left untouched, beyond the copy. */
  margin: number;
  afterStep?: (step: UnshareStep) => void | Promise<void>;
}

interface Member {
  entry: VdiEntry;
  fh: FileHandle;
  size: number;
}

/**
 * Removes a temp file whose blocks others now share. Truncated first: an unlinked file's
 * blocks are released in the background (XFS's inode GC), and until then the files that
 * shared them still read as shared (FIEMAP), which the result reports.
 */
async function release(tmp: string, tf: FileHandle | undefined): Promise<void> {
  await tf?.truncate(0).catch(() => undefined);
  await discard(tmp, tf);
}

function bytesOf(ranges: readonly Range[]): number {
  return ranges.reduce((s, r) => s + r.end - r.start, 0);
}

async function openMember(e: VdiEntry, flags: string): Promise<Member | undefined> {
  const fh = await openIfExists(e.path, flags);
  return fh === undefined ? undefined : { entry: e, fh, size: (await fh.stat()).size };
}

function newestFirst(a: VdiEntry, b: VdiEntry): number {
  return (b.record?.created ?? 0) - (a.record?.created ?? 0) || (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

/**
 * Moves the immutable `family` of the live image `lf` off the live
 * image's blocks (see the top). Never throws for lack of space (it stops and says so).
 */
export async function unshareLive(dir: string, lf: FileHandle, family: readonly VdiEntry[], writers: readonly VdiEntry[], o: UnshareContext): Promise<UnshareResult> {
  const t0 = performance.now();
  const liveMap = mapOf(lf.fd);
  const shared = sharedRanges(liveMap);
  const result: UnshareResult = {
    shared_bytes_before: bytesOf(shared),
    shared_bytes_after: 0,
    holders: 0,
    holders_moved: 0,
    bytes_to_donor: 0,
    bytes_copied: 0,
    live_bytes_moved: 0,
    ms: 0,
    reflink_flag_released: false,
  };
  const finish = (): UnshareResult => {
    result.shared_bytes_after = bytesOf(sharedRanges(mapOf(lf.fd)));
    if (result.shared_bytes_after === 0 && result.stopped === undefined) result.reflink_flag_released = releaseReflinkFlag(lf.fd, o.blockSize);
    result.ms = Math.round(performance.now() - t0);
    return result;
  };
  if (shared.length === 0) return finish();

  // Where other VDIs' disks hold the live image's blocks: live moves there, not the snapshots.
  let byWriters: Range[] = [];
  for (const e of writers) {
    const m = await openMember(e, 'r');
    if (m === undefined) continue;
    try {
      byWriters = union(byWriters, intersect(sameBlocks(mapOf(m.fh.fd), liveMap), shared));
    } finally {
      await m.fh.close();
    }
  }
  // Who else holds the live image's blocks, and where.
  const holders: Array<{ entry: VdiEntry; ranges: Range[] }> = [];
  const others: VdiEntry[] = [];
  for (const e of [...family].sort(newestFirst)) {
    const m = await openMember(e, 'r');
    if (m === undefined) continue;
    try {
      const ranges = subtract(intersect(sameBlocks(mapOf(m.fh.fd), liveMap), shared), byWriters);
      if (ranges.length > 0) holders.push({ entry: e, ranges });
      else others.push(e);
    } finally {
      await m.fh.close();
    }
  }
  result.holders = holders.length;
  if (others.length === 0 && holders.length > 1) {
    // No donor and several holders (after a revert, the snapshot reverted to and those
    // sharing with it): each would need its own copy, while one copy of the live image
    // frees it from all of them.
    byWriters = union(byWriters, holders.reduce<Range[]>((acc, h) => union(acc, h.ranges), []));
    holders.length = 0;
  }
  let donor: VdiEntry | undefined = others[0];
  for (const h of holders) {
    const stopped = await moveHolder(dir, h.entry, h.ranges, donor, o, result);
    if (stopped !== undefined) {
      result.stopped = stopped;
      break;
    }
    result.holders_moved++;
    donor = h.entry; // the next holder (a revert's source) is most like this one
  }
  if (result.stopped === undefined && byWriters.length > 0) {
    const stopped = await moveLive(dir, lf, byWriters, o, result);
    if (stopped !== undefined) result.stopped = stopped;
  }
  return finish();
}

/**
 * Once the live image shares no block, asks XFS to drop its reflink inode flag. A file
 * that was ever reflinked keeps that flag, and XFS then looks every write's blocks up in
 * the refcount btree, which grows with the snapshots' shared pieces: 2 KiB writes into an
 * unshared disk after 8 snapshots ran at x0.78 of a never-snapshotted one, x1.04 once the
 * flag was gone (bench/unshare-writes.mjs). fallocate(FALLOC_FL_UNSHARE_RANGE) does it:
 * after unsharing its range XFS clears the flag if no block of the file is shared. The
 * range is one block, so that a snapshot taken since the check costs a one-block copy,
 * not a copy of the disk under the inode's lock (XFS then keeps the flag). Best effort:
 * false where the filesystem has no such call (btrfs, OCFS2), or on any failure.
 */
function releaseReflinkFlag(fd: number, blockSize: number): boolean {
  try {
    sys().unshareRange(fd, 0, blockSize);
    return true;
  } catch {
    return false;
  }
}

/** The live image's `ranges` onto a fresh copy of their bytes; why it stopped, if it did. */
async function moveLive(dir: string, lf: FileHandle, ranges: readonly Range[], o: UnshareContext, result: UnshareResult): Promise<string | undefined> {
  const need = bytesOf(ranges);
  const avail = identifyFs(dir).availBytes;
  if (avail < need + o.margin) return `not enough free space: ${need} bytes to copy plus ${o.margin} spare, ${avail} available`;
  const size = (await lf.stat()).size;
  const tmp = tempPath(dir, 'unshare-live');
  const tf = await open(tmp, 'wx+', 0o600);
  try {
    await tf.truncate(size);
    const buf = Buffer.allocUnsafe(PIECE);
    for (const batch of pieces(ranges, BATCH)) {
      const copied = await copyRanges(lf, tf, [batch], buf);
      result.bytes_copied += copied;
      await tf.sync();
      await o.afterStep?.('unshare-copied');
      for (const r of pieces(alignRanges([batch], o.blockSize, size), LIVE_UNIT)) {
        let d = dedupeAll(tf.fd, lf.fd, r);
        if (!d.same) {
          // Written by the guest since the copy: once more, from what it holds now.
          result.bytes_copied += await copyRanges(lf, tf, [r], buf);
          await tf.sync();
          d = dedupeAll(tf.fd, lf.fd, r);
        }
        result.live_bytes_moved += d.bytes;
      }
    }
    return undefined;
  } finally {
    await release(tmp, tf);
  }
}

/** Steps 2-5 for one holder; why it stopped, if it did. */
async function moveHolder(dir: string, hEntry: VdiEntry, ranges: readonly Range[], donorEntry: VdiEntry | undefined, o: UnshareContext, result: UnshareResult): Promise<string | undefined> {
  const h = await openMember(hEntry, 'r+');
  if (h === undefined) return undefined;
  const d = donorEntry === undefined ? undefined : await openMember(donorEntry, 'r');
  let tmp: string | undefined;
  let tf: FileHandle | undefined;
  try {
    // Where the donor has written data of its own (a hole there would dedupe to a hole).
    const donorData = d === undefined ? [] : dataRanges(mapOf(d.fh.fd), { start: 0, end: d.size });
    const x = Buffer.allocUnsafe(PIECE);
    const y = Buffer.allocUnsafe(PIECE);
    let pending: Range[] = [];
    const flush = async (): Promise<void> => {
      if (pending.length === 0 || tf === undefined) return;
      await tf.sync();
      await o.afterStep?.('unshare-copied');
      for (const r of alignRanges(pending, o.blockSize, h.size)) dedupeAll(tf.fd, h.fh.fd, r);
      pending = [];
    };
    for (const p of pieces(ranges, PIECE)) {
      const { bytesRead } = await h.fh.read(x, 0, p.end - p.start, p.start);
      const piece = { start: p.start, end: p.start + bytesRead };
      let rest: Range[] = [piece];
      if (d !== undefined && intersect([piece], donorData).length > 0) {
        const got = (await d.fh.read(y, 0, bytesRead, p.start)).bytesRead;
        const equal = intersect(equalRuns(x.subarray(0, bytesRead), y.subarray(0, got), p.start, o.blockSize), donorData);
        const notDone: Range[] = [];
        for (const r of equal) {
          const done = dedupeAll(d.fh.fd, h.fh.fd, r);
          result.bytes_to_donor += done.bytes;
          if (!done.same) notDone.push({ start: r.start + done.bytes, end: r.end });
        }
        rest = [...subtract(rest, equal), ...notDone].sort((a, b) => a.start - b.start);
        if (equal.length > 0) await o.afterStep?.('unshare-donor');
      }
      if (rest.length === 0) continue;
      const need = bytesOf(rest);
      const avail = identifyFs(dir).availBytes;
      if (avail < need + o.margin) {
        await flush();
        return `not enough free space: ${need} bytes to copy plus ${o.margin} spare, ${avail} available`;
      }
      if (tf === undefined) {
        tmp = tempPath(dir, `unshare-${hEntry.uuid}`);
        tf = await open(tmp, 'wx+', 0o600);
        await tf.truncate(h.size); // the same end of file, so that a partial last block can be deduped
      }
      for (const r of rest) {
        await tf.write(x, r.start - p.start, r.end - r.start, r.start);
        result.bytes_copied += r.end - r.start;
      }
      pending.push(...rest);
      if (bytesOf(pending) >= BATCH) await flush();
    }
    await flush();
    return undefined;
  } finally {
    if (tmp !== undefined) await release(tmp, tf);
    await h.fh.close().catch(() => undefined);
    await d?.fh.close().catch(() => undefined);
  }
}
