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
import { randomUUID } from 'node:crypto';
import { open, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { ZfsBackend, type ZfsBackendOptions } from '../../../src/backends/zfs/backend.js';
import { ZfsCli, type ZfsLogger } from '../../../src/backends/zfs/cli.js';
import { execaExec, type Exec } from '../../../src/backends/zfs/exec.js';
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
      await b.markTombstone(s);
      await b.destroy(s);
      await b.markTombstone(v);
      await b.destroy(v);
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
