// The disk of a VDI held as a sparse raw file inside its dataset, for ZFS
// builds without volumes (zfs-fuse). Creating, growing and sizing only: the
// dataset (and so its snapshots and clones) is the unit ZFS works on.
import { open, stat } from 'node:fs/promises';
import { join } from 'node:path';

/** Name of the disk file in a VDI dataset's mountpoint. */
export const RAW_FILE_NAME = 'disk.raw';

export function rawFilePath(mountpoint: string, name = RAW_FILE_NAME): string {
  return join(mountpoint, name);
}

/** Creates `path` (must not exist) as a sparse file of `size` bytes, synced. */
export async function createSparseFile(path: string, size: number): Promise<void> {
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`bad size ${size}`);
  const fh = await open(path, 'wx', 0o600);
  try {
    await fh.truncate(size);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Grows a sparse file to `size` bytes; never shrinks (returns the size it has). */
export async function growSparseFile(path: string, size: number): Promise<number> {
  const fh = await open(path, 'r+');
  try {
    const cur = (await fh.stat()).size;
    if (size <= cur) return cur;
    await fh.truncate(size);
    await fh.sync();
    return size;
  } finally {
    await fh.close();
  }
}

/** Apparent size and bytes allocated (st_blocks * 512). */
export async function sparseFileSize(path: string): Promise<{ size: number; allocated: number }> {
  const s = await stat(path);
  return { size: s.size, allocated: s.blocks * 512 };
}
