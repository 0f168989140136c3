// Real ZFS pools for integration tests: a sparse image file turned into a pool
// with `zpool create`, one pool per test file (unique name with the pid), and
// destroyed afterwards with its image. Works with zfs-fuse (what CI and dev
// machines have: Debian package zfs-fuse) and with OpenZFS when its module is
// there.
//
// zfs-fuse needs its daemon: if `zpool list` cannot reach it, ensureZfsReady()
// makes /dev/fuse if missing (modprobe fuse, else mknod c 10 229), creates
// /var/run/zfs and /var/lib/zfs, starts /usr/sbin/zfs-fuse (it daemonizes) and
// waits until `zpool list` answers. The daemon is left running for the next
// test file. Pools of killed runs (name fstest-<dead pid>-...) are destroyed
// on the next run.
//
// Policy: see real-storage.ts (skip locally, fail under CI=true).
import { execa, execaSync } from 'execa';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { mkdir, open, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { describeRealStorage, findTool, firstMissing, requireRoot, searchPath } from './real-storage.js';

const ENV = { PATH: searchPath().join(':'), LC_ALL: 'C', LANG: 'C' };
const CMD_TIMEOUT_MS = 60_000;
const POOL_PREFIX = 'fstest-';
const ZFS_FUSE_CANDIDATES = ['/usr/sbin/zfs-fuse', '/sbin/zfs-fuse', '/usr/bin/zfs-fuse'];

export function workDir(): string {
  return process.env.FLATSNAP_ZFS_TEST_DIR ?? '/var/tmp/flatsnap-test';
}

export function zfsFuseBinary(): string | undefined {
  return ZFS_FUSE_CANDIDATES.find((p) => findTool(p));
}

function openZfsModuleAvailable(): boolean {
  if (existsSync('/sys/module/zfs') || existsSync('/dev/zfs')) return true;
  // Installed but not loaded: modprobe will find it.
  try {
    const rel = execaSync('uname', ['-r'], { env: ENV, reject: false }).stdout;
    return typeof rel === 'string' && rel !== '' && existsSync(`/lib/modules/${rel.trim()}/extra/zfs.ko`);
  } catch {
    return false;
  }
}

/** Why ZFS pools cannot be made here, or undefined when they can. */
export function zfsMissing(): string | undefined {
  return firstMissing(
    requireRoot,
    () => (findTool('zfs') && findTool('zpool') ? undefined : 'zfs/zpool not installed (apt-get install zfs-fuse)'),
    () => (zfsFuseBinary() || openZfsModuleAvailable() ? undefined : 'neither zfs-fuse nor the OpenZFS module is available'),
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function run(cmd: string, args: string[], timeoutMs = CMD_TIMEOUT_MS): Promise<string> {
  const r = await execa(cmd, args, { env: ENV, reject: false, stdin: 'ignore', timeout: timeoutMs });
  if (r.exitCode !== 0 || r.failed) {
    const out = `${String(r.stderr)}\n${String(r.stdout)}`.trim();
    const why = r.timedOut ? `timed out after ${timeoutMs} ms` : (r.exitCode ?? r.signal ?? r.code ?? 'no exit code');
    throw new Error(`${cmd} ${args.join(' ')} failed (${why}): ${out}`);
  }
  return String(r.stdout);
}

async function tryRun(cmd: string, args: string[], timeoutMs = CMD_TIMEOUT_MS): Promise<{ ok: boolean; out: string }> {
  const r = await execa(cmd, args, { env: ENV, reject: false, stdin: 'ignore', timeout: timeoutMs });
  return { ok: r.exitCode === 0 && !r.failed, out: `${String(r.stderr)}\n${String(r.stdout)}`.trim() };
}

async function zpoolAnswers(): Promise<{ ok: boolean; out: string }> {
  return tryRun('zpool', ['list', '-H', '-o', 'name'], 20_000);
}

function procComm(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  } catch {
    return '';
  }
}

async function ensureDevFuse(): Promise<void> {
  if (existsSync('/dev/fuse')) return;
  if (findTool('modprobe')) await tryRun('modprobe', ['fuse']);
  if (existsSync('/dev/fuse')) return;
  // The fuse driver may be built in with no devtmpfs node (containers): make it.
  await run('mknod', ['-m', '0666', '/dev/fuse', 'c', '10', '229']);
}

let ready: Promise<'zfs-fuse' | 'openzfs'> | undefined;

/**
 * Makes `zpool`/`zfs` usable: starts the zfs-fuse daemon (or loads the
 * OpenZFS module) if needed and waits until `zpool list` answers. Once per process.
 */
export function ensureZfsReady(): Promise<'zfs-fuse' | 'openzfs'> {
  ready ??= (async () => {
    const fuse = zfsFuseBinary();
    let probe = await zpoolAnswers();
    if (probe.ok) return fuse ? 'zfs-fuse' : 'openzfs';
    if (fuse) {
      await ensureDevFuse();
      await mkdir('/var/run/zfs', { recursive: true });
      await mkdir('/var/lib/zfs', { recursive: true });
      await mkdir('/etc/zfs', { recursive: true });
      // zfs-fuse exits 1, silently, when its pid file exists, even for a dead pid.
      const pidFile = '/var/run/zfs-fuse.pid';
      if (existsSync(pidFile)) {
        const pid = Number(readFileSync(pidFile, 'utf8').trim());
        if (Number.isInteger(pid) && pid > 0 && pidAlive(pid) && /zfs-fuse/.test(procComm(pid))) {
          throw new Error(`zfs-fuse (pid ${pid}) is running but zpool does not answer: ${probe.out}`);
        }
        rmSync(pidFile, { force: true });
      }
      // No kstat FUSE mount at /zfs-kstat: one mount less to leak.
      await run(fuse, ['--pidfile', pidFile, '--no-kstat-mount']);
    } else if (findTool('modprobe')) {
      await tryRun('modprobe', ['zfs']);
    }
    const deadline = Date.now() + 30_000;
    while (!(probe = await zpoolAnswers()).ok) {
      if (Date.now() > deadline) throw new Error(`ZFS did not become ready: ${probe.out}`);
      await sleep(200);
    }
    return fuse ? 'zfs-fuse' : 'openzfs';
  })();
  ready.catch(() => {
    ready = undefined;
  });
  return ready;
}

// ---- pools -----------------------------------------------------------------------

export interface TestPool {
  /** Pool name, also its root dataset. */
  readonly name: string;
  readonly image: string;
  /** An empty directory for mountpoints of this pool's datasets. */
  readonly mountBase: string;
  readonly sizeMiB: number;
  /** Destroys the pool and removes its image and mount directory; idempotent. */
  destroy(): Promise<void>;
}

export interface TestPoolOptions {
  /** Image size; default 2048 MiB (sparse, costs nothing until written). Minimum 64 (SPA_MINDEVSIZE). */
  sizeMiB?: number;
  /** Short tag in the pool name, e.g. the test file's name. */
  tag?: string;
}

const live = new Set<TestPool>();
let seq = 0;

function pidAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as { code?: string }).code === 'EPERM';
  }
}

async function destroyPool(name: string): Promise<void> {
  // Plain destroy first: -f on zfs-fuse lazily detaches busy mounts and can wedge the daemon.
  let last = '';
  for (let i = 0; i < 5; i++) {
    const r = await tryRun('zpool', ['destroy', name]);
    if (r.ok || /no such pool/.test(r.out)) return;
    last = r.out;
    await sleep(200 * (i + 1));
  }
  const r = await tryRun('zpool', ['destroy', '-f', name]);
  if (!r.ok && !/no such pool/.test(r.out)) throw new Error(`zpool destroy ${name}: ${last} / ${r.out}`);
}

/** Destroys pools (and images) left by test processes that no longer run. */
export async function reapStalePools(): Promise<string[]> {
  const reaped: string[] = [];
  const r = await tryRun('zpool', ['list', '-H', '-o', 'name'], 20_000);
  if (r.ok) {
    for (const name of r.out.split('\n').map((l) => l.trim())) {
      const m = new RegExp(`^${POOL_PREFIX}(\\d+)-`).exec(name);
      if (!m || pidAlive(Number(m[1]))) continue;
      await destroyPool(name).catch(() => undefined);
      reaped.push(name);
    }
  }
  let files: string[] = [];
  try {
    files = readdirSync(workDir());
  } catch {
    // no work dir yet
  }
  for (const f of files) {
    const m = new RegExp(`^(?:pool|mnt)-${POOL_PREFIX}(\\d+)-`).exec(f);
    if (m && !pidAlive(Number(m[1]))) rmSync(join(workDir(), f), { recursive: true, force: true });
  }
  return reaped;
}

/** Creates a pool on a sparse image file. Call ensureZfsReady() first (describeZfs does). */
export async function createTestPool(opts: TestPoolOptions = {}): Promise<TestPool> {
  const sizeMiB = opts.sizeMiB ?? 2048;
  if (sizeMiB < 64) throw new Error('a pool needs at least 64 MiB');
  await reapStalePools();
  const tag = (opts.tag ?? 't').toLowerCase().replace(/[^a-z0-9]+/g, '').slice(0, 16) || 't';
  const name = `${POOL_PREFIX}${process.pid}-${tag}-${++seq}`;
  await mkdir(workDir(), { recursive: true });
  const image = join(workDir(), `pool-${name}.img`);
  const mountBase = join(workDir(), `mnt-${name}`);
  const fh = await open(image, 'wx');
  try {
    await fh.truncate(sizeMiB * 1024 * 1024);
  } finally {
    await fh.close();
  }
  await mkdir(mountBase, { recursive: true });
  let gone = false;
  const pool: TestPool = {
    name,
    image,
    mountBase,
    sizeMiB,
    async destroy() {
      if (gone) return;
      gone = true;
      live.delete(pool);
      try {
        await destroyPool(name);
      } finally {
        await rm(image, { force: true });
        await rm(mountBase, { recursive: true, force: true });
      }
    },
  };
  try {
    await run('zpool', ['create', '-f', '-m', 'none', name, image]);
  } catch (e) {
    gone = true;
    await rm(image, { force: true });
    await rm(mountBase, { recursive: true, force: true });
    throw e;
  }
  live.add(pool);
  return pool;
}

export async function destroyAllTestPools(): Promise<void> {
  const errors: unknown[] = [];
  for (const p of [...live]) await p.destroy().catch((e: unknown) => errors.push(e));
  if (errors.length) throw new AggregateError(errors, 'test pool teardown failed');
}

// Last resort when a test file forgets afterAll or the process exits early.
process.once('exit', () => {
  for (const p of live) {
    try {
      execaSync('zpool', ['destroy', p.name], { env: ENV, reject: false, timeout: 30_000 });
      rmSync(p.image, { force: true });
      rmSync(p.mountBase, { recursive: true, force: true });
    } catch {
      // nothing more to do at exit
    }
  }
});

// ---- describe ----------------------------------------------------------------------

export interface ZfsTestContext {
  /** The pool of this describe block (set in beforeAll). */
  readonly pool: TestPool;
  /** 'zfs-fuse' or 'openzfs'. */
  readonly flavor: 'zfs-fuse' | 'openzfs';
}

/**
 * A describe block with its own fresh pool: ZFS made ready and the pool
 * created in beforeAll, destroyed in afterAll. Skipped locally / failing under
 * CI when ZFS cannot be used here.
 */
export function describeZfs(title: string, fn: (ctx: ZfsTestContext) => void, opts: TestPoolOptions = {}): void {
  describeRealStorage(title, zfsMissing(), () => {
    let pool: TestPool | undefined;
    let flavor: 'zfs-fuse' | 'openzfs' | undefined;
    const ctx: ZfsTestContext = {
      get pool() {
        if (!pool) throw new Error('the test pool was not created (see the beforeAll failure)');
        return pool;
      },
      get flavor() {
        if (!flavor) throw new Error('ZFS is not ready (see the beforeAll failure)');
        return flavor;
      },
    };
    beforeAll(async () => {
      flavor = await ensureZfsReady();
      pool = await createTestPool({ tag: opts.tag ?? title, ...(opts.sizeMiB ? { sizeMiB: opts.sizeMiB } : {}) });
    }, 120_000);
    afterAll(async () => {
      await pool?.destroy();
    }, 120_000);
    fn(ctx);
  });
}
