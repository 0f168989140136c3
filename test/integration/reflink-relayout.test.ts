// The relayout of fragmented reflink images (src/backends/reflink/relayout.ts) on a real
// XFS (reflink=1, 2 KiB blocks, as the fragmentation bench): a disk fragmented by
// snapshots and random 64 KiB rewrites is rewritten contiguously; every byte of it and
// of its snapshots stays the same, its snapshots move onto the new blocks (no space
// lost), another VDI's clone is never touched, a guest write during the relayout is
// kept, and an interruption at any step (an exception, or SIGKILL of the process)
// leaves every file intact and only a temp file that the SR's reaping removes.
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
import { pinnedLayout } from '../../src/backends/reflink/relayout-compact.js';
import { relayoutAfterSnapshot } from '../../src/backends/reflink/relayout-trigger.js';
import { parseArgs } from '../../src/cli/args.js';
import { checkCommand } from '../../src/cli/check.js';
import { run } from '../../src/cli/main.js';
import { Timer, type Io } from '../../src/cli/output.js';
import { relayoutCommand } from '../../src/cli/relayout.js';
import { formatSnapshotName } from '../../src/lineage/names.js';
import { loadNative } from '../../src/native.js';
import { hashOf, snapshotMeta, vdiMeta } from '../conformance/backend-conformance.js';
import { fragmentedDisk as fragment, prng, rewriteRandom, snapshotOf, syncFs, usedBytes } from './harness/fragment.js';
import { createLoopFs, describeLoopFs, type LoopFs } from './harness/loopfs.js';

process.env.FLATSNAP_LOG_LEVEL ??= 'error';
const MiB = 1024 * 1024;
const SIZE = 64 * MiB;
const BLOCK = 64 * 1024;
const REPO = process.cwd(); // jest runs from the repository root

/** Which physical block each offset maps to (flags ignored: XFS splits extents where sharing changes). */
async function fileMap(path: string): Promise<string> {
  const fh = await open(path, 'r');
  try {
    const runs: Array<[number, number, number]> = [];
    for (const e of extentsFrom(loadNative()!.fiemapMap(fh.fd))) {
      const last = runs[runs.length - 1];
      if (last && last[0] + last[2] === e.logical && last[1] + last[2] === e.physical) last[2] += e.length;
      else runs.push([e.logical, e.physical, e.length]);
    }
    return JSON.stringify(runs);
  } finally {
    await fh.close();
  }
}

/** A disk and its snapshots as they were before an interrupted run: their hashes, and the space in use. */
interface Recorded {
  v: StoredObject;
  snaps: StoredObject[];
  all: StoredObject[];
  before: string[];
  used: number;
}

/** A command as main.ts runs it, minus its final log flush (which ends the logger of this process). */
async function cli(argv: string[], io: Io): Promise<number> {
  const inv = parseArgs(argv);
  if (inv.cmd === 'relayout') return relayoutCommand(inv, io, new Timer());
  if (inv.cmd === 'check') return checkCommand(inv, io, new Timer());
  throw new Error(`not here: ${inv.cmd}`);
}

describeLoopFs('reflink relayout', ['xfs'], () => {
  let fs: LoopFs;
  let dir: string;
  let b: ReflinkBackend;
  let clock = Date.UTC(2026, 10, 25, 0, 0, 0);
  const tick = (): number => (clock += 1000);
  const rnd = prng(7);

  beforeAll(async () => {
    fs = await createLoopFs('xfs', { sizeMiB: 1536, mkfsArgs: ['-b', 'size=2048'] });
    dir = join(fs.mountpoint, 'sr');
    await mkdir(dir);
    b = new ReflinkBackend(dir, { relayout: { enabled: false }, unshare: 'off' });
    await b.createSr(randomUUID());
  });
  afterAll(async () => {
    await fs?.teardown();
  });
  // Each test's disks are its own: make room for the next one.
  afterEach(async () => {
    for (const n of await readdir(dir)) if (n !== SR_MARKER) await rm(join(dir, n), { force: true });
    await syncFs(dir);
  });

  const snapshot = (v: StoredObject): Promise<StoredObject> => snapshotOf(b, v, tick());
  /** Rewrites `count` distinct random blocks of `unit` bytes of the image with random bytes. */
  const rewrite = (path: string, count: number, unit = BLOCK): Promise<void> => rewriteRandom(path, SIZE, count, rnd, unit);
  /** A 64 MiB disk written in full, then `cycles` x (snapshot, 25 % rewritten in `unit` blocks), then one more snapshot. */
  const fragmentedDisk = (cycles: number, unit = BLOCK): Promise<{ v: StoredObject; snaps: StoredObject[] }> =>
    fragment(b, { size: SIZE, cycles, share: 0.25, unit, rnd, tick });

  const hashes = (objs: readonly StoredObject[]): Promise<string[]> => Promise.all(objs.map((o) => hashOf(o.handle)));
  const extents = async (o: StoredObject): Promise<number> => Number((await b.health(o)).extents);
  // Physically contiguous runs: after an interrupted run, XFS still splits the disk's
  // extents where the snapshots not yet moved stop sharing them.
  const fragments = async (o: StoredObject): Promise<number> => Number((await b.health(o)).fragments);
  const temps = async (): Promise<string[]> => (await readdir(dir)).filter((n) => n.startsWith(TEMP_PREFIX));

  async function record({ v, snaps }: { v: StoredObject; snaps: StoredObject[] }): Promise<Recorded> {
    const all = [v, ...snaps];
    const before = await hashes(all);
    await syncFs(dir);
    return { v, snaps, all, before, used: usedBytes(dir) };
  }
  const expectIntact = async (f: Recorded): Promise<void> => expect(await hashes(f.all)).toEqual(f.before);

  /** A clone (another VDI) of `snap`, written to, and how it is then: its block map and its hash. */
  async function cloneOf(snap: StoredObject): Promise<{ clone: StoredObject; map: string; hash: string }> {
    const clone = await b.clone(randomUUID(), snap, vdiMeta('clone'), tick());
    await rewrite(clone.handle, 10);
    return { clone, map: await fileMap(clone.handle), hash: await hashOf(clone.handle) };
  }
  const expectUntouched = async (c: { clone: StoredObject; map: string; hash: string }): Promise<void> => {
    expect(await fileMap(c.clone.handle)).toBe(c.map);
    expect(await hashOf(c.clone.handle)).toBe(c.hash);
  };

  /** A relayout of `v` that throws after its `nth` step `step`; `onStep` sees each step first. */
  function crashAfter(v: StoredObject, step: RelayoutStep, nth: number, onStep?: (s: RelayoutStep) => Promise<void>): Promise<void> {
    let seen = 0;
    return expect(
      relayoutVdi(dir, v.id, {
        afterStep: async (s) => {
          await onStep?.(s);
          if (s === step && ++seen === nth) throw new Error(`crash after ${s}`);
        },
      }),
    ).rejects.toThrow(/crash after/);
  }

  /**
   * A relayout of `f.v` in a child process SIGKILLed after its `nth` step `step`: every
   * file is intact and one temp file (named as `temp`) is left, which the SR's reaping removes.
   */
  async function killAfter(f: Recorded, step: RelayoutStep, nth: number, temp: RegExp): Promise<void> {
    const script = join(fs.mountpoint, `kill-${randomUUID()}.mts`);
    await writeFile(
      script,
      `import { relayoutVdi } from ${JSON.stringify(join(REPO, 'src/backends/reflink/relayout.ts'))};\n` +
        `let n = 0;\n` +
        `await relayoutVdi(${JSON.stringify(dir)}, ${JSON.stringify(f.v.id)}, { afterStep: (s) => { if (s === ${JSON.stringify(step)} && ++n === ${nth}) process.kill(process.pid, 'SIGKILL'); } });\n`,
    );
    const child = await execa(process.execPath, ['--import', 'tsx', script], { cwd: REPO, reject: false, stdin: 'ignore' });
    await rm(script, { force: true });
    expect(child.signal).toBe('SIGKILL');
    await expectIntact(f);
    const left = await temps();
    expect(left).toHaveLength(1);
    expect(left[0]).toMatch(temp);
    expect(await removeLeftovers(dir, 0)).toEqual(left);
    await syncFs(dir); // XFS frees the temp file's references in the background
  }

  // After an interrupted run, a new one completes: no byte lost; the snapshots not yet
  // moved kept that one window's old blocks (space, at most a window).
  async function expectRelaidAfterCrash(f: Recorded): Promise<void> {
    const r = await relayoutVdi(dir, f.v.id);
    expect(r.skipped).toBeUndefined();
    await expectIntact(f);
    expect(await fragments(f.v)).toBeLessThanOrEqual(4);
    await syncFs(dir);
    expect(usedBytes(dir) - f.used).toBeLessThan(16 * MiB + 2 * MiB);
  }

  test('rewrites the disk contiguously, keeps every byte, moves the snapshots along: no space lost', async () => {
    const { v, snaps } = await fragmentedDisk(3);
    const all = [v, ...snaps];
    const before = await hashes(all);
    const extentsBefore = await extents(v);
    expect(extentsBefore).toBeGreaterThan(500);
    await syncFs(dir);
    const used = usedBytes(dir);

    const r = await relayoutVdi(dir, v.id);
    expect(r.skipped).toBeUndefined();
    expect(r.extents_before).toBe(extentsBefore);
    expect(r.windows_selected).toBe(4);
    expect(r.windows_changed).toBe(0);
    expect(r.bytes_copied).toBe(SIZE);
    expect(r.bytes_deduped).toBe(SIZE);
    expect(r.family_objects).toBe(4);
    expect(r.family_objects_remapped).toBe(4);

    expect(await hashes(all)).toEqual(before);
    expect(await extents(v)).toBeLessThanOrEqual(4);
    expect(r.extents_after).toBe(await extents(v));
    // The newest snapshot was identical to the disk: it is now the same few extents, all shared.
    const h = await b.health(snaps[snaps.length - 1]!);
    expect(Number(h.extents)).toBeLessThanOrEqual(4);
    expect(h.shared_bytes).toBe(SIZE);
    // The older snapshots hold fewer extents than before, never more.
    await syncFs(dir);
    // Same space: the old blocks were released by the disk and every snapshot that held them.
    expect(Math.abs(usedBytes(dir) - used)).toBeLessThan(2 * MiB);
    expect(await temps()).toEqual([]);

    // A second run finds nothing dense enough.
    const again = await relayoutVdi(dir, v.id);
    expect(again.skipped).toMatch(/no window/);
    expect(await hashes(all)).toEqual(before);
  });

  test('a clone (another VDI) is never touched; a guest write during the relayout is kept', async () => {
    const { v, snaps } = await fragmentedDisk(2);
    const c = await cloneOf(snaps[0]!);
    const snapHashes = await hashes(snaps);

    const guest = Buffer.alloc(BLOCK, 0xa5);
    const at = 5 * MiB + 3 * BLOCK;
    const r = await relayoutVdi(dir, v.id, {
      afterStep: async (step: RelayoutStep) => {
        if (step !== 'copied') return;
        const fh = await open(v.handle, 'r+');
        await fh.write(guest, 0, BLOCK, at);
        await fh.sync();
        await fh.close();
      },
    });
    expect(r.windows_changed).toBe(1);
    const fh = await open(v.handle, 'r');
    const back = Buffer.alloc(BLOCK);
    await fh.read(back, 0, BLOCK, at);
    await fh.close();
    expect(back.equals(guest)).toBe(true);
    expect(await hashes(snaps)).toEqual(snapHashes);
    await expectUntouched(c);
    expect(r.family_objects).toBe(snaps.length); // the clone is not family to touch
  });

  // Interrupted between a window of the disk and its snapshots.
  test.each(['copied', 'live-window', 'family-object'] as const)('an exception after step %s leaves every file intact', async (step) => {
    const f = await record(await fragmentedDisk(2));
    await crashAfter(f.v, step, step === 'copied' ? 1 : 2);
    await expectIntact(f);
    expect(await temps()).toEqual([]);
    await expectRelaidAfterCrash(f);
  });

  test.each(['copied', 'live-window', 'family-object'] as const)('SIGKILL after step %s: every file intact, the temp file is reaped, a new run completes', async (step) => {
    const f = await record(await fragmentedDisk(2));
    await killAfter(f, step, step === 'copied' ? 1 : 2, /relayout/);
    await expectRelaidAfterCrash(f);
  });

  test('a snapshot starts the relayout in the background when the disk is over the threshold', async () => {
    const { v } = await fragmentedDisk(1);
    const n = await fragments(v);
    const out = join(fs.mountpoint, `cli-args-${randomUUID()}`);
    const fake = join(fs.mountpoint, `fake-cli-${randomUUID()}`);
    await writeFile(fake, `#!/bin/sh\nprintf '%s\\n' "$@" > ${out}.tmp && mv ${out}.tmp ${out}\n`);
    await chmod(fake, 0o755);
    const saved = process.env.FLATSNAP_CLI;
    process.env.FLATSNAP_CLI = fake;
    try {
      expect(await relayoutAfterSnapshot(dir, v.id, v.handle, { enabled: false })).toBe('off');
      expect(await relayoutAfterSnapshot(dir, v.id, v.handle, { enabled: true, threshold: n + 1 })).toBe('below');
      const withTrigger = new ReflinkBackend(dir, { relayout: { enabled: true, threshold: n }, unshare: 'off' });
      const sid = randomUUID();
      const t = tick();
      await withTrigger.snapshot(sid, v, formatSnapshotName(t, sid), 'snapshot', snapshotMeta(v.id, t));
      let args: string | undefined;
      for (let i = 0; i < 100 && args === undefined; i++) {
        args = await readFile(out, 'utf8').catch(() => undefined);
        if (args === undefined) await new Promise((r) => setTimeout(r, 50));
      }
      expect(args?.trim().split('\n')).toEqual(['relayout', '--path', dir, '--vdi', v.id]);
    } finally {
      if (saved === undefined) delete process.env.FLATSNAP_CLI;
      else process.env.FLATSNAP_CLI = saved;
      await rm(fake, { force: true });
      await rm(out, { force: true });
    }
  });

  // ---- the compaction of the blocks only the snapshots hold (relayout-compact.ts) ----

  /**
   * A disk relaid out after each of `cycles` x (25 % rewritten, snapshot) with no
   * compaction, as before it existed: each relayout left the old versions of the
   * rewritten blocks, held by the older snapshots only, scattered where the image was.
   */
  async function relaidHistory(cycles: number): Promise<{ v: StoredObject; snaps: StoredObject[] }> {
    const { v, snaps } = await fragmentedDisk(0);
    for (let c = 0; c < cycles; c++) {
      await nextCycle(v, snaps);
      const r = await relayoutVdi(dir, v.id, { compact: false });
      expect(r.skipped).toBeUndefined();
    }
    return { v, snaps };
  }
  /** A guest's cycle: a quarter of the disk rewritten, then a snapshot. */
  async function nextCycle(v: StoredObject, snaps: StoredObject[]): Promise<void> {
    await rewrite(v.handle, SIZE / BLOCK / 4);
    snaps.push(await snapshot(v));
  }
  /** relaidHistory(cycles) and one more cycle, not relaid out: pinned blocks to compact. */
  async function toCompact(cycles: number): Promise<{ v: StoredObject; snaps: StoredObject[] }> {
    const d = await relaidHistory(cycles);
    await nextCycle(d.v, d.snaps);
    return d;
  }
  const pinned = (snaps: readonly StoredObject[], writable: readonly StoredObject[]) =>
    pinnedLayout(
      snaps.map((s) => s.handle),
      writable.map((w) => w.handle),
      2048,
    );
  // After a compaction interrupted at `step`, a new run compacts what is left: no byte lost;
  // at most the batch copied is held twice (old and new place), never more than the temp file held.
  async function expectCompactedAfterCrash(f: Recorded, step: RelayoutStep): Promise<void> {
    const r = await relayoutVdi(dir, f.v.id);
    expect(r.relayout_skipped ?? r.skipped).toMatch(/no window/);
    await expectIntact(f);
    const p = await pinned(f.snaps, [f.v]);
    expect(p.runs).toBeLessThanOrEqual(16);
    await syncFs(dir);
    expect(usedBytes(dir) - f.used).toBeLessThan((step === 'compact-copied' ? 0 : p.bytes) + 2 * MiB);
  }

  test('compaction: the blocks the snapshots pin move together; every byte kept, no space, next time only the new ones', async () => {
    const { v, snaps } = await toCompact(3);
    const { all, before, used } = await record({ v, snaps });
    const p0 = await pinned(snaps, [v]);
    // 3 relayouts x a quarter of the disk rewritten, scattered in 64 KiB blocks.
    expect(p0.bytes).toBeGreaterThanOrEqual(2.5 * (SIZE / 4));
    expect(p0.runs).toBeGreaterThan(300);

    const r = await relayoutVdi(dir, v.id);
    expect(r.skipped).toBeUndefined();
    expect(r.windows_selected).toBe(4);
    // About everything pinned (the guest's rewrites pinned this cycle's quarter already).
    // Not exactly: a 16 MiB device window where the allocator happened to leave fewer than
    // 8 pinned runs is not worth a copy and stays (seen under load: 3 blocks of 64 KiB).
    expect(r.compact_bytes).toBeLessThanOrEqual(p0.bytes);
    expect(r.compact_bytes).toBeGreaterThanOrEqual(0.95 * p0.bytes);
    expect(r.compact_runs_before).toBeLessThanOrEqual(p0.runs);
    expect(r.compact_runs_before).toBeGreaterThanOrEqual(0.95 * p0.runs);
    expect(r.compact_runs_after).toBeLessThanOrEqual(8);
    expect(r.compact_objects_remapped).toBeGreaterThanOrEqual(3);
    expect(r.compact_bytes_remapped).toBeGreaterThanOrEqual(r.compact_bytes);

    expect(await hashes(all)).toEqual(before);
    const p1 = await pinned(snaps, [v]);
    expect(p1.bytes).toBe(p0.bytes);
    // At most 8 runs, as before, plus the runs of any window left below the threshold.
    expect(p1.runs).toBeLessThanOrEqual(8 + (p0.runs - r.compact_runs_before));
    // The run's own count is an estimate (runs before, minus those moved, plus the copy's
    // extents): where the copy lands right next to a pinned run left in place the two are
    // one, and the copy's one extent can be two runs of the snapshots' maps (seen: 1 for 2).
    expect(Math.abs(r.pinned_runs_after - p1.runs)).toBeLessThanOrEqual(2);
    expect(await temps()).toEqual([]);
    await syncFs(dir);
    expect(usedBytes(dir) - used).toBeLessThan(2 * MiB);

    // Next cycle: only what this relayout leaves behind is copied, not the history again.
    await nextCycle(v, snaps);
    const { all: all2, before: before2, used: used2 } = await record({ v, snaps });
    const r2 = await relayoutVdi(dir, v.id);
    expect(r2.compact_bytes).toBeGreaterThan(0);
    expect(r2.compact_bytes).toBeLessThanOrEqual(SIZE / 4 + MiB);
    expect(await hashes(all2)).toEqual(before2);
    expect((await pinned(snaps, [v])).runs).toBeLessThanOrEqual(16);
    await syncFs(dir);
    expect(usedBytes(dir) - used2).toBeLessThan(2 * MiB);

    // Nothing left to do: the image is contiguous and the pinned blocks dense.
    const again = await relayoutVdi(dir, v.id);
    expect(again.skipped).toMatch(/no window/);
    expect(again.compact_bytes).toBe(0);
  });

  test('compaction leaves a clone (another VDI) alone, and the blocks it shares with the snapshots where they are', async () => {
    const { v, snaps } = await relaidHistory(2);
    const c = await cloneOf(snaps[0]!);
    await nextCycle(v, snaps);
    const before = await hashes([v, ...snaps]);
    // The relayout alone first: it costs space here (the first snapshot moves along with
    // the disk where the clone keeps the old blocks), which is not the compaction's doing.
    expect((await relayoutVdi(dir, v.id, { compact: false })).skipped).toBeUndefined();
    await syncFs(dir);
    const used = usedBytes(dir);
    const r = await relayoutVdi(dir, v.id);
    expect(r.relayout_skipped).toMatch(/no window/);
    expect(r.compact_bytes).toBeGreaterThan(0);
    await expectUntouched(c);
    expect(await hashes([v, ...snaps])).toEqual(before);
    // The first snapshot's blocks are the clone's too: none of them was copied (no space).
    await syncFs(dir);
    expect(usedBytes(dir) - used).toBeLessThan(2 * MiB);
  });

  // Interrupted in the compaction: every byte intact.
  test.each(['compact-copied', 'compact-object'] as const)('compaction: an exception after step %s leaves every file intact', async (step) => {
    const f = await record(await toCompact(2));
    let copied = 0;
    await crashAfter(f.v, step, step === 'compact-copied' ? 1 : 2, async (s) => {
      if (s === 'compact-copied') copied = (await temps()).length;
    });
    expect(copied).toBe(1);
    await expectIntact(f);
    expect(await temps()).toEqual([]);
    await expectCompactedAfterCrash(f, step);
  });

  test.each(['compact-copied', 'compact-object'] as const)('compaction: SIGKILL after step %s: every file intact, the temp file reaped, a new run completes', async (step) => {
    const f = await record(await toCompact(2));
    await killAfter(f, step, step === 'compact-copied' ? 1 : 2, /relayout-compact/);
    await expectCompactedAfterCrash(f, step);
  });

  test('one relayout per image at a time: a flock(2) on the image', async () => {
    const { v } = await fragmentedDisk(1);
    const fh = await open(v.handle, 'r');
    try {
      expect(loadNative()!.flock(fh.fd, true, false)).toBe(true);
      const r = await relayoutVdi(dir, v.id);
      expect(r.skipped).toMatch(/another relayout/);
    } finally {
      await fh.close();
    }
    expect((await relayoutVdi(dir, v.id)).skipped).toBeUndefined();
  });
  test('flatsnap relayout and flatsnap check: the extent count of each VDI, the fragmented one flagged', async () => {
    const { v } = await fragmentedDisk(1, 4096);
    const lines: string[] = [];
    const io = { out: (s: string) => lines.push(s), err: (s: string) => lines.push(s) };
    expect(await cli(['check', '--path', dir, '--json'], io)).toBeLessThanOrEqual(1);
    const doc = JSON.parse(lines.join('\n')) as { health: Array<{ id: string; vdi: string | null; extents: number }>; findings: Array<{ code: string; vdi: string | null; severity: string }> };
    const row = doc.health.find((h) => h.id === v.id)!;
    expect(row.vdi).toBe(v.id);
    expect(row.extents).toBeGreaterThan(2048);
    expect(doc.findings).toContainEqual(expect.objectContaining({ code: 'fragmented', vdi: v.id, severity: 'info' }));

    lines.length = 0;
    expect(await cli(['relayout', '--path', dir, '--vdi', v.id, '--json'], io)).toBe(0);
    const r = JSON.parse(lines.join('\n')) as { extents_before: number; extents_after: number };
    expect(r.extents_before).toBe(row.extents);
    expect(r.extents_after).toBeLessThanOrEqual(4);

    lines.length = 0;
    await cli(['check', '--path', dir], io);
    const text = lines.join('\n');
    expect(text).toMatch(/^extents \(FIEMAP/m);
    expect(text).toContain(v.id);
    expect(text).not.toMatch(new RegExp(`fragmented\\s+${v.id}`));

    lines.length = 0;
    expect(await run(['relayout', '--dataset', 'tank/sr', '--vdi', v.id], io)).toBe(2);
  });
});
