// The cross-host lock (src/sr/cluster-lock.ts) is flock(2) on a file: it excludes
// other processes (here: util-linux flock(1), which the kernel tier also uses across
// OCFS2 nodes, and a second Node process running ClusterLock), and other open file
// descriptions within one process. Bounded waits fail with LockErr.
import { execa, type ResultPromise } from 'execa';
import { mkdtempSync, renameSync, rmSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { SmError } from '../../src/errors.js';
import { ClusterLock } from '../../src/sr/cluster-lock.js';

const FLOCK = '/usr/bin/flock';

let dir: string;
let file: string;
beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'flatsnap-clock-'));
  file = join(dir, '.flatsnap-sr.json');
  writeFileSync(file, '{}\n');
});
afterEach(() => rmSync(dir, { recursive: true, force: true }));

/** flock(1) holding `file` (-x or -s) until its stdin closes; resolves once it holds it. */
async function flockHolds(path: string, flag: '-x' | '-s'): Promise<{ proc: ResultPromise }> {
  const proc = execa(FLOCK, [flag, path, '/bin/sh', '-c', 'echo held; cat >/dev/null'], { stdin: 'pipe' });
  await new Promise<void>((resolve, reject) => {
    proc.stdout!.once('data', () => resolve());
    proc.catch(reject);
  });
  return { proc };
}

/** flock(1) -n: 0 if it could take the lock at once, 1 if not. */
async function flockTry(path: string, flag: '-x' | '-s'): Promise<number> {
  const r = await execa(FLOCK, ['-n', flag, path, '/bin/true'], { reject: false });
  return r.exitCode ?? -1;
}

test('another process holding flock -x keeps both modes out until it lets go', async () => {
  const { proc } = await flockHolds(file, '-x');
  const l = new ClusterLock(file);
  expect(l.tryAcquire('shared')).toBe('busy');
  expect(l.tryAcquire('exclusive')).toBe('busy');
  proc.stdin!.end();
  await proc;
  expect(l.tryAcquire('exclusive')).toBe('held');
  expect(l.held).toBe('exclusive');
  l.release();
  expect(l.held).toBeUndefined();
});

test('shared holders coexist; exclusive excludes everyone (seen from flock(1))', async () => {
  const l = new ClusterLock(file);
  expect(l.tryAcquire('shared')).toBe('held');
  expect(await flockTry(file, '-s')).toBe(0);
  expect(await flockTry(file, '-x')).toBe(1);
  l.release();
  expect(l.tryAcquire('exclusive')).toBe('held');
  expect(await flockTry(file, '-s')).toBe(1);
  l.release();
  expect(await flockTry(file, '-x')).toBe(0);
});

test('two ClusterLocks in one process exclude each other (flock is per open file description)', () => {
  const a = new ClusterLock(file);
  const b = new ClusterLock(file);
  expect(a.tryAcquire('exclusive')).toBe('held');
  expect(b.tryAcquire('shared')).toBe('busy');
  a.release();
  expect(b.tryAcquire('shared')).toBe('held');
  expect(a.tryAcquire('shared')).toBe('held');
  expect(() => a.tryAcquire('shared')).toThrow(/already held/);
  a.release();
  b.release();
});

test('two Node processes running ClusterLock exclude each other', async () => {
  const script = `
    const { ClusterLock } = await import(${JSON.stringify(join(process.cwd(), 'src/sr/cluster-lock.ts'))});
    const l = new ClusterLock(${JSON.stringify(file)});
    if (!(await l.acquire('exclusive', 10000))) process.exit(3);
    console.log('held');
    process.stdin.resume();
    process.stdin.on('end', () => { l.release(); process.exit(0); });
  `;
  const child = execa(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', script], { stdin: 'pipe' });
  await new Promise<void>((resolve, reject) => {
    child.stdout!.once('data', () => resolve());
    child.catch(reject);
  });
  const l = new ClusterLock(file);
  expect(l.tryAcquire('shared')).toBe('busy');
  const t0 = Date.now();
  setTimeout(() => child.stdin!.end(), 300);
  expect(await l.acquire('shared', 20_000)).toBe(true);
  expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
  l.release();
  expect((await child).exitCode).toBe(0);
});

test('a bounded wait fails with LockErr, and a waiter gets the lock once it is released', async () => {
  const { proc } = await flockHolds(file, '-s');
  const l = new ClusterLock(file);
  const e = await l.acquire('exclusive', 300).catch((x: unknown) => x);
  expect(e).toBeInstanceOf(SmError);
  expect((e as SmError).kind).toBe('LockErr');
  expect((e as SmError).message).toMatch(/another host or process/);
  expect(l.held).toBeUndefined();
  // shared next to a shared holder: at once
  expect(await l.acquire('shared', 300)).toBe(true);
  l.release();
  setTimeout(() => proc.stdin!.end(), 200);
  expect(await l.acquire('exclusive', 20_000)).toBe(true);
  l.release();
  await proc;
});

test('no file, nothing to lock: absent, and acquire resolves false', async () => {
  const l = new ClusterLock(join(dir, 'missing'));
  expect(l.tryAcquire('exclusive')).toBe('absent');
  expect(await l.acquire('shared', 100)).toBe(false);
  expect(l.held).toBeUndefined();
});

test('a file removed while a process waits (sr_delete) leaves the waiter with nothing to lock', async () => {
  const holder = new ClusterLock(file);
  expect(holder.tryAcquire('exclusive')).toBe('held');
  const waiter = new ClusterLock(file);
  const p = waiter.acquire('shared', 20_000);
  setTimeout(() => {
    unlinkSync(file);
    holder.release();
  }, 150);
  expect(await p).toBe(false);
});

test('a file replaced under the path is a different lock: the holder of the new one is not excluded by the old', () => {
  // Why the lock file must never be replaced (the SR marker is written once), and why a
  // holder checks after locking that the path still names what it locked.
  const old = new ClusterLock(file);
  expect(old.tryAcquire('exclusive')).toBe('held');
  writeFileSync(join(dir, 'new'), '{}\n');
  renameSync(join(dir, 'new'), file);
  const fresh = new ClusterLock(file);
  expect(fresh.tryAcquire('exclusive')).toBe('held');
  fresh.release();
  old.release();
});
