// fcntl record locks interoperate with the stock SM's lock.py, which uses
// fcntl.lockf on /var/lock/sm/<ns>/<name>: tested both ways against python3.
import { execa, type ResultPromise } from 'execa';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lock, lockRoot } from '../../src/sr/locks.js';

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'flatsnap-lock-'));
  process.env.FLATSNAP_LOCK_DIR = dir;
});
afterAll(() => {
  delete process.env.FLATSNAP_LOCK_DIR;
  rmSync(dir, { recursive: true, force: true });
});

// Holds an exclusive lockf lock on argv[1] until stdin closes; prints "held" once it has it.
const HOLD = `
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
fcntl.lockf(fd, fcntl.LOCK_EX)
print("held", flush=True)
sys.stdin.read()
`;
// Tries the lock without blocking, as lock.py's acquireNoblock does.
const TRY = `
import fcntl, os, sys
fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)
try:
    fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    print("got")
except OSError:
    print("busy")
`;

// Returned wrapped: an execa process is a thenable, and returning it bare from an
// async function would wait for the process to exit.
async function pythonHolds(path: string): Promise<{ proc: ResultPromise }> {
  const proc = execa('/usr/bin/python3', ['-c', HOLD, path], { stdin: 'pipe' });
  await new Promise<void>((resolve, reject) => {
    proc.stdout!.once('data', () => resolve());
    proc.catch(reject);
  });
  return { proc };
}

test('the SR lock lives where lock.py puts it', () => {
  expect(Lock.sr('abc').path).toBe(join(lockRoot(), 'abc', 'sr'));
  expect(Lock.vdi('def').path).toBe(join(lockRoot(), 'def', 'vdi'));
});

test('a lock held by python lock.py-style lockf excludes flatsnap', async () => {
  const lock = Lock.sr('11111111-1111-4111-8111-111111111111');
  lock.tryAcquire(); // creates the directory and file
  lock.release();
  const { proc: py } = await pythonHolds(lock.path);
  expect(lock.tryAcquire()).toBe(false);
  py.stdin!.end();
  await py;
  expect(lock.tryAcquire()).toBe(true);
  lock.release();
});

test('a lock held by flatsnap excludes python', async () => {
  const lock = Lock.vdi('22222222-2222-4222-8222-222222222222');
  lock.acquire();
  try {
    const r = await execa('/usr/bin/python3', ['-c', TRY, lock.path]);
    expect(r.stdout).toBe('busy');
  } finally {
    lock.release();
  }
  const r = await execa('/usr/bin/python3', ['-c', TRY, lock.path]);
  expect(r.stdout).toBe('got');
});

test('a blocking acquire waits for python to let go', async () => {
  const lock = Lock.sr('33333333-3333-4333-8333-333333333333');
  lock.tryAcquire();
  lock.release();
  const { proc: py } = await pythonHolds(lock.path);
  const t0 = Date.now();
  setTimeout(() => py.stdin!.end(), 300);
  // acquire() blocks the event loop in F_SETLKW, so run it in a child process.
  const r = await execa(process.execPath, ['--import', 'tsx', '-e', `
    const { Lock } = await import(${JSON.stringify(join(process.cwd(), 'src/sr/locks.ts'))});
    const l = new Lock(${JSON.stringify(lock.path)}); l.acquire(); console.log('acquired'); l.release();
  `], { env: { FLATSNAP_LOCK_DIR: dir } });
  expect(r.stdout).toContain('acquired');
  expect(Date.now() - t0).toBeGreaterThanOrEqual(250);
  await py;
});

test('locks are re-entrant within a process, as in lock.py', () => {
  const lock = Lock.sr('44444444-4444-4444-8444-444444444444');
  lock.acquire();
  expect(lock.tryAcquire()).toBe(true);
  lock.release();
  lock.release();
  expect(lock.tryAcquire()).toBe(true);
  lock.release();
});
