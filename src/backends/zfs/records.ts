// How a flatsnap object is written into ZFS user properties and read back: pure
// functions, no commands. Every dataset and snapshot flatsnap makes carries its
// lineage record in `flatsnap:*` properties set atomically at creation (`zfs
// create/snapshot/clone -o`), so storage and records cannot drift.
//
//   <root>                                   flatsnap:sr=<sr uuid>, flatsnap:format=1
//   <root>/<id>                              a volume: zvol, or filesystem + disk.raw
//   <root>/<id>@<time>-<id>                  a snapshot VDI        (lineage names.ts)
//   <root>/<id>@<time>-int-<id>              an internal snapshot
//   <root>/<snapshot id>.view                zfs-fuse only: read-only clone giving a snapshot a path
//
// Structure beats properties where both say something: a snapshot's id, kind and time
// come from its name, its parent from its dataset, a clone's parent from `origin`.
// The properties say what structure cannot (vdi, tombstone, VDI metadata, a volume's
// creation time and, for raw files, the size) and repeat the rest for humans.
import { EPOCH, VDI_TYPE, isXapiTime, metaProblem } from '../meta.js';

export { EPOCH, isXapiTime, metaProblem };
import type { StoredObject, VdiMeta } from '../backend.js';
import { type ObjectKind, isUuid, parseSnapshotName } from '../../lineage/index.js';
import { encodedLength, truncateForUserValue } from './codec.js';
import type { ZfsDataset } from './parse.js';

export const PROP = {
  sr: 'flatsnap:sr',
  format: 'flatsnap:format',
  /** On the root: createSr made the dataset (so deleteSr destroys it; an adopted one is only released). */
  madeRoot: 'flatsnap:made-root',
  id: 'flatsnap:id',
  kind: 'flatsnap:kind',
  vdi: 'flatsnap:vdi',
  parent: 'flatsnap:parent',
  created: 'flatsnap:created',
  deleted: 'flatsnap:deleted',
  /** Raw-file layout: the disk's size in bytes (zvols have volsize). */
  size: 'flatsnap:size',
  nameLabel: 'flatsnap:name-label',
  nameDescription: 'flatsnap:name-description',
  vdiType: 'flatsnap:vdi-type',
  isASnapshot: 'flatsnap:is-a-snapshot',
  snapshotTime: 'flatsnap:snapshot-time',
  snapshotOf: 'flatsnap:snapshot-of',
  readOnly: 'flatsnap:read-only',
  /**
   * On a volume about to give its VDI to another (swapVdi): that volume's id, set before the
   * other is bound. While it still claims the VDI too (a crash mid-swap), this tells a reader
   * that found it without a listing to look further (ZfsBackend.family); left on afterwards,
   * when the volume backs nothing any more.
   */
  swapTo: 'flatsnap:swap-to',
} as const;

export const FORMAT_VERSION = '1';

/** The user properties an inventory reads. */
export const OBJECT_PROPS: readonly string[] = [
  PROP.id,
  PROP.kind,
  PROP.vdi,
  PROP.parent,
  PROP.created,
  PROP.deleted,
  PROP.size,
  PROP.nameLabel,
  PROP.nameDescription,
  PROP.vdiType,
  PROP.isASnapshot,
  PROP.snapshotTime,
  PROP.snapshotOf,
  PROP.readOnly,
  PROP.swapTo,
];

/** The native properties an inventory reads (fewer lines than the layer's SCAN_PROPS). */
export const NATIVE_PROPS: readonly string[] = ['type', 'origin', 'used', 'referenced', 'volsize', 'volblocksize', 'creation', 'mounted', 'mountpoint', 'canmount'];

/** `flatsnap:kind` values; 'view' marks a zfs-fuse read clone, never an object. */
export type StoredKind = ObjectKind | 'view';

export const VIEW_SUFFIX = '.view';
/** Appended to a label or description cut to fit a property (4095 encoded bytes). */
export const TRUNCATION_MARK = '\u2026[truncated]';

/** `s` unchanged if its encoding fits `max` bytes, else cut at a code point and marked. */
export function fitText(s: string, max: number): string {
  if (encodedLength(s) <= max) return s;
  return truncateForUserValue(s, max - encodedLength(TRUNCATION_MARK)) + TRUNCATION_MARK;
}

/** VdiMeta as user properties (label and description cut to fit `max` encoded bytes). */
export function metaProps(m: VdiMeta, max: number): Record<string, string> {
  return {
    [PROP.nameLabel]: fitText(m.name_label, max),
    [PROP.nameDescription]: fitText(m.name_description, max),
    [PROP.vdiType]: m.vdi_type,
    [PROP.isASnapshot]: String(m.is_a_snapshot),
    [PROP.snapshotTime]: m.snapshot_time,
    [PROP.snapshotOf]: m.snapshot_of,
    [PROP.readOnly]: String(m.read_only),
  };
}

export interface NewRecord {
  id: string;
  kind: ObjectKind;
  vdi?: string;
  parent?: string;
  created: number;
  meta?: VdiMeta;
  /** Raw-file layout only. */
  size?: number;
}

/** All user properties of a new object, `flatsnap:vdi` last (on zfs-fuse `zfs set` goes one by one). */
export function recordProps(r: NewRecord, max: number): Record<string, string> {
  const p: Record<string, string> = { [PROP.id]: r.id, [PROP.kind]: r.kind };
  if (r.parent !== undefined) p[PROP.parent] = r.parent;
  p[PROP.created] = String(r.created);
  p[PROP.deleted] = '0';
  if (r.size !== undefined) p[PROP.size] = String(r.size);
  if (r.meta !== undefined) Object.assign(p, metaProps(r.meta, max));
  if (r.vdi !== undefined) p[PROP.vdi] = r.vdi;
  return p;
}

// ---- names -----------------------------------------------------------------------

export const volumeName = (root: string, id: string): string => `${root}/${id}`;
export const snapshotFullName = (root: string, parent: string, snap: string): string => `${root}/${parent}@${snap}`;
export const viewName = (root: string, snapshotId: string): string => `${root}/${snapshotId}${VIEW_SUFFIX}`;

// ---- reading ---------------------------------------------------------------------

export type Decoded =
  | { readonly what: 'object'; readonly obj: StoredObject; readonly warnings: readonly string[] }
  | { readonly what: 'view'; readonly snapshotId: string }
  | { readonly what: 'foreign'; readonly reason: string };

function int(v: string | undefined): number | undefined {
  if (v === undefined || !/^\d{1,16}$/.test(v)) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : undefined;
}

function decodeMeta(u: Readonly<Record<string, string>>, kind: ObjectKind, warnings: string[]): VdiMeta {
  const bool = (k: string, dflt: boolean): boolean => (u[k] === 'true' ? true : u[k] === 'false' ? false : dflt);
  const m: VdiMeta = {
    name_label: u[PROP.nameLabel] ?? '',
    name_description: u[PROP.nameDescription] ?? '',
    vdi_type: u[PROP.vdiType] ?? 'user',
    is_a_snapshot: bool(PROP.isASnapshot, kind === 'snapshot'),
    snapshot_time: u[PROP.snapshotTime] ?? EPOCH,
    snapshot_of: u[PROP.snapshotOf] ?? '',
    read_only: bool(PROP.readOnly, false),
  };
  const missing = [PROP.nameLabel, PROP.vdiType, PROP.isASnapshot, PROP.snapshotTime, PROP.readOnly].filter((k) => u[k] === undefined);
  if (missing.length > 0) warnings.push(`missing ${missing.join(', ')}: defaults used`);
  if (!VDI_TYPE.test(m.vdi_type)) {
    warnings.push(`bad ${PROP.vdiType} ${JSON.stringify(m.vdi_type)}: "user" used`);
    m.vdi_type = 'user';
  }
  if (!isXapiTime(m.snapshot_time)) {
    warnings.push(`bad ${PROP.snapshotTime} ${JSON.stringify(m.snapshot_time)}: epoch used`);
    m.snapshot_time = EPOCH;
  }
  if (m.snapshot_of !== '' && !isUuid(m.snapshot_of)) {
    warnings.push(`bad ${PROP.snapshotOf} ${JSON.stringify(m.snapshot_of)}: dropped`);
    m.snapshot_of = '';
  }
  return m;
}

/** The id of the object behind a snapshot name under `root` (a clone's origin), if it is ours. */
export function originId(root: string, origin: string | undefined): string | undefined {
  if (origin === undefined || !origin.startsWith(`${root}/`)) return undefined;
  const rel = origin.slice(root.length + 1);
  const at = rel.indexOf('@');
  if (at < 0 || rel.includes('/') || !isUuid(rel.slice(0, at))) return undefined;
  return parseSnapshotName(rel.slice(at + 1))?.uuid;
}

/** What one dataset or snapshot below `root` is, from the properties of one `zfs get`. */
export function decodeDataset(root: string, d: ZfsDataset): Decoded {
  const foreign = (reason: string): Decoded => ({ what: 'foreign', reason });
  if (!d.name.startsWith(`${root}/`)) return foreign('not below the SR root');
  const rel = d.name.slice(root.length + 1);
  if (rel.includes('/')) return foreign('nested below another dataset');
  const u = d.user;
  const kind = u[PROP.kind];
  const warnings: string[] = [];
  const at = rel.indexOf('@');
  const base = at < 0 ? rel : rel.slice(0, at);

  if (at < 0) {
    if (kind === 'view') {
      const sid = u[PROP.id];
      if (sid === undefined || base !== `${sid}${VIEW_SUFFIX}` || !isUuid(sid)) return foreign('a view whose name is not <snapshot id>.view');
      return { what: 'view', snapshotId: sid };
    }
    if (kind !== 'volume') return foreign(kind === undefined ? `no ${PROP.kind}` : `${PROP.kind}=${kind} on a dataset`);
    if (!isUuid(base)) return foreign('name is not a uuid');
    if (u[PROP.id] !== base) return foreign(`${PROP.id}=${String(u[PROP.id])} is not its name`);
    if (d.type !== 'filesystem' && d.type !== 'volume') return foreign(`type ${d.type}`);
    const parent = originId(root, d.origin);
    if (d.origin !== undefined && parent === undefined) warnings.push(`origin ${d.origin} is not a flatsnap snapshot: no parent`);
    if (parent !== undefined && u[PROP.parent] !== undefined && u[PROP.parent] !== parent) {
      warnings.push(`${PROP.parent}=${u[PROP.parent]} but origin says ${parent}: origin wins`);
    }
    const size = d.type === 'volume' ? d.volsize : int(u[PROP.size]);
    if (size === undefined) warnings.push(`no size (${d.type === 'volume' ? 'volsize' : PROP.size})`);
    const created = int(u[PROP.created]) ?? (d.creation ?? 0) * 1000;
    return { what: 'object', obj: build(d, base, 'volume', u, parent, created, size ?? 0, warnings), warnings };
  }

  const snap = rel.slice(at + 1);
  if (kind !== 'snapshot' && kind !== 'internal-snapshot') return foreign(kind === undefined ? `no ${PROP.kind}` : `${PROP.kind}=${kind} on a snapshot`);
  if (!isUuid(base)) return foreign('dataset name is not a uuid');
  const n = parseSnapshotName(snap);
  if (n === undefined) return foreign('snapshot name is not <time>-<uuid>');
  if ((n.kind === 'internal') !== (kind === 'internal-snapshot')) return foreign(`${PROP.kind}=${kind} but the name says ${n.kind}`);
  if (u[PROP.id] !== undefined && u[PROP.id] !== n.uuid) warnings.push(`${PROP.id}=${u[PROP.id]} but the name says ${n.uuid}: the name wins`);
  const size = d.volsize ?? int(u[PROP.size]);
  if (size === undefined) warnings.push(`no size (volsize or ${PROP.size})`);
  return { what: 'object', obj: build(d, n.uuid, kind, u, base, n.time, size ?? 0, warnings), warnings };
}

function build(
  d: ZfsDataset,
  id: string,
  kind: ObjectKind,
  u: Readonly<Record<string, string>>,
  parent: string | undefined,
  created: number,
  size: number,
  warnings: string[],
): StoredObject {
  const o: { -readonly [K in keyof StoredObject]: StoredObject[K] } = {
    id,
    kind,
    created,
    deleted: u[PROP.deleted] === '1',
    virtual_size: size,
    physical_utilisation: d.used ?? 0,
    handle: d.name,
  };
  if (parent !== undefined) o.parent = parent;
  const vdi = u[PROP.vdi];
  if (vdi !== undefined && kind !== 'internal-snapshot') {
    if (!isUuid(vdi)) warnings.push(`bad ${PROP.vdi} ${JSON.stringify(vdi)}: backs no VDI`);
    else if (kind === 'snapshot' && vdi !== id) warnings.push(`${PROP.vdi}=${vdi} on snapshot ${id}: backs no VDI`);
    else {
      o.vdi = vdi;
      o.meta = decodeMeta(u, kind, warnings);
    }
  }
  return o;
}
