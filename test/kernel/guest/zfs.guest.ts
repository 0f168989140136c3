// Runs INSIDE the kernel tier's guest (Debian 6.1 kernel, OpenZFS 2.x from
// bookworm-backports), bundled by the host (test/kernel/lib/guest-jest.ts) and run by jest
// there. The backend-agnostic conformance suite, unchanged, against OpenZFS with
//   - the zvol layout (what OpenZFS gets by default: features().volumes), and
//   - the file layout (a sparse disk.raw per dataset, zfs-fuse's layout; here forced by
//     turning volumes off in the detected features, so snapshots read through .zfs/snapshot).
// Then a few checks only real OpenZFS can answer (zvol properties, snapshot devices).
//
// Environment (set by test/kernel/vm.test.ts):
//   KT_ZFS_POOL      the pool the host made on a virtio disk
//   KT_ZFS_LAYOUTS   comma-separated: zvol,file
import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { existsSync } from 'node:fs';
import { once } from 'node:events';
import { open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { ZfsBackend, type ZfsBackendOptions } from '../../../src/backends/zfs/backend.js';
import { DEFAULT_RETRY, ZfsCli, type ZfsLogger } from '../../../src/backends/zfs/cli.js';
import { execaExec, type Exec } from '../../../src/backends/zfs/exec.js';
import type { SmError } from '../../../src/errors.js';
import type { ZfsFeatures } from '../../../src/backends/zfs/features.js';
import { formatSnapshotName } from '../../../src/lineage/names.js';
import { backendConformance, hashOf, snapshotMeta, vdiMeta, writePattern, type ConformanceTarget } from '../../conformance/backend-conformance.js';
import { env, fillFile } from './fill.js';

const MiB = 1024 * 1024;
const POOL = env('KT_ZFS_POOL');
const LAYOUTS = env('KT_ZFS_LAYOUTS').split(',');

const quiet: ZfsLogger = { debug: () => undefined, info: () => undefined, warn: () => undefined };
/** Every zfs/zpool command run, for the checks below. */
const ran: string[][] = [];
const recording: Exec = (file, args, o) => {
  ran.push([file.split('/').pop() ?? file, ...args]);
  return execaExec(file, args, o);
};

/**
 * Another process holding the block device `path` open, as udev's blkid does to a fresh
 * zvol for a moment: a `sleep` whose stdin is the device. ZFS refuses to destroy an open
 * zvol ("dataset is busy") until it is closed.
 */
async function holdOpen(path: string): Promise<{ release: () => Promise<void> }> {
  const fh = await open(path, 'r');
  try {
    const child = spawn('/bin/sleep', ['600'], { stdio: [fh.fd, 'ignore', 'ignore'] });
    await once(child, 'spawn');
    const exited = once(child, 'exit');
    return {
      release: async () => {
        child.kill('SIGKILL');
        await exited;
      },
    };
  } finally {
    await fh.close(); // the child keeps its own descriptor
  }
}

/**
 * Whether `path` stayed there for `ms` after it was found (checked every 10 ms). A zvol
 * made with `-o volmode=dev` flickers: its device appears, vanishes and comes back.
 */
async function stays(path: string, ms = 1500): Promise<boolean> {
  for (const t0 = Date.now(); Date.now() - t0 < ms; ) {
    if (!existsSync(path)) return false;
    await new Promise((r) => setTimeout(r, 10));
  }
  return true;
}

async function detected(): Promise<ZfsFeatures> {
  return new ZfsCli({ logger: quiet }).features();
}

function zfsTarget(tag: string, layout: 'zvol' | 'file'): () => Promise<ConformanceTarget> {
  return async () => {
    const f = await detected();
    const root = `${POOL}/${tag}/sr`;
    const opts: ZfsBackendOptions = {
      exec: recording,
      logger: quiet,
      mountpoint: `/mnt/kt/${tag}`,
      ...(layout === 'file' ? { features: { ...f, volumes: false } } : {}),
    };
    const cli = new ZfsCli({ logger: quiet });
    const ballast = `${POOL}/${tag}-ballast`;
    return {
      backend: new ZfsBackend(root, opts),
      reopen: () => new ZfsBackend(root, opts),
      listRoot: async () => ((await cli.exists(root)) ? (await cli.listNames(root, { recursive: true })).filter((n) => n !== root).sort() : []),
      teardown: async () => undefined, // the pool goes with the VM
      fill: async () => {
        const mp = `/mnt/kt/${tag}-ballast`;
        await cli.createFilesystem(ballast, { props: { mountpoint: mp, compression: 'off' } });
        await fillFile(join(mp, 'ballast'));
      },
      unfill: async () => {
        await cli.destroy(ballast);
      },
      foreign: async () => {
        const fr = `${POOL}/${tag}-foreign-${randomUUID().slice(0, 8)}`;
        await cli.createFilesystem(fr);
        await cli.createFilesystem(`${fr}/somebody-elses-data`);
        return new ZfsBackend(fr, opts);
      },
    };
  };
}

describe('the guest runs OpenZFS 2.x', () => {
  test('zfs version: OpenZFS 2.x userland and kernel module, zvols available', async () => {
    const f = await detected();
    expect(f.flavor).toBe('openzfs');
    expect(f.volumes).toBe(true);
    expect(f.version?.major).toBe(2);
    expect(f.version?.userland).toMatch(/^zfs-2\./);
    expect(f.version?.kmod).toMatch(/^zfs-kmod-2\./);
  });
});

for (const layout of LAYOUTS) {
  if (layout !== 'zvol' && layout !== 'file') throw new Error(`KT_ZFS_LAYOUTS: unknown layout ${layout}`);
  const tag = `conf-${layout}`;
  backendConformance(`zfs on OpenZFS 2.x, ${layout} layout`, zfsTarget(tag, layout));
}

if (LAYOUTS.includes('zvol')) {
  describe('OpenZFS zvol layout specifics', () => {
    const cli = new ZfsCli({ logger: quiet });
    const root = `${POOL}/spec-zvol/sr`;
    const sr = randomUUID();
    let b: ZfsBackend;
    let clock = Date.now();
    const tick = (): number => (clock = Math.max(clock + 1, Date.now()));

    beforeAll(async () => {
      // The conformance suites' ballast went with `zfs destroy`, which OpenZFS frees in the
      // background (async_destroy): let it finish so the writes below never race it.
      await execa('zpool', ['wait', '-t', 'free', POOL], { stdin: 'ignore' });
      b = new ZfsBackend(root, { exec: recording, logger: quiet });
      await b.createSr(sr);
      await b.attachSr(sr);
    });

    test('a VDI is a sparse 16K-block zvol with volmode=dev at /dev/zvol/<root>/<id>; a snapshot reads through its read-only device', async () => {
      // writePattern writes up to 48 MiB (the conformance suite's image size).
      const v = await b.create(randomUUID(), vdiMeta('zvol layout'), 48 * MiB + 1, tick());
      expect(v.virtual_size).toBe(48 * MiB + 16384); // whole volblocks
      const d = await cli.getDataset(v.handle, [], ['volmode', 'volblocksize', 'refreservation']);
      expect(d?.type).toBe('volume');
      expect(d?.props.get('volmode')?.value).toBe('dev');
      expect(d?.props.get('volblocksize')?.value).toBe('16384');
      expect(d?.props.get('refreservation')?.value).toBe('0');
      const p = await b.datapath(v);
      expect(p).toBe(`/dev/zvol/${root}/${v.id}`);
      // volmode=dev is inherited from the SR root, so the device came once and stays.
      expect(d?.props.get('volmode')?.source).toBe('inherited');
      expect(await stays(p)).toBe(true);
      expect((await stat(p)).isBlockDevice()).toBe(true);
      const h = await writePattern(b, v, 'zvol');
      const sid = randomUUID();
      const t = tick();
      const s = await b.snapshot(sid, v, formatSnapshotName(t, sid), 'snapshot', snapshotMeta(v.id, t));
      const sp = await b.datapath(s);
      expect(sp).toBe(`/dev/zvol/${s.handle}`);
      expect(await hashOf(sp)).toBe(h);
      await expect(open(sp, 'r+')).rejects.toMatchObject({ code: 'EROFS' });
      await writePattern(b, v, 'zvol-later');
      expect(await hashOf(sp)).toBe(h);
      // A clone's device, too, comes once and stays (clones inherit native properties from the root).
      const c = await b.clone(randomUUID(), s, vdiMeta('zvol clone'), tick());
      const cp = await b.datapath(c);
      expect(await stays(cp)).toBe(true);
      expect(await hashOf(cp)).toBe(h);
      await b.markTombstone(c);
      await b.destroy(c);
      await b.markTombstone(s);
      await b.destroy(s);
      await b.markTombstone(v);
      await b.destroy(v);
    });

    /** A backend on the same SR whose every `zfs destroy` result is reported to `seen` (after `recording`). */
    function watchingDestroys(seen: (r: { ok: boolean; stderr: string }) => void): ZfsBackend {
      const exec: Exec = async (file, args, o) => {
        const r = await recording(file, args, o);
        if (args[0] === 'destroy') seen({ ok: r.exitCode === 0, stderr: r.stderr.trim() });
        return r;
      };
      return new ZfsBackend(root, { exec, logger: quiet });
    }

    test('a zvol another process holds open for a moment (udev, blkid) is destroyed after bounded retries of "dataset is busy"', async () => {
      const v = await b.create(randomUUID(), vdiMeta('busy for a second'), 16 * MiB, tick());
      const held = await holdOpen(await b.datapath(v));
      // Let go 1 s after ZFS first said busy, so the retries (not luck) are what succeeds.
      const destroys: Array<{ ok: boolean; stderr: string }> = [];
      let releasing: Promise<void> | undefined;
      const bb = watchingDestroys((r) => {
        destroys.push(r);
        if (!r.ok && releasing === undefined) releasing = new Promise((res) => setTimeout(res, 1000)).then(() => held.release());
      });
      try {
        await bb.markTombstone(v);
        await bb.destroy(v);
      } finally {
        await (releasing ?? held.release());
      }
      expect(destroys[0]).toEqual({ ok: false, stderr: expect.stringMatching(/dataset is busy/) });
      expect(destroys.at(-1)).toEqual({ ok: true, stderr: '' });
      expect(destroys.length).toBeLessThanOrEqual(DEFAULT_RETRY.attempts);
      expect(await cli.exists(v.handle)).toBe(false);
      expect((await b.inventory()).some((o) => o.id === v.id)).toBe(false);
    });

    test('a zvol held open past the bound: destroy fails cleanly (VDIInUse) after the bounded retries, nothing is lost, and it goes once released', async () => {
      const v = await b.create(randomUUID(), vdiMeta('busy for good'), 48 * MiB, tick());
      const h = await writePattern(b, v, 'held');
      const sid = randomUUID();
      const t = tick();
      const s = await b.snapshot(sid, v, formatSnapshotName(t, sid), 'snapshot', snapshotMeta(v.id, t));
      const path = await b.datapath(v);
      const spath = await b.datapath(s);
      const destroys: Array<{ ok: boolean; stderr: string }> = [];
      const bb = watchingDestroys((r) => destroys.push(r));
      await bb.markTombstone(v);
      await bb.markTombstone(s);
      // The snapshot's device and the volume's device, each held by another process.
      for (const [obj, dev, data] of [[s, spath, h], [v, path, h]] as const) {
        destroys.length = 0;
        const held = await holdOpen(dev);
        try {
          const t0 = Date.now();
          const err = await bb.destroy(obj).then(() => undefined, (e: unknown) => e);
          const ms = Date.now() - t0;
          expect({ err: (err as SmError | undefined)?.kind, detail: (err as SmError | undefined)?.detail, runs: destroys.length, ok: destroys.filter((d) => d.ok).length }).toEqual({
            err: 'VDIInUse',
            detail: expect.stringMatching(/busy/),
            runs: DEFAULT_RETRY.attempts,
            ok: 0,
          });
          // Bounded: the retries' sleeps (1.5 s) plus five zfs runs, not a wait for the holder.
          expect(ms).toBeLessThan(60_000);
          // Nothing lost: the object is there, still a tombstone,
          const inv = await b.inventory();
          expect(inv.find((o) => o.id === obj.id)).toMatchObject({ id: obj.id, deleted: true });
        } finally {
          await held.release();
        }
        // with its bytes, at the same path. (OpenZFS removed the snapshot's device when the
        // first destroy found it busy, and the holder's reads failed from then on; datapath
        // brings the device back.)
        expect(await b.datapath(obj)).toBe(dev);
        expect(await hashOf(dev)).toBe(data);
        await bb.destroy(obj);
        expect((await b.inventory()).some((o) => o.id === obj.id)).toBe(false);
      }
    });

    test('the inventory is one zfs get, and no command any suite ran was recursive, forced or a promote', async () => {
      const before = ran.length;
      await b.inventory();
      expect(ran.length - before).toBe(1);
      const bad = ran.filter(
        (a) => (a[1] === 'destroy' && a.some((x) => /^-[a-zA-Z]*[rRfd]/.test(x))) || a[1] === 'promote' || (a[1] === 'rollback' && a.includes('-r')),
      );
      expect(bad).toEqual([]);
    });

    afterAll(async () => {
      await b?.deleteSr(sr).catch(() => undefined);
    });
  });
}
