// `make demo` end to end: demo/lifecycle.ts (the XenCenter snapshot lifecycle through
// the XAPI simulator) on a zfs-fuse pool and on an XFS reflink loop filesystem; exit 0,
// the report's key lines, and nothing left behind. Needs root, ZFS and XFS: skipped
// locally without them, failing under CI=true. Needs `make build` (plugin/FlatSnapSR).
import { expect, it } from '@jest/globals';
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
// Type-only: brings demo/ into `make typecheck` (tsconfig's include has no demo/).
import type {} from '../../demo/lifecycle.js';
import { loopFsMissing } from '../integration/harness/loopfs.js';
import { describeRealStorage, firstMissing, requireTools } from '../integration/harness/real-storage.js';
import { zfsMissing } from '../integration/harness/zfs-pool.js';
import { ROOT, TSX } from './sim-helpers.js';

async function runDemo(args: string[]): Promise<{ code: number; out: string }> {
  if (!existsSync(path.join(ROOT, 'plugin/FlatSnapSR'))) throw new Error('plugin/FlatSnapSR is missing: run make build first');
  const r = await execa(TSX, [path.join(ROOT, 'demo/lifecycle.ts'), ...args], { cwd: ROOT, reject: false, stdin: 'ignore', all: true, timeout: 280_000 });
  return { code: r.exitCode ?? -1, out: r.all ?? '' };
}

function expectReport(out: string, code: number): void {
  // On failure, show the report: it says which check failed.
  if (code !== 0) throw new Error(`the demo exited ${code}:\n${out}`);
  const titles = [
    'Prepare the storage',
    'Install the plugin and start xapi (the simulator)',
    'Create the SR',
    'Take 8 snapshots, changing the disk before each',
    'Seek by time: which snapshot holds the disk as it was at T?',
    'Revert to snap-3 (the 5 newer snapshots must survive)',
    'New VM from snap-5',
    'Delete the snapshots that have clones: snap-3 and snap-5',
    'Delete demo-vm, keeping its snapshots',
    'Seek by time through the lineage of from-snap-5',
    'Show the tree',
    'Clean up',
  ];
  for (const t of titles) expect(out).toMatch(new RegExp(`^\\[\\s*\\d+\\] ${t.replace(/[()?.]/g, '\\$&')}$`, 'm'));
  expect(out).not.toMatch(/^\s+(FAIL|MISMATCH)\b/m);
  expect(out).toMatch(/^ {2}result: ALL \d+ CHECKS PASSED$/m);
  expect(out).toMatch(/^ {2}checksums: [1-9]\d* OK, 0 MISMATCH$/m);
  expect(out).toMatch(/^ {2}total bytes copied by snapshot operations: 0 B /m);
  expect(out).toMatch(/^ {4}VM\.snapshot x 10: 10 new objects, 0 B copied/m);
  expect(out).toMatch(/^ {2}chain depth of the live disks: 0 \(no chain\)/m);
  expect(out).toMatch(/OK {7}classic revert: vdi_delete, vdi_clone, vdi_update/);
  expect(out).toMatch(/OK {7}xapi: demo-vm still has 8 snapshots/);
  expect(out).toMatch(/OK {7}at \S+ \(between snap-2 and snap-3\) -> snap-2 .*; expected snap-2/);
  expect(out).toMatch(/OK {7}flatsnap check: exit 0/);
  expect(out).toMatch(/OK {7}PBD\.unplug \+ SR\.destroy: the SR root is gone from storage/);
  expect(out).toMatch(/OK {7}xapi simulator stopped/);
  expect(out).toMatch(/OK {7}storage removed: /);
  expect(out).toMatch(/^ {2}total: \d+\.\d+ s$/m);
}

describeRealStorage('make demo on zfs-fuse (demo/lifecycle.ts)', zfsMissing(), () => {
  it('plays the whole lifecycle, every check passes, and the pool is gone afterwards', async () => {
    const { code, out } = await runDemo(['--backend', 'zfs']);
    expectReport(out, code);
    expect(out).toMatch(/OK {7}storage holds the 9 VDIs xapi has and 4 tombstones/);
    expect(out).toMatch(/-> snap-4 .*; expected snap-4/); // through the tombstones of snap-5 and the first disk
    const pool = /a new pool (\S+) on (\S+) /.exec(out);
    expect(pool).not.toBeNull();
    const listed = await execa('zpool', ['list', '-H', '-o', 'name', pool![1]!], { reject: false, stdin: 'ignore' });
    expect(listed.exitCode).not.toBe(0);
    expect(existsSync(pool![2]!)).toBe(false);
  }, 300_000);
});

describeRealStorage('make demo BACKEND=reflink (demo/lifecycle.ts)', firstMissing(() => loopFsMissing(['xfs']), () => requireTools(['xfs_io'])), () => {
  it('plays the whole lifecycle on XFS reflink copies, every check passes, and the loop filesystem is gone', async () => {
    const { code, out } = await runDemo(['--backend', 'reflink']);
    expectReport(out, code);
    expect(out).toMatch(/copied = FIEMAP/);
    const fs = /mounted at (\S+)/.exec(out);
    expect(fs).not.toBeNull();
    expect(existsSync(fs![1]!)).toBe(false);
  }, 300_000);
});
