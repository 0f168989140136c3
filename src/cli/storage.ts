// The SR as the operator command sees it: a backend built from --dataset/--path
// (by type analysis, exactly as the driver builds it from device-config), the SR's
// uuid from its marker (probe), and one inventory loaded into a LineageTree.
import { lstat } from 'node:fs/promises';
import { join } from 'node:path';
import type { Backend, StoredObject } from '../backends/backend.js';
import type { ReflinkBackend } from '../backends/reflink/backend.js';
import type { SrListing } from '../backends/reflink/listing.js';
import { analyseDeviceConfig, backendFor } from '../backends/type-analysis.js';
import { SmError } from '../errors.js';
import { LineageTree } from '../lineage/index.js';
import { Lock } from '../sr/locks.js';
import type { StorageTarget } from './args.js';
import type { Io, Timer } from './output.js';

/**
 * The one place that turns the command line's storage target into a Backend: the same
 * type analysis the SM commands run on device-config (dataset= is ZFS, path= is reflink),
 * so the operator tool and the driver always agree on what an SR is.
 */
export async function openBackend(t: StorageTarget): Promise<Backend> {
  return backendFor(analyseDeviceConfig(t.kind === 'zfs' ? { dataset: t.dataset } : { path: t.path }));
}

export interface SrView {
  readonly backend: Backend;
  readonly srUuid: string;
  /** "xfs at /srv/sr" / "zfs dataset tank/sr". */
  readonly where: string;
  readonly objects: readonly StoredObject[];
  readonly byId: ReadonlyMap<string, StoredObject>;
  readonly tree: LineageTree;
}

/** The uuid of the SR on this storage (its marker), or a CommandError. */
export async function srUuidOf(backend: Backend): Promise<string> {
  const found = await backend.probe();
  if (found.length === 0) throw new CommandError(`no flatsnap SR on ${backend.describe()} (no SR marker: wrong path/dataset, or not mounted?)`);
  if (found.length > 1) throw new CommandError(`${backend.describe()} holds ${found.length} flatsnap SRs (${found.map((f) => f.sr_uuid).join(', ')}); give the SR's own path or dataset`);
  return found[0]!.sr_uuid;
}

/**
 * Runs `fn` holding the SR lock (the same fcntl lock SM commands take): inventory() may
 * complete storage work an interrupted command left, and gc changes storage, so neither
 * may run beside a driver command on this host. Says so on stderr when it has to wait.
 * On a reflink SR the cross-host lock comes first (the driver's lock order,
 * src/sr/shared-sr.ts): exclusive for gc (`change`), shared to read, so a shared SR is
 * also safe from the other hosts' commands.
 */
export async function withSrLock<T>(srUuid: string, io: Io, fn: () => Promise<T>, backend?: Backend, change = true): Promise<T> {
  if (backend?.kind === 'reflink') {
    const { withSrDirLock } = await import('../sr/shared-sr.js');
    const dir = (backend as ReflinkBackend).dir;
    return withSrDirLock(dir, change ? 'exclusive' : 'shared', 'flatsnap', () => withLocalSrLock(srUuid, io, fn));
  }
  return withLocalSrLock(srUuid, io, fn);
}

async function withLocalSrLock<T>(srUuid: string, io: Io, fn: () => Promise<T>): Promise<T> {
  const lock = Lock.sr(srUuid);
  if (!lock.tryAcquire()) {
    io.err(`flatsnap: waiting for the SR lock ${lock.path} (an SR operation is running)`);
    lock.acquire();
  }
  try {
    return await fn();
  } finally {
    lock.release();
  }
}

/** The SR's objects and lineage from one inventory (under the SR lock unless the caller holds it). */
export async function loadSr(backend: Backend, io: Io, timer: Timer, opts: { srUuid?: string; locked?: boolean } = {}): Promise<SrView> {
  const srUuid = opts.srUuid ?? (await timer.time('probe', () => srUuidOf(backend)));
  const inventory = (): Promise<StoredObject[]> => timer.time('inventory', () => backend.inventory());
  const objects = opts.locked ? await inventory() : await withSrLock(srUuid, io, inventory, backend, false);
  const tree = timer.timeSync('index', () => new LineageTree(backend.capabilities, objects));
  return { backend, srUuid, where: backend.describe(), objects, byId: new Map(objects.map((o) => [o.id, o])), tree };
}

/** A reflink SR directory's listing with the age of its temp files, for `check`; undefined elsewhere. */
export async function reflinkListing(backend: Backend): Promise<(SrListing & { tempAgesMs: Map<string, number>; dir: string }) | undefined> {
  if (backend.kind !== 'reflink') return undefined;
  const dir = (backend as ReflinkBackend).dir;
  const { listVdis } = await import('../backends/reflink/listing.js');
  const l = await listVdis(dir);
  const now = Date.now();
  const tempAgesMs = new Map<string, number>();
  for (const t of l.temps) {
    const st = await lstat(join(dir, t)).catch(() => undefined);
    if (st) tempAgesMs.set(t, now - st.mtimeMs);
  }
  return { ...l, tempAgesMs, dir };
}

/** An error that ends the command with exit status 3 ("could not run"). */
export class CommandError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'CommandError';
  }
}

/** A storage/driver error as one readable line. */
export function describeError(e: unknown): string {
  if (e instanceof SmError) return e.detail ? e.detail : e.message;
  return e instanceof Error ? e.message : String(e);
}
