// What the unshare of a live image (unshare.ts) moves, and where: pure logic, no I/O.
import { type Extent, FIEMAP_EXTENT, type Range, isPlain, push } from './extent-map.js';

/** Where a map holds written data that it shares with some other file (FIEMAP_EXTENT_SHARED). */
export function sharedRanges(map: readonly Extent[]): Range[] {
  const out: Range[] = [];
  for (const e of map) {
    if (isPlain(e) && (e.flags & FIEMAP_EXTENT.SHARED) !== 0) push(out, e.logical, e.logical + e.length);
  }
  return out;
}

/** The parts of `a` that are not in `b`. Both sorted and disjoint. */
export function subtract(a: readonly Range[], b: readonly Range[]): Range[] {
  const out: Range[] = [];
  let j = 0;
  for (const r of a) {
    let start = r.start;
    while (j < b.length && b[j]!.end <= start) j++;
    let k = j;
    while (k < b.length && b[k]!.start < r.end) {
      if (b[k]!.start > start) out.push({ start, end: b[k]!.start });
      start = Math.max(start, b[k]!.end);
      k++;
    }
    if (start < r.end) out.push({ start, end: r.end });
  }
  return out;
}

/** The parts in `a` or in `b`. Both sorted and disjoint. */
export function union(a: readonly Range[], b: readonly Range[]): Range[] {
  const out: Range[] = [];
  for (const r of [...a, ...b].sort((x, y) => x.start - y.start)) push(out, r.start, r.end);
  return out;
}

/** Ranges cut into pieces of at most `max` bytes (what is read into memory at once). */
export function pieces(ranges: readonly Range[], max: number): Range[] {
  const out: Range[] = [];
  for (const r of ranges) for (let s = r.start; s < r.end; s += max) out.push({ start: s, end: Math.min(r.end, s + max) });
  return out;
}

/**
 * Where `x` and `y` (the bytes of one range, starting at file offset `base`) are equal,
 * in whole blocks of `block` bytes counted from offset 0 (a partial block at either end
 * of the range counts as different): the runs a dedupe may remap.
 */
export function equalRuns(x: Buffer, y: Buffer, base: number, block: number): Range[] {
  const out: Range[] = [];
  const len = Math.min(x.length, y.length);
  const end = base + len;
  let pos = Math.ceil(base / block) * block;
  let run: Range | undefined;
  for (; pos + block <= end; pos += block) {
    const o = pos - base;
    if (x.compare(y, o, o + block, o, o + block) === 0) {
      if (run !== undefined && run.end === pos) run.end = pos + block;
      else out.push((run = { start: pos, end: pos + block }));
    }
  }
  return out;
}
