// The clone tree: every storage object of one SR, its dependencies, which VDI each backs,
// and per volume a timestamp index of its snapshot VDIs. Planning never changes the tree;
// apply() records what the backend has done.
import { newestSnapshotOf, reduce, type Store } from './apply.js';
import { Draft } from './draft.js';
import { type Action, type Capabilities, type LineageObject, type Plan, LineageError, isVisible } from './model.js';
import {
  type NewVdi,
  type RevertOptions,
  planClone,
  planCreate,
  planDelete,
  planRevert,
  planSnapshot,
} from './plans.js';
import { planGc } from './reclaim.js';
import { type ReadonlyTimeIndex, type TimeEntry, TimeIndex } from './time-index.js';
import { type Issue, validateObjects } from './validate.js';

const NO_CHILDREN: ReadonlySet<string> = new Set();

export class LineageTree implements Store {
  private readonly objs = new Map<string, LineageObject>();
  private readonly kids = new Map<string, Set<string>>();
  private readonly vdis = new Map<string, string>();
  // parent object id -> its visible snapshot VDIs, keyed (created, object id).
  private readonly snaps = new Map<string, TimeIndex>();

  /**
   * Loads objects as stored (no checks: a corrupt set still loads, so that validate() can
   * report on it). Indexes are built in O(n log n). A repeated id keeps the last record. If
   * two objects claim one VDI (a swap-vdi interrupted between binding the new volume and
   * unbinding the old one), the later-created claimant backs it; gcPlan() retires the other.
   */
  constructor(
    readonly caps: Capabilities,
    objects: Iterable<LineageObject> = [],
  ) {
    for (const o of objects) this.objs.set(o.id, o);
    for (const o of this.objs.values()) {
      if (o.parent !== undefined) this.ownKids(o.parent).add(o.id);
      if (!isVisible(o)) continue;
      const rival = this.byVdi(o.vdi!);
      if (rival === undefined || rival.created < o.created || (rival.created === o.created && rival.id < o.id)) {
        this.vdis.set(o.vdi!, o.id);
      }
    }
    const pending = new Map<string, TimeEntry[]>();
    for (const o of this.objs.values()) {
      if (!this.indexable(o)) continue;
      let list = pending.get(o.parent!);
      if (list === undefined) pending.set(o.parent!, (list = []));
      list.push({ time: o.created, uuid: o.id });
    }
    for (const [parent, list] of pending) this.snaps.set(parent, TimeIndex.from(list));
  }

  get size(): number {
    return this.objs.size;
  }

  get(id: string): LineageObject | undefined {
    return this.objs.get(id);
  }

  has(id: string): boolean {
    return this.objs.has(id);
  }

  objects(): IterableIterator<LineageObject> {
    return this.objs.values();
  }

  /** All objects, sorted by id: what a backend persists and what `new LineageTree` loads. */
  list(): LineageObject[] {
    return [...this.objs.values()].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  }

  children(id: string): ReadonlySet<string> {
    return this.kids.get(id) ?? NO_CHILDREN;
  }

  /** The object backing visible VDI `vdi`. */
  byVdi(vdi: string): LineageObject | undefined {
    const id = this.vdis.get(vdi);
    return id === undefined ? undefined : this.objs.get(id);
  }

  /** Objects backing VDIs xapi may see (not tombstones, not internal), sorted by VDI uuid. */
  visible(): LineageObject[] {
    return [...this.vdis.keys()].sort().map((v) => this.byVdi(v)!);
  }

  /** Whether object `id` backs a VDI xapi may see. */
  isVisible(id: string): boolean {
    const o = this.objs.get(id);
    return o !== undefined && isVisible(o) && this.vdis.get(o.vdi!) === id;
  }

  /** Snapshot VDIs taken of object `id`, by time (entry uuid = snapshot object id). */
  snapshotIndex(id: string): ReadonlyTimeIndex | undefined {
    return this.snaps.get(id);
  }

  /** The newest snapshot (any kind) of volume `id`, if strictly newer than all others. */
  newestSnapshot(id: string): LineageObject | undefined {
    return newestSnapshotOf(this, id);
  }

  /**
   * The state of VDI `vdi` at time `t`: the newest visible snapshot VDI taken at or before t
   * along the lineage of its content — its own snapshots, then (before it was cloned) those of
   * the snapshot it was cloned from and of that snapshot's volume, and so on. A snapshot VDI is
   * its own state from its creation on. O(log n) per lineage hop. Undefined if nothing is that old.
   */
  seek(vdi: string, t: number): LineageObject | undefined {
    if (Number.isNaN(t)) throw new RangeError('seek: time is NaN');
    let cur = this.byVdi(vdi);
    if (cur === undefined) throw new LineageError('not-found', `no visible VDI ${vdi}`);
    let limit = t;
    const seen = new Set<string>();
    while (cur !== undefined && !seen.has(cur.id)) {
      seen.add(cur.id);
      if (cur.kind === 'volume') {
        const hit = this.snaps.get(cur.id)?.seek(limit);
        if (hit !== undefined) return this.objs.get(hit.uuid);
      } else if (isVisible(cur) && cur.created <= limit) {
        return cur;
      }
      // Before cur existed, its content was its parent's at cur's creation time.
      limit = Math.min(limit, cur.created);
      cur = cur.parent === undefined ? undefined : this.objs.get(cur.parent);
    }
    return undefined;
  }

  // ---- planning (pure: the tree is not changed) ----

  planCreate(vdi: string, time: number): Plan {
    return planCreate(this, vdi, time);
  }

  planSnapshot(source: string, n: NewVdi): Plan {
    return planSnapshot(this, source, n);
  }

  planClone(source: string, n: NewVdi): Plan {
    return planClone(this, source, n);
  }

  planDelete(vdi: string): Plan {
    return planDelete(this, vdi);
  }

  planRevert(snapshot: string, target: string, opts: RevertOptions): Plan {
    return planRevert(this, snapshot, target, opts);
  }

  gcPlan(): Plan {
    return planGc(this);
  }

  /**
   * Structural issues (errors), plus a warning per object gcPlan() would reclaim: after every
   * applied plan there should be none. For raw records (duplicate ids) see checkLineage.
   */
  validate(): Issue[] {
    const issues = validateObjects(this.objs.values(), this.caps);
    if (issues.some((i) => i.severity === 'error')) return issues;
    for (const a of this.gcPlan()) {
      if (a.op === 'destroy') {
        issues.push({ code: 'reclaimable', severity: 'warning', object: a.object, message: 'nothing needs it any more' });
      }
    }
    return issues;
  }

  // ---- recording ----

  /** Records one action the backend has carried out. Throws (tree unchanged) if it is illegal. */
  applyAction(a: Action): void {
    reduce(this, a);
  }

  /** Records a whole plan, all or nothing: checked on a draft first. */
  apply(plan: Plan): void {
    const d = new Draft(this);
    for (const a of plan) d.emit(a);
    for (const a of plan) reduce(this, a);
  }

  // ---- Store (used by the reducer) ----

  put(o: LineageObject): void {
    const old = this.objs.get(o.id);
    if (old !== undefined && (old.kind !== o.kind || old.parent !== o.parent || old.created !== o.created)) {
      throw new LineageError('invalid', `object ${o.id}: kind, parent and creation time are immutable`);
    }
    if (old !== undefined) this.unindex(old);
    else if (o.parent !== undefined) this.ownKids(o.parent).add(o.id);
    this.objs.set(o.id, o);
    if (isVisible(o)) this.vdis.set(o.vdi!, o.id);
    if (this.indexable(o)) {
      let index = this.snaps.get(o.parent!);
      if (index === undefined) this.snaps.set(o.parent!, (index = new TimeIndex()));
      index.insert({ time: o.created, uuid: o.id });
    }
  }

  remove(id: string): void {
    const o = this.objs.get(id);
    if (o === undefined) return;
    this.unindex(o);
    this.objs.delete(id);
    if (o.parent !== undefined) {
      const siblings = this.kids.get(o.parent);
      siblings?.delete(id);
      if (siblings?.size === 0) this.kids.delete(o.parent);
    }
  }

  private indexable(o: LineageObject): boolean {
    return o.kind === 'snapshot' && o.parent !== undefined && this.isVisible(o.id);
  }

  private unindex(o: LineageObject): void {
    if (o.vdi !== undefined && this.vdis.get(o.vdi) === o.id) this.vdis.delete(o.vdi);
    if (o.parent !== undefined) {
      const index = this.snaps.get(o.parent);
      if (index?.remove(o.id) !== undefined && index.size === 0) this.snaps.delete(o.parent);
    }
  }

  private ownKids(parent: string): Set<string> {
    let s = this.kids.get(parent);
    if (s === undefined) this.kids.set(parent, (s = new Set()));
    return s;
  }
}
