// Runs INSIDE a kernel tier guest (started by test/kernel/ocfs2-fragmentation.ts, not by
// the test suites): how a reflink disk fragments on OCFS2, and what the relayout does
// about it, as bench/fragmentation-measures.mjs measures it on XFS. On a freshly made
// OCFS2 filesystem (local mode, the cluster size the host chose): a disk written in full,
// then cycles of snapshot + 10 % rewritten in random 64 KiB blocks (written in random
// order, or in file order as the XFS bench does), all snapshots kept;
// variant "relayout" also relayouts the disk after each snapshot (as the driver does in the
// background). At the checkpoints: the live image's extents and physically contiguous
// runs, the FICLONE of it into a scratch file (the storage step of a snapshot), the space
// used. Prints one JSON document on stdout; progress goes to the file given as `log`.
//
//   node ocfs2-fragmentation.cjs '{"mnt":"/mnt/ocfs2","variant":"none","sizeMiB":256,...}'
import { appendFileSync, closeSync, openSync, rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { ReflinkBackend } from '../../../src/backends/reflink/backend.js';
import { identifyFs } from '../../../src/backends/reflink/fsinfo.js';
import { relayoutVdi } from '../../../src/backends/reflink/relayout.js';
import { extentStats } from '../../../src/backends/reflink/volume.js';
import { loadNative } from '../../../src/native.js';
import { vdiMeta } from '../../conformance/backend-conformance.js';
import { fillRandom, prng, REWRITE_UNIT, rewriteRandom, snapshotOf, syncFs, usedBytes, type WriteOrder } from '../../integration/harness/fragment.js';

const MiB = 1024 * 1024;

interface Args {
  mnt: string;
  variant: 'none' | 'relayout';
  /** The relayout's minimum runs per 16 MiB window (default: relayout.ts's, 16). */
  minWindowExtents?: number;
  /** The order of each cycle's writes (fragment.ts): OCFS2 fragments only with "random". */
  order: WriteOrder;
  sizeMiB: number;
  cycles: number;
  checkpoints: number[];
  share: number;
  seed: number;
  log?: string;
}

function parse(): Args {
  const a = JSON.parse(process.argv[2] ?? '{}') as Partial<Args>;
  if (typeof a.mnt !== 'string' || (a.variant !== 'none' && a.variant !== 'relayout')) throw new Error('usage: ocfs2-fragmentation.cjs \'{"mnt":DIR,"variant":"none"|"relayout",...}\'');
  return {
    mnt: a.mnt,
    variant: a.variant,
    order: a.order === 'file' ? 'file' : 'random',
    sizeMiB: a.sizeMiB ?? 256,
    cycles: a.cycles ?? 32,
    checkpoints: a.checkpoints ?? [0, 8, 32],
    share: a.share ?? 0.1,
    seed: a.seed ?? 5,
    ...(a.minWindowExtents !== undefined ? { minWindowExtents: a.minWindowExtents } : {}),
    ...(a.log !== undefined ? { log: a.log } : {}),
  };
}

const round = (x: number, d = 1): number => Math.round(x * 10 ** d) / 10 ** d;
const median = (xs: number[]): number => [...xs].sort((x, y) => x - y)[Math.floor(xs.length / 2)]!;

async function main(): Promise<void> {
  const a = parse();
  const say = (s: string): void => {
    if (a.log) appendFileSync(a.log, `${new Date().toISOString()} [${a.variant}${a.minWindowExtents !== undefined ? ` min ${a.minWindowExtents}` : ''}, ${a.order} order] ${s}\n`);
  };
  const native = loadNative();
  if (!native) throw new Error('the native addon is missing (FLATSNAP_NATIVE)');
  const size = a.sizeMiB * MiB;
  const dir = join(a.mnt, 'sr');
  await mkdir(dir, { recursive: true });
  const b = new ReflinkBackend(dir, { relayout: { enabled: false } });
  await b.createSr(randomUUID());
  let clock = Date.now();
  const tick = (): number => (clock = Math.max(clock + 1, Date.now()));
  const rnd = prng(a.seed);

  const v = await b.create(randomUUID(), vdiMeta('fragmentation'), size, tick());
  let t0 = performance.now();
  await fillRandom(v.handle, size);
  say(`wrote the ${a.sizeMiB} MiB disk in ${round((performance.now() - t0) / 1000)} s`);

  const scratch = join(a.mnt, 'ficlone.img');
  const ficloneMs = async (): Promise<number> => {
    const src = openSync(v.handle, 'r');
    const dst = openSync(scratch, 'wx', 0o600);
    let ms: number;
    try {
      const t = performance.now();
      native.ficlone(src, dst);
      ms = performance.now() - t;
    } finally {
      closeSync(dst);
      closeSync(src);
    }
    rmSync(scratch, { force: true });
    await syncFs(a.mnt);
    return ms;
  };

  const count = Math.round((size / REWRITE_UNIT) * a.share);
  const checkpoints: Array<Record<string, unknown>> = [];
  const cycles: Array<Record<string, unknown>> = [];
  const last = Math.max(...a.checkpoints, a.cycles);
  for (let n = 0; n <= last; n++) {
    if (a.checkpoints.includes(n)) {
      await syncFs(a.mnt);
      const st = await extentStats(v.handle);
      const fic: number[] = [];
      for (let i = 0; i < 3; i++) fic.push(await ficloneMs());
      const c = {
        n,
        extents: st.extents,
        fragments: st.fragments,
        shared_extents: st.shared,
        fs_used_mib: round(usedBytes(a.mnt) / MiB),
        ficlone_ms: { median: round(median(fic), 2), runs: fic.map((x) => round(x, 2)) },
      };
      checkpoints.push(c);
      say(`checkpoint ${JSON.stringify(c)}`);
    }
    if (n === last) break;
    t0 = performance.now();
    await snapshotOf(b, v, tick());
    const cyc: Record<string, unknown> = { n: n + 1, snapshot_ms: round(performance.now() - t0, 2) };
    if (a.variant === 'relayout') {
      const r = await relayoutVdi(dir, v.id, a.minWindowExtents !== undefined ? { minWindowExtents: a.minWindowExtents } : {});
      cyc.relayout = {
        ms: r.ms,
        extents_before: r.extents_before,
        extents_after: r.extents_after,
        windows_selected: r.windows_selected,
        windows_not_better: r.windows_not_better,
        bytes_copied: r.bytes_copied,
        ...(r.skipped !== undefined ? { skipped: r.skipped } : {}),
      };
    }
    t0 = performance.now();
    await rewriteRandom(v.handle, size, count, rnd, REWRITE_UNIT, a.order);
    cyc.rewrite_ms = Math.round(performance.now() - t0);
    cycles.push(cyc);
    say(`cycle ${JSON.stringify(cyc)}`);
  }
  const fs = identifyFs(dir);
  process.stdout.write(
    `${JSON.stringify({ variant: a.variant, min_window_extents: a.minWindowExtents ?? null, write_order: a.order, size_mib: a.sizeMiB, rewrite_blocks_per_cycle: count, fs: { kind: fs.kind, block_size: fs.blockSize, total_mib: round(fs.totalBytes / MiB) }, checkpoints, cycles })}\n`,
  );
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
