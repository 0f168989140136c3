// Extent maps (FIEMAP) as data, for the relayout of fragmented images (relayout.ts):
// which parts of a file are worth rewriting, and where two files hold the very same
// blocks. Pure logic, no I/O.
//
// Why physical equality matters: a block that two files share (FIEMAP_EXTENT_SHARED)
// can never change in place; a write to it in either file goes elsewhere (copy on
// write). So when two files map the same physical block at the same offset, they hold
// the same bytes there, and remain so for as long as both still map that block.

/** One FIEMAP extent, in bytes. */
export interface Extent {
  logical: number;
  physical: number;
  length: number;
  flags: number;
}

/** [start, end) in bytes; lists are sorted and disjoint. */
export interface Range {
  start: number;
  end: number;
}

// linux/fiemap.h
export const FIEMAP_EXTENT = {
  LAST: 0x1,
  UNKNOWN: 0x2,
  DELALLOC: 0x4,
  ENCODED: 0x8,
  DATA_ENCRYPTED: 0x80,
  NOT_ALIGNED: 0x100,
  DATA_INLINE: 0x200,
  DATA_TAIL: 0x400,
  UNWRITTEN: 0x800,
  MERGED: 0x1000,
  SHARED: 0x2000,
} as const;

/** Extents whose physical address is not a plain block address, or that read as zeros. */
const NOT_PLAIN =
  FIEMAP_EXTENT.UNKNOWN |
  FIEMAP_EXTENT.DELALLOC |
  FIEMAP_EXTENT.ENCODED |
  FIEMAP_EXTENT.DATA_ENCRYPTED |
  FIEMAP_EXTENT.NOT_ALIGNED |
  FIEMAP_EXTENT.DATA_INLINE |
  FIEMAP_EXTENT.DATA_TAIL |
  FIEMAP_EXTENT.UNWRITTEN;

/** Written data at a real block address. */
export function isPlain(e: Extent): boolean {
  return (e.flags & NOT_PLAIN) === 0;
}

/** The addon's flat [logical, physical, length, flags] * n. */
export function extentsFrom(flat: ArrayLike<number>): Extent[] {
  const out: Extent[] = [];
  for (let i = 0; i + 3 < flat.length; i += 4) out.push({ logical: flat[i]!, physical: flat[i + 1]!, length: flat[i + 2]!, flags: flat[i + 3]! });
  return out;
}

/** Appends [start, end) to a sorted list, merged with the last range when they touch. */
export function push(out: Range[], start: number, end: number): void {
  if (end <= start) return;
  const last = out[out.length - 1];
  if (last !== undefined && last.end >= start) last.end = Math.max(last.end, end);
  else out.push({ start, end });
}

/**
 * Where `a` and `b` map the same offset to the same physical block (plain extents only;
 * with `shared`, only where both say the extent is shared). Both maps sorted by offset.
 */
export function sameBlocks(a: readonly Extent[], b: readonly Extent[], opts: { shared?: boolean } = {}): Range[] {
  const ok = (e: Extent): boolean => isPlain(e) && (!opts.shared || (e.flags & FIEMAP_EXTENT.SHARED) !== 0);
  const out: Range[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const x = a[i]!;
    const y = b[j]!;
    const xe = x.logical + x.length;
    const ye = y.logical + y.length;
    const lo = Math.max(x.logical, y.logical);
    const hi = Math.min(xe, ye);
    if (lo < hi && ok(x) && ok(y) && x.physical - x.logical === y.physical - y.logical) push(out, lo, hi);
    if (xe <= ye) i++;
    else j++;
  }
  return out;
}

/** The parts of `a` that are also in `b`. */
export function intersect(a: readonly Range[], b: readonly Range[]): Range[] {
  const out: Range[] = [];
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    const x = a[i]!;
    const y = b[j]!;
    push(out, Math.max(x.start, y.start), Math.min(x.end, y.end));
    if (x.end <= y.end) i++;
    else j++;
  }
  return out;
}

/**
 * Ranges shrunk to whole blocks of `block` bytes, except that an end at `eof` may stay
 * unaligned (the kernel clones a file's partial last block only up to its end of file).
 */
export function alignRanges(ranges: readonly Range[], block: number, eof: number): Range[] {
  const out: Range[] = [];
  for (const r of ranges) {
    const start = Math.ceil(r.start / block) * block;
    const end = r.end >= eof ? eof : Math.floor(r.end / block) * block;
    if (end > start) out.push({ start, end });
  }
  return out;
}

/** The written data of a map inside `within` (what a copy must read; unwritten extents read as zeros). */
export function dataRanges(map: readonly Extent[], within: Range): Range[] {
  const out: Range[] = [];
  for (const e of map) {
    if (!isPlain(e)) continue;
    push(out, Math.max(e.logical, within.start), Math.min(e.logical + e.length, within.end));
  }
  return out;
}

export interface Window extends Range {
  /**
   * Physically contiguous runs that overlap the window (one crossing a border counts in
   * both). Not FIEMAP's extents: XFS also splits an extent wherever its sharing changes,
   * which a relayout cannot improve and which costs a clone little.
   */
  extents: number;
  /** Written bytes in the window. */
  dataBytes: number;
}

/** The file cut into windows of `size` bytes, with the extents and data in each. */
export function windows(map: readonly Extent[], fileSize: number, size: number): Window[] {
  const n = Math.ceil(fileSize / size);
  const out: Window[] = Array.from({ length: n }, (_, k) => ({ start: k * size, end: Math.min(fileSize, (k + 1) * size), extents: 0, dataBytes: 0 }));
  let prev: Extent | undefined;
  for (const e of map) {
    const first = Math.floor(e.logical / size);
    const last = Math.min(n - 1, Math.floor((e.logical + e.length - 1) / size));
    const continues =
      prev !== undefined && isPlain(prev) && isPlain(e) && prev.logical + prev.length === e.logical && prev.physical + prev.length === e.physical;
    prev = e;
    for (let k = first; k <= last; k++) {
      const w = out[k]!;
      if (!continues || k * size === e.logical) w.extents++;
      if (isPlain(e)) w.dataBytes += Math.max(0, Math.min(e.logical + e.length, w.end) - Math.max(e.logical, w.start));
    }
  }
  return out;
}

export interface RelayoutPlan {
  /** Windows to rewrite, in file order. */
  selected: Window[];
  extentsBefore: number;
  /** What the map would have if every selected window became one extent (an estimate). */
  extentsAfter: number;
  /** Written bytes of the selected windows: what the relayout reads, writes and needs free. */
  copyBytes: number;
}

/**
 * Which windows to rewrite: those with at least `minExtents` extents, i.e. where each extent
 * removed costs at most window / minExtents bytes of copying. Windows of sparse or lightly
 * fragmented data are left alone: rewriting them would cost I/O for little gain.
 */
export function planRelayout(map: readonly Extent[], fileSize: number, opts: { window: number; minExtents: number }): RelayoutPlan {
  const ws = windows(map, fileSize, opts.window);
  const selected = ws.filter((w) => w.extents >= opts.minExtents && w.dataBytes > 0);
  const removed = selected.reduce((n, w) => n + w.extents - 1, 0);
  return {
    selected,
    extentsBefore: map.length,
    extentsAfter: Math.max(selected.length > 0 ? 1 : 0, map.length - removed),
    copyBytes: selected.reduce((n, w) => n + w.dataBytes, 0),
  };
}
