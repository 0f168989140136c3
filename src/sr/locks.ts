// SM locks: POSIX fcntl record locks on /var/lock/sm/<ns>/<name>, the same files
// and the same lock type as the stock SM's lock.py, so flatsnap and the Python
// tools (and two flatsnap calls) exclude each other. The root moves for tests
// through FLATSNAP_LOCK_DIR.
import { closeSync, mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { SmError } from '../errors.js';
import { loadNative, nativeCandidates } from '../native.js';
import type { SmCommand } from '../smapi/request.js';

export function lockRoot(): string {
  return process.env.FLATSNAP_LOCK_DIR ?? '/var/lock/sm';
}

/** FileSR's OPS_EXCLUSIVE: the commands that hold the SR lock for their whole run. */
export const SR_EXCLUSIVE: ReadonlySet<SmCommand> = new Set<SmCommand>([
  'sr_create', 'sr_delete', 'sr_probe', 'sr_attach', 'sr_detach', 'sr_scan',
  'vdi_create', 'vdi_delete', 'vdi_attach', 'vdi_detach', 'vdi_resize_online',
  'vdi_snapshot', 'vdi_clone',
]);

export class Lock {
  private fd: number | undefined;
  private depth = 0;

  constructor(readonly path: string) {}

  static sr(srUuid: string): Lock {
    return new Lock(join(lockRoot(), srUuid, 'sr'));
  }

  static vdi(vdiUuid: string): Lock {
    return new Lock(join(lockRoot(), vdiUuid, 'vdi'));
  }

  /** Blocks until the lock is ours; re-entrant within this process, like lock.py. */
  acquire(): void {
    if (this.depth++ > 0) return;
    this.fd = this.open();
    native().lock(this.fd, true, true);
  }

  /** Takes the lock if it is free; false if another process holds it. */
  tryAcquire(): boolean {
    if (this.depth > 0) {
      this.depth++;
      return true;
    }
    const fd = this.open();
    if (!native().lock(fd, true, false)) {
      closeSync(fd);
      return false;
    }
    this.fd = fd;
    this.depth = 1;
    return true;
  }

  release(): void {
    if (this.depth === 0) return;
    if (--this.depth > 0) return;
    const fd = this.fd!;
    this.fd = undefined;
    native().unlock(fd);
    closeSync(fd);
  }

  async with<T>(fn: () => Promise<T>): Promise<T> {
    this.acquire();
    try {
      return await fn();
    } finally {
      this.release();
    }
  }

  private open(): number {
    mkdirSync(join(this.path, '..'), { recursive: true, mode: 0o755 });
    // fcntl write locks need a descriptor open for writing.
    return openSync(this.path, 'a', 0o644);
  }
}

function native() {
  const n = loadNative();
  if (!n) throw new SmError('LockErr', `the native lock helper is missing (looked in ${nativeCandidates().join(', ')})`);
  return n;
}
