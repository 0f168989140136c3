// The one place that says what an action does to the model and which actions are legal.
// Used by the tree (to record what the backend did) and by the planner's draft (so every
// plan is checked against the same rules while it is being built).
import {
  type Action,
  type Capabilities,
  type LineageObject,
  LineageError,
  isSnapshotKind,
  isVisible,
  snapshotNameOf,
} from './model.js';

/** The mutable view both the tree and a plan draft offer. */
export interface Store {
  readonly caps: Capabilities;
  get(id: string): LineageObject | undefined;
  /** Ids of the objects whose parent is `id` (present objects only). */
  children(id: string): ReadonlySet<string>;
  /** The visible object backing `vdi`, if any. */
  byVdi(vdi: string): LineageObject | undefined;
  /** Adds an object or replaces one with the same id (kind, parent and created never change). */
  put(o: LineageObject): void;
  remove(id: string): void;
}

const invalid = (msg: string): LineageError => new LineageError('invalid', msg);

function need(store: Store, id: string): LineageObject {
  const o = store.get(id);
  if (o === undefined) throw new LineageError('not-found', `no object ${id}`);
  return o;
}

function live(store: Store, id: string, what: string): LineageObject {
  const o = need(store, id);
  if (o.deleted) throw invalid(`${what}: ${id} is a tombstone`);
  return o;
}

function fresh(store: Store, id: string, vdi: string | undefined): void {
  if (store.get(id) !== undefined) throw new LineageError('exists', `object ${id} already exists`);
  if (vdi !== undefined && store.byVdi(vdi) !== undefined) throw new LineageError('exists', `VDI ${vdi} already exists`);
}

function checkTime(t: number): void {
  if (!Number.isFinite(t)) throw invalid(`bad time ${t}`);
}

/**
 * The newest existing snapshot (of either kind) of volume `id`, if it is strictly newer than
 * every other one. Ties give undefined: then nobody can tell which one ZFS considers newest.
 */
export function newestSnapshotOf(store: Store, id: string): LineageObject | undefined {
  let best: LineageObject | undefined;
  let tie = false;
  for (const c of store.children(id)) {
    const o = store.get(c);
    if (o === undefined || !isSnapshotKind(o.kind)) continue;
    if (best === undefined || o.created > best.created) {
      best = o;
      tie = false;
    } else if (o.created === best.created) tie = true;
  }
  return tie ? undefined : best;
}

/** Applies one action to `store`, or throws LineageError without changing anything. */
export function reduce(store: Store, a: Action): void {
  const dependent = store.caps.dependent;
  switch (a.op) {
    case 'create': {
      checkTime(a.time);
      if (a.vdi !== a.object) throw invalid(`create: a new volume's id must be its VDI uuid`);
      fresh(store, a.object, a.vdi);
      store.put({ id: a.object, kind: 'volume', vdi: a.vdi, created: a.time, deleted: false });
      return;
    }
    case 'snapshot': {
      checkTime(a.time);
      const of = live(store, a.of, 'snapshot');
      if (dependent && of.kind !== 'volume') throw invalid(`snapshot: ${of.id} is not a volume`);
      const internal = a.kind === 'internal-snapshot';
      if (internal !== (a.vdi === undefined)) throw invalid(`snapshot: ${a.kind} with vdi ${String(a.vdi)}`);
      if (a.vdi !== undefined && a.vdi !== a.object) throw invalid(`snapshot: a snapshot VDI's id must be its uuid`);
      fresh(store, a.object, a.vdi);
      const o: LineageObject = {
        id: a.object,
        kind: a.kind,
        ...(a.vdi === undefined ? {} : { vdi: a.vdi }),
        parent: of.id,
        created: a.time,
        deleted: false,
      };
      let name: string;
      try {
        name = snapshotNameOf(o);
      } catch (e) {
        throw invalid(`snapshot: ${e instanceof Error ? e.message : String(e)}`);
      }
      if (name !== a.name) throw invalid(`snapshot: name ${a.name} should be ${name}`);
      store.put(o);
      return;
    }
    case 'clone': {
      checkTime(a.time);
      const from = live(store, a.from, 'clone');
      if (dependent && !isSnapshotKind(from.kind)) throw invalid(`clone: ${from.id} is not a snapshot`);
      if (a.vdi !== undefined && a.vdi !== a.object) throw invalid(`clone: a new VDI's id must be its uuid`);
      fresh(store, a.object, a.vdi);
      store.put({
        id: a.object,
        kind: 'volume',
        ...(a.vdi === undefined ? {} : { vdi: a.vdi }),
        parent: from.id,
        created: a.time,
        deleted: false,
      });
      return;
    }
    case 'mark-tombstone': {
      const o = need(store, a.object);
      if (!o.deleted) store.put({ ...o, deleted: true });
      return;
    }
    case 'forget-in-xapi': {
      if (store.byVdi(a.vdi) !== undefined) throw invalid(`forget-in-xapi: VDI ${a.vdi} is still visible`);
      return;
    }
    case 'swap-vdi': {
      const from = need(store, a.from);
      const to = live(store, a.to, 'swap-vdi');
      if (from.kind !== 'volume' || to.kind !== 'volume') throw invalid('swap-vdi: both objects must be volumes');
      if (store.byVdi(a.vdi)?.id !== from.id) throw invalid(`swap-vdi: VDI ${a.vdi} is not backed by ${from.id}`);
      if (to.vdi !== undefined) throw invalid(`swap-vdi: ${to.id} already backs ${to.vdi}`);
      const { vdi: _old, ...unbound } = from;
      store.put(unbound);
      store.put({ ...to, vdi: a.vdi });
      return;
    }
    case 'rollback': {
      if (!dependent) throw invalid('rollback: only for dependent backends');
      const o = need(store, a.object);
      const s = need(store, a.snapshot);
      if (o.kind !== 'volume' || s.parent !== o.id) throw invalid(`rollback: ${s.id} is not a snapshot of ${o.id}`);
      if (newestSnapshotOf(store, o.id)?.id !== s.id) throw invalid(`rollback: ${s.id} is not the newest snapshot of ${o.id}`);
      return;
    }
    case 'destroy': {
      const o = need(store, a.object);
      if (isVisible(o)) throw invalid(`destroy: ${o.id} still backs VDI ${String(o.vdi)}`);
      if (dependent && store.children(o.id).size > 0) {
        throw new LineageError('blocked', `destroy: ${o.id} still has ${store.children(o.id).size} dependant(s)`);
      }
      store.remove(o.id);
      return;
    }
  }
}
