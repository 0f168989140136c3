// Planners: what each SMAPIv1 command must do to storage, as a list of actions. Nothing here
// touches storage or the tree; new ids and times come in as parameters.
import { newestSnapshotOf, type Store } from './apply.js';
import { Draft } from './draft.js';
import { type LineageObject, type Plan, LineageError } from './model.js';
import { formatInternalSnapshotName, formatSnapshotName } from './names.js';
import { retire } from './reclaim.js';

/** What a planner needs to create objects: the new VDI's uuid, the time, fresh ids for helpers. */
export interface NewVdi {
  /** uuid of the VDI to create; also the id of the object that backs it. */
  readonly vdi: string;
  /** Creation time, ms since the epoch (UTC); becomes part of snapshot names. */
  readonly time: number;
  /** Returns a fresh uuid for a hidden helper object (internal snapshot, helper clone). */
  readonly newId: () => string;
}

export interface RevertOptions {
  readonly time: number;
  readonly newId: () => string;
  /**
   * Allow the fast path: when the snapshot is the target's own newest snapshot, a plain
   * `zfs rollback` (no -r needed). Default true. Pass false to force clone-and-swap, e.g.
   * after ZFS refused the rollback because it knows a newer snapshot than the model does.
   */
  readonly rollback?: boolean;
}

/** The object behind a visible VDI, or not-found. */
export function visibleObject(store: Store, vdi: string): LineageObject {
  const o = store.byVdi(vdi);
  if (o === undefined) throw new LineageError('not-found', `no visible VDI ${vdi}`);
  return o;
}

/** vdi_create: an empty volume. */
export function planCreate(store: Store, vdi: string, time: number): Plan {
  const d = new Draft(store);
  d.emit({ op: 'create', object: vdi, vdi, time });
  return d.actions;
}

/**
 * vdi_snapshot of any visible VDI. A volume: one storage snapshot. A snapshot VDI on a
 * dependent backend (ZFS cannot snapshot a snapshot, and the new VDI must not share the
 * source's lifetime): a hidden clone of it, snapshotted; the clone stays hidden and is
 * reclaimed with the new snapshot. Reflink: a copy of the file either way.
 */
export function planSnapshot(store: Store, source: string, n: NewVdi): Plan {
  const src = visibleObject(store, source);
  const d = new Draft(store);
  let of = src.id;
  if (store.caps.dependent && src.kind !== 'volume') {
    of = n.newId();
    d.emit({ op: 'clone', object: of, from: src.id, time: n.time });
  }
  const name = formatSnapshotName(n.time, n.vdi);
  d.emit({ op: 'snapshot', object: n.vdi, of, kind: 'snapshot', name, vdi: n.vdi, time: n.time });
  return d.actions;
}

/**
 * vdi_clone of any visible VDI. A snapshot VDI: a clone of it. A live volume on a dependent
 * backend: an internal snapshot, then a clone of that (the internal snapshot is reclaimed
 * when the clone goes). Reflink: a copy of the file.
 */
export function planClone(store: Store, source: string, n: NewVdi): Plan {
  const src = visibleObject(store, source);
  const d = new Draft(store);
  let from = src.id;
  if (store.caps.dependent && src.kind === 'volume') {
    from = n.newId();
    const name = formatInternalSnapshotName(n.time, from);
    d.emit({ op: 'snapshot', object: from, of: src.id, kind: 'internal-snapshot', name, time: n.time });
  }
  d.emit({ op: 'clone', object: n.vdi, from, vdi: n.vdi, time: n.time });
  return d.actions;
}

/**
 * vdi_delete of any visible VDI: tombstone it first (so a crash mid-plan leaves work for
 * gcPlan, never a half-deleted VDI), tell xapi, then destroy whatever nothing needs any
 * more, cascading up through tombstones. What is still needed stays as a tombstone.
 */
export function planDelete(store: Store, vdi: string): Plan {
  const o = visibleObject(store, vdi);
  const d = new Draft(store);
  d.emit({ op: 'mark-tombstone', object: o.id });
  d.emit({ op: 'forget-in-xapi', vdi });
  retire(d, d.get(o.id)!);
  return d.actions;
}

/**
 * vdi_revert (xapi >= 26.16: the target VDI keeps its uuid and takes the snapshot's content)
 * without losing any snapshot, newer ones included:
 *  - fast path (dependent backend, the snapshot is the target's own newest snapshot):
 *    `zfs rollback target@snapshot` — legal without -r precisely because nothing is newer;
 *  - otherwise: clone the snapshot into a new hidden volume, swap the VDI onto it, and
 *    retire the old volume like a delete (tombstone while its snapshots live, else destroy).
 */
export function planRevert(store: Store, snapshot: string, target: string, opts: RevertOptions): Plan {
  const s = visibleObject(store, snapshot);
  const t = visibleObject(store, target);
  if (s.kind !== 'snapshot') throw new LineageError('wrong-kind', `VDI ${snapshot} is not a snapshot`);
  if (t.kind !== 'volume') throw new LineageError('wrong-kind', `VDI ${target} is not a live volume`);
  const d = new Draft(store);
  if (store.caps.dependent && opts.rollback !== false && s.parent === t.id && newestSnapshotOf(store, t.id)?.id === s.id) {
    d.emit({ op: 'rollback', object: t.id, snapshot: s.id, optional: false });
    return d.actions;
  }
  const fresh = opts.newId();
  d.emit({ op: 'clone', object: fresh, from: s.id, time: opts.time });
  d.emit({ op: 'swap-vdi', vdi: target, from: t.id, to: fresh });
  d.emit({ op: 'mark-tombstone', object: t.id });
  retire(d, d.get(t.id)!);
  return d.actions;
}
