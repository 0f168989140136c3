// Compaction of the blocks a relayout leaves behind: the old versions of what the guest
// overwrote, which only the disk's snapshots (and other immutable family objects) still
// hold, scattered over the place the image was before.
//
// Why: each relayout copies the image somewhere new, and the place it leaves is free
// except for these pinned blocks (~one 64 KiB block every 640 KiB in the bench), so the
// free space turns into small pieces and, after ~10 relayouts, the next copy finds
// nothing contiguous to land in (docs/fragmentation.md). Moving the pinned blocks
// together gives the place back as one large free extent.
//
// How (compact-plan.ts chooses; this file does the I/O), one batch at a time:
//   1. map (FIEMAP) every immutable family object and every writable image of the
//      family (the live disk, other VDIs' clones: never written here, only mapped so
//      that a block they share is left alone: moving it would cost space, not save it);
//   2. the pieces only immutable objects hold, in windows of the device where they form
//      many runs, copied one after the other (sequentially, in physical order) into a
//      fresh temp file T; fsync T;
//   3. for each holder, right before: map it again, and FICLONERANGE from T onto each
//      offset where it still maps the very block that was copied. The holder is never
//      written, so its bytes there are the ones T got: only the reference moves. Once
//      every holder of a block has moved, the block is free;
//   4. remove T.
//
// An interruption anywhere leaves every file with its exact content (each change is a
// remap between equal bytes, done by the kernel); what remains is T (reaped as any temp
// file, names.ts) and, if it stopped between two holders of a batch, that batch's blocks
// held twice (old and new place) until the snapshots are deleted: at most one batch.
import { open, type FileHandle } from 'node:fs/promises';
import { log } from '../../log.js';
import { discard } from './atomic.js';
import { type CompactPlan, type Placed, batches, clonesFor, mapsAt, pinnedPieces, placeDensely, planCompaction, physicalRuns } from './compact-plan.js';
import { type Extent, extentsFrom, isPlain } from './extent-map.js';
import { identifyFs } from './fsinfo.js';
import { tempPath } from './names.js';
import { errnoCode, sys } from './sys.js';

/** Windows of the device the pinned blocks are counted in. */
export const COMPACT_WINDOW = 16 * 1024 * 1024;
/**
 * A window is emptied when its pinned blocks form at least this many runs: moving them
 * costs only their own bytes, so even a few holes per window are worth closing; a window
 * a previous compaction filled sequentially has one run and stays.
 */
export const COMPACT_MIN_RUNS = 8;
/** Copied at most per run: a first run over a long history does the rest next time. */
export const COMPACT_MAX_BYTES = 1024 * 1024 * 1024;
/** Copied, then cloned back, at a time: what an interruption can leave held twice. */
export const COMPACT_BATCH_BYTES = 128 * 1024 * 1024;
const COPY_CHUNK = 4 * 1024 * 1024;

export type CompactStep = 'compact-copied' | 'compact-object';

export interface CompactOptions {
  window?: number;
  minRuns?: number;
  maxBytes?: number;
  batchBytes?: number;
  /** Free space left untouched, beyond the copy. */
  margin: number;
  /** A hint for the temp file's name. */
  hint: string;
  afterStep?: (step: CompactStep) => void | Promise<void>;
}

export interface CompactResult {
  /** Bytes and physical runs of everything only immutable family objects hold, before and after. */
  pinned_bytes: number;
  pinned_runs_before: number;
  pinned_runs_after: number;
  /** Windows of the device with pinned blocks, and those emptied. */
  compact_windows: number;
  compact_windows_selected: number;
  /** Bytes copied into the dense temp file (and cloned back). */
  compact_bytes: number;
  /** Runs of the moved blocks before (scattered) and after (the temp file's extents). */
  compact_runs_before: number;
  compact_runs_after: number;
  compact_objects_remapped: number;
  compact_bytes_remapped: number;
  /** Why it stopped early, when it did (free space). */
  compact_stopped?: string;
  compact_ms: number;
}

export function emptyCompactResult(): CompactResult {
  return {
    pinned_bytes: 0,
    pinned_runs_before: 0,
    pinned_runs_after: 0,
    compact_windows: 0,
    compact_windows_selected: 0,
    compact_bytes: 0,
    compact_runs_before: 0,
    compact_runs_after: 0,
    compact_objects_remapped: 0,
    compact_bytes_remapped: 0,
    compact_ms: 0,
  };
}

async function mapPath(path: string): Promise<Extent[] | undefined> {
  let fh: FileHandle;
  try {
    fh = await open(path, 'r');
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return undefined; // deleted meanwhile
    throw e;
  }
  try {
    return extentsFrom(sys().fiemapMap(fh.fd));
  } finally {
    await fh.close();
  }
}

/** Physically contiguous runs of a map (FIEMAP also splits where sharing changes). */
function runsOf(map: readonly Extent[]): number {
  const sorted = map.filter(isPlain).sort((a, b) => a.physical - b.physical);
  let runs = 0;
  let end = -1;
  for (const e of sorted) {
    if (e.physical !== end) runs++;
    end = e.physical + e.length;
  }
  return runs;
}

/** The pinned blocks of a family, as the compaction sees them (also for tests and `check`). */
export async function pinnedLayout(members: readonly string[], writable: readonly string[], block: number): Promise<{ bytes: number; runs: number; plan: CompactPlan }> {
  const { pieces } = await mapFamily(members, writable, block);
  const plan = planCompaction(pieces, { window: COMPACT_WINDOW, minRuns: COMPACT_MIN_RUNS, maxBytes: COMPACT_MAX_BYTES });
  return { bytes: plan.pinnedBytes, runs: plan.pinnedRuns, plan };
}

async function mapFamily(members: readonly string[], writable: readonly string[], block: number) {
  const maps: Extent[][] = [];
  const sizes: number[] = [];
  const paths: string[] = [];
  for (const p of members) {
    let fh: FileHandle;
    try {
      fh = await open(p, 'r');
    } catch (e) {
      if (errnoCode(e) === 'ENOENT') continue;
      throw e;
    }
    try {
      sizes.push((await fh.stat()).size);
      maps.push(extentsFrom(sys().fiemapMap(fh.fd)));
      paths.push(p);
    } finally {
      await fh.close();
    }
  }
  const blockers: Extent[][] = [];
  for (const p of writable) {
    const m = await mapPath(p);
    if (m !== undefined) blockers.push(m);
  }
  return { paths, pieces: pinnedPieces(maps, blockers, { block, sizes }) };
}

/**
 * Compacts the blocks only `members` (immutable: snapshots, internal snapshots,
 * tombstones, hidden volumes) hold, leaving alone whatever `writable` images also hold.
 * SR directory `dir` (the temp file's place). Throws on a syscall failure, after
 * removing its temp file.
 */
export async function compactPinned(dir: string, members: readonly string[], writable: readonly string[], opts: CompactOptions): Promise<CompactResult> {
  const t0 = performance.now();
  const n = sys();
  const r = emptyCompactResult();
  if (members.length === 0) return r;
  const fs = identifyFs(dir);
  const { paths, pieces } = await mapFamily(members, writable, fs.blockSize);
  const plan = planCompaction(pieces, {
    window: opts.window ?? COMPACT_WINDOW,
    minRuns: opts.minRuns ?? COMPACT_MIN_RUNS,
    maxBytes: opts.maxBytes ?? COMPACT_MAX_BYTES,
  });
  r.pinned_bytes = plan.pinnedBytes;
  r.pinned_runs_before = plan.pinnedRuns;
  r.pinned_runs_after = plan.pinnedRuns;
  r.compact_windows = plan.windows;
  if (plan.selected.length === 0) {
    r.compact_ms = Math.round(performance.now() - t0);
    return r;
  }

  const tmp = tempPath(dir, `${opts.hint}`);
  let tf: FileHandle | undefined;
  const readers = new Map<number, FileHandle>();
  try {
    tf = await open(tmp, 'wx+', 0o600);
    const buf = Buffer.allocUnsafe(COPY_CHUNK);
    const remapped = new Set<number>();
    let at = 0;
    let tRuns = 0;
    for (const batch of batches(plan.selected, opts.batchBytes ?? COMPACT_BATCH_BYTES)) {
      const bytes = batch.reduce((s, w) => s + w.bytes, 0);
      const avail = identifyFs(dir).availBytes;
      if (avail < bytes + opts.margin) {
        r.compact_stopped = `not enough free space: a batch needs ${bytes} bytes plus ${opts.margin} spare, ${avail} available`;
        break;
      }
      const placed = placeDensely(
        batch.flatMap((w) => w.pieces),
        at,
      );
      // 2. The copy, in physical order (the reads follow the device), densely into T.
      let fill = 0;
      let fillAt = at;
      const flush = async (): Promise<void> => {
        if (fill === 0) return;
        await tf!.write(buf, 0, fill, fillAt);
        fillAt += fill;
        fill = 0;
      };
      for (const p of placed) {
        const h = p.holders[0]!;
        let src = readers.get(h.member);
        if (src === undefined) {
          src = await open(paths[h.member]!, 'r');
          readers.set(h.member, src);
        }
        for (let done = 0; done < p.length; ) {
          if (fill === buf.length) await flush();
          const want = Math.min(p.length - done, buf.length - fill);
          const { bytesRead } = await src.read(buf, fill, want, h.logical + done);
          // An immutable object never shrinks; if it did, T's copy is short and the
          // holders' check below finds nothing to clone for what changed.
          if (bytesRead === 0) throw new Error(`${paths[h.member]} ended at ${h.logical + done} while compacting`);
          fill += bytesRead;
          done += bytesRead;
        }
      }
      await flush();
      await tf.sync();
      at = fillAt;
      r.compact_bytes += bytes;
      r.compact_windows_selected += batch.length;
      r.compact_runs_before += physicalRuns(placed);
      await opts.afterStep?.('compact-copied');

      // 3. Each holder, mapped again right before: only where it still holds the block.
      const members = new Set(placed.flatMap((p) => p.holders.map((h) => h.member)));
      for (const m of [...members].sort((a, b) => a - b)) {
        const map = await mapPath(paths[m]!);
        if (map === undefined) continue;
        const ops = clonesFor(placed, m, (logical, physical, length) => mapsAt(map, logical, physical, length));
        if (ops.length === 0) continue;
        let ff: FileHandle;
        try {
          ff = await open(paths[m]!, 'r+');
        } catch (e) {
          if (errnoCode(e) === 'ENOENT') continue;
          throw e;
        }
        try {
          for (const o of ops) {
            n.cloneRange(tf.fd, o.src, o.length, ff.fd, o.dst);
            r.compact_bytes_remapped += o.length;
          }
        } finally {
          await ff.close();
        }
        remapped.add(m);
        await opts.afterStep?.('compact-object');
      }
    }
    r.compact_objects_remapped = remapped.size;
    if (r.compact_bytes > 0) {
      tRuns = runsOf(extentsFrom(n.fiemapMap(tf.fd)));
      r.compact_runs_after = tRuns;
      r.pinned_runs_after = r.pinned_runs_before - r.compact_runs_before + tRuns;
    }
    return r;
  } finally {
    for (const f of readers.values()) await f.close().catch(() => undefined);
    await discard(tmp, tf);
    r.compact_ms = Math.round(performance.now() - t0);
    if (r.compact_bytes > 0)
      log().debug(`flatsnap: compaction (${opts.hint}): ${r.compact_bytes} bytes in ${r.compact_runs_before} runs -> ${r.compact_runs_after}, ${r.compact_objects_remapped} objects, ${r.compact_ms} ms`);
  }
}
