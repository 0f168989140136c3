// Copying one image into a new file: FICLONE when the filesystem can share
// extents; a full, sparse-aware byte copy when it cannot and the SR was
// configured with allow-copy (a test / evaluation mode: every snapshot then costs
// a full read and write of the data, which is exactly what flatsnap exists to avoid,
// so every such copy is logged as a warning).
import { open, type FileHandle } from 'node:fs/promises';
import type { SmErrorKind } from '../../errors.js';
import { log } from '../../log.js';
import { discard } from './atomic.js';
import { toSmError } from './fs-errors.js';
import { reflinkCopy } from './volume.js';

const VOLUME_MODE = 0o600;
const CHUNK = 1024 * 1024;
const BLOCK = 4096;

function isZero(buf: Buffer, start: number, end: number): boolean {
  for (let i = start; i < end; i++) if (buf[i] !== 0) return false;
  return true;
}

/**
 * Copies `src` into the new file `dst` (created O_EXCL): blocks of zeros are skipped, so
 * holes stay holes (and zero-filled blocks become holes), then the size is set and dst is
 * fsynced. On failure dst is removed.
 */
export async function sparseCopy(src: string, dst: string, fail: SmErrorKind = 'VDIClone'): Promise<void> {
  let s: FileHandle | undefined;
  let d: FileHandle | undefined;
  try {
    s = await open(src, 'r');
    d = await open(dst, 'wx', VOLUME_MODE);
    const { size } = await s.stat();
    const buf = Buffer.allocUnsafe(CHUNK);
    for (let pos = 0; pos < size; ) {
      const { bytesRead } = await s.read(buf, 0, Math.min(CHUNK, size - pos), pos);
      if (bytesRead === 0) break;
      // Write each maximal run of non-zero 4 KiB blocks in one call.
      for (let i = 0; i < bytesRead; ) {
        const blockEnd = Math.min(i + BLOCK, bytesRead);
        if (isZero(buf, i, blockEnd)) {
          i = blockEnd;
          continue;
        }
        let j = blockEnd;
        while (j < bytesRead && !isZero(buf, j, Math.min(j + BLOCK, bytesRead))) j = Math.min(j + BLOCK, bytesRead);
        await d.write(buf, i, j - i, pos + i);
        i = j;
      }
      pos += bytesRead;
    }
    await d.truncate(size);
    await d.sync();
    await d.close();
    d = undefined;
  } catch (e) {
    await discard(dst, d);
    throw toSmError(e, `copy ${src} -> ${dst}`, { fallback: fail, notFound: 'VolNotFound' });
  } finally {
    if (s) await s.close().catch(() => undefined);
  }
}

/**
 * dst (new, the caller's temp name) becomes a copy of src: FICLONE, or with `fullCopy` (the
 * backend decided the filesystem cannot reflink and allow-copy is set) a sparse byte copy.
 */
export async function copyImage(src: string, dst: string, opts: { fullCopy: boolean; fail: SmErrorKind }): Promise<void> {
  if (!opts.fullCopy) {
    await reflinkCopy(src, dst, { fail: opts.fail });
    return;
  }
  log().warn(
    `flatsnap: FULL COPY of ${src} (the filesystem cannot reflink and allow-copy is set): ` +
      'this snapshot/clone costs the whole image in time and space; use XFS with reflink=1, btrfs or OCFS2.',
  );
  await sparseCopy(src, dst, opts.fail);
}
