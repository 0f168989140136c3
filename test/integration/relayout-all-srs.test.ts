// `flatsnap relayout --all-srs` (src/cli/relayout-srs.ts), as the cron job install.sh
// writes runs it: the SRs come from xapi (the simulator, with the built plugin creating
// and plugging them), the disks are real files on a real XFS (reflink=1) loop filesystem.
// Four flatsnap SRs on this host: relayout=100 (its fragmented disk is relayouted),
// relayout=off (left alone), relayout=100000 (nothing over it), and one whose directory
// lost its marker (skipped: "not mounted?"); an SR of another type is not looked at.
//
// Needs root, losetup and mkfs.xfs, and `make build` (plugin/FlatSnapSR).
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync } from 'node:fs';
import { mkdir, rename, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StoredObject } from '../../src/backends/backend.js';
import { ReflinkBackend } from '../../src/backends/reflink/backend.js';
import { SR_MARKER } from '../../src/backends/reflink/names.js';
import { parseArgs } from '../../src/cli/args.js';
import { Timer, type Io } from '../../src/cli/output.js';
import { relayoutCommand } from '../../src/cli/relayout.js';
import { hashOf } from '../conformance/backend-conformance.js';
import { PLUGIN_DIR } from '../e2e/flatsnap-flow.js';
import { Client, removeDir, startSim, type SimProc } from '../e2e/sim-helpers.js';
import { fragmentedDisk, prng } from './harness/fragment.js';
import { createLoopFs, describeLoopFs, type LoopFs } from './harness/loopfs.js';

process.env.FLATSNAP_LOG_LEVEL ??= 'error';
const MiB = 1024 * 1024;
type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

describeLoopFs('flatsnap relayout --all-srs (xapi: the simulator; storage: real XFS)', ['xfs'], () => {
  let fs: LoopFs;
  let sim: SimProc | undefined;
  let c: Client;
  let host = '';
  let locks = '';
  const srs: Record<'on' | 'off' | 'high' | 'gone', { uuid: string; dir: string; disk?: StoredObject }> = {
    on: { uuid: '', dir: '' },
    off: { uuid: '', dir: '' },
    high: { uuid: '', dir: '' },
    gone: { uuid: '', dir: '' },
  };
  let clock = Date.UTC(2026, 10, 25);

  beforeAll(async () => {
    if (!existsSync(join(PLUGIN_DIR, 'FlatSnapSR'))) throw new Error(`${PLUGIN_DIR}/FlatSnapSR is missing: run make build first`);
    fs = await createLoopFs('xfs', { sizeMiB: 1024 });
    locks = mkdtempSync(join(tmpdir(), 'flatsnap-allsrs-locks-'));
    sim = await startSim({ smDir: PLUGIN_DIR, extraArgs: ['--lock-root', locks] });
    c = await new Client(sim.url).login();
    const hostRef = (await c.call<string[]>('host.get_all'))[0]!;
    host = await c.call<string>('host.get_uuid', hostRef);
    const relayout = { on: '100', off: 'off', high: '100000', gone: '100' } as const;
    for (const k of Object.keys(srs) as Array<keyof typeof srs>) {
      const dir = join(fs.mountpoint, k);
      await mkdir(dir);
      // "off" keeps the default unshare (auto): the cron then only unshares its disks (the
      // filesystem has room). The others have it off, so that their relayout is seen alone.
      const dc = { path: dir, relayout: relayout[k], ...(k === 'off' ? {} : { unshare: 'off' }) };
      const sr = await c.callAsync<string>('SR.create', hostRef, dc, '0', `sr ${k}`, '', 'flatsnap', 'user', false, {});
      srs[k] = { uuid: await c.call<string>('SR.get_uuid', sr), dir };
      if (k === 'gone') continue;
      // Fragmented on storage directly (no snapshot through xapi: its background relayout would run).
      const b = new ReflinkBackend(dir, { relayout: { enabled: false }, unshare: 'off' });
      srs[k].disk = (await fragmentedDisk(b, { size: 32 * MiB, cycles: 1, share: 0.25, rnd: prng(3), tick: () => ++clock })).v;
    }
    // Not a flatsnap SR: never looked at (the simulator's file SR needs no plugin to be introduced).
    await c.call('SR.introduce', randomUUID(), 'other', '', 'ext', 'user', false, {});
    // An SR xapi has plugged whose filesystem is not there any more.
    await rename(join(srs.gone.dir, SR_MARKER), join(fs.mountpoint, 'gone-marker'));
  }, 180_000);

  afterAll(async () => {
    if (sim) {
      await sim.stop();
      removeDir(sim.dir);
    }
    if (locks) await rm(locks, { recursive: true, force: true });
    await fs?.teardown();
  });

  /** The command as main.ts runs it, minus its final log flush (which ends this process's logger). */
  async function relayoutAllSrs(...extra: string[]): Promise<{ code: number; out: string }> {
    const lines: string[] = [];
    const io: Io = { out: (s) => lines.push(s), err: (s) => lines.push(s) };
    const inv = parseArgs(['relayout', '--all-srs', '--xapi', sim!.url, '--password', 'x', ...extra]);
    if (inv.cmd !== 'relayout') throw new Error(`parsed as ${inv.cmd}`);
    const code = await relayoutCommand(inv, io, new Timer());
    return { code, out: lines.join('\n') };
  }

  const fragments = async (k: 'on' | 'off' | 'high'): Promise<number> =>
    Number((await new ReflinkBackend(srs[k].dir).health(srs[k].disk!)).fragments);

  test('relayouts the disks of each plugged flatsnap reflink SR over its own threshold; only unshares with relayout=off; skips a directory without its marker', async () => {
    const before = { on: await fragments('on'), off: await fragments('off'), high: await fragments('high') };
    for (const n of Object.values(before)) expect(n).toBeGreaterThan(100);
    const hashes = { on: await hashOf(srs.on.disk!.handle), off: await hashOf(srs.off.disk!.handle) };

    const { code, out } = await relayoutAllSrs('--host', host, '--json');
    expect(code).toBe(0);
    const doc = JSON.parse(out) as Json[];
    const bySr = new Map(doc.map((o) => [o.sr as string, o]));
    expect(doc).toHaveLength(4);
    expect(bySr.get(srs.on.uuid)).toMatchObject({ name_label: 'sr on', path: srs.on.dir, threshold: 100, results: [{ vdi: srs.on.disk!.id, extents_before: before.on }] });
    // relayout=off with the default unshare: not rewritten, but no longer sharing its blocks.
    expect(bySr.get(srs.off.uuid)).toMatchObject({
      name_label: 'sr off',
      path: srs.off.dir,
      unshare: true,
      unshareIfRoom: true,
      rewrite: false,
      // Both snapshots share the live image's blocks and neither can donate: the live image moves.
      results: [{ vdi: srs.off.disk!.id, relayout_skipped: expect.stringMatching(/^not asked to rewrite/), unshare: { shared_bytes_after: 0, holders: 2, holders_moved: 0 } }],
    });
    expect(bySr.get(srs.high.uuid)).toMatchObject({ path: srs.high.dir, threshold: 100000, results: [] });
    expect(bySr.get(srs.gone.uuid)).toMatchObject({ path: srs.gone.dir, skipped: expect.stringMatching(/holds no flatsnap SR marker \(not mounted\?\)/) });

    expect(await fragments('on')).toBeLessThanOrEqual(4);
    expect(await hashOf(srs.on.disk!.handle)).toBe(hashes.on);
    // Not relayouted, but moved onto a fresh copy of itself by the unshare: contiguous too.
    expect(await fragments('off')).toBeLessThanOrEqual(4);
    expect(await hashOf(srs.off.disk!.handle)).toBe(hashes.off);
    expect(await fragments('high')).toBe(before.high);

    // The people's output, and --min-extents over every SR's own threshold.
    const human = await relayoutAllSrs('--host', host, '--min-extents', '50');
    expect(human.code).toBe(0);
    expect(human.out).toContain(`SR ${srs.off.uuid} "sr off" (${srs.off.dir}): no disk`);
    expect(human.out).toContain(`SR ${srs.on.uuid} "sr on" (${srs.on.dir}): no disk with 50 runs or more`);
    expect(human.out).toMatch(new RegExp(`SR ${srs.high.uuid} "sr high" \\(${srs.high.dir}\\): 1 disk\\(s\\) with 50 runs or more\\n  VDI ${srs.high.disk!.id}: \\d+ -> \\d+ extents`));
    expect(await fragments('high')).toBeLessThanOrEqual(4);
  }, 180_000);

  test("a --host xapi does not know is xapi's error", async () => {
    await expect(relayoutAllSrs('--host', randomUUID())).rejects.toThrow(/UUID_INVALID/);
  });
});
