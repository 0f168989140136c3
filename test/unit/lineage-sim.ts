// In-memory storage simulators for the lineage tests, with the rules that matter:
// ZFS refuses to destroy a dataset that has snapshots, a snapshot that has clones, and to
// roll back past a newer snapshot without -r (which the sim does not offer at all).
// Data is one number per object: a snapshot or clone sees its origin's number at the time.
import { type Action, type LineageObject, type LineageTree, snapshotNameOf } from '../../src/lineage/index.js';

export class SimError extends Error {}

export interface SimStorage {
  /** Carries out one action; `tree` is the state before the action. */
  execute(a: Action, tree: LineageTree): void;
  write(o: LineageObject, value: number): void;
  read(o: LineageObject, tree: LineageTree): number;
  exists(o: LineageObject, tree: LineageTree): boolean;
  /** Storage names of everything present, sorted. */
  names(): string[];
  /** The names the model's objects should have on this storage, sorted. */
  expectedNames(tree: LineageTree): string[];
}

export class SimZfs implements SimStorage {
  readonly datasets = new Map<string, { value: number; origin?: string }>();
  readonly snapshots = new Map<string, { value: number; seq: number }>();
  private seq = 0;

  constructor(readonly pool = 'tank') {}

  static ds(pool: string, id: string): string {
    return `${pool}/${id}`;
  }

  nameOf(o: LineageObject, tree: LineageTree): string {
    if (o.kind === 'volume') return SimZfs.ds(this.pool, o.id);
    const parent = o.parent === undefined ? undefined : tree.get(o.parent);
    if (parent === undefined) throw new SimError(`snapshot ${o.id} without its dataset`);
    return `${SimZfs.ds(this.pool, parent.id)}@${snapshotNameOf(o)}`;
  }

  // ---- raw zfs(8)-like operations ----

  create(ds: string, value: number): void {
    if (this.datasets.has(ds)) throw new SimError(`cannot create '${ds}': dataset already exists`);
    this.datasets.set(ds, { value });
  }

  snapshot(ds: string, snap: string): void {
    const d = this.datasets.get(ds);
    if (d === undefined) throw new SimError(`cannot open '${ds}': dataset does not exist`);
    if (!/^[A-Za-z0-9_.:-]+$/.test(snap)) throw new SimError(`invalid snapshot name '${snap}'`);
    const full = `${ds}@${snap}`;
    if (this.snapshots.has(full)) throw new SimError(`cannot create snapshot '${full}': dataset already exists`);
    this.snapshots.set(full, { value: d.value, seq: ++this.seq });
  }

  clone(full: string, ds: string): void {
    const s = this.snapshots.get(full);
    if (s === undefined) throw new SimError(`cannot open '${full}': dataset does not exist`);
    if (this.datasets.has(ds)) throw new SimError(`cannot create '${ds}': dataset already exists`);
    this.datasets.set(ds, { value: s.value, origin: full });
  }

  destroy(name: string): void {
    if (name.includes('@')) {
      if (!this.snapshots.has(name)) throw new SimError(`could not find any snapshots to destroy; check snapshot names.`);
      for (const [ds, d] of this.datasets) {
        if (d.origin === name) throw new SimError(`cannot destroy '${name}': snapshot has dependent clones (${ds})`);
      }
      this.snapshots.delete(name);
      return;
    }
    if (!this.datasets.has(name)) throw new SimError(`cannot open '${name}': dataset does not exist`);
    for (const full of this.snapshots.keys()) {
      if (full.startsWith(`${name}@`)) throw new SimError(`cannot destroy '${name}': filesystem has children (${full})`);
    }
    this.datasets.delete(name);
  }

  rollback(ds: string, full: string): void {
    const d = this.datasets.get(ds);
    const s = this.snapshots.get(full);
    if (d === undefined || s === undefined || !full.startsWith(`${ds}@`)) throw new SimError(`bad rollback ${ds} ${full}`);
    for (const [other, o] of this.snapshots) {
      if (other.startsWith(`${ds}@`) && o.seq > s.seq) {
        throw new SimError(`cannot rollback to '${full}': more recent snapshots or bookmarks exist (${other})`);
      }
    }
    d.value = s.value;
  }

  // ---- SimStorage ----

  execute(a: Action, tree: LineageTree): void {
    const obj = (id: string): LineageObject => {
      const o = tree.get(id);
      if (o === undefined) throw new SimError(`action on unknown object ${id}`);
      return o;
    };
    switch (a.op) {
      case 'create':
        this.create(SimZfs.ds(this.pool, a.object), 0);
        return;
      case 'snapshot':
        this.snapshot(SimZfs.ds(this.pool, a.of), a.name);
        return;
      case 'clone':
        this.clone(this.nameOf(obj(a.from), tree), SimZfs.ds(this.pool, a.object));
        return;
      case 'destroy':
        this.destroy(this.nameOf(obj(a.object), tree));
        return;
      case 'rollback':
        this.rollback(SimZfs.ds(this.pool, a.object), this.nameOf(obj(a.snapshot), tree));
        return;
      case 'mark-tombstone':
      case 'forget-in-xapi':
      case 'swap-vdi':
        return; // metadata only
    }
  }

  write(o: LineageObject, value: number): void {
    const d = this.datasets.get(SimZfs.ds(this.pool, o.id));
    if (d === undefined || o.kind !== 'volume') throw new SimError(`cannot write ${o.id}`);
    d.value = value;
  }

  read(o: LineageObject, tree: LineageTree): number {
    const name = this.nameOf(o, tree);
    const v = (o.kind === 'volume' ? this.datasets.get(name) : this.snapshots.get(name))?.value;
    if (v === undefined) throw new SimError(`cannot read ${name}: does not exist`);
    return v;
  }

  exists(o: LineageObject, tree: LineageTree): boolean {
    const name = this.nameOf(o, tree);
    return o.kind === 'volume' ? this.datasets.has(name) : this.snapshots.has(name);
  }

  names(): string[] {
    return [...this.datasets.keys(), ...this.snapshots.keys()].sort();
  }

  expectedNames(tree: LineageTree): string[] {
    return [...tree.objects()].map((o) => this.nameOf(o, tree)).sort();
  }
}

/** Reflink: every object an independent file; no rule can refuse a delete. */
export class SimReflink implements SimStorage {
  readonly files = new Map<string, number>();

  private copy(from: string, to: string): void {
    const v = this.files.get(from);
    if (v === undefined) throw new SimError(`cp: cannot stat '${from}'`);
    if (this.files.has(to)) throw new SimError(`cp: '${to}' exists`);
    this.files.set(to, v);
  }

  execute(a: Action): void {
    switch (a.op) {
      case 'create':
        if (this.files.has(a.object)) throw new SimError(`'${a.object}' exists`);
        this.files.set(a.object, 0);
        return;
      case 'snapshot':
        this.copy(a.of, a.object);
        return;
      case 'clone':
        this.copy(a.from, a.object);
        return;
      case 'destroy':
        if (!this.files.delete(a.object)) throw new SimError(`rm: cannot remove '${a.object}'`);
        return;
      case 'rollback':
        throw new SimError('reflink has no rollback');
      case 'mark-tombstone':
      case 'forget-in-xapi':
      case 'swap-vdi':
        return;
    }
  }

  write(o: LineageObject, value: number): void {
    if (!this.files.has(o.id) || o.kind !== 'volume') throw new SimError(`cannot write ${o.id}`);
    this.files.set(o.id, value);
  }

  read(o: LineageObject): number {
    const v = this.files.get(o.id);
    if (v === undefined) throw new SimError(`cannot read ${o.id}`);
    return v;
  }

  exists(o: LineageObject): boolean {
    return this.files.has(o.id);
  }

  names(): string[] {
    return [...this.files.keys()].sort();
  }

  expectedNames(tree: LineageTree): string[] {
    return [...tree.objects()].map((o) => o.id).sort();
  }
}

/** mulberry32: small, fast, seeded; good enough to drive test sequences. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Deterministic canonical uuids: uuidOf(1) = 00000000-0000-4000-8000-000000000001. */
export function uuidOf(n: number, tag = 0): string {
  return `${tag.toString(16).padStart(8, '0')}-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
}

export function uuidSource(tag: number): () => string {
  let n = 0;
  return () => uuidOf(++n, tag);
}
