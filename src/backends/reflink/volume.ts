// The VDI image files themselves: sparse create, grow, reflink copy, sizes and
// extent counts. Each new file is built under a temp name and published with
// no-replace, so a `<uuid>` file is always complete.
import { open, stat, type FileHandle } from 'node:fs/promises';
import { dirname, basename } from 'node:path';
import { SmError, type SmErrorKind } from '../../errors.js';
import type { NativeFiemapStats } from '../../native.js';
import { discard, publish } from './atomic.js';
import { mapErrors, toSmError } from './fs-errors.js';
import { tempPath } from './names.js';
import { errnoCode, sys } from './sys.js';

const VOLUME_MODE = 0o600;

function checkSize(size: number, kind: SmErrorKind): void {
  if (!Number.isSafeInteger(size) || size < 0) throw new SmError(kind, `not a byte count: ${size}`);
}

/** Creates `path` as a sparse file of `size` bytes (nothing allocated). VDIExists if it exists. */
export async function createSparse(path: string, size: number): Promise<void> {
  checkSize(size, 'VDISize');
  const tmp = tempPath(dirname(path), basename(path));
  let fh: FileHandle | undefined;
  try {
    fh = await open(tmp, 'wx', VOLUME_MODE);
    await fh.truncate(size);
    await fh.sync();
    await fh.close();
    fh = undefined;
    await publish(tmp, path, { replace: false });
  } catch (e) {
    await discard(tmp, fh);
    throw toSmError(e, `create ${path}`, { fallback: 'VDICreate', notFound: 'SRUnavailable' });
  }
}

export interface VolumeSize {
  /** Apparent size (the VDI's virtual size). */
  size: number;
  /** Bytes allocated on disk (st_blocks * 512), shared extents counted in full. */
  allocated: number;
}

export async function volumeSize(path: string): Promise<VolumeSize> {
  return mapErrors(`stat ${path}`, {}, async () => {
    const st = await stat(path);
    if (!st.isFile()) throw new SmError('VDIType', `${path} is not a regular file`);
    return { size: st.size, allocated: st.blocks * 512 };
  });
}

/**
 * Grows `path` to `newSize` bytes (ftruncate; the new tail is a hole) and fsyncs.
 * Shrinking is refused (VDISize), equal size is a no-op. Returns the old size.
 */
export async function growFile(path: string, newSize: number): Promise<number> {
  checkSize(newSize, 'VDISize');
  return mapErrors(`resize ${path}`, { fallback: 'VDIResize' }, async () => {
    const fh = await open(path, 'r+');
    try {
      const { size } = await fh.stat();
      if (newSize < size) throw new SmError('VDISize', `shrinking ${path} from ${size} to ${newSize} bytes is not supported`);
      if (newSize > size) {
        await fh.truncate(newSize);
        await fh.sync();
      }
      return size;
    } finally {
      await fh.close();
    }
  });
}

export interface ReflinkOptions {
  /** SmError kind for failures with no better mapping, e.g. VDISnapshot or VDIClone (default VDIClone). */
  fail?: SmErrorKind;
}

function reflinkDetail(code: string | undefined): string {
  if (code === 'EOPNOTSUPP' || code === 'ENOTTY') return 'the filesystem cannot share extents (no reflink support)';
  if (code === 'EXDEV') return 'source and destination are not on the same mount';
  if (code === 'EINVAL') return 'the filesystem refused the clone (EINVAL: unaligned or unsupported file)';
  return '';
}

/**
 * Makes `dst` (which must not exist) a reflink copy of `src`: open src, fsync it
 * so every write that reached the page cache is in the copy, create dst O_EXCL,
 * FICLONE, fsync dst. dst is the caller's temp name: it renames it into place
 * (see `reflinkInto`). On failure dst is removed.
 */
export async function reflinkCopy(src: string, dst: string, opts: ReflinkOptions = {}): Promise<void> {
  const n = sys();
  let s: FileHandle | undefined;
  let d: FileHandle | undefined;
  try {
    s = await open(src, 'r');
    await s.sync();
    d = await open(dst, 'wx', VOLUME_MODE);
    n.ficlone(s.fd, d.fd);
    await d.sync();
    await d.close();
    d = undefined;
  } catch (e) {
    if (d) await discard(dst, d);
    const code = errnoCode(e);
    const extra = reflinkDetail(code);
    const err = toSmError(e, `reflink ${src} -> ${dst}${extra ? ` (${extra})` : ''}`, {
      fallback: opts.fail ?? 'VDIClone',
      notFound: 'VolNotFound', // src missing (dst is created O_EXCL: EEXIST is VDIExists)
    });
    throw err;
  } finally {
    if (s) await s.close().catch(() => undefined);
  }
}

/** reflinkCopy to a temp name beside `final`, then publish it there without replacing. */
export async function reflinkInto(src: string, final: string, opts: ReflinkOptions = {}): Promise<void> {
  const tmp = tempPath(dirname(final), basename(final));
  await reflinkCopy(src, tmp, opts);
  try {
    await publish(tmp, final, { replace: false });
  } catch (e) {
    await discard(tmp);
    throw toSmError(e, `publish ${final}`, { fallback: opts.fail ?? 'VDIClone' });
  }
}

/** Number of extents of `path` (FIEMAP, after flushing delayed allocation). */
export async function extentCount(path: string): Promise<number> {
  const n = sys();
  return mapErrors(`extent count of ${path}`, {}, async () => {
    const fh = await open(path, 'r');
    try {
      return n.fiemapCount(fh.fd);
    } finally {
      await fh.close();
    }
  });
}

/** Extent count, how many are still shared with reflink copies, and mapped bytes. */
export async function extentStats(path: string): Promise<NativeFiemapStats> {
  const n = sys();
  return mapErrors(`extent map of ${path}`, {}, async () => {
    const fh = await open(path, 'r');
    try {
      return n.fiemapStats(fh.fd);
    } finally {
      await fh.close();
    }
  });
}
