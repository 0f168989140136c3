// Runs INSIDE the kernel tier's guest: the reflink backend's conformance suite, unchanged,
// on OCFS2 in local mode (mkfs.ocfs2 -M local, refcount feature), which only a real kernel
// has. Then what is specific to OCFS2: the backend knows it is on OCFS2, and snapshots
// share extents (FIEMAP's shared flag) instead of copying.
//
// Environment (set by test/kernel/vm.test.ts):
//   KT_OCFS2_MNT   where the host mounted the OCFS2 filesystem in the guest
import { randomUUID } from 'node:crypto';
import { mkdir, readdir, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { execa } from 'execa';
import { ReflinkBackend } from '../../../src/backends/reflink/backend.js';
import { SR_MARKER } from '../../../src/backends/reflink/names.js';
import { formatSnapshotName } from '../../../src/lineage/names.js';
import { backendConformance, hashOf, snapshotMeta, vdiMeta, writePattern, type ConformanceTarget } from '../../conformance/backend-conformance.js';
import { env, fillFile } from './fill.js';

const MiB = 1024 * 1024;
const MNT = env('KT_OCFS2_MNT');

function ocfs2Target(tag: string): () => Promise<ConformanceTarget> {
  return async () => {
    const base = join(MNT, tag);
    const dir = join(base, 'sr');
    await mkdir(dir, { recursive: true });
    const ballast = join(base, 'ballast');
    return {
      backend: new ReflinkBackend(dir),
      reopen: () => new ReflinkBackend(dir),
      listRoot: async () => (await readdir(dir)).filter((n) => n !== SR_MARKER).sort(),
      teardown: async () => undefined, // the filesystem goes with the VM
      fill: () => fillFile(ballast),
      unfill: async () => {
        await rm(ballast, { force: true });
        await execa('sync', ['-f', base], { stdin: 'ignore' });
      },
      foreign: async () => {
        const f = join(base, `foreign-${randomUUID()}`);
        await mkdir(f);
        await writeFile(join(f, 'disk.img'), 'somebody else’s data');
        return new ReflinkBackend(f);
      },
    };
  };
}

backendConformance('reflink on OCFS2 (local mode)', ocfs2Target('conf'));

describe('OCFS2 specifics', () => {
  const dir = join(MNT, 'spec', 'sr');
  const sr = randomUUID();
  let b: ReflinkBackend;

  beforeAll(async () => {
    await mkdir(dir, { recursive: true });
    b = new ReflinkBackend(dir);
    await b.createSr(sr);
    await b.attachSr(sr);
  });

  test('the backend sees OCFS2; a snapshot shares every extent with its source, and a write unshares only what it touches', async () => {
    expect(b.describe()).toMatch(/^ocfs2 at /);
    const v = await b.create(randomUUID(), vdiMeta('shared'), 48 * MiB, Date.now());
    const h = await writePattern(b, v, 'shared');
    const before = await b.stats();
    const sid = randomUUID();
    const t = Date.now() + 1;
    const s = await b.snapshot(sid, v, formatSnapshotName(t, sid), 'snapshot', snapshotMeta(v.id, t));
    const after = await b.stats();
    expect(after.physical_utilisation - before.physical_utilisation).toBeLessThan(2 * MiB);
    const hs = await b.health(s);
    expect(hs.mapped_bytes).toBe(4 * MiB);
    expect(hs.shared_bytes).toBe(4 * MiB);
    expect(await hashOf(await b.datapath(s))).toBe(h);
    await writePattern(b, v, 'rewritten');
    expect(await hashOf(await b.datapath(s))).toBe(h);
    const hv = await b.health(v);
    expect(hv.shared_bytes).toBeLessThan(4 * MiB);
    for (const o of [s, v]) {
      await b.markTombstone(o);
      await b.destroy(o);
    }
    expect((await readdir(dir)).filter((n) => n !== SR_MARKER)).toEqual([]);
  });

  afterAll(async () => {
    await b?.deleteSr(sr).catch(() => undefined);
  });
});
