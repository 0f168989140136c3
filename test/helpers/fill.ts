// Filling a filesystem or pool until writes fail, for the "full storage" tests: 1 MiB
// writes, then smaller ones, until even 4 KiB writes keep failing. The fsync between
// failures matters: XFS gives back speculative preallocation, btrfs and ZFS commit, and
// each can then take a little more.
import { open } from 'node:fs/promises';

const MiB = 1024 * 1024;
/** ENOSPC everywhere; EDQUOT when a ZFS quota, not the pool, is what runs out. */
const FULL = new Set(['ENOSPC', 'EDQUOT']);

export async function fillFile(path: string): Promise<void> {
  const fh = await open(path, 'w');
  let chunk = MiB;
  let fails = 0;
  try {
    while (chunk >= 4096) {
      try {
        await fh.write(Buffer.alloc(chunk, 0x5a));
        fails = 0;
        continue;
      } catch (e) {
        if (!FULL.has((e as { code?: string }).code ?? '')) throw e;
      }
      await fh.sync().catch(() => undefined);
      if (++fails >= 2) {
        chunk >>= 1;
        fails = 0;
      }
    }
  } finally {
    await fh.close().catch(() => undefined);
  }
}
