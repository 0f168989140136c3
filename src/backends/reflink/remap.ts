// The I/O both rewrites of an image share (relayout.ts, unshare.ts): reading an extent
// map, copying byte ranges between open files, and a FIDEDUPERANGE carried to its end.
import { open, type FileHandle } from 'node:fs/promises';
import { type Extent, type Range, extentsFrom } from './extent-map.js';
import { errnoCode, sys } from './sys.js';

/** Opens a family object that may have been deleted meanwhile: undefined then. */
export async function openIfExists(path: string, flags: string): Promise<FileHandle | undefined> {
  try {
    return await open(path, flags);
  } catch (e) {
    if (errnoCode(e) === 'ENOENT') return undefined;
    throw e;
  }
}

export function mapOf(fd: number): Extent[] {
  return extentsFrom(sys().fiemapMap(fd));
}

/** Copies `ranges` of src into dst at the same offsets; the bytes copied. */
export async function copyRanges(src: FileHandle, dst: FileHandle, ranges: readonly Range[], buf: Buffer): Promise<number> {
  let bytes = 0;
  for (const r of ranges) {
    for (let pos = r.start; pos < r.end; ) {
      const { bytesRead } = await src.read(buf, 0, Math.min(buf.length, r.end - pos), pos);
      if (bytesRead === 0) break; // the image shrank under us: the dedupe will not match
      await dst.write(buf, 0, bytesRead, pos);
      pos += bytesRead;
      bytes += bytesRead;
    }
  }
  return bytes;
}

/**
 * FIDEDUPERANGE of [start, end) from `src` into `dst` (dst then maps src's blocks there);
 * `same: false` when the bytes differ somewhere, in which case the part not yet done stays
 * as it was. The kernel compares under its locks, so this is safe while dst is written.
 */
export function dedupeAll(src: number, dst: number, w: Range): { same: boolean; bytes: number } {
  const n = sys();
  let bytes = 0;
  for (let pos = w.start; pos < w.end; ) {
    let r: { same: boolean; bytes: number };
    try {
      r = n.dedupeRange(src, pos, w.end - pos, dst, pos);
    } catch (e) {
      // EINVAL: a size changed under us (a resize), so the range's unaligned tail no
      // longer ends at an end of file; the range simply stays as it was.
      if (errnoCode(e) === 'EINVAL') return { same: false, bytes };
      throw e;
    }
    if (!r.same) return { same: false, bytes };
    if (r.bytes <= 0) return { same: false, bytes }; // nothing done: treat as changed
    bytes += r.bytes;
    pos += r.bytes;
  }
  return { same: true, bytes };
}
