// Keeping xapi's VDI rows and the SR's storage in step: sr_scan, vdi_update and
// the commands that make VDIs all go through here.
//
// The reconciliation is a PURE function, diffScan(storage, xapi records) -> writes,
// so it can be tested on its own and proved to reach a fixed point: applying its
// writes and diffing again gives no writes (xapi re-runs a scan whose plugin
// call changed the SR's VDI set, up to 10 times, then fails).
//
// Who owns which field:
//   storage -> xapi   the set of VDIs (keyed by location == VDI uuid), virtual_size,
//                     physical_utilisation, read_only, our sm_config key and our
//                     lineage keys in other_config
//   xapi -> storage   name_label, name_description, type, is_a_snapshot,
//                     snapshot_time, snapshot_of (xapi sets them after snapshot/clone,
//                     renames go through xapi, VM.revert re-points snapshot_of): they
//                     are written into the storage record so that an SR introduced
//                     into a fresh pool comes back with its names and lineage
// Everything else in sm_config/other_config belongs to xapi and to users and is
// never touched; our keys are changed one by one (remove_from + add_to).
import type { StoredObject, VdiMeta } from '../backends/backend.js';
import { isVisible, type LineageTree } from '../lineage/index.js';
import { isUuid } from '../smapi/validate.js';
import type { VdiRecord, VdiType } from '../xapi/records.js';
import type { VdiIntroduce } from '../xapi/vdi.js';
import { NULL_REF, XapiDateTime } from '../xapi/wire.js';

/** sm_config: the storage object behind the VDI (changes on vdi_revert). */
export const SM_OBJECT_KEY = 'flatsnap-object';
/**
 * sm_config, snapshot VDIs only: the volume object the snapshot lives in. With the object
 * id it locates the object on storage without listing the SR (Backend.family), so per-VDI
 * commands do not grow with the SR; a missing or stale value only costs a full inventory.
 */
export const SM_VOLUME_KEY = 'flatsnap-volume';
/** other_config lineage keys, published for people and tools (XO, scripts). */
export const OC_VDI = 'flatsnap-vdi';
export const OC_OBJECT = 'flatsnap-object';
export const OC_PARENT = 'flatsnap-parent';
export const OC_CREATED = 'flatsnap-created';
/** Every other_config key flatsnap writes; any other key is the user's. */
export const OC_KEYS: readonly string[] = [OC_VDI, OC_OBJECT, OC_PARENT, OC_CREATED];
/** sm_config keys xapi may copy from vdi_sm_config into a new VDI (Python's SM_CONFIG_PASS_THROUGH_FIELDS). */
export const SM_PASS_THROUGH: readonly string[] = ['base_mirror', 'key_hash'];

export const EPOCH = '19700101T00:00:00Z';

/** xapi's DateTime text for a time in ms (whole seconds, UTC). */
export function xapiTime(ms: number): string {
  return XapiDateTime.from(new Date(ms)).wire;
}

function sameTime(a: string, b: string): boolean {
  try {
    return XapiDateTime.from(a).wire === XapiDateTime.from(b).wire;
  } catch {
    return a === b;
  }
}

/**
 * The VDI this object's content came from: the nearest ancestor (snapshot of / clone of,
 * through hidden helpers and internal snapshots) that backs or backed a VDI. '' if none,
 * or if the ancestor is gone (reflink parents are provenance only and may dangle).
 */
export function parentVdiOf(tree: LineageTree, o: { id: string; parent?: string }): string {
  const seen = new Set<string>([o.id]);
  let p = o.parent;
  while (p !== undefined && !seen.has(p)) {
    seen.add(p);
    const x = tree.get(p);
    if (x === undefined) return '';
    if (x.vdi !== undefined) return x.vdi;
    p = x.parent;
  }
  return '';
}

/** Our lineage keys for the other_config of the VDI `o` backs. */
export function lineageStamp(tree: LineageTree, o: StoredObject): Record<string, string> {
  const vdi = o.vdi ?? o.id;
  const stamp: Record<string, string> = {
    [OC_VDI]: vdi,
    [OC_OBJECT]: o.id,
    [OC_CREATED]: new Date(o.created).toISOString(),
  };
  const parent = parentVdiOf(tree, o);
  if (parent !== '') stamp[OC_PARENT] = parent;
  return stamp;
}

/** Our keys of the VDI's sm_config. */
export function smConfigStamp(o: StoredObject): Record<string, string> {
  return o.kind !== 'volume' && o.parent !== undefined ? { [SM_OBJECT_KEY]: o.id, [SM_VOLUME_KEY]: o.parent } : { [SM_OBJECT_KEY]: o.id };
}

/** Every sm_config key flatsnap writes. */
export const SM_KEYS: readonly string[] = [SM_OBJECT_KEY, SM_VOLUME_KEY];

/** What storage assumes about a VDI it has no metadata for. */
export function defaultMeta(): VdiMeta {
  return {
    name_label: '',
    name_description: '',
    vdi_type: 'user',
    is_a_snapshot: false,
    snapshot_time: EPOCH,
    snapshot_of: '',
    read_only: false,
  };
}

export function sameMeta(a: VdiMeta, b: VdiMeta): boolean {
  return (
    a.name_label === b.name_label &&
    a.name_description === b.name_description &&
    a.vdi_type === b.vdi_type &&
    a.is_a_snapshot === b.is_a_snapshot &&
    sameTime(a.snapshot_time, b.snapshot_time) &&
    a.snapshot_of === b.snapshot_of &&
    a.read_only === b.read_only
  );
}

const VDI_TYPE = /^[a-z][a-z_]{0,31}$/;

/**
 * The storage metadata once xapi's fields are taken over. `uuidOfRef` resolves a VDI ref
 * of this SR to its uuid; a snapshot_of it cannot resolve (NULL, dangling after the
 * source was destroyed) keeps what storage has, so the result is stable.
 */
export function metaFromRecord(rec: VdiRecord, current: VdiMeta | undefined, uuidOfRef: (ref: string) => string | undefined): VdiMeta {
  const base = current ?? { ...defaultMeta(), read_only: rec.read_only };
  const resolved = rec.snapshot_of === NULL_REF ? undefined : uuidOfRef(rec.snapshot_of);
  let snapshotTime = base.snapshot_time;
  try {
    snapshotTime = XapiDateTime.from(rec.snapshot_time).wire;
  } catch {
    // keep storage's
  }
  return {
    name_label: rec.name_label,
    name_description: rec.name_description,
    vdi_type: VDI_TYPE.test(rec.type) ? rec.type : base.vdi_type,
    is_a_snapshot: rec.is_a_snapshot,
    snapshot_time: snapshotTime,
    snapshot_of: resolved !== undefined && isUuid(resolved) ? resolved.toLowerCase() : base.snapshot_of,
    read_only: base.read_only,
  };
}

// ---- writes ---------------------------------------------------------------------

export type MapName = 'sm_config' | 'other_config';

export type XapiWrite =
  /** VDI.db_introduce; snapshot_of is a uuid, resolved to a ref when applied ('' = none). */
  | { op: 'introduce'; vdi: string; record: Omit<VdiIntroduce, 'snapshot_of'>; snapshot_of: string }
  | { op: 'forget'; ref: string; vdi: string }
  | { op: 'set_virtual_size'; ref: string; value: number }
  | { op: 'set_physical_utilisation'; ref: string; value: number }
  | { op: 'set_read_only'; ref: string; value: boolean }
  /** remove_from_<map> (when `replace`) then add_to_<map>. */
  | { op: 'set_key'; ref: string; map: MapName; key: string; value: string; replace: boolean }
  | { op: 'remove_key'; ref: string; map: MapName; key: string };

/** Storage metadata to write (xapi -> storage). */
export interface MetaWrite {
  id: string;
  meta: VdiMeta;
}

export interface SyncPlan {
  xapi: XapiWrite[];
  storage: MetaWrite[];
}

/** The db_introduce arguments for a VDI storage has (location = uuid = the VDI's uuid). */
export function introduceRecord(tree: LineageTree, o: StoredObject, meta: VdiMeta, srRef: string, smExtra: Record<string, string> = {}): Omit<VdiIntroduce, 'snapshot_of'> {
  const vdi = o.vdi ?? o.id;
  return {
    uuid: vdi,
    name_label: meta.name_label,
    name_description: meta.name_description,
    SR: srRef,
    type: meta.vdi_type as VdiType,
    sharable: false,
    read_only: meta.read_only,
    other_config: lineageStamp(tree, o),
    location: vdi,
    xenstore_data: {},
    sm_config: { ...smExtra, ...smConfigStamp(o) },
    managed: true,
    virtual_size: o.virtual_size,
    physical_utilisation: o.physical_utilisation,
    is_a_snapshot: meta.is_a_snapshot,
    snapshot_time: meta.snapshot_time,
    cbt_enabled: false,
  };
}

function mapWrites(ref: string, map: MapName, have: Record<string, string>, want: Record<string, string>, owned: readonly string[]): XapiWrite[] {
  const out: XapiWrite[] = [];
  for (const key of owned) {
    const w = want[key];
    const h = have[key];
    if (w === undefined) {
      if (h !== undefined) out.push({ op: 'remove_key', ref, map, key });
    } else if (h !== w) {
      out.push({ op: 'set_key', ref, map, key, value: w, replace: h !== undefined });
    }
  }
  return out;
}

/**
 * What one VDI needs, storage object `o` against its xapi row `rec` (ref `ref`): the xapi
 * writes (sizes, read_only, our keys) and, if xapi's fields differ from storage's record,
 * the metadata to store.
 */
export function diffVdi(
  tree: LineageTree,
  o: StoredObject,
  ref: string,
  rec: VdiRecord,
  uuidOfRef: (ref: string) => string | undefined,
): { xapi: XapiWrite[]; meta?: VdiMeta } {
  const xapi: XapiWrite[] = [];
  const meta = metaFromRecord(rec, o.meta, uuidOfRef);
  if (rec.virtual_size !== o.virtual_size) xapi.push({ op: 'set_virtual_size', ref, value: o.virtual_size });
  if (rec.physical_utilisation !== o.physical_utilisation) xapi.push({ op: 'set_physical_utilisation', ref, value: o.physical_utilisation });
  if (rec.read_only !== meta.read_only) xapi.push({ op: 'set_read_only', ref, value: meta.read_only });
  xapi.push(...mapWrites(ref, 'sm_config', rec.sm_config, smConfigStamp(o), SM_KEYS));
  xapi.push(...mapWrites(ref, 'other_config', rec.other_config, lineageStamp(tree, o), OC_KEYS));
  const changed = o.meta === undefined || !sameMeta(o.meta, meta);
  return changed ? { xapi, meta } : { xapi };
}

/** Whether an xapi row of this SR is one of ours (and may be forgotten when storage lacks it). */
export function isOurs(rec: VdiRecord): boolean {
  return rec.sm_config[SM_OBJECT_KEY] !== undefined || isUuid(rec.location);
}

/**
 * The scan: every visible VDI of `tree` (with its stored object from `objects`) against
 * xapi's rows of the SR. Introduces come in an order where a snapshot follows the VDI it
 * is a snapshot of, so its snapshot_of can be resolved.
 */
export function diffScan(
  tree: LineageTree,
  objects: ReadonlyMap<string, StoredObject>,
  records: ReadonlyMap<string, VdiRecord>,
  srRef: string,
): SyncPlan {
  const xapi: XapiWrite[] = [];
  const storage: MetaWrite[] = [];
  const byLocation = new Map<string, [string, VdiRecord]>();
  const uuidByRef = new Map<string, string>();
  for (const [ref, rec] of [...records].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    uuidByRef.set(ref, rec.uuid);
    if (!byLocation.has(rec.location.toLowerCase())) byLocation.set(rec.location.toLowerCase(), [ref, rec]);
  }
  const uuidOfRef = (ref: string): string | undefined => uuidByRef.get(ref);

  const introduces: Array<Extract<XapiWrite, { op: 'introduce' }>> = [];
  const present = new Set<string>();
  for (const t of tree.visible()) {
    const vdi = t.vdi!;
    const o = objects.get(t.id);
    if (o === undefined || !isVisible(t)) continue;
    present.add(vdi);
    const row = byLocation.get(vdi);
    if (row === undefined) {
      const meta = o.meta ?? defaultMeta();
      if (o.meta === undefined) storage.push({ id: o.id, meta });
      introduces.push({ op: 'introduce', vdi, record: introduceRecord(tree, o, meta, srRef), snapshot_of: meta.snapshot_of });
      continue;
    }
    const [ref, rec] = row;
    const d = diffVdi(tree, o, ref, rec, uuidOfRef);
    xapi.push(...d.xapi);
    if (d.meta !== undefined) storage.push({ id: o.id, meta: d.meta });
  }
  for (const [loc, [ref, rec]] of [...byLocation].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))) {
    if (!present.has(loc) && isOurs(rec)) xapi.push({ op: 'forget', ref, vdi: rec.uuid });
  }
  return { xapi: [...orderIntroduces(introduces), ...xapi], storage };
}

/** Introduces with every snapshot after the VDI it is a snapshot of (when both are new). */
function orderIntroduces<T extends { vdi: string; snapshot_of: string }>(list: T[]): T[] {
  const byVdi = new Map(list.map((w) => [w.vdi, w] as const));
  const out: T[] = [];
  const state = new Map<string, 'visiting' | 'done'>();
  const visit = (w: T): void => {
    if (state.get(w.vdi) !== undefined) return; // done, or a cycle (then: any order)
    state.set(w.vdi, 'visiting');
    const dep = byVdi.get(w.snapshot_of);
    if (dep !== undefined) visit(dep);
    state.set(w.vdi, 'done');
    out.push(w);
  };
  for (const w of [...list].sort((a, b) => (a.vdi < b.vdi ? -1 : a.vdi > b.vdi ? 1 : 0))) visit(w);
  return out;
}

// ---- SR sizes ------------------------------------------------------------------------

export interface SrSizes {
  physical_size: number;
  physical_utilisation: number;
  virtual_allocation: number;
}

export type SrWrite = { op: 'set_physical_size' | 'set_physical_utilisation' | 'set_virtual_allocation'; value: number };

/** The SR size writes that change something (`have` undefined: write all three). */
export function diffSrSizes(have: SrSizes | undefined, want: SrSizes): SrWrite[] {
  const out: SrWrite[] = [];
  if (have?.physical_size !== want.physical_size) out.push({ op: 'set_physical_size', value: want.physical_size });
  if (have?.physical_utilisation !== want.physical_utilisation) out.push({ op: 'set_physical_utilisation', value: want.physical_utilisation });
  if (have?.virtual_allocation !== want.virtual_allocation) out.push({ op: 'set_virtual_allocation', value: want.virtual_allocation });
  return out;
}

/** Σ virtual sizes of the visible VDIs: what xapi computes as the SR's virtual_allocation. */
export function virtualAllocation(tree: LineageTree, objects: ReadonlyMap<string, StoredObject>): number {
  let sum = 0;
  for (const t of tree.visible()) sum += objects.get(t.id)?.virtual_size ?? 0;
  return sum;
}
