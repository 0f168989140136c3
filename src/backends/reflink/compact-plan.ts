// The compaction's planning (relayout-compact.ts), pure: which physical blocks only a
// disk's immutable family objects hold, where they lie scattered, and where each goes.
//
// Why physical: what a relayout needs is large free extents, and what breaks the free
// space into pieces is where the pinned blocks sit on the device, not at which offsets
// of which snapshot. So this works on physical addresses: every family object's extents
// cut into pieces held by the same set of objects, minus whatever a writable image (the
// live disk, another VDI's clone) also holds; the device cut into windows; a window
// where these pieces form many separate runs is worth emptying. Blocks a previous
// compaction wrote sequentially form one run per window, so they are not moved again:
// each compaction costs about what was left behind since the previous one.
//
// A piece is only a candidate where every holder maps it at the same file offset (the
// case for every copy flatsnap makes: FICLONE and FICLONERANGE keep offsets), so one
// copy serves them all.
import { type Extent, isPlain } from './extent-map.js';

/** One object holding a piece, at this offset of its file. */
export interface Holding {
  member: number;
  logical: number;
}

/** Physically contiguous bytes that the same immutable objects hold, and no writable image. */
export interface Piece {
  physical: number;
  length: number;
  /** Sorted by member; at least one. */
  holders: Holding[];
}

export interface PinnedOptions {
  /** Filesystem block: pieces are cut to whole blocks (FICLONERANGE's unit). */
  block: number;
  /** Each member's file size: extents past its last whole block are left out. */
  sizes: readonly number[];
}

/**
 * The pieces of physical space that `members` hold and `blockers` do not, in physical
 * order, adjacent pieces with the same holders (at the same offsets) merged. A piece
 * some member maps twice, or two members at different offsets, is left out: one copy
 * could not serve it.
 */
export function pinnedPieces(members: readonly (readonly Extent[])[], blockers: readonly (readonly Extent[])[], opts: PinnedOptions): Piece[] {
  // Events at physical positions: kind 0 = blocker end, 1 = member end, 2 = blocker
  // start, 3 = member start (at one position, ends first: the next extent of a member may
  // start where its previous one ends). Flat arrays: hundreds of thousands of extents.
  const pos: number[] = [];
  const kind: number[] = [];
  const who: number[] = [];
  const delta: number[] = [];
  const add = (p: number, k: number, m: number, d: number): void => {
    pos.push(p);
    kind.push(k);
    who.push(m);
    delta.push(d);
  };
  for (const map of blockers) {
    for (const e of map) {
      if (!isPlain(e) || e.length <= 0) continue;
      add(e.physical, 2, -1, 0);
      add(e.physical + e.length, 0, -1, 0);
    }
  }
  members.forEach((map, m) => {
    const end = Math.floor((opts.sizes[m] ?? 0) / opts.block) * opts.block;
    for (const e of map) {
      if (!isPlain(e)) continue;
      const len = Math.min(e.length, end - e.logical);
      if (len <= 0) continue;
      add(e.physical, 3, m, e.physical - e.logical);
      add(e.physical + len, 1, m, 0);
    }
  });
  const order = Array.from(pos.keys()).sort((a, b) => pos[a]! - pos[b]! || kind[a]! - kind[b]!);

  const out: Piece[] = [];
  let blocked = 0;
  // member -> [delta, count]; count > 1 means the member maps this block twice.
  const active = new Map<number, [number, number]>();
  let at = 0;
  const emit = (to: number): void => {
    if (to <= at || blocked > 0 || active.size === 0) return;
    const start = Math.ceil(at / opts.block) * opts.block;
    const end = Math.floor(to / opts.block) * opts.block;
    if (end <= start) return;
    let d: number | undefined;
    const holders: Holding[] = [];
    for (const [m, [md, count]] of active) {
      if (count !== 1 || (d !== undefined && md !== d)) return;
      d = md;
      holders.push({ member: m, logical: start - md });
    }
    holders.sort((x, y) => x.member - y.member);
    const last = out[out.length - 1];
    if (last !== undefined && last.physical + last.length === start && sameHolders(last, holders, start - last.physical)) last.length = end - last.physical;
    else out.push({ physical: start, length: end - start, holders });
  };
  for (const i of order) {
    const p = pos[i]!;
    if (p !== at) {
      emit(p);
      at = p;
    }
    const k = kind[i]!;
    if (k === 2) blocked++;
    else if (k === 0) blocked--;
    else if (k === 3) {
      const cur = active.get(who[i]!);
      if (cur === undefined) active.set(who[i]!, [delta[i]!, 1]);
      else cur[1]++;
    } else {
      const cur = active.get(who[i]!);
      if (cur !== undefined && --cur[1] <= 0) active.delete(who[i]!);
    }
  }
  return out;
}

/** Same members, each at the offset that continues `prev` by `shift` bytes. */
function sameHolders(prev: Piece, holders: readonly Holding[], shift: number): boolean {
  if (prev.holders.length !== holders.length) return false;
  return prev.holders.every((h, i) => h.member === holders[i]!.member && h.logical + shift === holders[i]!.logical);
}

/** Physically contiguous runs of pieces (whoever holds them). */
export function physicalRuns(pieces: readonly Piece[]): number {
  let runs = 0;
  let end = -1;
  for (const p of pieces) {
    if (p.physical !== end) runs++;
    end = p.physical + p.length;
  }
  return runs;
}

/** A window of the device and the pinned pieces in it (cut at its borders). */
export interface PhysicalWindow {
  start: number;
  end: number;
  runs: number;
  bytes: number;
  pieces: Piece[];
}

export interface CompactPlan {
  /** Windows to empty, in physical order, within the byte budget. */
  selected: PhysicalWindow[];
  /** All the pinned pieces: bytes and runs (what the free space is broken by). */
  pinnedBytes: number;
  pinnedRuns: number;
  /** Windows with any pinned piece. */
  windows: number;
  /** Windows with enough runs that the budget left for a later run. */
  deferred: number;
  /** Bytes to copy: the selected windows' pieces. */
  copyBytes: number;
}

/** A piece split at `at` (a physical address inside it). */
function splitAt(p: Piece, at: number): [Piece, Piece] {
  const k = at - p.physical;
  return [
    { physical: p.physical, length: k, holders: p.holders },
    { physical: at, length: p.length - k, holders: p.holders.map((h) => ({ member: h.member, logical: h.logical + k })) },
  ];
}

/**
 * Which windows of `window` bytes of the device to empty: those where the pinned pieces
 * form at least `minRuns` runs (each a hole in the free space; the copy costs only the
 * pieces' bytes), in physical order, up to `maxBytes` of copying.
 */
export function planCompaction(pieces: readonly Piece[], opts: { window: number; minRuns: number; maxBytes: number }): CompactPlan {
  const ws: PhysicalWindow[] = [];
  for (let p of pieces) {
    for (;;) {
      const k = Math.floor(p.physical / opts.window);
      let w = ws[ws.length - 1];
      if (w === undefined || w.start !== k * opts.window) {
        w = { start: k * opts.window, end: (k + 1) * opts.window, runs: 0, bytes: 0, pieces: [] };
        ws.push(w);
      }
      let rest: Piece | undefined;
      if (p.physical + p.length > w.end) [p, rest] = splitAt(p, w.end);
      const prev = w.pieces[w.pieces.length - 1];
      if (prev === undefined || prev.physical + prev.length !== p.physical) w.runs++;
      w.pieces.push(p);
      w.bytes += p.length;
      if (rest === undefined) break;
      p = rest;
    }
  }
  const selected: PhysicalWindow[] = [];
  let copyBytes = 0;
  let deferred = 0;
  for (const w of ws) {
    if (w.runs < opts.minRuns) continue;
    if (copyBytes + w.bytes > opts.maxBytes) {
      deferred++;
      continue;
    }
    selected.push(w);
    copyBytes += w.bytes;
  }
  return {
    selected,
    pinnedBytes: pieces.reduce((n, p) => n + p.length, 0),
    pinnedRuns: physicalRuns(pieces),
    windows: ws.length,
    deferred,
    copyBytes,
  };
}

/** Windows grouped into batches of at most `bytes` to copy (at least one window each). */
export function batches(selected: readonly PhysicalWindow[], bytes: number): PhysicalWindow[][] {
  const out: PhysicalWindow[][] = [];
  let cur: PhysicalWindow[] = [];
  let n = 0;
  for (const w of selected) {
    if (cur.length > 0 && n + w.bytes > bytes) {
      out.push(cur);
      cur = [];
      n = 0;
    }
    cur.push(w);
    n += w.bytes;
  }
  if (cur.length > 0) out.push(cur);
  return out;
}

/** A piece and where its copy goes in the temp file (dense, in physical order). */
export interface Placed extends Piece {
  dense: number;
}

/** The pieces one after the other from offset `from` of the temp file. */
export function placeDensely(pieces: readonly Piece[], from = 0): Placed[] {
  let at = from;
  return pieces.map((p) => {
    const x = { ...p, dense: at };
    at += p.length;
    return x;
  });
}

/** One FICLONERANGE: temp file [src, src + length) onto the member's [dst, dst + length). */
export interface CloneOp {
  src: number;
  dst: number;
  length: number;
}

/**
 * What member `member` gets cloned back, in its file order, limited to where it still
 * holds the very block (`holds(logical, physical, length)` tells, by its current map)
 * and merged where both sides continue.
 */
export function clonesFor(placed: readonly Placed[], member: number, holds: (logical: number, physical: number, length: number) => boolean): CloneOp[] {
  const ops: CloneOp[] = [];
  for (const p of placed) {
    const h = p.holders.find((x) => x.member === member);
    if (h === undefined || !holds(h.logical, p.physical, p.length)) continue;
    ops.push({ src: p.dense, dst: h.logical, length: p.length });
  }
  ops.sort((a, b) => a.dst - b.dst);
  const out: CloneOp[] = [];
  for (const o of ops) {
    const last = out[out.length - 1];
    if (last !== undefined && last.dst + last.length === o.dst && last.src + last.length === o.src) last.length += o.length;
    else out.push({ ...o });
  }
  return out;
}

/**
 * For a map sorted by offset: does it map [logical, logical + length) to exactly
 * [physical, physical + length)? (Plain extents; XFS may split the range in several.)
 */
export function mapsAt(map: readonly Extent[], logical: number, physical: number, length: number): boolean {
  // Binary search for the extent holding `logical`.
  let lo = 0;
  let hi = map.length - 1;
  while (lo < hi) {
    const mid = (lo + hi + 1) >> 1;
    if (map[mid]!.logical <= logical) lo = mid;
    else hi = mid - 1;
  }
  let pos = logical;
  const end = logical + length;
  for (let i = lo; i < map.length && pos < end; i++) {
    const e = map[i]!;
    if (e.logical > pos || e.logical + e.length <= pos) return false;
    if (!isPlain(e) || e.physical - e.logical !== physical - logical) return false;
    pos = e.logical + e.length;
  }
  return pos >= end;
}
