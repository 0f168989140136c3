// The reflink backend: one SR directory on OCFS2, XFS (reflink=1) or btrfs; every
// storage object is one sparse raw file with a sidecar, and snapshots and clones
// are FICLONE copies, each an independent file (capabilities.dependent = false).
// Layout and naming: names.ts; records: sidecar.ts; the SR marker: pool.ts;
// swap-vdi: swap.ts.
//
// Making an object is crash-safe as objects.ts describes (image built under a temp
// name, sidecar created, image published; nothing left behind on failure); a swap
// is journalled as swap.ts describes. Destroying unlinks the image first, then the
// sidecar: a crash in between leaves only an orphan sidecar, which is ignored and
// reaped.
import { isAbsolute, join, normalize } from 'node:path';
import { lstat, open, readdir, rename, unlink } from 'node:fs/promises';
import { SmError } from '../../errors.js';
import { log } from '../../log.js';
import { REFLINK_CAPABILITIES, type Capabilities, type LineageObject } from '../../lineage/model.js';
import { parseSnapshotName } from '../../lineage/names.js';
import type { Backend, ProbeResult, SrStats, StoredObject, VdiHint, VdiMeta } from '../backend.js';
import { discard, fsyncDir } from './atomic.js';
import { copyImage } from './copy.js';
import { mapErrors, toSmError } from './fs-errors.js';
import { findObject, publishObject, statObject, storedObject, type Located } from './objects.js';
import { identifyFs, probeReflink } from './fsinfo.js';
import { listVdis } from './listing.js';
import { isVdiUuid, objectName, parseSwapName, swapPath, tempPath } from './names.js';
import { attachSr, createSr, deleteSr, probeSr, removeLeftovers, srStats } from './pool.js';
import { metaProblem, readRecord, removeRecord, writeRecord, type ObjectRecord } from './sidecar.js';
import { type AfterStep, completeSwap, readIntent, swapFiles } from './swap.js';
import { extentStats, growFile } from './volume.js';
import { RELAYOUT_DEFAULT, type RelayoutPolicy, UNSHARE_DEFAULT, type UnshareMode } from './relayout-policy.js';
import { relayoutAfterSnapshot } from './relayout-trigger.js';

export interface ReflinkBackendOptions {
  /** Allow full (sparse) copies where the filesystem cannot reflink. Test / evaluation only. */
  allowCopy?: boolean;
  /** Test hook: called after each durable step of swapVdi (a throw simulates a crash there). */
  afterSwapStep?: AfterStep;
  /** Background relayout of fragmented live images after snapshots (relayout-trigger.ts); default on. */
  relayout?: RelayoutPolicy;
  /** Move snapshots off the live image's blocks after each snapshot (unshare.ts); default UNSHARE_DEFAULT. */
  unshare?: UnshareMode;
}

/** Leftovers younger than this may be another host's work in progress (shared OCFS2). */
const LEFTOVER_AGE_MS = 15 * 60 * 1000;
/** Image sizes are whole 512-byte sectors (what tapdisk's aio driver addresses). */
const SECTOR = 512;

/** An SmError InvalidArg unless `v` is a canonical lower-case uuid: checked before any id becomes a path. */
function requireId(what: string, v: unknown): string {
  if (typeof v !== 'string' || !isVdiUuid(v)) throw new SmError('InvalidArg', `${what} is not a lower-case uuid: ${JSON.stringify(v)?.slice(0, 80)}`);
  return v;
}

function requireObject(what: string, o: LineageObject): void {
  if (typeof o !== 'object' || o === null) throw new SmError('InvalidArg', `${what} is not an object`);
  requireId(`${what}.id`, o.id);
  if (o.vdi !== undefined) requireId(`${what}.vdi`, o.vdi);
}

function requireMeta(meta: VdiMeta): VdiMeta {
  const p = metaProblem(meta);
  if (p) throw new SmError('InvalidArg', p);
  return meta;
}

function roundSize(size: number): number {
  if (!Number.isSafeInteger(size) || size < 0) throw new SmError('VDISize', `not a byte count: ${size}`);
  const r = Math.ceil(size / SECTOR) * SECTOR;
  if (!Number.isSafeInteger(r)) throw new SmError('VDISize', `too large: ${size}`);
  return r;
}

function requireTime(t: number | undefined): number {
  if (t === undefined) return Date.now();
  if (!Number.isSafeInteger(t) || t < 0) throw new SmError('InvalidArg', `not a time in ms: ${t}`);
  return t;
}

export class ReflinkBackend implements Backend {
  readonly kind = 'reflink' as const;
  readonly capabilities: Capabilities = REFLINK_CAPABILITIES;
  readonly dir: string;
  private readonly allowCopy: boolean;
  private readonly afterSwapStep: AfterStep | undefined;
  readonly relayout: RelayoutPolicy;
  readonly unshare: UnshareMode;
  /** Whether FICLONE works here; decided by createSr/attachSr, or on the first copy. */
  private reflinkWorks: boolean | undefined;
  /** No interrupted swap is left in the directory (see settle()). */
  private settled = false;

  /** `dir` is device-config:path: an absolute path (normalised here; its existence is checked by the SR calls). */
  constructor(dir: string, opts: ReflinkBackendOptions = {}) {
    if (typeof dir !== 'string' || !isAbsolute(dir) || dir.includes('\0'))
      throw new SmError('ConfigParamsMissing', `device-config:path must be an absolute path: ${JSON.stringify(dir)}`);
    this.dir = normalize(dir).replace(/(.)\/+$/, '$1');
    this.allowCopy = opts.allowCopy ?? false;
    this.afterSwapStep = opts.afterSwapStep;
    this.relayout = opts.relayout ?? RELAYOUT_DEFAULT;
    this.unshare = opts.unshare ?? UNSHARE_DEFAULT;
  }

  describe(): string {
    let fs = 'unknown filesystem';
    try {
      const k = identifyFs(this.dir).kind;
      fs = k === 'other' ? 'a filesystem without reflink' : k;
    } catch {
      // unreachable right now: say so through the path alone
    }
    return `${fs} at ${this.dir}${this.allowCopy ? ' (allow-copy)' : ''}`;
  }

  // --- the SR ------------------------------------------------------------------

  async createSr(srUuid: string): Promise<void> {
    this.reflinkWorks = await createSr(this.dir, srUuid, this.allowCopy);
  }

  async attachSr(srUuid: string): Promise<void> {
    this.reflinkWorks = await attachSr(this.dir, srUuid, this.allowCopy);
    // Only old leftovers: on a shared filesystem every host attaches, and young ones may be
    // the SR master's work in progress. Interrupted swaps are not touched here for the same
    // reason; the master completes them on its next inventory or change (settle()).
    await removeLeftovers(this.dir, LEFTOVER_AGE_MS);
  }

  async detachSr(srUuid: string): Promise<void> {
    requireId('SR uuid', srUuid);
  }

  async deleteSr(srUuid: string): Promise<void> {
    await deleteSr(this.dir, srUuid);
  }

  async stats(): Promise<SrStats> {
    return srStats(this.dir);
  }

  async probe(): Promise<ProbeResult[]> {
    return probeSr(this.dir);
  }

  // --- objects -------------------------------------------------------------------

  /**
   * Completes every swap a crash interrupted (see swap.ts), once per instance: only this
   * process, holding the SR lock, starts swaps, and its own either finish or clear `settled`.
   * Called by inventory() and before every change, never by the read-only calls (datapath,
   * health), which may run on any host of a shared SR while the master is mid-swap.
   */
  private async settle(): Promise<void> {
    if (this.settled) return;
    const names = await mapErrors(`list ${this.dir}`, { notFound: 'SRUnavailable', fallback: 'SRScan' }, () => readdir(this.dir));
    for (const name of names) {
      const vdi = parseSwapName(name);
      if (vdi === undefined) continue;
      const intent = await readIntent(this.dir, vdi);
      if (intent === undefined) continue; // completed meanwhile
      log().warn(`flatsnap: completing an interrupted swap of VDI ${vdi} onto ${intent.to.id} in ${this.dir}`);
      await completeSwap(this.dir, intent);
    }
    this.settled = true;
  }

  async inventory(): Promise<StoredObject[]> {
    let l = await listVdis(this.dir);
    if (l.swaps.length > 0) {
      this.settled = false;
      await this.settle();
      l = await listVdis(this.dir);
    }
    this.settled = true; // the listing saw no swap left
    const out: StoredObject[] = [];
    for (const e of l.vdis) {
      if (e.record === null) {
        log().warn(`flatsnap: ${e.path} is not a flatsnap object (${e.problem ?? 'no record'}); left alone`);
        continue;
      }
      out.push(storedObject(e.record, e.path, e.size, e.allocated));
    }
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /**
   * The VDIs' own images (`<vdi>`: the one name an object backing a VDI has, tombstones
   * included) and, for lineage stamps (unless `ancestors: false`), their ancestors up to
   * the first that backs a VDI; nothing is listed. Nothing else decides anything here:
   * every object is independent.
   * undefined while one of the VDIs has a pending swap (inventory() completes it), when an
   * image has no valid record, or when a parent is under none of the names it can have
   * (`<id>`, `<id>.hidden`, or the VDI its child was taken of, where a revert put it):
   * gone, or somewhere only a listing finds.
   */
  async family(hints: readonly VdiHint[], opts: { ancestors?: boolean } = {}): Promise<StoredObject[] | undefined> {
    const bad = Symbol('bad');
    const read = async (name: string, id?: string): Promise<StoredObject | undefined | typeof bad> => {
      const path = join(this.dir, name);
      const st = await mapErrors(`stat ${path}`, { notFound: 'SRUnavailable' }, () =>
        lstat(path).catch((e: unknown) => {
          if ((e as { code?: unknown }).code === 'ENOENT') return undefined;
          throw e;
        }),
      );
      if (st === undefined) return undefined;
      if (!st.isFile()) return bad;
      const record = await readRecord(this.dir, name).catch(() => undefined);
      if (record === undefined) return bad;
      if (id !== undefined && record.id !== id) return undefined;
      return storedObject(record, path, st.size, st.blocks * 512);
    };
    const out = new Map<string, StoredObject>();
    for (const h of hints) {
      requireId('vdi', h.vdi);
      if (await lstat(swapPath(this.dir, h.vdi)).then(() => true, () => false)) return undefined;
      const o = await read(objectName(h.vdi, h.vdi));
      if (o === bad) return undefined;
      if (o === undefined) continue; // no such VDI here (what inventory() would say too)
      out.set(o.id, o);
      if (opts.ancestors === false) continue;
      for (let c = o, hops = 0; c.parent !== undefined && !out.has(c.parent); hops++) {
        if (hops > 1000) return undefined;
        const p = c.parent;
        const names = [objectName(p, p), objectName(p)];
        const of = c.meta?.snapshot_of;
        if (of !== undefined && isVdiUuid(of) && of !== p) names.push(objectName(of, of));
        let po: StoredObject | undefined;
        for (const n of names) {
          const r = await read(n, p);
          if (r === bad) return undefined;
          if (r !== undefined) {
            po = r;
            break;
          }
        }
        if (po === undefined) return undefined;
        out.set(po.id, po);
        if (po.vdi !== undefined) break; // where parentVdiOf stops
        c = po;
      }
    }
    return [...out.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /**
   * Finds the image of `obj` by its id, whatever the caller's copy says about its VDI (it
   * may predate a swap): first the names its fields point at, then a full listing. Changes
   * settle() first; a read of a VDI whose swap is pending is refused (VDIUnavailable).
   */
  private async locate(obj: LineageObject, what = 'object', change = true): Promise<Located> {
    requireObject(what, obj);
    if (change) await this.settle();
    const found = await findObject(this.dir, obj);
    if (found === undefined) throw new SmError('VolNotFound', `no ${what} ${obj.id} in ${this.dir}`);
    if (found.record.vdi !== undefined) {
      const pending = await lstat(swapPath(this.dir, found.record.vdi)).then(
        () => true,
        () => false,
      );
      if (pending)
        throw new SmError('VDIUnavailable', `VDI ${found.record.vdi} has an interrupted swap; an sr-scan on the SR master completes it`);
    }
    return found;
  }

  /** Whether to copy whole images (allow-copy on a filesystem that cannot reflink). */
  private async fullCopy(): Promise<boolean> {
    if (!this.allowCopy) return false;
    this.reflinkWorks ??= (await probeReflink(this.dir)).ok;
    return !this.reflinkWorks;
  }

  async create(id: string, meta: VdiMeta, size: number, time?: number): Promise<StoredObject> {
    requireId('id', id);
    requireMeta(meta);
    const bytes = roundSize(size);
    const record: ObjectRecord = { id, kind: 'volume', vdi: id, created: requireTime(time), deleted: false, meta: { ...meta } };
    await this.settle();
    return publishObject(this.dir, objectName(id, id), record, 'VDICreate', async (tmp) => {
      const fh = await open(tmp, 'wx', 0o600);
      try {
        await fh.truncate(bytes);
        await fh.sync();
      } finally {
        await fh.close();
      }
    });
  }

  async snapshot(
    id: string,
    of: StoredObject,
    name: string,
    kind: 'snapshot' | 'internal-snapshot',
    meta?: VdiMeta,
  ): Promise<StoredObject> {
    requireId('id', id);
    requireObject('of', of);
    if (kind !== 'snapshot' && kind !== 'internal-snapshot') throw new SmError('InvalidArg', `not a snapshot kind: ${String(kind)}`);
    const parsed = parseSnapshotName(name);
    if (parsed === undefined || parsed.uuid !== id || (parsed.kind === 'internal') !== (kind === 'internal-snapshot'))
      throw new SmError('InvalidArg', `${JSON.stringify(name)} is not the ${kind} name of ${id}`);
    if (kind === 'snapshot' && meta === undefined) throw new SmError('InvalidArg', `snapshot VDI ${id} needs its metadata`);
    if (kind === 'internal-snapshot' && meta !== undefined) throw new SmError('InvalidArg', 'an internal snapshot backs no VDI: no metadata');
    if (meta !== undefined) requireMeta(meta);
    const src = await this.locate(of, 'source');
    const record: ObjectRecord = { id, kind, parent: src.record.id, created: parsed.time, deleted: false };
    if (kind === 'snapshot') {
      record.vdi = id;
      record.meta = { ...meta! };
    }
    const full = await this.fullCopy();
    const made = await publishObject(this.dir, objectName(id, record.vdi), record, 'VDISnapshot', (tmp) =>
      copyImage(src.path, tmp, { fullCopy: full, fail: 'VDISnapshot' }),
    );
    if (!full && src.record.kind === 'volume' && src.record.vdi !== undefined && !src.record.deleted)
      await relayoutAfterSnapshot(this.dir, src.record.vdi, src.path, this.relayout, this.unshare);
    return made;
  }

  async clone(id: string, from: StoredObject, meta?: VdiMeta, time?: number): Promise<StoredObject> {
    requireId('id', id);
    requireObject('from', from);
    if (meta !== undefined) requireMeta(meta);
    const created = requireTime(time);
    const src = await this.locate(from, 'source');
    const record: ObjectRecord = { id, kind: 'volume', parent: src.record.id, created, deleted: false };
    if (meta !== undefined) {
      record.vdi = id;
      record.meta = { ...meta };
    }
    const full = await this.fullCopy();
    return publishObject(this.dir, objectName(id, record.vdi), record, 'VDIClone', (tmp) =>
      copyImage(src.path, tmp, { fullCopy: full, fail: 'VDIClone' }),
    );
  }

  async markTombstone(obj: StoredObject): Promise<void> {
    const o = await this.locate(obj);
    if (!o.record.deleted) await writeRecord(this.dir, o.name, { ...o.record, deleted: true });
  }

  async swapVdi(vdi: string, from: StoredObject, to: StoredObject): Promise<void> {
    requireId('vdi', vdi);
    requireObject('from', from);
    requireObject('to', to);
    if (from.id === to.id) throw new SmError('InvalidArg', `swap of VDI ${vdi}: from and to are both ${from.id}`);
    const f = await this.locate(from, 'volume');
    const t = await this.locate(to, 'volume');
    if (f.record.kind !== 'volume' || t.record.kind !== 'volume')
      throw new SmError('InvalidArg', `swap of VDI ${vdi}: ${f.record.id} (${f.record.kind}) and ${t.record.id} (${t.record.kind}) must both be volumes`);
    if (f.record.vdi !== vdi || f.name !== vdi) throw new SmError('InvalidArg', `swap of VDI ${vdi}: ${f.record.id} does not back it`);
    if (t.record.vdi !== undefined) throw new SmError('InvalidArg', `swap of VDI ${vdi}: ${t.record.id} already backs VDI ${t.record.vdi}`);
    if (t.record.deleted) throw new SmError('InvalidArg', `swap of VDI ${vdi}: ${t.record.id} is a tombstone`);
    // from's final name must be free, so that completeSwap can tell the steps apart.
    const oldName = objectName(f.record.id);
    const oldPath = join(this.dir, oldName);
    if (await lstat(oldPath).then(() => true, () => false)) throw new SmError('VDIExists', `${oldPath} already exists`);
    if (await removeRecord(this.dir, oldName)) log().warn(`flatsnap: removed the orphan sidecar ${oldPath}.json`);
    this.settled = false; // if this swap stops half-way, the next change completes it
    await swapFiles(this.dir, vdi, f.record, t.record, this.afterSwapStep);
    this.settled = true;
  }

  /**
   * Not planned for reflink (lineage plans rollbacks only for dependent backends: a revert
   * here is clone + swap-vdi), but well defined: `obj`'s image becomes a reflink copy of its
   * snapshot `snapshot` (temp copy, then rename(2) over the image: a crash leaves the old or
   * the new content). Other snapshots are untouched.
   */
  async rollback(obj: StoredObject, snapshot: StoredObject): Promise<void> {
    const o = await this.locate(obj);
    const s = await this.locate(snapshot, 'snapshot');
    if (o.record.kind !== 'volume') throw new SmError('InvalidArg', `rollback: ${o.record.id} is not a volume`);
    if (s.record.kind === 'volume' || s.record.parent !== o.record.id)
      throw new SmError('InvalidArg', `rollback: ${s.record.id} is not a snapshot of ${o.record.id}`);
    const tmp = tempPath(this.dir, o.name);
    await copyImage(s.path, tmp, { fullCopy: await this.fullCopy(), fail: 'VDIClone' });
    try {
      await rename(tmp, o.path);
      await fsyncDir(this.dir);
    } catch (e) {
      await discard(tmp);
      throw toSmError(e, `rollback ${o.path}`, { fallback: 'VDIClone' });
    }
  }

  async destroy(obj: StoredObject): Promise<void> {
    const o = await this.locate(obj);
    await mapErrors(`remove ${o.path}`, { fallback: 'VDIRemove' }, async () => {
      await unlink(o.path);
      await fsyncDir(this.dir);
    });
    await removeRecord(this.dir, o.name);
  }

  // --- a VDI's data and metadata ------------------------------------------------

  async setMeta(obj: StoredObject, meta: VdiMeta): Promise<void> {
    requireMeta(meta);
    const o = await this.locate(obj);
    await writeRecord(this.dir, o.name, { ...o.record, meta: { ...meta } });
  }

  async resize(obj: StoredObject, size: number): Promise<number> {
    const bytes = roundSize(size);
    const o = await this.locate(obj);
    const old = await growFile(o.path, bytes);
    return Math.max(old, bytes);
  }

  async datapath(obj: StoredObject): Promise<string> {
    return (await this.locate(obj, 'object', false)).path;
  }

  async health(obj: StoredObject): Promise<Record<string, number | string>> {
    const o = await this.locate(obj, 'object', false);
    const st = await extentStats(o.path);
    const s = await statObject(o.record, o.path);
    return {
      extents: st.extents,
      fragments: st.fragments,
      shared_extents: st.shared,
      mapped_bytes: st.bytes,
      shared_bytes: st.sharedBytes,
      virtual_size: s.virtual_size,
      allocated_bytes: s.physical_utilisation,
    };
  }
}
