// Loader for the small native helper (native/flatsnap.c): POSIX fcntl record
// locks, which Node lacks and which the stock SM's lock.py uses, flock(2) for the
// cross-host lock of shared SRs (src/sr/cluster-lock.ts), plus syslog(3),
// plus the reflink backend's FICLONE, statfs(2) and FIEMAP, and the relayout's
// FICLONERANGE / FIDEDUPERANGE.
// It is looked up next to the running bundle first (the installed layout), then in
// the source tree's build directory.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Native {
  /** F_SETLK/F_SETLKW on the whole file; returns false when `wait` is false and the lock is held. */
  lock(fd: number, exclusive: boolean, wait: boolean): boolean;
  unlock(fd: number): void;
  /** The pid of a process holding a conflicting lock, or 0 (F_GETLK). */
  holder(fd: number, exclusive: boolean): number;
  /**
   * flock(2) LOCK_SH/LOCK_EX on the open file description; returns false when `wait` is
   * false and the lock is held elsewhere. Throws (code = errno name) on other failures.
   */
  flock(fd: number, exclusive: boolean, wait: boolean): boolean;
  /** flock(2) LOCK_UN. */
  funlock(fd: number): void;
  /** Sends one local2 line to the syslog socket at `path`; false if it could not. */
  syslog(path: string, priority: number, message: string): boolean;

  // The reflink backend's syscalls. Failures throw an Error with `code` = errno
  // name ('EOPNOTSUPP', 'EXDEV', 'ENOSPC', 'EROFS', 'EBADF', ...; 'EUNKNOWN' for
  // names the addon does not know), `errno` (positive) and `syscall`.

  /** ioctl(dstFd, FICLONE, srcFd): dst becomes a reflink copy of all of src (same mount only). */
  ficlone(srcFd: number, dstFd: number): void;
  /** statfs(2): `type` is the filesystem magic, `flags` the mount flags (ST_RDONLY = 1). */
  statfs(path: string): NativeStatfs;
  /** Number of extents of the file (FS_IOC_FIEMAP with FIEMAP_FLAG_SYNC, count only). */
  fiemapCount(fd: number): number;
  /** Walks the extent map: extents, physically contiguous fragments, how many are still shared, mapped bytes. */
  fiemapStats(fd: number): NativeFiemapStats;
  /**
   * The whole extent map (FIEMAP_FLAG_SYNC first): [logical, physical, length, flags] per
   * extent, flat. Two files hold the same block at the same offset when both numbers match.
   */
  fiemapMap(fd: number): Float64Array;
  /** ioctl(dstFd, FICLONERANGE): dst's range shares src's blocks, whatever it held (no comparison). */
  cloneRange(srcFd: number, srcOffset: number, length: number, dstFd: number, dstOffset: number): void;
  /**
   * ioctl(srcFd, FIDEDUPERANGE) with one destination: the kernel compares both ranges under
   * its locks and shares src's blocks into dst only when they are equal. `bytes` may be less
   * than asked (the filesystem's per-call limit); nothing changes when `same` is false.
   */
  dedupeRange(srcFd: number, srcOffset: number, length: number, dstFd: number, dstOffset: number): { same: boolean; bytes: number };
  /**
   * fallocate(FALLOC_FL_UNSHARE_RANGE | FALLOC_FL_KEEP_SIZE): the range gets blocks of its
   * own (the kernel copies what is shared), and XFS drops the file's reflink flag once no
   * block of it is shared. fd open for writing; EOPNOTSUPP on btrfs and OCFS2.
   */
  unshareRange(fd: number, offset: number, length: number): void;
}

/** statfs(2) as the addon returns it; block counts are in `frsize` units (`bsize` if 0). */
export interface NativeStatfs {
  type: number;
  bsize: number;
  frsize: number;
  blocks: number;
  bfree: number;
  bavail: number;
  files: number;
  ffree: number;
  namelen: number;
  flags: number;
}

export interface NativeFiemapStats {
  /** Extents as FIEMAP reports them (XFS also splits where sharing changes). */
  extents: number;
  /** Runs contiguous both logically and physically: the fragmentation that costs seeks. */
  fragments: number;
  /** Extents flagged FIEMAP_EXTENT_SHARED. */
  shared: number;
  /** Sum of the mapped extents' lengths. */
  bytes: number;
  sharedBytes: number;
}

let cached: Native | null | undefined;

export function nativeCandidates(): string[] {
  // In the bundle this module's file is plugin/FlatSnapSR; in the source tree, src/native.ts.
  const here = dirname(fileURLToPath(import.meta.url));
  const out: string[] = [];
  if (process.env.FLATSNAP_NATIVE) out.push(process.env.FLATSNAP_NATIVE);
  out.push(join(here, 'flatsnap.node'));
  out.push(join(here, '..', 'native', 'build', 'flatsnap.node'));
  return out;
}

export function loadNative(): Native | undefined {
  if (cached !== undefined) return cached ?? undefined;
  const req = createRequire(import.meta.url);
  for (const p of nativeCandidates()) {
    if (existsSync(p)) {
      cached = req(p) as Native;
      return cached;
    }
  }
  cached = null;
  return undefined;
}
