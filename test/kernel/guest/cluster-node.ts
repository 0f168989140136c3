// Runs INSIDE a node of the kernel tier's two-node OCFS2 cluster: one step of the
// scenario per call, driven by test/kernel/cluster.test.ts on the host through the guest
// agent. It uses the reflink backend the way the control module does on each host: the
// SR master changes the SR; any host lists it (inventory) and reads VDIs (datapath), as
// vdi_attach does. Each step takes the cross-host lock the driver's dispatch takes for
// the SM command it stands for (src/sr/shared-sr.ts: flock on the SR marker, which
// o2cb's DLM makes cluster-wide), so the hosts exclude each other as in production.
//
//   node cluster-node.cjs <op> '<json args>'   prints one JSON line: the op's result
import { existsSync } from 'node:fs';
import { mkdir, readdir, lstat, writeFile } from 'node:fs/promises';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { ReflinkBackend } from '../../../src/backends/reflink/backend.js';
import type { SwapStep } from '../../../src/backends/reflink/swap.js';
import type { StoredObject } from '../../../src/backends/backend.js';
import { Lock } from '../../../src/sr/locks.js';
import { clusterLockMode, withSrDirLock } from '../../../src/sr/shared-sr.js';
import type { SmCommand } from '../../../src/smapi/request.js';
import { formatSnapshotName } from '../../../src/lineage/names.js';
import { hashOf, snapshotMeta, vdiMeta, writePattern } from '../../conformance/backend-conformance.js';

const MiB = 1024 * 1024;
const SIZE = 32 * MiB;
type Args = Record<string, unknown>;

const str = (a: Args, k: string): string => {
  const v = a[k];
  if (typeof v !== 'string') throw new Error(`argument ${k} missing`);
  return v;
};
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
let clock = Date.now();
const tick = (): number => (clock = Math.max(clock + 1, Date.now()));

async function waitFile(path: string, timeoutMs = 300_000): Promise<void> {
  const t0 = Date.now();
  while (!existsSync(path)) {
    if (Date.now() - t0 > timeoutMs) throw new Error(`timed out waiting for ${path}`);
    await sleep(100);
  }
}

/** Inventory without the block accounting, which settles in the background. */
function comparable(inv: StoredObject[]): Array<Omit<StoredObject, 'physical_utilisation'>> {
  return inv.map(({ physical_utilisation: _p, ...rest }) => rest);
}

async function find(b: ReflinkBackend, id: string): Promise<StoredObject> {
  const o = (await b.inventory()).find((x) => x.id === id);
  if (!o) throw new Error(`no object ${id}`);
  return o;
}

async function snap(b: ReflinkBackend, of: StoredObject, label: string): Promise<StoredObject> {
  const id = randomUUID();
  const t = tick();
  return b.snapshot(id, of, formatSnapshotName(t, id), 'snapshot', snapshotMeta(of.vdi ?? of.id, t, label));
}

/** Every name in the SR directory with what would show a change: inode, links, size, ctime. */
async function dirState(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const n of (await readdir(dir)).sort()) {
    const s = await lstat(join(dir, n));
    out.push(`${n} ino=${s.ino} nlink=${s.nlink} size=${s.size} ctime=${s.ctimeMs}`);
  }
  return out;
}

/** A VDI, a snapshot of it, new data in it, a clone of the snapshot with its own data, a snapshot of the clone. */
async function build(a: Args) {
  const b = new ReflinkBackend(str(a, 'dir'));
  const v = await b.create(randomUUID(), vdiMeta('cluster disk'), SIZE, tick());
  const h1 = await writePattern(b, v, 'v-1');
  const s1 = await snap(b, v, 'cluster snapshot');
  const h2 = await writePattern(b, v, 'v-2');
  const c = await b.clone(randomUUID(), s1, vdiMeta('cluster clone'), tick());
  const hc = await writePattern(b, c, 'c-1');
  const s2 = await snap(b, c, 'snapshot of the clone');
  return { ids: { v: v.id, s1: s1.id, c: c.id, s2: s2.id }, hashes: { [v.id]: h2, [s1.id]: h1, [c.id]: hc, [s2.id]: hc } };
}

/** Inventory, then the datapath and hash of every visible object; the directory's state before and after. */
async function read(dir: string) {
  const before = await dirState(dir);
  const b = new ReflinkBackend(dir);
  const hashes: Record<string, string> = {};
  const errors: Record<string, string> = {};
  let objects: StoredObject[] = [];
  try {
    objects = await b.inventory();
    for (const o of objects) {
      if (o.deleted) continue;
      try {
        hashes[o.id] = await hashOf(await b.datapath(o));
      } catch (e) {
        errors[o.id] = String(e);
      }
    }
  } catch (e) {
    errors.inventory = String(e);
  }
  return { objects: comparable(objects), hashes, errors, before, after: await dirState(dir) };
}

/**
 * Runs `fn` under the cross-host lock dispatch takes for `command` (exclusive for the
 * commands that change the SR's files, shared for vdi_attach; a reader that meets a
 * crashed writer's swap upgrades to exclusive). `a.started` / `a.locked`, if given, are
 * marker files touched before asking for the lock and once it is held.
 */
async function as<T>(command: SmCommand, a: Args, fn: () => Promise<T>): Promise<T> {
  const mode = clusterLockMode(command);
  if (mode === undefined) throw new Error(`${command} takes no cross-host lock`);
  if (typeof a.started === 'string') await writeFile(a.started, command);
  return withSrDirLock(str(a, 'dir'), mode, command, async () => {
    if (typeof a.locked === 'string') await writeFile(a.locked, command);
    return fn();
  });
}

const ops: Record<string, (a: Args) => Promise<unknown>> = {
  /** Master: makes the SR. */
  async 'create-sr'(a) {
    const dir = str(a, 'dir');
    await mkdir(dir, { recursive: true });
    const b = new ReflinkBackend(dir);
    await b.createSr(str(a, 'sr')); // sr_create: no SR yet, no lock
    await as('sr_attach', a, () => b.attachSr(str(a, 'sr')));
    return { describe: b.describe() };
  },

  /** Any host: sr_attach. */
  async attach(a) {
    const b = new ReflinkBackend(str(a, 'dir'));
    await as('sr_attach', a, () => b.attachSr(str(a, 'sr')));
    return { describe: b.describe(), probe: await b.probe() };
  },

  /** Master: build() under vdi_snapshot's exclusive lock. */
  async build(a) {
    return as('vdi_snapshot', a, () => build(a));
  },

  /** Master: rewrites a VDI (found as vdi_attach finds it; the writes are the datapath's, unlocked). */
  async write(a) {
    const b = new ReflinkBackend(str(a, 'dir'));
    const o = await as('vdi_attach', a, () => find(b, str(a, 'id')));
    return { hash: await writePattern(b, o, str(a, 'seed')) };
  },

  /** Master: tombstones and destroys an object. */
  async remove(a) {
    return as('vdi_delete', a, async () => {
      const b = new ReflinkBackend(str(a, 'dir'));
      const o = await find(b, str(a, 'id'));
      if (o.vdi !== undefined && !o.deleted) await b.markTombstone(o);
      await b.destroy(o);
      return {};
    });
  },

  /** Master: everything destroyed, then the SR. */
  async 'delete-all'(a) {
    await as('sr_delete', a, async () => {
      const b = new ReflinkBackend(str(a, 'dir'));
      for (const o of await b.inventory()) {
        if (o.vdi !== undefined && !o.deleted) await b.markTombstone(o);
        await b.destroy(o);
      }
      await b.deleteSr(str(a, 'sr'));
    });
    return { left: await readdir(str(a, 'dir')) };
  },

  /** Any host: the inventory, as the control module's lineage() reads it. */
  async inventory(a) {
    return as('vdi_attach', a, async () => ({ objects: comparable(await new ReflinkBackend(str(a, 'dir')).inventory()) }));
  },

  /**
   * Any host, as vdi_attach does it: inventory, then the datapath of every visible object
   * and a hash of its bytes. Also the directory's state before and after, to show the
   * reads changed nothing.
   */
  async read(a) {
    return as('vdi_attach', a, () => read(str(a, 'dir')));
  },

  /** Master: a VDI with data, a snapshot, newer data, and a hidden clone of the snapshot: what a revert swaps. */
  async 'prepare-revert'(a) {
    return as('vdi_clone', a, async () => {
      const b = new ReflinkBackend(str(a, 'dir'));
      const v = await b.create(randomUUID(), vdiMeta('reverted on the master'), SIZE, tick());
      const hOld = await writePattern(b, v, 'revert-old');
      const s = await snap(b, v, 'revert point');
      const hNew = await writePattern(b, v, 'revert-new');
      const fresh = await b.clone(randomUUID(), s, undefined, tick());
      return { v: v.id, s: s.id, fresh: fresh.id, hOld, hNew };
    });
  },

  /**
   * Master: swapVdi(v -> fresh) under vdi_revert's exclusive lock, pausing after step
   * `hold` (touching `marker` when it gets there) until the file `release` exists, or
   * until `crash` exists: then the process dies on the spot, as a crashed driver would,
   * holding the lock and leaving the swap half-done.
   */
  async 'swap-paused'(a) {
    const dir = str(a, 'dir');
    const hold = str(a, 'hold') as SwapStep;
    const crash = typeof a.crash === 'string' ? a.crash : undefined;
    const b = new ReflinkBackend(dir, {
      afterSwapStep: async (step) => {
        if (step !== hold) return;
        await writeFile(str(a, 'marker'), step);
        const t0 = Date.now();
        for (;;) {
          if (existsSync(str(a, 'release'))) return;
          if (crash !== undefined && existsSync(crash)) process.kill(process.pid, 'SIGKILL');
          if (Date.now() - t0 > 300_000) throw new Error('timed out waiting for release');
          await sleep(100);
        }
      },
    });
    return as('vdi_revert', a, async () => {
      const v = await find(b, str(a, 'v'));
      const fresh = await find(b, str(a, 'fresh'));
      await b.swapVdi(v.id, v, fresh);
      const after = await new ReflinkBackend(dir).inventory();
      return { vdiNow: after.find((o) => o.vdi === v.id && !o.deleted)?.id, state: await dirState(dir) };
    });
  },

  /** Any host: holds the SM lock (fcntl, lock.py's kind) on `path` until `release` exists. */
  async 'fcntl-hold'(a) {
    const l = new Lock(str(a, 'path'));
    l.acquire();
    await writeFile(str(a, 'marker'), 'held');
    await waitFile(str(a, 'release'));
    l.release();
    return { held: true };
  },

  /** Any host: tries the SM lock on `path` without waiting. */
  async 'fcntl-try'(a) {
    const l = new Lock(str(a, 'path'));
    const got = l.tryAcquire();
    if (got) l.release();
    return { acquired: got };
  },
};

async function main(): Promise<void> {
  const [op, json] = process.argv.slice(2);
  const fn = op === undefined ? undefined : ops[op];
  if (!fn) throw new Error(`unknown op ${String(op)}; ops: ${Object.keys(ops).join(', ')}`);
  const result = await fn(JSON.parse(json ?? '{}') as Args);
  process.stdout.write(`${JSON.stringify(result)}\n`);
}

main().catch((e: unknown) => {
  const err = e as { code?: unknown; message?: string; stack?: string };
  process.stdout.write(`${JSON.stringify({ error: err.message ?? String(e), code: err.code, stack: err.stack })}\n`);
  process.exitCode = 1;
});
