import {
  type Action,
  type Capabilities,
  type LineageObject,
  LineageError,
  LineageTree,
  REFLINK_CAPABILITIES,
  ZFS_CAPABILITIES,
  checkLineage,
  compareInventory,
  formatInternalSnapshotName,
  formatSnapshotName,
} from '../../src/lineage/index.js';
import { uuidOf, uuidSource } from './lineage-sim.js';

const T0 = Date.UTC(2026, 10, 25, 1, 47, 29, 123);

/** A tree plus shorthands that plan, check the plan applies, and apply it. */
class Fixture {
  readonly tree: LineageTree;
  private t = T0;
  private vdis = 0;
  readonly newId = uuidSource(0xb);

  constructor(caps: Capabilities = ZFS_CAPABILITIES) {
    this.tree = new LineageTree(caps);
  }

  next(): { vdi: string; time: number; newId: () => string } {
    this.t += 1000;
    return { vdi: uuidOf(++this.vdis, 0xa), time: this.t, newId: this.newId };
  }

  run(plan: readonly Action[]): readonly Action[] {
    this.tree.apply(plan);
    return plan;
  }

  create(): string {
    const n = this.next();
    this.run(this.tree.planCreate(n.vdi, n.time));
    return n.vdi;
  }

  snapshot(src: string): string {
    const n = this.next();
    this.run(this.tree.planSnapshot(src, n));
    return n.vdi;
  }

  clone(src: string): string {
    const n = this.next();
    this.run(this.tree.planClone(src, n));
    return n.vdi;
  }

  delete(vdi: string): readonly Action[] {
    return this.run(this.tree.planDelete(vdi));
  }

  revert(snap: string, target: string, rollback?: boolean): readonly Action[] {
    this.t += 1000;
    return this.run(this.tree.planRevert(snap, target, { time: this.t, newId: this.newId, rollback }));
  }

  at(vdi: string): number {
    return this.tree.byVdi(vdi)!.created;
  }
}

const ops = (plan: readonly Action[]): string[] =>
  plan.map((a) => ('object' in a ? `${a.op} ${a.object}` : `${a.op} ${a.vdi}`));

describe('planning on ZFS (dependent)', () => {
  test('create, snapshot and clone of a snapshot are single actions', () => {
    const f = new Fixture();
    const v = f.create();
    expect(f.tree.get(v)).toEqual({ id: v, kind: 'volume', vdi: v, created: T0 + 1000, deleted: false });
    const n = f.next();
    const plan = f.tree.planSnapshot(v, n);
    expect(plan).toEqual([
      { op: 'snapshot', object: n.vdi, of: v, kind: 'snapshot', name: formatSnapshotName(n.time, n.vdi), vdi: n.vdi, time: n.time },
    ]);
    f.run(plan);
    const c = f.next();
    expect(f.tree.planClone(n.vdi, c)).toEqual([{ op: 'clone', object: c.vdi, from: n.vdi, vdi: c.vdi, time: c.time }]);
  });

  test('clone of a live volume goes through a tagged internal snapshot', () => {
    const f = new Fixture();
    const v = f.create();
    const n = f.next();
    const plan = f.tree.planClone(v, n);
    const internal = uuidOf(1, 0xb);
    expect(plan).toEqual([
      { op: 'snapshot', object: internal, of: v, kind: 'internal-snapshot', name: formatInternalSnapshotName(n.time, internal), time: n.time },
      { op: 'clone', object: n.vdi, from: internal, vdi: n.vdi, time: n.time },
    ]);
    f.run(plan);
    expect(f.tree.visible().map((o) => o.vdi)).toEqual([v, n.vdi]);
    // Deleting the clone takes its internal snapshot along; the source is untouched.
    expect(ops(f.delete(n.vdi))).toEqual([`mark-tombstone ${n.vdi}`, `forget-in-xapi ${n.vdi}`, `destroy ${n.vdi}`, `destroy ${internal}`]);
    expect(f.tree.list().map((o) => o.id)).toEqual([v]);
  });

  test('a volume with no dependants is destroyed at once (tombstoned first, for crash safety)', () => {
    const f = new Fixture();
    const v = f.create();
    expect(ops(f.delete(v))).toEqual([`mark-tombstone ${v}`, `forget-in-xapi ${v}`, `destroy ${v}`]);
    expect(f.tree.size).toBe(0);
  });

  test('a volume with snapshot VDIs becomes a tombstone, gives back its head, and goes with its last snapshot', () => {
    const f = new Fixture();
    const v = f.create();
    const s1 = f.snapshot(v);
    const s2 = f.snapshot(v);
    const plan = f.delete(v);
    expect(plan).toEqual([
      { op: 'mark-tombstone', object: v },
      { op: 'forget-in-xapi', vdi: v },
      { op: 'rollback', object: v, snapshot: s2, optional: true },
    ]);
    expect(f.tree.get(v)?.deleted).toBe(true);
    expect(f.tree.byVdi(v)).toBeUndefined();
    expect(f.tree.visible().map((o) => o.vdi)).toEqual([s1, s2]);
    expect(ops(f.delete(s1))).toEqual([`mark-tombstone ${s1}`, `forget-in-xapi ${s1}`, `destroy ${s1}`]);
    expect(ops(f.delete(s2))).toEqual([`mark-tombstone ${s2}`, `forget-in-xapi ${s2}`, `destroy ${s2}`, `destroy ${v}`]);
    expect(f.tree.size).toBe(0);
  });

  test('a snapshot VDI with clones is forgotten in xapi but kept until its last clone goes', () => {
    const f = new Fixture();
    const v = f.create();
    const s = f.snapshot(v);
    const c1 = f.clone(s);
    const c2 = f.clone(s);
    expect(ops(f.delete(s))).toEqual([`mark-tombstone ${s}`, `forget-in-xapi ${s}`]);
    expect(f.tree.visible().map((o) => o.vdi)).toEqual([v, c1, c2]);
    expect(() => f.tree.planClone(s, f.next())).toThrow(LineageError);
    expect(ops(f.delete(c1))).toEqual([`mark-tombstone ${c1}`, `forget-in-xapi ${c1}`, `destroy ${c1}`]);
    expect(ops(f.delete(c2))).toEqual([`mark-tombstone ${c2}`, `forget-in-xapi ${c2}`, `destroy ${c2}`, `destroy ${s}`]);
    expect(f.tree.list().map((o) => o.id)).toEqual([v]);
  });

  test('classic VM.revert (delete the disk, clone the snapshot) and the cascade at the end', () => {
    const f = new Fixture();
    const v = f.create();
    const s = f.snapshot(v);
    f.delete(v); // xapi deletes the current disk first...
    const c = f.clone(s); // ...then clones the snapshot
    expect(f.tree.get(v)?.deleted).toBe(true);
    expect(ops(f.delete(s))).toEqual([`mark-tombstone ${s}`, `forget-in-xapi ${s}`]); // c needs it
    // The last visible VDI of the branch goes: clone, snapshot tombstone, volume tombstone.
    expect(ops(f.delete(c))).toEqual([`mark-tombstone ${c}`, `forget-in-xapi ${c}`, `destroy ${c}`, `destroy ${s}`, `destroy ${v}`]);
    expect(f.tree.size).toBe(0);
  });

  test('a deleted volume whose only dependant is an internal snapshot with a clone', () => {
    const f = new Fixture();
    const v = f.create();
    const c = f.clone(v);
    const internal = uuidOf(1, 0xb);
    expect(f.delete(v)).toEqual([
      { op: 'mark-tombstone', object: v },
      { op: 'forget-in-xapi', vdi: v },
      { op: 'rollback', object: v, snapshot: internal, optional: true },
    ]);
    expect(ops(f.delete(c))).toEqual([`mark-tombstone ${c}`, `forget-in-xapi ${c}`, `destroy ${c}`, `destroy ${internal}`, `destroy ${v}`]);
  });

  test('a snapshot of a snapshot VDI is taken on a hidden clone, reclaimed with it', () => {
    const f = new Fixture();
    const v = f.create();
    const s = f.snapshot(v);
    const n = f.next();
    const helper = uuidOf(1, 0xb);
    const plan = f.tree.planSnapshot(s, n);
    expect(ops(plan)).toEqual([`clone ${helper}`, `snapshot ${n.vdi}`]);
    f.run(plan);
    expect(f.tree.get(helper)).toMatchObject({ kind: 'volume', parent: s, deleted: false });
    expect(f.tree.get(helper)?.vdi).toBeUndefined();
    expect(f.tree.get(n.vdi)).toMatchObject({ kind: 'snapshot', parent: helper, vdi: n.vdi });
    // Independent lifetimes: the source snapshot can go first.
    expect(ops(f.delete(s))).toEqual([`mark-tombstone ${s}`, `forget-in-xapi ${s}`]);
    expect(ops(f.delete(n.vdi))).toEqual([`mark-tombstone ${n.vdi}`, `forget-in-xapi ${n.vdi}`, `destroy ${n.vdi}`, `destroy ${helper}`, `destroy ${s}`]);
    expect(f.tree.list().map((o) => o.id)).toEqual([v]);
  });

  test('planning never changes the tree; apply is all or nothing', () => {
    const f = new Fixture();
    const v = f.create();
    const s = f.snapshot(v);
    f.clone(s);
    const before = JSON.stringify(f.tree.list());
    f.tree.planDelete(v);
    f.tree.planDelete(s);
    f.tree.planRevert(s, v, { time: T0 + 1e6, newId: f.newId });
    f.tree.gcPlan();
    expect(JSON.stringify(f.tree.list())).toBe(before);
    const good = f.tree.planDelete(v);
    expect(() => f.tree.apply([...good, { op: 'destroy', object: s }])).toThrow(LineageError);
    expect(JSON.stringify(f.tree.list())).toBe(before);
  });

  test('unknown, tombstoned and internal objects are not VDIs', () => {
    const f = new Fixture();
    const v = f.create();
    const s = f.snapshot(v);
    f.clone(s);
    f.delete(s);
    for (const bad of [s, uuidOf(999), uuidOf(1, 0xb)]) {
      expect(() => f.tree.planDelete(bad)).toThrow(expect.objectContaining({ code: 'not-found' }));
    }
  });
});

describe('the example in docs/lineage.md', () => {
  test('tombstone A with S1 -> B, S2 and an internal snapshot -> C; deletes cascade as documented', () => {
    const f = new Fixture();
    const a = f.create();
    const s1 = f.snapshot(a);
    const s2 = f.snapshot(a);
    const c = f.clone(a);
    const internal = uuidOf(1, 0xb);
    f.delete(a);
    const b = f.clone(s1);
    expect(f.tree.get(a)?.deleted).toBe(true);
    expect(ops(f.delete(c)).filter((x) => x.startsWith('destroy'))).toEqual([`destroy ${c}`, `destroy ${internal}`]);
    expect(ops(f.delete(s1)).filter((x) => x.startsWith('destroy'))).toEqual([]);
    expect(ops(f.delete(s2)).filter((x) => x.startsWith('destroy'))).toEqual([`destroy ${s2}`]);
    expect(ops(f.delete(b)).filter((x) => x.startsWith('destroy'))).toEqual([`destroy ${b}`, `destroy ${s1}`, `destroy ${a}`]);
    expect(f.tree.size).toBe(0);
  });
});

describe('vdi_revert on ZFS', () => {
  test('to the newest snapshot: a plain rollback, nothing else', () => {
    const f = new Fixture();
    const v = f.create();
    f.snapshot(v);
    const s2 = f.snapshot(v);
    expect(f.revert(s2, v)).toEqual([{ op: 'rollback', object: v, snapshot: s2, optional: false }]);
    expect(f.tree.byVdi(v)?.id).toBe(v);
  });

  test('to an older snapshot: clone, swap, old volume kept as a tombstone; newer snapshots survive', () => {
    const f = new Fixture();
    const v = f.create();
    const s1 = f.snapshot(v);
    const s2 = f.snapshot(v);
    const plan = f.revert(s1, v);
    const fresh = uuidOf(1, 0xb);
    expect(plan).toEqual([
      { op: 'clone', object: fresh, from: s1, time: expect.any(Number) },
      { op: 'swap-vdi', vdi: v, from: v, to: fresh },
      { op: 'mark-tombstone', object: v },
      { op: 'rollback', object: v, snapshot: s2, optional: true },
    ]);
    expect(f.tree.byVdi(v)?.id).toBe(fresh);
    expect(f.tree.get(v)).toMatchObject({ deleted: true });
    expect(f.tree.get(v)?.vdi).toBeUndefined();
    expect(f.tree.visible().map((o) => o.vdi).sort()).toEqual([v, s1, s2].sort());
    // The reverted VDI works like any other: snapshot it, delete everything, nothing left.
    const s3 = f.snapshot(v);
    expect(f.tree.get(s3)?.parent).toBe(fresh);
    for (const x of [v, s2, s1, s3]) f.delete(x);
    expect(f.tree.size).toBe(0);
  });

  test('rollback: false forces clone-and-swap; an old volume with no snapshots left is destroyed', () => {
    const f = new Fixture();
    const v = f.create();
    const s = f.snapshot(v);
    const c = f.clone(s); // c has no snapshots of its own
    const other = f.snapshot(c);
    f.delete(other);
    expect(ops(f.revert(s, c, false))).toEqual([`clone ${uuidOf(1, 0xb)}`, `swap-vdi ${c}`, `mark-tombstone ${c}`, `destroy ${c}`]);
    expect(ops(f.revert(s, v, false))).toEqual([`clone ${uuidOf(2, 0xb)}`, `swap-vdi ${v}`, `mark-tombstone ${v}`, `rollback ${v}`]);
  });

  test('same-millisecond snapshots: nobody knows which is newest, so no rollback', () => {
    const f = new Fixture();
    const v = f.create();
    const t = T0 + 5000;
    f.run(f.tree.planSnapshot(v, { vdi: uuidOf(50, 0xa), time: t, newId: f.newId }));
    f.run(f.tree.planSnapshot(v, { vdi: uuidOf(51, 0xa), time: t, newId: f.newId }));
    expect(f.tree.newestSnapshot(v)).toBeUndefined();
    const plan = f.revert(uuidOf(51, 0xa), v);
    expect(plan.some((a) => a.op === 'rollback')).toBe(false);
  });

  test('wrong kinds are refused', () => {
    const f = new Fixture();
    const v = f.create();
    const w = f.create();
    const s = f.snapshot(v);
    const o = { time: T0 + 1e6, newId: f.newId };
    expect(() => f.tree.planRevert(w, v, o)).toThrow(expect.objectContaining({ code: 'wrong-kind' }));
    expect(() => f.tree.planRevert(s, s, o)).toThrow(expect.objectContaining({ code: 'wrong-kind' }));
    // Reverting a different disk to this snapshot is allowed (clone-and-swap).
    expect(ops(f.tree.planRevert(s, w, o))).toEqual([`clone ${uuidOf(1, 0xb)}`, `swap-vdi ${w}`, `mark-tombstone ${w}`, `destroy ${w}`]);
  });
});

describe('the reducer refuses illegal steps', () => {
  const setup = (): { f: Fixture; v: string; s: string } => {
    const f = new Fixture();
    const v = f.create();
    const s = f.snapshot(v);
    return { f, v, s };
  };

  test.each<[string, (v: string, s: string) => Action, string]>([
    ['destroy of a visible VDI', (v) => ({ op: 'destroy', object: v }), 'invalid'],
    ['forget of a visible VDI', (v) => ({ op: 'forget-in-xapi', vdi: v }), 'invalid'],
    ['clone of a volume on ZFS', (v) => ({ op: 'clone', object: uuidOf(77), from: v, time: T0 }), 'invalid'],
    ['snapshot of a snapshot on ZFS', (_v, s) => ({ op: 'snapshot', object: uuidOf(77), of: s, kind: 'snapshot', name: formatSnapshotName(T0, uuidOf(77)), vdi: uuidOf(77), time: T0 }), 'invalid'],
    ['a snapshot with the wrong name', (v) => ({ op: 'snapshot', object: uuidOf(77), of: v, kind: 'snapshot', name: 'x', vdi: uuidOf(77), time: T0 }), 'invalid'],
    ['a second object with an existing VDI', (v) => ({ op: 'create', object: v, vdi: v, time: T0 }), 'exists'],
    ['rollback to a snapshot of another volume', (v) => ({ op: 'rollback', object: v, snapshot: v, optional: true }), 'invalid'],
    ['swap onto a volume that backs a VDI', (v) => ({ op: 'swap-vdi', vdi: v, from: v, to: v }), 'invalid'],
    ['an action on an unknown object', () => ({ op: 'mark-tombstone', object: uuidOf(404) }), 'not-found'],
  ])('%s', (_name, make, code) => {
    const { f, v, s } = setup();
    const before = JSON.stringify(f.tree.list());
    expect(() => f.tree.applyAction(make(v, s))).toThrow(expect.objectContaining({ code }));
    expect(JSON.stringify(f.tree.list())).toBe(before);
  });

  test('destroying a parent before its children is blocked on ZFS', () => {
    const { f, v } = setup();
    f.tree.applyAction({ op: 'mark-tombstone', object: v });
    expect(() => f.tree.applyAction({ op: 'destroy', object: v })).toThrow(expect.objectContaining({ code: 'blocked' }));
  });

  test('rollback to a snapshot that is not the newest is refused', () => {
    const { f, v, s } = setup();
    f.snapshot(v);
    expect(() => f.tree.applyAction({ op: 'rollback', object: v, snapshot: s, optional: false })).toThrow(/newest/);
  });
});

describe('gc and validation', () => {
  const T = T0;
  const vol = (id: string, extra: Partial<LineageObject> = {}): LineageObject => ({ id, kind: 'volume', vdi: id, created: T, deleted: false, ...extra });
  const snap = (id: string, parent: string, extra: Partial<LineageObject> = {}): LineageObject => ({ id, kind: 'snapshot', vdi: id, parent, created: T + 1, deleted: false, ...extra });
  const [a, b, c, d, e] = [uuidOf(1), uuidOf(2), uuidOf(3), uuidOf(4), uuidOf(5)] as const;

  test('gcPlan finishes interrupted deletes and drops unused internal snapshots, children first', () => {
    const objects: LineageObject[] = [
      vol(a),
      { id: b, kind: 'internal-snapshot', parent: a, created: T + 1, deleted: false }, // clone gone, snapshot left
      vol(c, { deleted: true }), // crash after mark-tombstone
      snap(d, c, { deleted: true }),
      snap(e, a, { deleted: true }),
    ];
    const tree = new LineageTree(ZFS_CAPABILITIES, objects);
    expect(tree.validate().map((i) => `${i.code} ${i.object}`).sort()).toEqual([`reclaimable ${b}`, `reclaimable ${c}`, `reclaimable ${d}`, `reclaimable ${e}`].sort());
    const plan = tree.gcPlan();
    expect(ops(plan)).toEqual([`destroy ${b}`, `destroy ${e}`, `destroy ${d}`, `destroy ${c}`]);
    tree.apply(plan);
    expect(tree.list().map((o) => o.id)).toEqual([a]);
    expect(tree.gcPlan()).toEqual([]);
    expect(tree.validate()).toEqual([]);
  });

  test('an interrupted swap (new volume bound, old not yet unbound) resolves to the new one', () => {
    const f = new Fixture();
    const v = f.create();
    const s1 = f.snapshot(v);
    f.snapshot(v);
    const plan = f.tree.planRevert(s1, v, { time: T0 + 1e6, newId: f.newId });
    const swap = plan.find((x) => x.op === 'swap-vdi')!;
    f.tree.apply(plan.slice(0, plan.indexOf(swap))); // the clone exists
    // Storage holds: the clone already bound to v, the old volume still bound too.
    const records = f.tree.list().map((o) => (o.id === uuidOf(1, 0xb) ? { ...o, vdi: v } : o));
    expect(checkLineage(records, ZFS_CAPABILITIES)).toEqual([expect.objectContaining({ code: 'duplicate-vdi', severity: 'warning' })]);
    const tree = new LineageTree(ZFS_CAPABILITIES, records);
    expect(tree.byVdi(v)?.id).toBe(uuidOf(1, 0xb));
    expect(tree.isVisible(v)).toBe(false);
    expect(tree.gcPlan()).toEqual([{ op: 'mark-tombstone', object: v }]); // its snapshots keep it
    tree.apply(tree.gcPlan());
    expect(tree.validate()).toEqual([]);
    expect(tree.visible().map((o) => o.id).sort()).toEqual([uuidOf(1, 0xb), s1, uuidOf(3, 0xa)].sort());
  });

  test('structural problems are reported', () => {
    const objects: LineageObject[] = [
      vol(a, { parent: e }), // dangling
      snap(b, c), // parent is a snapshot
      snap(c, a),
      { id: d, kind: 'internal-snapshot', vdi: d, parent: a, created: T, deleted: false },
      vol(uuidOf(10), { vdi: a }), // second claim on VDI a
      vol(uuidOf(11), { parent: uuidOf(12) }),
      { id: uuidOf(12), kind: 'snapshot', vdi: uuidOf(12), parent: uuidOf(11), created: T, deleted: false }, // cycle
      { id: uuidOf(13), kind: 'snapshot', vdi: uuidOf(14), parent: a, created: T, deleted: false },
      { id: uuidOf(15), kind: 'snapshot', vdi: uuidOf(15), created: -1, deleted: false },
      vol(uuidOf(16), { deleted: true }),
      vol(uuidOf(16), { deleted: true }), // duplicate id
    ];
    const codes = checkLineage(objects, ZFS_CAPABILITIES).map((i) => i.code).sort();
    expect(codes).toEqual(
      [
        'duplicate-id',
        'bad-parent-kind',
        'internal-with-vdi',
        'duplicate-vdi',
        'cycle',
        'snapshot-id-mismatch',
        'missing-parent',
        'bad-name',
        'dangling-parent',
      ].sort(),
    );
  });

  test('reflink: parents are provenance only, so they may dangle', () => {
    const objects = [snap(b, a), vol(c, { parent: b })];
    expect(checkLineage(objects, REFLINK_CAPABILITIES)).toEqual([]);
    expect(checkLineage(objects, ZFS_CAPABILITIES).map((i) => i.code)).toEqual(['dangling-parent']);
  });

  test('a loaded tree equals the tree it was saved from', () => {
    const f = new Fixture();
    const v = f.create();
    const s = f.snapshot(v);
    f.clone(v);
    f.clone(s);
    f.delete(v);
    const loaded = new LineageTree(ZFS_CAPABILITIES, f.tree.list().reverse());
    expect(loaded.list()).toEqual(f.tree.list());
    expect(loaded.visible()).toEqual(f.tree.visible());
    expect(loaded.snapshotIndex(v)?.toArray()).toEqual(f.tree.snapshotIndex(v)?.toArray());
    expect(loaded.gcPlan()).toEqual([]);
  });

  test('compareInventory: missing and unknown objects', () => {
    const f = new Fixture();
    const v = f.create();
    const s = f.snapshot(v);
    expect(compareInventory(f.tree, [v, 'stray'])).toEqual({ missing: [s], unknown: ['stray'] });
  });
});

describe('seek: a disk state at time t', () => {
  test('own snapshots, then the lineage before a clone', () => {
    const f = new Fixture();
    const v = f.create();
    const s1 = f.snapshot(v);
    const s2 = f.snapshot(v);
    const s3 = f.snapshot(v);
    expect(f.tree.seek(v, f.at(v))).toBeUndefined();
    expect(f.tree.seek(v, f.at(s1))?.vdi).toBe(s1);
    expect(f.tree.seek(v, f.at(s2) + 999)?.vdi).toBe(s2);
    expect(f.tree.seek(v, Infinity)?.vdi).toBe(s3);
    expect(f.tree.snapshotIndex(v)?.range(f.at(s1), f.at(s2)).map((x) => x.uuid)).toEqual([s1, s2]);
    // Classic revert to s2: the new disk's history is v's up to s2, then its own.
    f.delete(v);
    const c = f.clone(s2);
    expect(f.tree.seek(c, Infinity)?.vdi).toBe(s2);
    expect(f.tree.seek(c, f.at(s2) - 1)?.vdi).toBe(s1);
    const c1 = f.snapshot(c);
    expect(f.tree.seek(c, Infinity)?.vdi).toBe(c1);
    expect(f.tree.seek(c, f.at(c1) - 1)?.vdi).toBe(s2);
    // A snapshot VDI is its own state from its creation on.
    expect(f.tree.seek(s3, f.at(s3))?.vdi).toBe(s3);
    expect(f.tree.seek(s3, f.at(s3) - 1)?.vdi).toBe(s2);
    // Hidden snapshots are skipped.
    f.delete(s1);
    expect(f.tree.seek(c, f.at(s2) - 1)).toBeUndefined();
  });

  test('clone of a live disk: its history is the source disk up to the clone', () => {
    const f = new Fixture();
    const v = f.create();
    const s1 = f.snapshot(v);
    const c = f.clone(v);
    f.snapshot(v); // after the clone: not c's history
    expect(f.tree.seek(c, Infinity)?.vdi).toBe(s1);
  });

  test('seek of an unknown VDI is not-found', () => {
    const f = new Fixture();
    expect(() => f.tree.seek(uuidOf(1), 0)).toThrow(expect.objectContaining({ code: 'not-found' }));
  });
});

describe('reflink (independent objects)', () => {
  test('every delete is immediate, clones are plain copies, revert is copy and swap', () => {
    const f = new Fixture(REFLINK_CAPABILITIES);
    const v = f.create();
    const s1 = f.snapshot(v);
    const s2 = f.snapshot(v);
    const n = f.next();
    expect(f.tree.planClone(v, n)).toEqual([{ op: 'clone', object: n.vdi, from: v, vdi: n.vdi, time: n.time }]);
    const n2 = f.next();
    expect(ops(f.tree.planSnapshot(s1, n2))).toEqual([`snapshot ${n2.vdi}`]);
    expect(ops(f.revert(s1, v))).toEqual([`clone ${uuidOf(1, 0xb)}`, `swap-vdi ${v}`, `mark-tombstone ${v}`, `destroy ${v}`]);
    expect(ops(f.revert(s2, v, true))).toEqual([`clone ${uuidOf(2, 0xb)}`, `swap-vdi ${v}`, `mark-tombstone ${uuidOf(1, 0xb)}`, `destroy ${uuidOf(1, 0xb)}`]);
    const holder = f.tree.byVdi(v)!.id;
    expect(ops(f.delete(v))).toEqual([`mark-tombstone ${holder}`, `forget-in-xapi ${v}`, `destroy ${holder}`]);
    // Snapshots outlive their disk; their parent link dangles, which is fine here.
    expect(f.tree.visible().map((o) => o.vdi)).toEqual([s1, s2]);
    expect(f.tree.validate()).toEqual([]);
    expect(ops(f.delete(s1))).toEqual([`mark-tombstone ${s1}`, `forget-in-xapi ${s1}`, `destroy ${s1}`]);
  });

  test('rollback is never planned and refused', () => {
    const f = new Fixture(REFLINK_CAPABILITIES);
    const v = f.create();
    const s = f.snapshot(v);
    expect(() => f.tree.applyAction({ op: 'rollback', object: v, snapshot: s, optional: false })).toThrow(LineageError);
  });
});
