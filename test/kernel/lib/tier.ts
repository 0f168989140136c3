// When the kernel tier runs, and the image it runs on.
//
// The tier's host tests (test/kernel/*.test.ts) match the project's testMatch, so a plain
// `npm test` loads them; they run only with FLATSNAP_KERNEL_TIER=1 (`make test-kernel`).
// Then the real-storage policy applies (test/integration/harness/real-storage.ts): a missing
// prerequisite (not root, no qemu) skips locally, and FAILS under CI=true; a VM that does
// not boot is always a failure.
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { mkdir, readdir, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describeRealStorage, firstMissing, isCi, requireRoot, requireTools } from '../../integration/harness/real-storage.js';
import { REPO } from './guest-jest.js';

export function kernelTierEnabled(): boolean {
  const v = process.env.FLATSNAP_KERNEL_TIER;
  return v === '1' || v === 'true';
}

/** Why the tier cannot run here, or undefined. */
export function kernelTierMissing(): string | undefined {
  return firstMissing(requireRoot, () => requireTools(['qemu-system-x86_64', 'debootstrap', 'mke2fs', 'cpio']));
}

/**
 * describe() when FLATSNAP_KERNEL_TIER=1 and everything is there. Without the variable: a
 * skipped describe that says how to run it (also under CI: `npm test` never boots a guest;
 * `make test` runs the tier after it, as `make test-kernel` does, with the variable set).
 */
export function describeKernelTier(title: string, fn: () => void): void {
  if (!kernelTierEnabled()) {
    describe.skip(`${title} [kernel tier: run with FLATSNAP_KERNEL_TIER=1, or make test-kernel]`, fn);
    return;
  }
  describeRealStorage(title, kernelTierMissing(), fn);
}

/** The cached image's directory (image.sh builds it on a cache miss: ~6 min, once per machine). */
export async function ensureImage(): Promise<string> {
  if (process.env.FLATSNAP_VM_IMAGE) return process.env.FLATSNAP_VM_IMAGE;
  const r = await execa(join(REPO, 'test', 'kernel', 'image', 'image.sh'), ['path'], { stdin: 'ignore', reject: false, timeout: 1_800_000 });
  if (r.exitCode !== 0) throw new Error(`test/kernel/image/image.sh failed (${String(r.exitCode ?? r.signal)}):\n${String(r.stderr).slice(-4000)}`);
  return String(r.stdout).trim().split('\n').pop()!;
}

const workBase = (): string => process.env.FLATSNAP_KERNEL_WORK ?? '/var/tmp/flatsnap-kernel';

/**
 * A fresh work directory for one test file's VMs (sockets, consoles, disks, the share),
 * `<base>/<name>-<pid>`. Directories of runs whose process is gone are removed first.
 */
export async function workDir(name: string): Promise<string> {
  const base = workBase();
  await mkdir(base, { recursive: true });
  for (const e of await readdir(base)) {
    const pid = Number(/-(\d+)$/.exec(e)?.[1]);
    if (pid > 0 && pid !== process.pid && !existsSync(`/proc/${pid}`)) await rm(join(base, e), { recursive: true, force: true });
  }
  const d = join(base, `${name}-${process.pid}`);
  await rm(d, { recursive: true, force: true });
  await mkdir(d, { recursive: true });
  return d;
}

/**
 * After a run: the disk images go (sparse, but up to a GiB each); consoles, guest logs and
 * results stay for a look until the next run.
 */
export async function cleanWorkDir(dir: string): Promise<void> {
  if (!dir) return;
  for (const e of await readdir(dir).catch(() => [] as string[])) if (e.endsWith('.img')) await rm(join(dir, e), { force: true });
  await rm(join(dir, 'share', 'bin', 'node'), { force: true });
}

export { isCi };

/** Timings of the tier's stages, printed once at the end of each test file. */
export class Timings {
  private readonly rows: Array<[string, number]> = [];
  add(what: string, ms: number): void {
    this.rows.push([what, ms]);
  }
  async time<T>(what: string, fn: () => Promise<T>): Promise<T> {
    const t0 = Date.now();
    try {
      return await fn();
    } finally {
      this.add(what, Date.now() - t0);
    }
  }
  toString(): string {
    return this.rows.map(([w, ms]) => `${(ms / 1000).toFixed(1).padStart(7)} s  ${w}`).join('\n');
  }
}
