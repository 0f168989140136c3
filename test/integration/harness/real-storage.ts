// The policy every real-storage test follows (ZFS pools, loop filesystems):
// when a prerequisite is missing (not root, a tool not installed, no kernel
// support) the tests are SKIPPED locally, but FAIL when CI=true. Under CI a
// real-storage test that cannot run is a failure, not a skip, so CI can never
// go green by silently testing nothing.
//
//   describeRealStorage('zfs cli', missing(), () => { ... })
//
// where missing() returns undefined when everything is there, else the reason.
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** CI=true (GitHub Actions, our .ci/run) or CI=1. */
export function isCi(): boolean {
  const v = process.env.CI;
  return v === 'true' || v === '1';
}

// xapi's PATH plus the sbin directories a non-login root shell may lack.
const SBIN = ['/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/bin', '/bin'];

export function searchPath(): string[] {
  const dirs = (process.env.PATH ?? '').split(delimiter).filter(Boolean);
  for (const d of SBIN) if (!dirs.includes(d)) dirs.push(d);
  return dirs;
}

/** Absolute path of an executable on the search path, or undefined. */
export function findTool(tool: string): string | undefined {
  if (tool.startsWith('/')) {
    try {
      accessSync(tool, constants.X_OK);
      return tool;
    } catch {
      return undefined;
    }
  }
  for (const d of searchPath()) {
    const p = join(d, tool);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      // next
    }
  }
  return undefined;
}

/** Why this process cannot run root-only tests, or undefined when it can. */
export function requireRoot(): string | undefined {
  return process.getuid?.() === 0 ? undefined : 'not running as root';
}

/** 'missing tools: a, b' or undefined. */
export function requireTools(tools: readonly string[]): string | undefined {
  const missing = tools.filter((t) => !findTool(t));
  return missing.length ? `missing tools: ${missing.join(', ')}` : undefined;
}

/** The first reason among several checks, or undefined when all pass. */
export function firstMissing(...checks: Array<() => string | undefined>): string | undefined {
  for (const c of checks) {
    const r = c();
    if (r) return r;
  }
  return undefined;
}

/**
 * describe() when `missing` is undefined; otherwise a skipped describe locally,
 * or under CI a describe whose single test fails with the reason.
 */
export function describeRealStorage(title: string, missing: string | undefined, fn: () => void): void {
  if (!missing) {
    describe(title, fn);
    return;
  }
  if (isCi()) {
    describe(title, () => {
      test('prerequisites for real-storage tests', () => {
        throw new Error(`${title}: ${missing} (CI=true: a real-storage test that cannot run is a failure, not a skip)`);
      });
    });
    return;
  }
  describe.skip(`${title} [skipped: ${missing}]`, fn);
}

/**
 * For code paths that discover a missing prerequisite only at run time (inside
 * beforeAll): throws under CI, and returns false locally so the caller can
 * return early. Prefer describeRealStorage, which decides before any test runs.
 */
export function requireRealStorage(missing: string | undefined, what: string): boolean {
  if (!missing) return true;
  if (isCi()) throw new Error(`${what}: ${missing} (CI=true: a real-storage test that cannot run is a failure, not a skip)`);
  return false;
}
