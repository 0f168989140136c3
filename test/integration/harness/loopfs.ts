// Real filesystems for integration tests: a sparse image file on a loop device,
// formatted XFS (reflink=1), btrfs or ext4 and mounted on a temp directory, or a
// plain tmpfs. Needs root, losetup/mount/umount and the mkfs tool.
//
// Policy (the same as the ZFS harness's): when a prerequisite is missing the
// tests are skipped locally, but FAIL when CI=true, so CI can never go green by
// silently skipping real storage (harness/real-storage.ts).
//
// Teardown (umount, losetup -d, rm) is attempted step by step even when an
// earlier step fails; a busy mount is retried then lazily unmounted, and
// `losetup -d` on a still-busy device sets autoclear. Work directories carry the
// creating pid, so a later run reaps what a killed run left behind.
import { execa, execaSync } from 'execa';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { mkdir, mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { describeRealStorage, requireRoot, requireTools } from './real-storage.js';

export type LoopFsKind = 'xfs' | 'btrfs' | 'ext4' | 'tmpfs';

export interface LoopFsOptions {
  /** Image (or tmpfs) size. Defaults: xfs 320 (mkfs.xfs refuses < 300 MiB), btrfs 256, ext4 64, tmpfs 64. */
  sizeMiB?: number;
  /** Extra mkfs arguments before the device, e.g. ['-b', 'size=2048'] for XFS. */
  mkfsArgs?: string[];
  /** mount -o options. */
  mountOptions?: string[];
}

export interface LoopFs {
  kind: LoopFsKind;
  /** Where the filesystem is mounted. */
  mountpoint: string;
  /** /dev/loopN, or null for tmpfs. */
  device: string | null;
  image: string | null;
  /** mount -o remount,<opts> (e.g. ['ro'], ['rw']). */
  remount(opts: string[]): Promise<void>;
  /** Unmounts, detaches and removes everything; idempotent. */
  teardown(): Promise<void>;
}

const DEFAULT_MIB: Record<LoopFsKind, number> = { xfs: 320, btrfs: 256, ext4: 64, tmpfs: 64 };
const WORK_PREFIX = 'flatsnap-loopfs-';
// xapi's PATH plus the sbin directories a non-login root shell may lack.
const SBIN = ['/usr/local/sbin', '/usr/sbin', '/sbin'];
const PATH = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean), ...SBIN].join(delimiter);
const ENV = { PATH, LC_ALL: 'C' };

function workBase(): string {
  return process.env.FLATSNAP_LOOPFS_DIR ?? tmpdir();
}

// ---- policy ---------------------------------------------------------------
// The skip-locally / fail-under-CI policy is shared with the ZFS harness.
export { describeRealStorage, isCi, requireRoot } from './real-storage.js';

/** Why loop filesystems of these kinds cannot be made here, or undefined when they can. */
export function loopFsMissing(kinds: readonly LoopFsKind[]): string | undefined {
  const root = requireRoot();
  if (root) return root;
  const tools = new Set(['mount', 'umount']);
  for (const k of kinds) {
    if (k === 'tmpfs') continue;
    tools.add('losetup');
    tools.add(`mkfs.${k}`);
  }
  const missing = requireTools([...tools]);
  if (missing) return missing;
  if (kinds.some((k) => k !== 'tmpfs') && !existsSync('/dev/loop-control')) return 'no /dev/loop-control';
  return undefined;
}

/** describeRealStorage gated on loopFsMissing(kinds). */
export function describeLoopFs(title: string, kinds: readonly LoopFsKind[], fn: () => void): void {
  describeRealStorage(title, loopFsMissing(kinds), fn);
}

// ---- lifecycle --------------------------------------------------------------

const live = new Set<LoopFs>();

async function run(cmd: string, args: string[]): Promise<string> {
  const r = await execa(cmd, args, { env: ENV, reject: false, stdin: 'ignore' });
  if (r.exitCode !== 0 || r.failed) {
    const out = `${r.stderr}\n${r.stdout}`.trim();
    throw new Error(`${cmd} ${args.join(' ')} failed (${r.exitCode ?? r.signal ?? 'no exit code'}): ${out}`);
  }
  return r.stdout.trim();
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// /proc/self/mounts escapes space, tab, newline and backslash as octal.
function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

export function isMounted(path: string): boolean {
  const text = readFileSync('/proc/self/mounts', 'utf8');
  return text.split('\n').some((l) => unescapeMount(l.split(' ')[1] ?? '') === path);
}

async function umountReliably(mnt: string): Promise<void> {
  for (let i = 0; i < 5 && isMounted(mnt); i++) {
    const r = await execa('umount', [mnt], { env: ENV, reject: false, stdin: 'ignore' });
    if (r.exitCode === 0) return;
    await sleep(100 * (i + 1));
  }
  if (isMounted(mnt)) await run('umount', ['-l', mnt]);
}

async function detachReliably(dev: string): Promise<void> {
  let last = '';
  for (let i = 0; i < 10; i++) {
    const r = await execa('losetup', ['-d', dev], { env: ENV, reject: false, stdin: 'ignore' });
    // Detached, or already gone (another run's device number reused is not ours to touch).
    if (r.exitCode === 0 || /No such device|not a block device/i.test(r.stderr)) return;
    last = r.stderr;
    await sleep(100 * (i + 1));
  }
  throw new Error(`losetup -d ${dev}: ${last}`);
}

/** Makes and mounts a filesystem of `kind`; call teardown() (or teardownAllLoopFs) afterwards. */
export async function createLoopFs(kind: LoopFsKind, opts: LoopFsOptions = {}): Promise<LoopFs> {
  const missing = loopFsMissing([kind]);
  if (missing) throw new Error(`cannot create a ${kind} loop filesystem: ${missing}`);
  reapStaleLoopFs();
  const sizeMiB = opts.sizeMiB ?? DEFAULT_MIB[kind];
  await mkdir(workBase(), { recursive: true });
  const root = await mkdtemp(join(workBase(), `${WORK_PREFIX}${process.pid}-`));
  const mountpoint = join(root, 'mnt');
  const image = kind === 'tmpfs' ? null : join(root, 'disk.img');
  let device: string | null = null;
  let tornDown = false;

  const fs: LoopFs = {
    kind,
    mountpoint,
    get device() {
      return device;
    },
    image,
    async remount(o: string[]) {
      await run('mount', ['-o', ['remount', ...o].join(','), mountpoint]);
    },
    async teardown() {
      if (tornDown) return;
      tornDown = true;
      live.delete(fs);
      const errors: unknown[] = [];
      const step = async (f: () => Promise<void>) => {
        try {
          await f();
        } catch (e) {
          errors.push(e);
        }
      };
      await step(() => umountReliably(mountpoint));
      if (device) {
        const d = device;
        await step(() => detachReliably(d));
      }
      await step(() => rm(root, { recursive: true, force: true }));
      if (errors.length) throw new AggregateError(errors, `teardown of ${kind} at ${mountpoint} was incomplete`);
    },
  };
  live.add(fs);

  try {
    await mkdir(mountpoint);
    if (kind === 'tmpfs') {
      const o = [`size=${sizeMiB}m`, ...(opts.mountOptions ?? [])];
      await run('mount', ['-t', 'tmpfs', '-o', o.join(','), 'flatsnap-test', mountpoint]);
      return fs;
    }
    await run('truncate', ['-s', `${sizeMiB}M`, image!]);
    device = await run('losetup', ['--find', '--show', image!]);
    if (!/^\/dev\/loop\d+$/.test(device)) throw new Error(`losetup printed ${JSON.stringify(device)}`);
    const extra = opts.mkfsArgs ?? [];
    switch (kind) {
      case 'xfs':
        // -K: no discard at mkfs (slow on loop devices and pointless on a fresh sparse image).
        await run('mkfs.xfs', ['-q', '-f', '-K', '-m', 'reflink=1', ...extra, device]);
        break;
      case 'btrfs':
        await run('mkfs.btrfs', ['-q', '-f', ...extra, device]);
        break;
      case 'ext4':
        await run('mkfs.ext4', ['-q', '-F', '-E', 'nodiscard', ...extra, device]);
        break;
    }
    const mo = opts.mountOptions ?? [];
    await run('mount', ['-t', kind, ...(mo.length ? ['-o', mo.join(',')] : []), device, mountpoint]);
    return fs;
  } catch (e) {
    await fs.teardown().catch(() => undefined);
    throw e;
  }
}

/** Tears down every filesystem this process created and has not torn down yet. */
export async function teardownAllLoopFs(): Promise<void> {
  const errors: unknown[] = [];
  for (const fs of [...live]) await fs.teardown().catch((e: unknown) => errors.push(e));
  if (errors.length) throw new AggregateError(errors, 'loop filesystem teardown failed');
}

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: string }).code === 'EPERM';
  }
}

function syncTeardown(root: string): void {
  const mnt = join(root, 'mnt');
  const image = join(root, 'disk.img');
  if (isMounted(mnt)) {
    if (execaSync('umount', [mnt], { env: ENV, reject: false }).exitCode !== 0) {
      execaSync('umount', ['-l', mnt], { env: ENV, reject: false });
    }
  }
  if (existsSync(image)) {
    // "/dev/loop3: [2049]:1234 (/tmp/.../disk.img)"
    const r = execaSync('losetup', ['-j', image], { env: ENV, reject: false });
    for (const line of String(r.stdout ?? '').split('\n')) {
      const dev = /^(\/dev\/loop\d+):/.exec(line)?.[1];
      if (dev) execaSync('losetup', ['-d', dev], { env: ENV, reject: false });
    }
  }
  rmSync(root, { recursive: true, force: true });
}

/** Removes work directories of dead processes (a run that was killed mid-test). */
export function reapStaleLoopFs(): string[] {
  const reaped: string[] = [];
  let names: string[];
  try {
    names = readdirSync(workBase());
  } catch {
    return reaped;
  }
  for (const n of names) {
    const m = new RegExp(`^${WORK_PREFIX}(\\d+)-`).exec(n);
    if (!m || pidAlive(Number(m[1]))) continue;
    try {
      syncTeardown(join(workBase(), n));
      reaped.push(n);
    } catch {
      // leave it for the next run
    }
  }
  return reaped;
}

// Last resort when a test file forgets afterAll or the process exits early.
process.once('exit', () => {
  for (const fs of live) {
    try {
      syncTeardown(join(fs.mountpoint, '..'));
    } catch {
      // nothing more to do at exit
    }
  }
});
