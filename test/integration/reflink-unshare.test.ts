// The unshare of a live reflink image after a snapshot (src/backends/reflink/unshare.ts)
// on a real XFS (reflink=1, 2 KiB blocks, as the fragmentation bench): the snapshots move
// off the live image's blocks (onto the previous snapshot's equal blocks, the rest onto a
// copy), so the guest's writes then land in place; every byte of every file stays the
// same, a second snapshot costs only what the guest wrote, another VDI's clone is never
// touched, a guest write during the run is kept, and an interruption at any step leaves
// every file intact with only a temp file that the SR's reaping removes.
import { execa } from 'execa';
import { randomUUID } from 'node:crypto';
import { chmod, mkdir, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { StoredObject } from '../../src/backends/backend.js';
import { ReflinkBackend } from '../../src/backends/reflink/backend.js';
import { extentsFrom } from '../../src/backends/reflink/extent-map.js';
import { SR_MARKER, TEMP_PREFIX } from '../../src/backends/reflink/names.js';
import { removeLeftovers } from '../../src/backends/reflink/pool.js';
import { relayoutVdi, type RelayoutStep } from '../../src/backends/reflink/relayout.js';
import { relayoutAfterSnapshot } from '../../src/backends/reflink/relayout-trigger.js';
import { AUTO_UNSHARE_FREE_SHARE } from '../../src/backends/reflink/relayout-policy.js';
import { identifyFs } from '../../src/backends/reflink/fsinfo.js';
import { parseArgs } from '../../src/cli/args.js';
import { Timer, type Io } from '../../src/cli/output.js';
import { checkCommand } from '../../src/cli/check.js';
import { relayoutCommand, relayoutLiveDisks } from '../../src/cli/relayout.js';
import { formatSnapshotName } from '../../src/lineage/names.js';
import { loadNative } from '../../src/native.js';
import { hashOf, snapshotMeta, vdiMeta } from '../conformance/backend-conformance.js';
import { fillRandom, prng, rewriteRandom, snapshotOf, syncFs, usedBytes } from './harness/fragment.js';
import { createLoopFs, describeLoopFs, type LoopFs } from './harness/loopfs.js';

process.env.FLATSNAP_LOG_LEVEL ??= 'error';
const MiB = 1024 * 1024;
const SIZE = 32 * MiB;
const BLOCK = 64 * 1024;

async function stats(path: string): Promise<{ sharedBytes: number; bytes: number }> {
  const fh = await open(path, 'r');
  try {
    return loadNative()!.fiemapStats(fh.fd);
  } finally {
    await fh.close();
  }
}

/** offset -> physical address of each mapped extent, for "written in place" checks. */
async function physicalMap(path: string): Promise<string> {
  const fh = await open(path, 'r');
  try {
    return JSON.stringify(extentsFrom(loadNative()!.fiemapMap(fh.fd)).map((e) => [e.logical, e.physical, e.length]));
  } finally {
    await fh.close();
  }
}

describeLoopFs('reflink unshare', ['xfs'], () => {
  let fs: LoopFs;
  let dir: string;
  let b: ReflinkBackend;
  let clock = Date.UTC(2026, 10, 25, 0, 0, 0);
  const tick = (): number => (clock += 1000);
  const rnd = prng(11);

  beforeAll(async () => {
    fs = await createLoopFs('xfs', { sizeMiB: 768, mkfsArgs: ['-b', 'size=2048'] });
    dir = join(fs.mountpoint, 'sr');
    await mkdir(dir);
    // No background runs here: each test runs the unshare itself, at the point it chooses.
    b = new ReflinkBackend(dir, { relayout: { enabled: false }, unshare: 'off' });
    await b.createSr(randomUUID());
  });
  afterAll(async () => {
    await fs?.teardown();
  });
  afterEach(async () => {
    for (const n of await readdir(dir)) if (n !== SR_MARKER) await rm(join(dir, n), { force: true });
    await syncFs(dir);
  });

  const snapshot = (v: StoredObject): Promise<StoredObject> => snapshotOf(b, v, tick());
  const rewrite = (path: string, count: number): Promise<void> => rewriteRandom(path, SIZE, count, rnd, BLOCK);
  const hashes = (objs: readonly StoredObject[]): Promise<string[]> => Promise.all(objs.map((o) => hashOf(o.handle)));
  const unshare = (v: StoredObject, afterStep?: (s: RelayoutStep) => void | Promise<void>) =>
    relayoutVdi(dir, v.id, { unshare: true, rewrite: false, ...(afterStep ? { afterStep } : {}) });
  const temps = async (): Promise<string[]> => (await readdir(dir)).filter((n) => n.startsWith(TEMP_PREFIX));

  async function disk(): Promise<StoredObject> {
    const v = await b.create(randomUUID(), vdiMeta('disk'), SIZE, tick());
    await fillRandom(v.handle, SIZE);
    return v;
  }

  test('a first snapshot: the live image ends up sharing nothing, at the cost of one copy', async () => {
    const v = await disk();
    const s1 = await snapshot(v);
    const before = await hashes([v, s1]);
    await syncFs(dir);
    const used = usedBytes(dir);
    expect((await stats(v.handle)).sharedBytes).toBe(SIZE);

    const r = await unshare(v);
    expect(r.unshare).toMatchObject({ shared_bytes_before: SIZE, shared_bytes_after: 0, holders: 1, holders_moved: 1, bytes_to_donor: 0, bytes_copied: SIZE });
    // XFS was asked to drop the image's reflink flag (writes then skip the refcount btree).
    expect(r.unshare!.reflink_flag_released).toBe(true);
    expect(r.skipped).toBeUndefined();
    expect(await hashes([v, s1])).toEqual(before);
    expect((await stats(v.handle)).sharedBytes).toBe(0);
    expect((await stats(s1.handle)).sharedBytes).toBe(0);
    await syncFs(dir);
    expect(usedBytes(dir) - used).toBeGreaterThanOrEqual(SIZE);
    expect(usedBytes(dir) - used).toBeLessThan(SIZE + 4 * MiB);
    expect(await temps()).toEqual([]);

    // The guest's writes now land in place: the map does not change.
    const map = await physicalMap(v.handle);
    await rewrite(v.handle, 40);
    expect(await physicalMap(v.handle)).toBe(map);
  });

  test('a second snapshot costs what the guest wrote: the rest goes onto the first snapshot\'s blocks', async () => {
    const v = await disk();
    const s1 = await snapshot(v);
    await unshare(v);
    await rewrite(v.handle, 64); // 4 MiB of the 32
    const s2 = await snapshot(v);
    const before = await hashes([v, s1, s2]);
    await syncFs(dir);
    const used = usedBytes(dir);

    const r = await unshare(v);
    expect(r.unshare!.holders_moved).toBe(1);
    expect(r.unshare!.shared_bytes_after).toBe(0);
    expect(r.unshare!.bytes_copied).toBe(64 * BLOCK);
    expect(r.unshare!.bytes_to_donor).toBe(SIZE - 64 * BLOCK);
    expect(await hashes([v, s1, s2])).toEqual(before);
    expect((await stats(s2.handle)).sharedBytes).toBe(SIZE - 64 * BLOCK); // with s1
    await syncFs(dir);
    expect(usedBytes(dir) - used).toBeLessThan(64 * BLOCK + 4 * MiB);
    // Nothing left to do: a second run changes nothing.
    const again = await unshare(v);
    expect(again.unshare).toMatchObject({ shared_bytes_before: 0, holders: 0, bytes_copied: 0 });
  });

  test('unshare=auto (--if-room) copies only while a fifth of the filesystem stays free; "on" goes further', async () => {
    const v = await disk();
    const s1 = await snapshot(v);
    const before = await hashes([v, s1]);
    // Leave free the auto reserve plus half the disk: room for the copy under "on"
    // (whose margin is 5 % here), not under "auto".
    await syncFs(dir);
    const fsInfo = identifyFs(dir);
    const reserve = Math.round(fsInfo.totalBytes * AUTO_UNSHARE_FREE_SHARE);
    const filler = join(dir, `filler-${randomUUID()}`);
    await execa('fallocate', ['-l', String(fsInfo.availBytes - reserve - SIZE / 2), filler]);
    await syncFs(dir);

    const auto = await relayoutVdi(dir, v.id, { unshare: true, unshareIfRoom: true, rewrite: false });
    expect(auto.unshare!.stopped).toMatch(/^not enough free space: .* bytes to copy plus \d+ spare/);
    expect(auto.unshare!.shared_bytes_after).toBeGreaterThan(0);
    expect(auto.unshare!.reflink_flag_released).toBe(false);
    expect(auto.unshare!.bytes_copied).toBeLessThanOrEqual(SIZE / 2);
    expect(identifyFs(dir).availBytes).toBeGreaterThanOrEqual(reserve);
    expect(await hashes([v, s1])).toEqual(before);
    expect(await temps()).toEqual([]);

    const on = await relayoutVdi(dir, v.id, { unshare: true, rewrite: false });
    expect(on.unshare!.stopped).toBeUndefined();
    expect(on.unshare!.shared_bytes_after).toBe(0);
    expect(await hashes([v, s1])).toEqual(before);
  });

  test('unshare=auto by cron (--all-srs): disks with snapshots of their own, not clones that only share a snapshot', async () => {
    const v = await disk();
    const s1 = await snapshot(v);
    const clone = await b.clone(randomUUID(), s1, vdiMeta('fast clone'), tick());
    const auto = await relayoutLiveDisks(dir, 1_000_000, { unshare: true, unshareIfRoom: true, rewrite: false });
    expect(auto.map((r) => r.vdi)).toEqual([v.id]);
    expect((await stats(clone.handle)).sharedBytes).toBe(SIZE); // still thin
    // With unshare=on every live disk still sharing blocks is unshared, the clone too.
    const on = await relayoutLiveDisks(dir, 1_000_000, { unshare: true, rewrite: false });
    expect(on.map((r) => r.vdi)).toEqual([clone.id]);
    expect((await stats(clone.handle)).sharedBytes).toBe(0);
  });

  test('flatsnap check: a snapshotted live disk still sharing blocks is reported (info), and no longer once unshared', async () => {
    const v = await disk();
    await snapshot(v);
    const check = async (): Promise<Array<{ code: string; vdi: string | null; severity: string; message: string }>> => {
      const lines: string[] = [];
      const io = { out: (x: string) => lines.push(x), err: (x: string) => lines.push(x) } as unknown as Io;
      const inv = parseArgs(['check', '--path', dir, '--json']);
      if (inv.cmd !== 'check') throw new Error(inv.cmd);
      expect(await checkCommand(inv, io, new Timer())).toBe(0); // info only
      return (JSON.parse(lines.join('\n')) as { findings: Array<{ code: string; vdi: string | null; severity: string; message: string }> }).findings;
    };
    const shared = (await check()).filter((f) => f.code === 'shared');
    expect(shared).toEqual([expect.objectContaining({ vdi: v.id, severity: 'info', message: expect.stringContaining(`--vdi ${v.id} --unshare`) })]);
    await unshare(v);
    expect((await check()).filter((f) => f.code === 'shared')).toEqual([]);
  });

  test('with the relayout on, a completed unshare skips the compaction (it would re-copy what the unshare wrote); a stopped one does not', async () => {
    const v = await disk();
    await snapshot(v);
    await relayoutVdi(dir, v.id, { unshare: true, rewrite: false });
    await rewrite(v.handle, 64);
    await snapshot(v);
    const r = await relayoutVdi(dir, v.id, { unshare: true });
    expect(r.unshare).toMatchObject({ shared_bytes_after: 0, bytes_copied: 64 * BLOCK });
    expect(r.windows_selected).toBe(0);
    expect(r.compact_skipped).toMatch(/shares nothing after the unshare/);
    expect(r.compact_bytes).toBe(0);
    // Stopped at the auto reserve: the compaction runs as it would without the unshare.
    await rewrite(v.handle, 64);
    await snapshot(v);
    await syncFs(dir);
    const info = identifyFs(dir);
    const filler = join(dir, `filler-${randomUUID()}`);
    await execa('fallocate', ['-l', String(info.availBytes - Math.round(info.totalBytes * AUTO_UNSHARE_FREE_SHARE) - BLOCK), filler]);
    const stopped = await relayoutVdi(dir, v.id, { unshare: true, unshareIfRoom: true });
    expect(stopped.unshare!.stopped).toMatch(/not enough free space/);
    expect(stopped.compact_skipped).toBeUndefined();
  });

  test('after a revert the live image shares with the snapshots and none can donate: the live image moves, once', async () => {
    const v = await disk();
    const s1 = await snapshot(v);
    await unshare(v);
    await rewrite(v.handle, 32);
    const s2 = await snapshot(v);
    await unshare(v);
    await b.rollback(v, s1);
    const s3 = await snapshot(v);
    const all = [v, s1, s2, s3];
    const before = await hashes(all);
    const r = await unshare(v);
    // s1, s3, and s2 where it shares s1's blocks: one copy of the live image instead of one per holder.
    expect(r.unshare).toMatchObject({ holders: 3, holders_moved: 0, shared_bytes_after: 0, bytes_copied: SIZE, live_bytes_moved: SIZE });
    expect(await hashes(all)).toEqual(before);
  });

  test("another VDI's clone is never touched, and a guest write during the run is kept", async () => {
    const v = await disk();
    const s1 = await snapshot(v);
    const clone = await b.clone(randomUUID(), s1, vdiMeta('clone'), tick());
    const cloneMap = await physicalMap(clone.handle);
    const cloneHash = await hashOf(clone.handle);
    const data = Buffer.alloc(BLOCK, 0x5a);
    const r = await unshare(v, async (s) => {
      if (s !== 'unshare-copied') return;
      const fh = await open(v.handle, 'r+');
      await fh.write(data, 0, BLOCK, 3 * BLOCK);
      await fh.close();
    });
    // The live image moved off the blocks the clone shares (the snapshot keeps sharing them).
    expect(r.unshare!.shared_bytes_after).toBe(0);
    expect(r.unshare!.live_bytes_moved).toBe(SIZE);
    expect(r.unshare!.holders).toBe(0);
    expect(r.unshare!.bytes_copied).toBeGreaterThanOrEqual(SIZE + BLOCK); // the unit the guest wrote, copied again
    expect((await stats(s1.handle)).sharedBytes).toBe(SIZE);
    expect(await physicalMap(clone.handle)).toBe(cloneMap);
    expect(await hashOf(clone.handle)).toBe(cloneHash);
    const fh = await open(v.handle, 'r');
    const got = Buffer.alloc(BLOCK);
    await fh.read(got, 0, BLOCK, 3 * BLOCK);
    await fh.close();
    expect(got.equals(data)).toBe(true);
  });

  test.each<[RelayoutStep, number]>([
    ['unshare-copied', 1],
    ['unshare-donor', 1],
    ['unshare-donor', 3],
  ])('an interruption after %s (#%i) loses nothing; the next run finishes', async (step, nth) => {
    const v = await disk();
    const s1 = await snapshot(v);
    await unshare(v);
    await rewrite(v.handle, 64);
    const s2 = await snapshot(v);
    const all = [v, s1, s2];
    const before = await hashes(all);
    let seen = 0;
    await expect(
      unshare(v, (s) => {
        if (s === step && ++seen === nth) throw new Error(`crash after ${s}`);
      }),
    ).rejects.toThrow(/crash after/);
    expect(await hashes(all)).toEqual(before);
    await removeLeftovers(dir, 0);
    expect(await temps()).toEqual([]);
    const r = await unshare(v);
    expect(r.unshare!.shared_bytes_after).toBe(0);
    expect(await hashes(all)).toEqual(before);
  });

  test('a second run waits for the one in progress instead of skipping: the newer snapshot is moved too', async () => {
    const v = await disk();
    await snapshot(v);
    const s2 = await snapshot(v);
    // Another process holds the image's relayout lock, as a running relayout does, for 0.5 s.
    const holder = execa('flock', ['--exclusive', v.handle, 'sleep', '0.5'], { stdin: 'ignore' });
    for (let i = 0; i < 50; i++) {
      const probe = await open(v.handle, 'r');
      const free = loadNative()!.flock(probe.fd, true, false);
      await probe.close();
      if (!free) break;
      await new Promise((res) => setTimeout(res, 10)); // not taken yet
    }
    const t0 = Date.now();
    const r = await unshare(v);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(200);
    await holder;
    expect(r.skipped).toBeUndefined();
    expect(r.unshare!.shared_bytes_after).toBe(0);
    expect((await stats(s2.handle)).sharedBytes).toBeGreaterThan(0); // with the first snapshot
  });

  test('a snapshot starts the unshare in the background; the CLI takes --unshare and --no-relayout', async () => {
    const v = await disk();
    const out = join(fs.mountpoint, `cli-args-${randomUUID()}`);
    const fake = join(fs.mountpoint, `fake-cli-${randomUUID()}`);
    await writeFile(fake, `#!/bin/sh\nprintf '%s\\n' "$@" > ${out}.tmp && mv ${out}.tmp ${out}\n`);
    await chmod(fake, 0o755);
    const saved = process.env.FLATSNAP_CLI;
    process.env.FLATSNAP_CLI = fake;
    try {
      // Whatever the extent count (one here): every snapshot leaves the live image shared.
      const argsOfRun = async (): Promise<string[] | undefined> => {
        let args: string | undefined;
        for (let i = 0; i < 100 && args === undefined; i++) {
          args = await readFile(out, 'utf8').catch(() => undefined);
          if (args === undefined) await new Promise((r) => setTimeout(r, 50));
        }
        await rm(out, { force: true });
        return args?.trim().split('\n');
      };
      expect(await relayoutAfterSnapshot(dir, v.id, v.handle, { enabled: false }, 'on')).toBe('started');
      expect(await argsOfRun()).toEqual(['relayout', '--path', dir, '--vdi', v.id, '--unshare', '--no-relayout']);
      expect(new ReflinkBackend(dir).unshare).toBe('auto'); // the default: while the SR has room
      const withTrigger = new ReflinkBackend(dir, { relayout: { enabled: false } });
      const sid = randomUUID();
      const t = tick();
      await withTrigger.snapshot(sid, v, formatSnapshotName(t, sid), 'snapshot', snapshotMeta(v.id, t));
      expect(await argsOfRun()).toEqual(['relayout', '--path', dir, '--vdi', v.id, '--unshare', '--if-room', '--no-relayout']);
    } finally {
      if (saved === undefined) delete process.env.FLATSNAP_CLI;
      else process.env.FLATSNAP_CLI = saved;
      await rm(fake, { force: true });
      await rm(out, { force: true });
    }
    // What the background process runs, through the CLI.
    const lines: string[] = [];
    const io: Io = { out: (s: string) => lines.push(s), err: () => undefined } as unknown as Io;
    const inv = parseArgs(['relayout', '--path', dir, '--all', '--unshare', '--no-relayout', '--json']);
    expect(inv).toMatchObject({ cmd: 'relayout', unshare: true, rewrite: false });
    expect(await relayoutCommand(inv as Parameters<typeof relayoutCommand>[0], io, new Timer())).toBe(0);
    const results = JSON.parse(lines.join('\n')) as Array<{ vdi: string; unshare: { shared_bytes_after: number } }>;
    expect(results.map((x) => [x.vdi, x.unshare.shared_bytes_after])).toEqual([[v.id, 0]]);
    expect(() => parseArgs(['relayout', '--path', dir, '--all', '--no-relayout'])).toThrow(/--no-relayout goes with --unshare/);
    expect(parseArgs(['relayout', '--path', dir, '--vdi', v.id, '--unshare', '--if-room'])).toMatchObject({ unshare: true, unshareIfRoom: true, rewrite: true });
    expect(inv).toMatchObject({ unshareIfRoom: false });
    expect(() => parseArgs(['relayout', '--path', dir, '--all', '--if-room'])).toThrow(/--if-room goes with --unshare/);
    // With the relayout on, a disk under the threshold that shares blocks is unshared only.
    await snapshot(v);
    lines.length = 0;
    const inv2 = parseArgs(['relayout', '--path', dir, '--all', '--unshare', '--min-extents', '1000000', '--json']);
    expect(await relayoutCommand(inv2 as Parameters<typeof relayoutCommand>[0], io, new Timer())).toBe(0);
    const r2 = JSON.parse(lines.join('\n')) as Array<{ vdi: string; relayout_skipped?: string; unshare: { shared_bytes_after: number; holders_moved: number } }>;
    expect(r2).toHaveLength(1);
    expect(r2[0]).toMatchObject({ vdi: v.id, relayout_skipped: expect.stringMatching(/^not asked to rewrite/), unshare: { shared_bytes_after: 0, holders_moved: 1 } });
  });
});
