// Relayout: rewriting a fragmented VDI image into contiguous blocks while it keeps
// sharing them with its snapshots, online, with no step that can lose data.
//
// Why: a reflink snapshot copies the image's whole extent map (FICLONE is O(extents)),
// and every guest write into blocks shared with a snapshot lands somewhere new, so the
// live image of a disk that is snapshotted and written at random fragments without
// bound (bench/README.md: 1 -> 15,500 extents after 32 snapshots of a 1 GiB disk, the
// snapshot 3-7x slower). Nothing in XFS bounds it; OCFS2 copies shared data in 1 MiB
// pieces, so there it stops at one run per MiB of disk (docs/fragmentation.md).
//
// How, for each window of the image dense in extents (extent-map.ts planRelayout):
//   1. map the live image (FIEMAP, m1);
//   2. copy the window's data into a fresh temp file T at the same offsets (one
//      sequential write: the filesystem gives it few, large extents); fsync T;
//   3. map the live image again (m2);
//   4. FIDEDUPERANGE T -> live, window by window: the kernel compares both under its
//      locks and only then points live at T's blocks. A window the guest wrote in the
//      meantime compares unequal and is left as it was (one retry with a fresh copy);
//   5. right after each window of live, every immutable object of the VDI's family (its snapshots, internal snapshots,
//      tombstones, hidden volumes; never another VDI's writable image) is pointed at
//      T's blocks (FICLONERANGE) wherever it holds the block live held, shared, in both
//      m1 and m2. Such a block cannot have changed in between (a write to a shared
//      block goes elsewhere) and snapshots are never written, so T holds its exact
//      bytes there: the clone changes no byte, it only moves the reference. Without
//      this the old blocks would stay pinned by the snapshots and the relayout would
//      cost the window's size in space; with it the space is the same before and after.
//   6. remove T (its blocks now belong to live and the snapshots);
//   7. compact what the move left behind (relayout-compact.ts): the old versions of the
//      blocks the guest overwrote, held only by the snapshots and scattered over the
//      place the image left, are copied together, so that place becomes one large free
//      extent for the next relayout instead of free space full of holes.
//
// Every change is a remap between files holding equal bytes, done by the kernel one
// extent at a time, so an interruption anywhere (crash, kill, ENOSPC, a concurrent
// snapshot or delete) leaves every file with its exact content; what remains is the
// temp file T, reaped like any other (names.ts), and at most one window's old blocks
// still held by the snapshots not yet moved (space, until they are deleted). Nothing here needs the SR lock: a
// concurrent snapshot only keeps some old blocks referenced (space, not data). One
// relayout per image at a time: a flock(2) on the image, which on OCFS2 (o2cb) excludes
// the other hosts of a shared SR too (fcntl locks are node-local there, docs/shared-srs.md).
//
// Filesystems: XFS (reflink=1) and btrfs implement both ioctls; OCFS2 implements them
// through the same VFS path (remap_file_range, Linux >= 4.19), tested in the kernel
// tier (test/kernel/guest/ocfs2.guest.ts; docs/fragmentation.md says what is measured where).
import { open, stat, type FileHandle } from 'node:fs/promises';
import { SmError } from '../../errors.js';
import { log } from '../../log.js';
import { discard } from './atomic.js';
import { type Range, alignRanges, dataRanges, intersect, planRelayout, sameBlocks, windows } from './extent-map.js';
import { identifyFs } from './fsinfo.js';
import { listVdis, type VdiEntry } from './listing.js';
import { objectName, swapPath, tempPath } from './names.js';
import { type CompactResult, type CompactStep, compactPinned, emptyCompactResult } from './relayout-compact.js';
import { copyRanges, dedupeAll, mapOf, openIfExists } from './remap.js';
import { errnoCode, sys } from './sys.js';
import { type UnshareResult, type UnshareStep, unshareLive } from './unshare.js';
import { unshareMargin } from './relayout-policy.js';

/** Windows the image is cut into: the unit of copying, of dedupe and of a retry. */
export const RELAYOUT_WINDOW = 16 * 1024 * 1024;
/** A window is rewritten when it has at least this many extents (an extent per MiB). */
export const RELAYOUT_MIN_WINDOW_EXTENTS = 16;
/** Free space left untouched by a relayout, beyond what it copies. */
const FREE_MARGIN = 256 * 1024 * 1024;
/** ... or this share of the filesystem, when that is less (small filesystems). */
const FREE_MARGIN_SHARE = 0.05;
const COPY_CHUNK = 4 * 1024 * 1024;

export type RelayoutStep = 'copied' | 'live-window' | 'family-object' | CompactStep | UnshareStep;

export interface RelayoutOptions {
  window?: number;
  minWindowExtents?: number;
  /** false: no compaction of the pinned blocks (step 7); or its settings (relayout-compact.ts). */
  compact?: false | { window?: number; minRuns?: number; maxBytes?: number; batchBytes?: number };
  /** First move the snapshots off the live image's blocks (unshare.ts): device-config:unshare. */
  unshare?: boolean;
  /** With unshare: only while the filesystem keeps AUTO_UNSHARE_FREE_SHARE free (device-config:unshare=auto). */
  unshareIfRoom?: boolean;
  /** false: no rewrite of the image nor compaction (device-config:relayout=off with unshare on). */
  rewrite?: boolean;
  /** Test hook: called after each step; a throw there simulates a crash at that point. */
  afterStep?: (step: RelayoutStep) => void | Promise<void>;
}

export interface RelayoutResult extends CompactResult {
  vdi: string;
  /** Why nothing was done, when nothing was. */
  skipped?: string;
  /** Why the image itself was not rewritten, when the compaction or the unshare alone ran. */
  relayout_skipped?: string;
  /** What the unshare did, when asked for. */
  unshare?: UnshareResult;
  /** Why the compaction (step 7) did not run, when the unshare made it pointless. */
  compact_skipped?: string;
  extents_before: number;
  extents_after: number;
  windows: number;
  windows_selected: number;
  /** Windows the guest wrote during the relayout (redone once). */
  windows_changed: number;
  /** Windows still different after the retry: left as they were. */
  windows_left: number;
  /** Windows whose copy was not at least twice less fragmented (free space full of holes): left as they were. */
  windows_not_better: number;
  bytes_copied: number;
  bytes_deduped: number;
  family_objects: number;
  family_objects_remapped: number;
  bytes_remapped: number;
  ms: number;
}

/** The objects connected to `live` through parent links (not live itself): what can share its blocks. */
function relativesOf(live: VdiEntry, all: readonly VdiEntry[]): VdiEntry[] {
  const byId = new Map<string, VdiEntry>();
  const children = new Map<string, string[]>();
  for (const e of all) {
    if (e.record === null) continue;
    byId.set(e.record.id, e);
    const p = e.record.parent;
    if (p !== undefined) children.set(p, [...(children.get(p) ?? []), e.record.id]);
  }
  const seen = new Set<string>([live.record!.id]);
  const queue = [live.record!.id];
  while (queue.length > 0) {
    const id = queue.pop()!;
    const e = byId.get(id);
    const next = [...(children.get(id) ?? []), ...(e?.record?.parent !== undefined ? [e.record.parent] : [])];
    for (const n of next) {
      if (!seen.has(n) && byId.has(n)) {
        seen.add(n);
        queue.push(n);
      }
    }
  }
  seen.delete(live.record!.id);
  return [...seen].map((id) => byId.get(id)!);
}

/** A visible volume is another VDI's disk, written by its guest: never touched. */
function writable(e: VdiEntry): boolean {
  return e.record!.kind === 'volume' && e.record!.vdi !== undefined && !e.record!.deleted;
}

/** The immutable objects connected to `live` through parent links: what can share its blocks. */
export function familyOf(live: VdiEntry, all: readonly VdiEntry[]): VdiEntry[] {
  return relativesOf(live, all).filter((e) => !writable(e));
}

/** The other VDIs' disks connected to `live`: they may share blocks with its family, and are never written here. */
export function writableRelativesOf(live: VdiEntry, all: readonly VdiEntry[]): VdiEntry[] {
  return relativesOf(live, all).filter(writable);
}

/**
 * Relayouts the image of VDI `vdi` in SR directory `dir` (see the top of the file).
 * Never throws for a reason that leaves nothing to do (returns `skipped`); throws an
 * SmError when a syscall fails, after removing its temp file.
 */
export async function relayoutVdi(dir: string, vdi: string, opts: RelayoutOptions = {}): Promise<RelayoutResult> {
  const t0 = performance.now();
  const window = opts.window ?? RELAYOUT_WINDOW;
  const minExtents = opts.minWindowExtents ?? RELAYOUT_MIN_WINDOW_EXTENTS;
  const n = sys();
  const result: RelayoutResult = {
    vdi,
    extents_before: 0,
    extents_after: 0,
    windows: 0,
    windows_selected: 0,
    windows_changed: 0,
    windows_left: 0,
    windows_not_better: 0,
    bytes_copied: 0,
    bytes_deduped: 0,
    family_objects: 0,
    family_objects_remapped: 0,
    bytes_remapped: 0,
    ...emptyCompactResult(),
    ms: 0,
  };
  const done = (skipped?: string): RelayoutResult => {
    if (skipped !== undefined) result.skipped = skipped;
    result.ms = Math.round(performance.now() - t0);
    return result;
  };
  if (await stat(swapPath(dir, vdi)).then(() => true, () => false)) return done('the VDI has an interrupted swap (an sr-scan completes it)');
  const listing = await listVdis(dir);
  const name = objectName(vdi, vdi);
  const live = listing.vdis.find((e) => e.name === name);
  if (live === undefined || live.record === null) throw new SmError('VolNotFound', `no VDI ${vdi} in ${dir}`);
  if (live.record.kind !== 'volume' || live.record.deleted) return done(`VDI ${vdi} is a ${live.record.deleted ? 'tombstone' : live.record.kind}, not a live disk`);
  const family = familyOf(live, listing.vdis);
  result.family_objects = family.length;

  const lf = await open(live.path, 'r+');
  try {
    // One relayout per image at a time: flock(2), cluster-wide on OCFS2 (see the top).
    // Nothing else flocks images (the SR's cross-host lock is on the SR marker).
    // With the unshare, wait for it instead: the run holding it started before the snapshot
    // that started this one, which it will not move (this is a process of its own: blocking
    // its event loop blocks nothing else).
    if (!n.flock(lf.fd, true, opts.unshare === true)) return done('another relayout of this VDI is running');
    const fs = identifyFs(dir);
    const margin = Math.min(FREE_MARGIN, Math.round(fs.totalBytes * FREE_MARGIN_SHARE));
    // The unshare first: once live shares nothing, the relayout below moves no snapshot
    // back onto live's blocks (its step 5 finds no block shared with them).
    if (opts.rewrite === false) result.extents_before = result.extents_after = n.fiemapCount(lf.fd);
    if (opts.unshare)
      result.unshare = await unshareLive(dir, lf, family, writableRelativesOf(live, listing.vdis), {
        blockSize: fs.blockSize,
        margin: unshareMargin(opts.unshareIfRoom === true, fs.totalBytes, margin),
        afterStep: opts.afterStep,
      });
    const notDone =
      opts.rewrite === false
        ? 'not asked to rewrite (device-config:relayout off, or the disk under its threshold)'
        : await relayoutWindows(dir, vdi, lf, family, { window, minExtents, margin, blockSize: fs.blockSize, afterStep: opts.afterStep }, result);
    // 7. Also when the image needed no rewrite: a previous run may have stopped before it.
    // Not after an unshare that left the live image sharing nothing, with no window
    // rewritten: the compaction would mostly re-copy what the unshare just wrote (the
    // scattered pieces of its temp file: ~100 MiB a cycle in the bench, a third of the
    // run), and a disk written in place needs no relayout, nor the free space it gathers.
    const unshared = result.unshare !== undefined && result.unshare.stopped === undefined && result.unshare.shared_bytes_after === 0;
    const compact = opts.compact !== false && opts.rewrite !== false;
    if (compact && unshared && result.windows_selected === 0) {
      result.compact_skipped = 'the live image shares nothing after the unshare: no relayout needs the free space';
    } else if (compact) {
      const c = await compactPinned(
        dir,
        family.map((f) => f.path),
        [live.path, ...writableRelativesOf(live, listing.vdis).map((e) => e.path)],
        { ...(opts.compact ?? {}), margin, hint: `relayout-compact-${vdi}`, afterStep: opts.afterStep },
      );
      Object.assign(result, c);
    }
    if (notDone !== undefined) {
      const moved = (result.unshare?.bytes_to_donor ?? 0) + (result.unshare?.bytes_copied ?? 0) > 0;
      if (result.compact_bytes === 0 && !moved) return done(notDone);
      result.relayout_skipped = notDone;
    }
    return done();
  } catch (e) {
    if (e instanceof SmError) throw e;
    throw new SmError('SMGeneral', `relayout of VDI ${vdi} in ${dir}: ${e instanceof Error ? e.message : String(e)}`);
  } finally {
    await lf.close().catch(() => undefined); // also drops the lock
    if (result.ms > 0 && result.skipped !== undefined) log().info(`flatsnap: relayout of VDI ${vdi}: nothing done: ${result.skipped}`);
    else if (result.ms > 0)
      log().info(
        `flatsnap: relayout of VDI ${vdi}: extents ${result.extents_before} -> ${result.extents_after}, ` +
          `${result.windows_selected}/${result.windows} windows (${result.windows_changed} changed meanwhile, ${result.windows_not_better} not better), ${result.bytes_copied} bytes copied, ` +
          `${result.family_objects_remapped}/${result.family_objects} family objects remapped in ${result.ms} ms; ` +
          `compacted ${result.compact_bytes} bytes of pinned blocks (${result.compact_runs_before} -> ${result.compact_runs_after} runs; ` +
          `${result.compact_windows_selected}/${result.compact_windows} windows; pinned ${result.pinned_bytes} bytes, ${result.pinned_runs_before} -> ${result.pinned_runs_after} runs) ` +
          `into ${result.compact_objects_remapped} objects in ${result.compact_ms} ms` +
          (result.compact_stopped !== undefined ? ` (stopped: ${result.compact_stopped})` : '') +
          (result.compact_skipped !== undefined ? ` (skipped: ${result.compact_skipped})` : '') +
          unshareText(result.unshare),
      );
  }
}

function unshareText(u: UnshareResult | undefined): string {
  if (u === undefined) return '';
  return (
    `; unshared the live image: ${u.shared_bytes_before} -> ${u.shared_bytes_after} shared bytes, ${u.holders_moved}/${u.holders} holders moved, ` +
    `${u.bytes_to_donor} bytes onto the previous snapshot's blocks, ${u.bytes_copied} bytes copied in ${u.ms} ms` +
    (u.stopped !== undefined ? ` (stopped: ${u.stopped})` : '') +
    (u.reflink_flag_released ? ', reflink flag released' : '')
  );
}

interface WindowsContext {
  window: number;
  minExtents: number;
  margin: number;
  blockSize: number;
  afterStep: RelayoutOptions['afterStep'];
}

/** Steps 1-6 (see the top), into `result`; why nothing was rewritten, if nothing was. */
async function relayoutWindows(dir: string, vdi: string, lf: FileHandle, family: readonly VdiEntry[], o: WindowsContext, result: RelayoutResult): Promise<string | undefined> {
  const n = sys();
  const { window, minExtents, margin } = o;
  let tmp: string | undefined;
  let tf: FileHandle | undefined;
  try {
    const size = (await lf.stat()).size;
    const m1 = mapOf(lf.fd);
    const plan = planRelayout(m1, size, { window, minExtents });
    result.extents_before = m1.length;
    result.extents_after = m1.length;
    result.windows = Math.ceil(size / window);
    result.windows_selected = plan.selected.length;
    if (plan.selected.length === 0) return `no window has ${minExtents} or more extents`;
    const avail = identifyFs(dir).availBytes;
    if (avail < plan.copyBytes + margin) return `not enough free space: the copy needs ${plan.copyBytes} bytes plus ${margin} spare, ${avail} available`;

    // 2. The copy, window after window, in file order.
    tmp = tempPath(dir, `relayout-${vdi}`);
    tf = await open(tmp, 'wx+', 0o600);
    await tf.truncate(size);
    const buf = Buffer.allocUnsafe(COPY_CHUNK);
    for (const w of plan.selected) result.bytes_copied += await copyRanges(lf, tf, dataRanges(m1, w), buf);
    await tf.sync();
    await o.afterStep?.('copied');
    // The copy is only as contiguous as the free space it landed in. Snapshots pin the
    // blocks the guest rewrote, so every relayout leaves the old layout's place behind as
    // free space full of holes, and after a few the filesystem may have nothing better:
    // a window whose copy is not at least twice less fragmented than the disk stays as it is.
    const copied = windows(mapOf(tf.fd), size, window);
    const better = plan.selected.filter((w) => (copied[Math.floor(w.start / window)]?.extents ?? 0) * 2 <= w.extents);
    result.windows_not_better = plan.selected.length - better.length;

    // 3. Where live held the same shared block before and after the copy, T has its bytes.
    const m2 = mapOf(lf.fd);
    const stable = sameBlocks(m1, m2, { shared: true });
    // The family's share of that, mapped once: an immutable object's map only changes
    // here by our own clones, each into a window we never come back to.
    const members: Array<{ path: string; size: number; ranges: Range[] }> = [];
    for (const f of family) {
      const ff = await openIfExists(f.path, 'r');
      if (ff === undefined) continue; // deleted meanwhile
      try {
        // No shared flag asked of f itself: where f held live's block with live alone, the
        // dedupe below makes that block f's alone. It is still the block m1 and m2 saw
        // shared (f is immutable, so it held it all along): T has its bytes.
        members.push({ path: f.path, size: (await ff.stat()).size, ranges: intersect(sameBlocks(mapOf(ff.fd), m1), stable) });
      } finally {
        await ff.close();
      }
    }
    const remapped = new Set<string>();

    // 4-5. Window by window: live first (a window the guest wrote meanwhile gets one fresh
    // try, and its family is then left alone), then the family; an interruption leaves at
    // most one window's old blocks pinned by the snapshots not yet moved.
    for (const w of better) {
      let r = dedupeAll(tf.fd, lf.fd, w);
      let changed = false;
      if (!r.same) {
        changed = true;
        result.windows_changed++;
        const fresh = mapOf(lf.fd);
        result.bytes_copied += await copyRanges(lf, tf, dataRanges(fresh, w), buf);
        await tf.sync();
        r = dedupeAll(tf.fd, lf.fd, w);
        if (!r.same) result.windows_left++;
      }
      result.bytes_deduped += r.bytes;
      await o.afterStep?.('live-window');
      if (changed) continue;
      for (const m of members) {
        const ranges = alignRanges(
          intersect(m.ranges, [w]).map((x) => ({ start: x.start, end: Math.min(x.end, m.size, size) })),
          o.blockSize,
          m.size === size ? size : Number.POSITIVE_INFINITY,
        );
        if (ranges.length === 0) continue;
        const ff = await openIfExists(m.path, 'r+');
        if (ff === undefined) continue;
        try {
          for (const x of ranges) {
            n.cloneRange(tf.fd, x.start, x.end - x.start, ff.fd, x.start);
            result.bytes_remapped += x.end - x.start;
          }
        } finally {
          await ff.close();
        }
        remapped.add(m.path);
        await o.afterStep?.('family-object');
      }
    }
    result.family_objects_remapped = remapped.size;
    result.extents_after = n.fiemapCount(lf.fd);
    return undefined;
  } finally {
    // Before the compaction: its copy may use the space this one held.
    if (tmp !== undefined) await discard(tmp, tf);
    else if (tf) await tf.close().catch(() => undefined);
  }
}
