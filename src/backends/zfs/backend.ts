// The ZFS backend: non-linked snapshots on ZFS. One dataset per volume object under
// the SR root (device-config:dataset=POOL/PATH); snapshot objects are ZFS snapshots of
// their volume, clones are ZFS clones. Never a chain, never a data copy; no `zfs
// rollback -r`, `destroy -r/-R/-d` or `promote` (the lineage module decides what
// to destroy, children first, and when a rollback is legal).
//
// Layout (records.ts has the property list):
//   <root>                                flatsnap:sr=<sr uuid>
//   <root>/<id>                           a volume object (live VDI, tombstone, hidden clone)
//   <root>/<id>@<time>-<uuid>             a snapshot VDI (id = uuid = VDI uuid)
//   <root>/<id>@<time>-int-<uuid>         an internal snapshot (taken to clone a live volume)
//   <root>/<snapshot id>.view             zfs-fuse only: the read view of a snapshot (volumes.ts)
//
// A volume's bytes, decided per object from its ZFS type (so an SR made on zfs-fuse
// still works after an import into OpenZFS), and for new volumes once per backend
// instance (= per SM call) from `zfs version`:
//   - ZFS with volumes (OpenZFS): a sparse zvol, `zfs create -s -b 16K -V <size>`, with
//     volmode=dev inherited from the SR root (pool.ts; volumes.ts says why not per zvol);
//     the datapath is /dev/zvol/<root>/<id>. Sparse: a refreservation would charge the
//     full size again for every snapshot. volmode=dev: dom0 must not scan guests'
//     partition tables and LVM. volblocksize 16K (OpenZFS 2.2's default, fixed here so
//     rounding does not depend on the version): the copy-on-write unit after a snapshot
//     is one volblock, so a guest's 4K write into a block a snapshot shares allocates a
//     whole new one; with many snapshots kept (the point of flatsnap) 64K would grow
//     space 4x faster under random writes and read-modify-write every sub-block write,
//     while 8K costs more metadata and raidz padding.
//   - zfs-fuse (no zvols): a filesystem dataset holding a sparse `disk.raw`
//     (recordsize 16K for the same reason, atime=off so reads never make a dataset
//     diverge from its snapshots); the datapath is <mountpoint>/disk.raw. The size is
//     kept in `flatsnap:size` (set with the dataset, rewritten on resize) so the
//     inventory stays ONE `zfs get` with no stat per disk.
//
// Records: every object's lineage record and VDI metadata live in its own `flatsnap:*`
// user properties, set atomically at creation (`zfs create/snapshot/clone -o`). A
// name label or description longer than a property holds (4095 bytes once
// %-encoded, codec.ts) is cut at a character boundary and ends in "…[truncated]".
import { existsSync, readFileSync } from 'node:fs';
import { SmError } from '../../errors.js';
import {
  type Capabilities,
  type LineageObject,
  type ObjectKind,
  ZFS_CAPABILITIES,
  isNameableTime,
  isUuid,
  parseSnapshotName,
} from '../../lineage/index.js';
import type { Backend, ProbeResult, SrStats, StoredObject, VdiHint, VdiMeta } from '../backend.js';
import { DEFAULT_RETRY, ZfsCli, type ZfsCliOptions, type ZfsLogger } from './cli.js';
import type { ZfsCtx } from './context.js';
import { isZfsError, ZfsError } from './errors.js';
import { execaExec, resolveBinary } from './exec.js';
import { mapFailure } from './fail.js';
import { isDatasetName, poolOf } from './names.js';
import { attachSr, createSr, deleteSr, probeSr, requireSrUuid, srStats } from './pool.js';
import { KnownDatasets } from './known.js';
import { NATIVE_PROPS, OBJECT_PROPS, PROP, VIEW_SUFFIX, decodeDataset, metaProblem } from './records.js';
import type { ZfsDataset } from './parse.js';
import { NOT_NEWEST } from './commands.js';
import * as vol from './volumes.js';
import { log } from '../../log.js';

export interface ZfsBackendOptions
  extends Pick<ZfsCliOptions, 'exec' | 'zfsBin' | 'zpoolBin' | 'timeoutMs' | 'retry' | 'sleep' | 'features' | 'fileExists'> {
  logger?: ZfsLogger;
  /**
   * Raw-file layout: the mountpoint to give an SR root that has none usable (mountpoint
   * none/legacy) at createSr. Default /var/run/sr-mount/<sr uuid>.
   */
  mountpoint?: string;
  /** How long datapath waits for udev to make a /dev/zvol node (default 10 s). */
  zvolTimeoutMs?: number;
  /** The text of /proc/self/mounts (tests). */
  readMounts?: () => string;
}

const KINDS: readonly ObjectKind[] = ['volume', 'snapshot', 'internal-snapshot'];

const invalid = (msg: string): SmError => new SmError('InvalidArg', msg);
const show = (v: unknown): string => (JSON.stringify(v) ?? String(v)).slice(0, 80);

function requireId(what: string, v: unknown): string {
  if (typeof v !== 'string' || !isUuid(v)) throw invalid(`${what} is not a lower-case uuid: ${show(v)}`);
  return v;
}

/** The fields of a caller's object this backend relies on (it derives ZFS names from them). */
function requireObject(what: string, o: LineageObject): LineageObject {
  if (typeof o !== 'object' || o === null) throw invalid(`${what} is not an object`);
  requireId(`${what}.id`, o.id);
  if (!KINDS.includes(o.kind)) throw invalid(`${what}.kind is not an object kind: ${show(o.kind)}`);
  if (o.vdi !== undefined) requireId(`${what}.vdi`, o.vdi);
  if (o.parent !== undefined) requireId(`${what}.parent`, o.parent);
  if (o.kind !== 'volume') {
    if (o.parent === undefined) throw invalid(`${what} is a ${o.kind} without its volume (parent)`);
    if (!isNameableTime(o.created)) throw invalid(`${what}.created is not a time a snapshot name can carry: ${show(o.created)}`);
  }
  return o;
}

function requireMeta(m: VdiMeta): VdiMeta {
  const p = metaProblem(m);
  if (p) throw invalid(p);
  return m;
}

function requireTime(t: number | undefined): number {
  if (t === undefined) return Date.now();
  if (!isNameableTime(t)) throw invalid(`not a time in ms: ${show(t)}`);
  return t;
}

function requireSize(size: number): number {
  if (!Number.isSafeInteger(size) || size < 0) throw new SmError('VDISize', `not a byte count: ${show(size)}`);
  return size;
}

export class ZfsBackend implements Backend {
  readonly kind = 'zfs' as const;
  readonly capabilities: Capabilities = ZFS_CAPABILITIES;
  /** The SR root dataset. */
  readonly root: string;
  private readonly ctx: ZfsCtx;

  /** `root` is device-config:dataset, POOL/PATH (never a whole pool). */
  constructor(root: string, opts: ZfsBackendOptions = {}) {
    if (typeof root !== 'string' || !isDatasetName(root) || !root.includes('/')) {
      throw invalid(`device-config:dataset must be a dataset below a pool, POOL/PATH: ${show(root)}`);
    }
    this.root = root;
    const logger: ZfsLogger = opts.logger ?? { debug: (m) => log().debug(m), info: (m) => log().info(m), warn: (m) => log().warn(m) };
    const exec = opts.exec ?? execaExec;
    const sleep = opts.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
    const timeoutMs = opts.timeoutMs ?? 120_000;
    const retry = opts.retry ?? DEFAULT_RETRY;
    const zfsBin = opts.zfsBin ?? resolveBinary('zfs');
    const fileExists = opts.fileExists ?? existsSync;
    const cli = new ZfsCli({
      exec,
      sleep,
      timeoutMs,
      retry,
      zfsBin,
      logger,
      fileExists,
      ...(opts.zpoolBin !== undefined ? { zpoolBin: opts.zpoolBin } : {}),
      ...(opts.features !== undefined ? { features: opts.features } : {}),
    });
    this.ctx = {
      cli,
      root,
      pool: poolOf(root),
      log: logger,
      run: { exec, zfsBin, timeoutMs, retry, sleep, logger },
      readMounts: opts.readMounts ?? (() => readFileSync('/proc/self/mounts', 'utf8')),
      fileExists,
      sleep,
      zvolTimeoutMs: opts.zvolTimeoutMs ?? 10_000,
      mountpoint: opts.mountpoint,
      known: new KnownDatasets(),
    };
  }

  describe(): string {
    return `zfs dataset ${this.root}`;
  }

  // --- the SR -----------------------------------------------------------------------

  createSr(srUuid: string): Promise<void> {
    return mapFailure('SMGeneral', () => createSr(this.ctx, srUuid), `create SR at ${this.root}`);
  }

  deleteSr(srUuid: string): Promise<void> {
    return mapFailure('SMGeneral', () => deleteSr(this.ctx, srUuid), `delete SR at ${this.root}`);
  }

  attachSr(srUuid: string): Promise<void> {
    return mapFailure('SRUnavailable', () => attachSr(this.ctx, srUuid), `attach SR at ${this.root}`);
  }

  async detachSr(srUuid: string): Promise<void> {
    // Nothing to let go of: datasets stay mounted (zfs-fuse and OpenZFS alike) for the next attach.
    requireSrUuid(srUuid);
  }

  stats(): Promise<SrStats> {
    return mapFailure('SRUnavailable', () => srStats(this.ctx), `SR at ${this.root}`);
  }

  probe(): Promise<ProbeResult[]> {
    return mapFailure('SRUnavailable', () => probeSr(this.ctx), `probe ${this.root}`);
  }

  // --- objects ----------------------------------------------------------------------------

  /** ONE `zfs get -r` of the SR root: every object with its record; foreign datasets are logged and left out. */
  inventory(): Promise<StoredObject[]> {
    return mapFailure(
      'SRScan',
      async () => {
        let r;
        try {
          r = await this.ctx.cli.get([this.root], [...NATIVE_PROPS, ...OBJECT_PROPS], { recursive: true });
        } catch (e) {
          if (isZfsError(e, 'NotFound')) throw new SmError('SRUnavailable', `the SR root ${this.root} does not exist`);
          throw e;
        }
        this.ctx.known.remember(r.datasets.values());
        this.ctx.known.rememberViews([...r.datasets.keys()].filter((n) => n.endsWith(VIEW_SUFFIX)));
        return this.decodeAll(r.datasets.values());
      },
      `scan ${this.root}`,
    );
  }

  /** The objects among `datasets` (sorted by id); foreign datasets are logged and left out. */
  private decodeAll(datasets: Iterable<ZfsDataset>): StoredObject[] {
    const out: StoredObject[] = [];
    for (const d of datasets) {
      if (d.name === this.root) continue;
      const dec = decodeDataset(this.root, d);
      if (dec.what === 'foreign') {
        this.ctx.log.warn(`flatsnap: ${d.name} is not a flatsnap object (${dec.reason}); left alone`);
      } else if (dec.what === 'object') {
        for (const w of dec.warnings) this.ctx.log.warn(`flatsnap: ${d.name}: ${w}`);
        out.push(dec.obj);
      }
    }
    return out.sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /**
   * With `descendants: false`, first without any listing (line()); else, or when that is
   * not enough to be sure, the clone trees the VDIs are in (trees()).
   */
  async family(hints: readonly VdiHint[], opts: { ancestors?: boolean; descendants?: boolean } = {}): Promise<StoredObject[] | undefined> {
    if (opts.descendants === false) {
      const l = await this.line(hints);
      if (l !== undefined) return l;
    }
    return this.trees(hints);
  }

  /**
   * Each VDI's object and its line of ancestors, one `zfs get -d 1` per volume on the way
   * (the volume and its snapshots) and nothing listed: a snapshot VDI in the volume its
   * row's hint names; a volume VDI in `<root>/<object hint, else its uuid>`, trusted only
   * if that volume claims the VDI, is no tombstone and carries no swap-to mark (a swap
   * interrupted there may have bound another volume to it, which only a listing finds).
   * The ancestors go up to the first object that backs a VDI (where lineage stamps stop).
   * Nothing below is read: enough for plans that make objects (snapshot, clone) and for
   * stamps, not for retiring anything. undefined when not sure.
   */
  private async line(hints: readonly VdiHint[]): Promise<StoredObject[] | undefined> {
    const out = new Map<string, StoredObject>();
    const read = new Set<string>();
    /** The volume `id` and its snapshots; false if it is not there. */
    const volume = async (id: string): Promise<boolean> => {
      if (read.has(id)) return true;
      let r;
      try {
        r = await this.ctx.cli.get([`${this.root}/${id}`], [...NATIVE_PROPS, ...OBJECT_PROPS], { depth: 1 });
      } catch (e) {
        if (isZfsError(e, 'NotFound')) return false;
        throw e;
      }
      read.add(id);
      this.ctx.known.remember(r.datasets.values());
      for (const o of this.decodeAll(r.datasets.values())) out.set(o.id, o);
      return out.get(id)?.kind === 'volume';
    };
    for (const h of hints) {
      let o: StoredObject | undefined;
      if (h.volume !== undefined) {
        if (!isUuid(h.volume) || !(await volume(h.volume))) return undefined;
        o = out.get(h.vdi);
        if (o === undefined || o.kind !== 'snapshot' || o.vdi !== h.vdi || o.parent !== h.volume) return undefined;
      } else {
        const id = h.object ?? h.vdi;
        if (!isUuid(id) || !(await volume(id))) return undefined;
        o = out.get(id)!;
        const ds = this.ctx.known.get(`${this.root}/${id}`);
        if (o.vdi !== h.vdi || o.deleted || ds === undefined || ds.user[PROP.swapTo] !== undefined) return undefined;
      }
      // up to the first ancestor that backs a VDI: a snapshot's parent is its volume
      // (read with it), a clone's is its origin snapshot (read with the origin's volume)
      for (let x: StoredObject = o, hops = 0; x.parent !== undefined; hops++) {
        if (hops > 10_000) return undefined;
        let p = out.get(x.parent);
        if (p === undefined) {
          const origin = this.ctx.known.get(`${this.root}/${x.id}`)?.origin;
          const at = origin?.indexOf('@') ?? -1;
          const vol = origin !== undefined && at > 0 && origin.startsWith(`${this.root}/`) ? origin.slice(this.root.length + 1, at) : undefined;
          if (x.kind !== 'volume' || vol === undefined || !isUuid(vol) || !(await volume(vol))) return undefined;
          p = out.get(x.parent);
          if (p === undefined) return undefined;
        }
        if (p.vdi !== undefined) break;
        x = p;
      }
    }
    return [...out.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  /**
   * The clone trees the VDIs are in, in two commands whatever the SR holds besides:
   *  1. `zfs list -d 1 -t filesystem,volume -o name,origin,flatsnap:vdi` of the root: the
   *     volumes only, which is what makes it cheap (zfs-fuse pays per snapshot it visits,
   *     as much as for a full `zfs get`), and all they say is how they hang together
   *     (a clone's origin is a snapshot of its parent volume) and which claims which VDI;
   *  2. `zfs get -d 1` with every property of the volumes in those trees: them and their
   *     snapshots, decoded exactly as inventory() decodes them.
   * A volume VDI is found by its claim, so a pending swap's two claimants both come; a
   * snapshot VDI lives in the volume its row's sm_config names (ZFS has no way to find a
   * snapshot by name without visiting them all): without that hint, or if the snapshot is
   * not there, undefined.
   */
  private trees(hints: readonly VdiHint[]): Promise<StoredObject[] | undefined> {
    return mapFailure(
      'SRScan',
      async () => {
        let rows;
        try {
          rows = await this.ctx.cli.listColumns(this.root, ['name', 'origin', PROP.vdi], { depth: 1, types: ['filesystem', 'volume'] });
        } catch (e) {
          if (isZfsError(e, 'NotFound')) throw new SmError('SRUnavailable', `the SR root ${this.root} does not exist`);
          throw e;
        }
        const prefix = `${this.root}/`;
        this.ctx.known.rememberViews(rows.map((r) => r.name!).filter((n) => n.startsWith(prefix) && n.endsWith(VIEW_SUFFIX)));
        const up = new Map<string, string | undefined>(); // volume id -> the volume its origin snapshot is in
        const claims = new Map<string, string[]>(); // VDI -> volumes claiming it
        for (const r of rows) {
          const name = r.name!;
          if (!name.startsWith(prefix)) continue;
          const id = name.slice(prefix.length);
          if (!isUuid(id)) continue; // views, foreign datasets: inventory() leaves them out too
          const origin = r.origin!;
          const at = origin.indexOf('@');
          const parent = origin.startsWith(prefix) && at > 0 ? origin.slice(prefix.length, at) : undefined;
          up.set(id, parent !== undefined && isUuid(parent) ? parent : undefined);
          const vdi = r[PROP.vdi]!;
          if (isUuid(vdi)) claims.set(vdi, [...(claims.get(vdi) ?? []), id]);
        }
        const seeds: string[] = [];
        const snapshots: string[] = [];
        for (const h of hints) {
          const vols = claims.get(h.vdi);
          if (vols !== undefined) seeds.push(...vols);
          else if (h.volume !== undefined && up.has(h.volume)) {
            seeds.push(h.volume);
            snapshots.push(h.vdi);
          } else return undefined;
        }
        // The trees: everything reachable through origin links, either way.
        const down = new Map<string, string[]>();
        for (const [id, p] of up) if (p !== undefined) down.set(p, [...(down.get(p) ?? []), id]);
        const tree = new Set<string>();
        const todo = [...seeds];
        while (todo.length > 0) {
          const id = todo.pop()!;
          if (tree.has(id) || !up.has(id)) continue;
          tree.add(id);
          const p = up.get(id);
          if (p !== undefined) todo.push(p);
          todo.push(...(down.get(id) ?? []));
        }
        if (tree.size === 0) return [];
        let r;
        try {
          r = await this.ctx.cli.get(
            [...tree].sort().map((id) => `${prefix}${id}`),
            [...NATIVE_PROPS, ...OBJECT_PROPS],
            { depth: 1 },
          );
        } catch (e) {
          if (isZfsError(e, 'NotFound')) return undefined; // changed under us: read it all
          throw e;
        }
        this.ctx.known.remember(r.datasets.values());
        const out = this.decodeAll(r.datasets.values());
        for (const v of snapshots) if (!out.some((o) => o.vdi === v && o.kind === 'snapshot')) return undefined;
        return out;
      },
      `read the family of ${hints.map((h) => h.vdi).join(', ')} in ${this.root}`,
    );
  }

  create(id: string, meta: VdiMeta, size: number, time?: number): Promise<StoredObject> {
    return mapFailure('VDICreate', async () => {
      requireId('id', id);
      requireMeta(meta);
      const bytes = requireSize(size);
      const created = requireTime(time);
      return vol.createVolume(this.ctx, { id, kind: 'volume', vdi: id, created, meta: { ...meta } }, bytes);
    });
  }

  snapshot(id: string, of: StoredObject, name: string, kind: 'snapshot' | 'internal-snapshot', meta?: VdiMeta): Promise<StoredObject> {
    return mapFailure('VDISnapshot', async () => {
      requireId('id', id);
      requireObject('of', of);
      if (kind !== 'snapshot' && kind !== 'internal-snapshot') throw invalid(`not a snapshot kind: ${show(kind)}`);
      const n = typeof name === 'string' ? parseSnapshotName(name) : undefined;
      if (n === undefined || n.uuid !== id || (n.kind === 'internal') !== (kind === 'internal-snapshot')) {
        throw invalid(`${show(name)} is not the ${kind} name of ${id}`);
      }
      if (kind === 'snapshot' && meta === undefined) throw invalid(`snapshot VDI ${id} needs its metadata`);
      if (kind === 'internal-snapshot' && meta !== undefined) throw invalid('an internal snapshot backs no VDI: no metadata');
      if (meta !== undefined) requireMeta(meta);
      const src = await vol.locate(this.ctx, of, 'volume');
      if (src.obj.kind !== 'volume') throw invalid(`${src.name} is a ${src.obj.kind}: ZFS snapshots volumes only (clone it first)`);
      return vol.snapshotVolume(this.ctx, src, name, {
        id,
        kind,
        ...(kind === 'snapshot' ? { vdi: id, meta: { ...meta! } } : {}),
        parent: src.obj.id,
        created: n.time,
      });
    });
  }

  clone(id: string, from: StoredObject, meta?: VdiMeta, time?: number): Promise<StoredObject> {
    return mapFailure('VDIClone', async () => {
      requireId('id', id);
      requireObject('from', from);
      if (meta !== undefined) requireMeta(meta);
      const created = requireTime(time);
      const src = await vol.locate(this.ctx, from, 'snapshot');
      if (src.obj.kind === 'volume') throw invalid(`${src.name} is a volume: ZFS clones snapshots (take an internal snapshot first)`);
      return vol.cloneSnapshot(this.ctx, src, {
        id,
        kind: 'volume',
        ...(meta !== undefined ? { vdi: id, meta: { ...meta } } : {}),
        parent: src.obj.id,
        created,
      });
    });
  }

  markTombstone(obj: StoredObject): Promise<void> {
    return mapFailure('VDIDelete', async () => {
      requireObject('object', obj);
      await vol.markTombstone(this.ctx, await vol.locate(this.ctx, obj));
    });
  }

  swapVdi(vdi: string, from: StoredObject, to: StoredObject): Promise<void> {
    return mapFailure('VDIClone', async () => {
      requireId('vdi', vdi);
      requireObject('from', from);
      requireObject('to', to);
      if (from.id === to.id) throw invalid(`swap of VDI ${vdi}: from and to are both ${from.id}`);
      const f = await vol.locate(this.ctx, from, 'volume');
      const t = await vol.locate(this.ctx, to, 'volume');
      if (f.obj.kind !== 'volume' || t.obj.kind !== 'volume') throw invalid(`swap of VDI ${vdi}: both objects must be volumes`);
      if (t.obj.vdi === vdi && f.obj.vdi !== vdi) return; // done before (a retry)
      if (f.obj.vdi !== vdi) throw invalid(`swap of VDI ${vdi}: ${f.obj.id} does not back it`);
      if (t.obj.vdi !== undefined && t.obj.vdi !== vdi) throw invalid(`swap of VDI ${vdi}: ${t.obj.id} already backs VDI ${t.obj.vdi}`);
      if (t.obj.deleted) throw invalid(`swap of VDI ${vdi}: ${t.obj.id} is a tombstone`);
      await vol.swapVdi(this.ctx, vdi, f, t);
    });
  }

  /** Plain `zfs rollback`; ZFS refuses (nothing destroyed) when `snapshot` is not the newest. */
  rollback(obj: StoredObject, snapshot: StoredObject): Promise<void> {
    return mapFailure('SMGeneral', async () => {
      requireObject('object', obj);
      requireObject('snapshot', snapshot);
      if (obj.kind !== 'volume') throw invalid(`rollback: ${obj.id} is not a volume`);
      if (snapshot.kind === 'volume' || snapshot.parent !== obj.id) throw invalid(`rollback: ${snapshot.id} is not a snapshot of ${obj.id}`);
      await vol.locate(this.ctx, obj, 'volume');
      const s = await vol.locate(this.ctx, snapshot, 'snapshot');
      try {
        await vol.rollback(this.ctx, s);
      } catch (e) {
        if (e instanceof ZfsError && NOT_NEWEST.test(e.stderr)) {
          throw new SmError('SMGeneral', `cannot roll ${obj.id} back to ${snapshot.id}: ZFS knows a newer snapshot (nothing was changed; revert by clone instead)`);
        }
        throw e;
      }
    });
  }

  /** Plain `zfs destroy` of one object without dependants (never -r/-R/-d); ZFS refuses otherwise. */
  destroy(obj: StoredObject): Promise<void> {
    return mapFailure('VDIRemove', async () => {
      requireObject('object', obj);
      const l = await vol.locate(this.ctx, obj);
      if (l.obj.vdi !== undefined && !l.obj.deleted && l.obj.kind !== 'internal-snapshot') {
        throw invalid(`${l.name} still backs VDI ${l.obj.vdi}: mark it a tombstone first`);
      }
      await vol.destroy(this.ctx, l);
    });
  }

  // --- a VDI's data and metadata ------------------------------------------------------------

  setMeta(obj: StoredObject, meta: VdiMeta): Promise<void> {
    return mapFailure('SMGeneral', async () => {
      requireObject('object', obj);
      requireMeta(meta);
      const l = await vol.locate(this.ctx, obj);
      if (l.obj.vdi === undefined) throw invalid(`${l.name} backs no VDI: no metadata to set`);
      await vol.setMeta(this.ctx, l, meta);
    });
  }

  resize(obj: StoredObject, size: number): Promise<number> {
    return mapFailure('VDIResize', async () => {
      requireObject('object', obj);
      const bytes = requireSize(size);
      const l = await vol.locate(this.ctx, obj);
      if (l.obj.kind !== 'volume') throw invalid(`${l.name} is a snapshot: snapshots are never resized`);
      return vol.resize(this.ctx, l, bytes);
    });
  }

  datapath(obj: StoredObject): Promise<string> {
    return mapFailure('VDIUnavailable', async () => {
      requireObject('object', obj);
      return vol.datapath(this.ctx, await vol.locate(this.ctx, obj));
    });
  }

  health(obj: StoredObject): Promise<Record<string, number | string>> {
    return mapFailure('SMGeneral', async () => {
      requireObject('object', obj);
      return vol.health(this.ctx, await vol.locate(this.ctx, obj));
    });
  }
}
