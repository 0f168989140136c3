// Loader for the small native helper (native/flatsnap.c): POSIX fcntl record
// locks, which Node lacks and which the stock SM's lock.py uses, plus syslog(3).
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
  /** Sends one local2 line to the syslog socket at `path`; false if it could not. */
  syslog(path: string, priority: number, message: string): boolean;
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
