// Real storage for the benchmarks, through the test harnesses
// (test/integration/harness/zfs-pool.ts and loopfs.ts), plus the counters the
// benchmarks read: bytes written to a device, space used, extents.
//
// ZFS pools are zfs-fuse (or OpenZFS) pools on a sparse image file, as the harness makes
// them; with { loop: true } the image is put behind a loop device first, so that the
// bytes the pool writes can be read from /sys/block/loopN/stat for this pool alone (the
// zfs-fuse daemon is shared by every pool on the machine). Pools are never force-unmounted.
import { execa } from 'execa';
import { existsSync, readFileSync, readdirSync, rmSync, rmdirSync, statfsSync } from 'node:fs';
import { mkdir, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';
import { loadTs, sleep } from './common.mjs';

const zfsHarness = await loadTs('test/integration/harness/zfs-pool.ts');
const loopHarness = await loadTs('test/integration/harness/loopfs.ts');

const ENV = { PATH: '/usr/local/sbin:/usr/sbin:/sbin:/usr/local/bin:/usr/bin:/bin', LC_ALL: 'C', LANG: 'C' };

export async function run(cmd, args, { timeoutMs = 600_000, input } = {}) {
  const r = await execa(cmd, args, { env: ENV, reject: false, timeout: timeoutMs, ...(input !== undefined ? { input } : { stdin: 'ignore' }) });
  if (r.exitCode !== 0 || r.failed) throw new Error(`${cmd} ${args.join(' ')} failed (${r.exitCode ?? r.signal ?? r.code}): ${`${r.stderr}\n${r.stdout}`.trim()}`);
  return r.stdout;
}

// ---- ZFS ---------------------------------------------------------------------------------

const LOOP_POOL_PREFIX = 'fsbench-';

function pidAlive(pid) {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return e.code === 'EPERM';
  }
}

async function destroyPool(name) {
  for (let i = 0; i < 5; i++) {
    const r = await execa('zpool', ['destroy', name], { env: ENV, reject: false, stdin: 'ignore' });
    if (r.exitCode === 0 || /no such pool/.test(r.stderr)) return;
    await sleep(300 * (i + 1));
  }
  await run('zpool', ['destroy', '-f', name]);
}

async function detachLoop(dev) {
  for (let i = 0; i < 10; i++) {
    const r = await execa('losetup', ['-d', dev], { env: ENV, reject: false, stdin: 'ignore' });
    if (r.exitCode === 0 || /No such device/i.test(r.stderr)) return;
    await sleep(200 * (i + 1));
  }
  throw new Error(`losetup -d ${dev} kept failing`);
}

/** Loop-backed bench pools of dead runs of this script: destroyed, their loops and images removed. */
async function reapLoopPools() {
  const r = await execa('zpool', ['list', '-H', '-o', 'name'], { env: ENV, reject: false, stdin: 'ignore' });
  for (const name of String(r.stdout ?? '').split('\n')) {
    const m = new RegExp(`^${LOOP_POOL_PREFIX}(\\d+)-`).exec(name);
    if (m && !pidAlive(Number(m[1]))) await destroyPool(name).catch(() => undefined);
  }
  const dir = zfsHarness.workDir();
  if (!existsSync(dir)) return;
  for (const f of readdirSync(dir)) {
    const m = new RegExp(`^pool-${LOOP_POOL_PREFIX}(\\d+)-`).exec(f);
    if (!m || pidAlive(Number(m[1]))) continue;
    const img = join(dir, f);
    const l = await execa('losetup', ['-j', img], { env: ENV, reject: false });
    for (const line of String(l.stdout ?? '').split('\n')) {
      const dev = /^(\/dev\/loop\d+):/.exec(line)?.[1];
      if (dev) await detachLoop(dev).catch(() => undefined);
    }
    rmSync(img, { force: true });
  }
}

/** Mountpoint directories of the pool's datasets (the raw-file layout mounts below /var/run/sr-mount). */
async function mountpointsOf(pool) {
  const r = await execa('zfs', ['get', '-H', '-r', '-o', 'value', 'mountpoint', pool], { env: ENV, reject: false, stdin: 'ignore' });
  return String(r.stdout ?? '')
    .split('\n')
    .filter((m) => m.startsWith('/'));
}

/** After the pool is gone: its mountpoint dirs, and their parents up to /var/run/sr-mount, if empty and not mounted. */
function removeMountDirs(dirs) {
  const mounted = new Set(readFileSync('/proc/self/mounts', 'utf8').split('\n').map((l) => l.split(' ')[1]));
  for (const d of [...dirs].sort((a, b) => b.length - a.length)) {
    for (let x = d; x.startsWith('/var/run/sr-mount/') || x.startsWith('/run/sr-mount/'); x = dirname(x)) {
      try {
        if (mounted.has(x) || readdirSync(x).length > 0) break;
        rmdirSync(x);
      } catch {
        break;
      }
    }
  }
}

/**
 * A ZFS pool on a sparse image of `sizeMiB`; registered for cleanup (pool destroyed, image
 * and loop device removed, the SR mountpoint dirs the driver made below /var/run/sr-mount
 * removed). Returns { name, flavor, device (loop only), destroy() }.
 */
export async function zfsPool(cleanup, { sizeMiB, tag, loop = false }) {
  const flavor = await zfsHarness.ensureZfsReady();
  if (!loop) {
    const p = await zfsHarness.createTestPool({ sizeMiB, tag });
    const destroy = cleanup.add(`destroy pool ${p.name}`, async () => {
      const dirs = await mountpointsOf(p.name);
      await p.destroy();
      removeMountDirs(dirs);
    });
    return { name: p.name, flavor, device: null, destroy };
  }
  await reapLoopPools();
  const name = `${LOOP_POOL_PREFIX}${process.pid}-${tag}`;
  const dir = zfsHarness.workDir();
  await mkdir(dir, { recursive: true });
  const image = join(dir, `pool-${name}.img`);
  await run('truncate', ['-s', `${sizeMiB}M`, image]);
  const removeImage = cleanup.add(`remove ${image}`, () => rm(image, { force: true }));
  const device = (await run('losetup', ['--find', '--show', image])).trim();
  const detach = cleanup.add(`losetup -d ${device}`, () => detachLoop(device));
  await run('zpool', ['create', '-f', '-m', 'none', name, device]);
  const destroyIt = cleanup.add(`destroy pool ${name}`, async () => {
    const dirs = await mountpointsOf(name);
    await destroyPool(name);
    removeMountDirs(dirs);
  });
  const destroy = async () => {
    await destroyIt();
    await detach();
    await removeImage();
  };
  return { name, flavor, device, destroy };
}

/** Numeric ZFS properties (bytes) of a dataset: zfs get -Hp. */
export async function zfsProps(ds, props) {
  const out = await run('zfs', ['get', '-Hp', '-o', 'property,value', props.join(','), ds]);
  const r = {};
  for (const line of out.split('\n')) {
    const [k, v] = line.split('\t');
    if (k) r[k] = Number(v);
  }
  return r;
}

let quiesceSeq = 0;
/**
 * Waits until everything written so far is on the pool's disk: a property change is a
 * sync task, and `zfs set` returns once its transaction group has synced.
 */
export async function zfsQuiesce(pool) {
  await run('zfs', ['set', `flatsnapbench:q=${++quiesceSeq}`, pool]);
}

// ---- loop filesystems ---------------------------------------------------------------------

/** An XFS (reflink=1) loop filesystem; extra mkfs args e.g. ['-b', 'size=2048']. */
export async function xfsLoop(cleanup, { sizeMiB, mkfsArgs = [], directIo = false }) {
  const fs = await loopHarness.createLoopFs('xfs', { sizeMiB, mkfsArgs });
  const teardown = cleanup.add(`tear down xfs at ${fs.mountpoint}`, () => fs.teardown());
  if (directIo) await run('losetup', ['--direct-io=on', fs.device]);
  return { mountpoint: fs.mountpoint, device: fs.device, image: fs.image, teardown };
}

// ---- counters ----------------------------------------------------------------------------

/** Bytes written to a block device since boot (/sys/block/<dev>/stat, sectors of 512 B). */
export function deviceWrittenBytes(device) {
  const f = readFileSync(`/sys/block/${basename(device)}/stat`, 'utf8').trim().split(/\s+/).map(Number);
  return f[6] * 512;
}

/** Bytes in use on the filesystem holding `path` (statfs: blocks - free). */
export function fsUsedBytes(path) {
  const s = statfsSync(path);
  return (s.blocks - s.bfree) * s.bsize;
}

/** syncfs(2) of the filesystem holding `path`. */
export async function syncFs(path) {
  await run('sync', ['-f', path]);
}

/** Extents of a file as filefrag counts them. */
export async function filefragExtents(path) {
  const out = await run('filefrag', [path]);
  const m = /: (\d+) extents? found/.exec(out);
  return m ? Number(m[1]) : NaN;
}
