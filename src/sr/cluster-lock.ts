// The cross-host lock of a shared SR: flock(2) on one file of the shared
// filesystem, shared or exclusive, taken by the driver in addition to the per-host
// SM locks of locks.ts (which are POSIX fcntl locks in /var/lock/sm: they exclude
// only on their own host).
//
// Why flock: on OCFS2 with the o2cb stack the kernel passes flock(2) requests to
// the DLM, so they exclude processes on every node that mounts the filesystem,
// whereas fcntl locks stay node-local (docs/shared-srs.md; test/kernel checks both).
// On a local filesystem the same lock is an ordinary flock: one open and one
// syscall per call, and it still keeps two processes of one host apart.
//
// flock belongs to the open file description, so two opens exclude each other even
// in one process; there is no re-entrance: one ClusterLock per holder.
//
// The file must be one every host opens as the same inode for the SR's whole life.
// If it is replaced or removed while a process waits (sr_delete removes it), the
// waiter would hold a lock nobody else sees: so after locking, the path must still
// name the locked inode, else the lock is dropped and taken again (or reported
// absent).
//
// Waiting is bounded: non-blocking attempts with a growing pause (5 ms up to 100 ms),
// because a blocking flock(2) cannot time out. A driver call that waits longer than
// the bound fails with LockErr rather than hanging xapi's call forever.
import { closeSync, fstatSync, lstatSync, openSync, constants } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { SmError } from '../errors.js';
import { log } from '../log.js';
import { loadNative, nativeCandidates } from '../native.js';

export type ClusterLockMode = 'shared' | 'exclusive';

/** How long a driver call waits for the cross-host lock before it fails with LockErr. */
export const CLUSTER_LOCK_TIMEOUT_MS = 5 * 60 * 1000;

/** Taken; busy (another holder excludes it); or there is no such file to lock. */
export type TryResult = 'held' | 'busy' | 'absent';

const FIRST_PAUSE_MS = 5;
const MAX_PAUSE_MS = 100;
/** Say in the log that a call is waiting once it has waited this long. */
const REPORT_AFTER_MS = 1000;

function errCode(e: unknown): string | undefined {
  return (e as { code?: unknown })?.code as string | undefined;
}

export class ClusterLock {
  private fd: number | undefined;
  private heldMode: ClusterLockMode | undefined;

  constructor(readonly path: string) {}

  get held(): ClusterLockMode | undefined {
    return this.heldMode;
  }

  /** One non-blocking attempt. */
  tryAcquire(mode: ClusterLockMode): TryResult {
    if (this.fd !== undefined) throw new Error(`cluster lock ${this.path} is already held (${this.heldMode}) by this holder`);
    const n = native();
    for (;;) {
      let fd: number;
      try {
        // Read-only is enough for flock, also for LOCK_EX; NOFOLLOW: the lock file is ours, never a link.
        fd = openSync(this.path, constants.O_RDONLY | constants.O_NOFOLLOW);
      } catch (e) {
        if (errCode(e) === 'ENOENT') return 'absent';
        throw lockError(`open ${this.path}`, e);
      }
      let got: boolean;
      try {
        got = n.flock(fd, mode === 'exclusive', false);
      } catch (e) {
        closeSync(fd);
        throw lockError(`flock ${this.path}`, e);
      }
      if (!got) {
        closeSync(fd);
        return 'busy';
      }
      const same = sameFile(fd, this.path);
      if (same === true) {
        this.fd = fd;
        this.heldMode = mode;
        return 'held';
      }
      closeSync(fd); // also drops the lock on the stale inode
      if (same === 'gone') return 'absent';
      // replaced between our open and our lock: lock the new one
    }
  }

  /**
   * Waits up to `timeoutMs` for the lock. Resolves true once held, false when the file
   * does not exist (nothing to lock); rejects with LockErr when the time runs out.
   */
  async acquire(mode: ClusterLockMode, timeoutMs = CLUSTER_LOCK_TIMEOUT_MS): Promise<boolean> {
    const start = Date.now();
    let pause = FIRST_PAUSE_MS;
    let reported = false;
    for (;;) {
      const r = this.tryAcquire(mode);
      if (r === 'held') {
        if (reported) log().info(`cross-host lock ${this.path} (${mode}) taken after ${Date.now() - start} ms`);
        return true;
      }
      if (r === 'absent') return false;
      const waited = Date.now() - start;
      if (waited >= timeoutMs) {
        throw new SmError(
          'LockErr',
          `the cross-host lock ${this.path} (${mode}) was not free within ${Math.round(timeoutMs / 1000)} s: ` +
            'another host or process of the pool holds it (a long SR operation, or one that hangs)',
        );
      }
      if (!reported && waited >= REPORT_AFTER_MS) {
        log().info(`waiting for the cross-host lock ${this.path} (${mode}): another host or process holds it`);
        reported = true;
      }
      // Jitter keeps two waiters from retrying in step.
      await sleep(Math.min(pause, timeoutMs - waited) * (0.75 + Math.random() / 2));
      pause = Math.min(pause * 2, MAX_PAUSE_MS);
    }
  }

  release(): void {
    const fd = this.fd;
    if (fd === undefined) return;
    this.fd = undefined;
    this.heldMode = undefined;
    try {
      native().funlock(fd);
    } finally {
      closeSync(fd);
    }
  }

  /** Runs `fn` holding the lock in `mode`; without it if the file does not exist. */
  async with<T>(mode: ClusterLockMode, fn: (held: boolean) => Promise<T>, timeoutMs?: number): Promise<T> {
    const held = await this.acquire(mode, timeoutMs);
    try {
      return await fn(held);
    } finally {
      this.release();
    }
  }
}

/** Whether `path` still names the file open on `fd`; 'gone' when nothing is there any more. */
function sameFile(fd: number, path: string): boolean | 'gone' {
  const a = fstatSync(fd);
  let b;
  try {
    b = lstatSync(path);
  } catch (e) {
    if (errCode(e) === 'ENOENT') return 'gone';
    throw lockError(`stat ${path}`, e);
  }
  return a.dev === b.dev && a.ino === b.ino;
}

function lockError(what: string, e: unknown): SmError {
  return new SmError('LockErr', `${what}: ${e instanceof Error ? e.message : String(e)}`);
}

function native() {
  const n = loadNative();
  if (!n) throw new SmError('LockErr', `the native lock helper is missing (looked in ${nativeCandidates().join(', ')})`);
  return n;
}
