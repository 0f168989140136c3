// Property test: random sequences of the operations xapi drives (VDI create, guest writes,
// VDI.snapshot, VDI.clone of snapshots and of live disks, classic VM.revert = delete the
// current disk then clone the snapshot, VDI.revert, VDI.destroy of anything), with every plan
// carried out on a simulated pool that enforces the storage rules. Invariants after every
// action / operation, and at the end (after deleting every visible VDI) an empty pool.
import {
  type Capabilities,
  type LineageObject,
  type Plan,
  LineageTree,
  REFLINK_CAPABILITIES,
  ZFS_CAPABILITIES,
  isVisible,
} from '../../src/lineage/index.js';
import { type SimStorage, SimReflink, SimZfs, prng, uuidSource } from './lineage-sim.js';

interface VdiRecord {
  value: number;
  kind: 'volume' | 'snapshot';
  /** xapi's VDI.snapshot_of (may dangle, as in xapi). */
  snapshotOf?: string;
}

type Stats = Record<string, number>;

/** What an operation may do to xapi's view, for judging the state after a crash. */
interface Intent {
  /** The VDI being deleted: may be gone after a crash. */
  vanish?: string;
  /** The VDI being reverted: may show the old or the new data. */
  change?: { vdi: string; to: number };
  /** The VDI being created: may or may not exist; if it does, with this record. */
  create?: { vdi: string; record: VdiRecord };
}

/** The process died after the first `done` actions of a plan. */
class Crash extends Error {}

const START = Date.UTC(2026, 10, 25, 1, 47, 29, 123);

/** seek by brute force: the same lineage walk, but scanning every object instead of the index. */
function seekByScan(tree: LineageTree, vdi: string, t: number): LineageObject | undefined {
  let cur = tree.byVdi(vdi);
  let limit = t;
  while (cur !== undefined) {
    if (cur.kind === 'volume') {
      let best: LineageObject | undefined;
      for (const o of tree.objects()) {
        if (o.kind !== 'snapshot' || o.parent !== cur.id || !isVisible(o) || o.created > limit) continue;
        if (best === undefined || o.created > best.created || (o.created === best.created && o.id > best.id)) best = o;
      }
      if (best !== undefined) return best;
    } else if (isVisible(cur) && cur.created <= limit) {
      return cur;
    }
    limit = Math.min(limit, cur.created);
    cur = cur.parent === undefined ? undefined : tree.get(cur.parent);
  }
  return undefined;
}

class World {
  tree: LineageTree;
  readonly sim: SimStorage;
  /** What xapi (and the guest) believe: each visible VDI and the data it must show. */
  readonly xapi = new Map<string, VdiRecord>();
  readonly log: string[] = [];
  private time = START;
  private value = 0;
  private readonly newVdi = uuidSource(0xa);
  private readonly newId = uuidSource(0xb);
  private intent: Intent = {};

  constructor(
    readonly caps: Capabilities,
    readonly rnd: () => number,
    readonly stats: Stats,
    readonly crashes = false,
  ) {
    this.tree = new LineageTree(caps);
    this.sim = caps.dependent ? new SimZfs() : new SimReflink();
  }

  fail(msg: string): never {
    throw new Error(`${msg}\n--- operations:\n${this.log.slice(-25).join('\n')}`);
  }

  pick<T>(xs: readonly T[]): T | undefined {
    return xs.length === 0 ? undefined : xs[Math.floor(this.rnd() * xs.length)];
  }

  tick(): number {
    // Often the same millisecond, to exercise ties in names, the index and "newest snapshot".
    this.time += this.rnd() < 0.15 ? 0 : 1 + Math.floor(this.rnd() * 5000);
    return this.time;
  }

  fresh(): { vdi: string; time: number; newId: () => string } {
    return { vdi: this.newVdi(), time: this.tick(), newId: this.newId };
  }

  visible(kind?: 'volume' | 'snapshot'): string[] {
    return [...this.xapi.keys()].filter((v) => kind === undefined || this.xapi.get(v)!.kind === kind).sort();
  }

  objOf(vdi: string): LineageObject {
    return this.tree.byVdi(vdi) ?? this.fail(`VDI ${vdi} has no visible object`);
  }

  run(plan: Plan, intent: Intent = {}): void {
    const tombstoned = new Set<string>();
    let destroys = 0;
    // Now and then the process dies part-way through a plan, or after it but before xapi
    // hears back (crashAt === plan.length).
    const crashAt = this.crashes && plan.length > 0 && this.rnd() < 0.04 ? Math.floor(this.rnd() * (plan.length + 1)) : -1;
    for (const [k, a] of [...plan.entries(), [plan.length, undefined] as const]) {
      if (k === crashAt) {
        this.intent = intent;
        throw new Crash(`crash before action ${k} of ${plan.length}`);
      }
      if (a === undefined) break;
      try {
        this.sim.execute(a, this.tree);
      } catch (e) {
        this.fail(`storage refused ${JSON.stringify(a)}: ${(e as Error).message}`);
      }
      this.tree.applyAction(a);
      this.stats[a.op] = (this.stats[a.op] ?? 0) + 1;
      if (a.op === 'mark-tombstone') tombstoned.add(a.object);
      if (a.op === 'destroy') {
        destroys++;
        tombstoned.delete(a.object);
      }
      if (a.op === 'rollback') this.count(a.optional ? 'head-discard' : 'fast-revert');
      // No step may leave a visible VDI without its storage object.
      for (const o of this.tree.visible()) {
        if (!this.sim.exists(o, this.tree)) this.fail(`after ${a.op}, VDI ${o.vdi} lost its object ${o.id}`);
      }
    }
    if (tombstoned.size > 0) this.count('kept-as-tombstone', tombstoned.size);
    if (destroys > 1) this.count('cascade');
    this.stats.maxDestroysInOnePlan = Math.max(this.stats.maxDestroysInOnePlan ?? 0, destroys);
  }

  count(k: string, n = 1): void {
    this.stats[k] = (this.stats[k] ?? 0) + n;
  }

  // ---- operations ----

  create(): void {
    const { vdi, time } = this.fresh();
    this.run(this.tree.planCreate(vdi, time), { create: { vdi, record: { value: 0, kind: 'volume' } } });
    const value = ++this.value;
    this.sim.write(this.objOf(vdi), value);
    this.xapi.set(vdi, { value, kind: 'volume' });
    this.log.push(`create ${vdi}`);
  }

  write(): void {
    const vdi = this.pick(this.visible('volume'));
    if (vdi === undefined) return;
    const value = ++this.value;
    this.sim.write(this.objOf(vdi), value);
    this.xapi.get(vdi)!.value = value;
    this.log.push(`write ${vdi}`);
  }

  snapshot(): void {
    const src = this.pick(this.visible());
    if (src === undefined) return;
    const n = this.fresh();
    const record: VdiRecord = { value: this.xapi.get(src)!.value, kind: 'snapshot', snapshotOf: src };
    this.run(this.tree.planSnapshot(src, n), { create: { vdi: n.vdi, record } });
    this.xapi.set(n.vdi, record);
    this.log.push(`snapshot ${src} -> ${n.vdi}`);
  }

  clone(): void {
    const src = this.pick(this.visible());
    if (src === undefined) return;
    const n = this.fresh();
    const record: VdiRecord = { value: this.xapi.get(src)!.value, kind: 'volume' };
    this.run(this.tree.planClone(src, n), { create: { vdi: n.vdi, record } });
    this.xapi.set(n.vdi, record);
    this.log.push(`clone ${src} -> ${n.vdi}`);
  }

  delete(vdi = this.pick(this.visible())): void {
    if (vdi === undefined) return;
    this.run(this.tree.planDelete(vdi), { vanish: vdi });
    this.xapi.delete(vdi);
    this.log.push(`delete ${vdi}`);
  }

  /** xapi <= 26.15 VM.revert, per disk: vdi_delete(current disk), vdi_clone(snapshot), re-point snapshot_of. */
  classicRevert(): void {
    const snap = this.pick(this.visible('snapshot'));
    if (snap === undefined) return;
    const current = this.xapi.get(snap)!.snapshotOf;
    if (current !== undefined && this.xapi.get(current)?.kind === 'volume') this.delete(current);
    const n = this.fresh();
    const record: VdiRecord = { value: this.xapi.get(snap)!.value, kind: 'volume' };
    this.run(this.tree.planClone(snap, n), { create: { vdi: n.vdi, record } });
    this.xapi.set(n.vdi, record);
    for (const r of this.xapi.values()) if (current !== undefined && r.snapshotOf === current) r.snapshotOf = n.vdi;
    this.log.push(`classic-revert to ${snap}: ${String(current)} -> ${n.vdi}`);
  }

  /** xapi >= 26.16 VDI.revert: the target keeps its uuid and takes the snapshot's data. */
  vdiRevert(): void {
    const snap = this.pick(this.visible('snapshot'));
    if (snap === undefined) return;
    const of = this.xapi.get(snap)!.snapshotOf;
    const target = of !== undefined && this.xapi.get(of)?.kind === 'volume' ? of : this.pick(this.visible('volume'));
    if (target === undefined) return;
    const rollback = this.rnd() < 0.7;
    const change = { vdi: target, to: this.xapi.get(snap)!.value };
    this.run(this.tree.planRevert(snap, target, { time: this.tick(), newId: this.newId, rollback }), { change });
    this.xapi.get(target)!.value = this.xapi.get(snap)!.value;
    this.log.push(`vdi-revert ${target} to ${snap} (rollback ${rollback})`);
  }

  /** The backend persists records and loads them again (e.g. the next SM call). */
  reload(): void {
    this.tree = new LineageTree(this.caps, this.tree.list());
    this.log.push('reload');
  }

  // ---- invariants ----

  check(): void {
    const seen = this.tree.visible().map((o) => o.vdi!);
    const want = this.visible();
    if (seen.join() !== want.join()) this.fail(`visible VDIs ${seen.join()} but xapi has ${want.join()}`);
    for (const vdi of want) {
      const o = this.objOf(vdi);
      const got = this.sim.read(o, this.tree);
      if (got !== this.xapi.get(vdi)!.value) this.fail(`VDI ${vdi} reads ${got}, expected ${this.xapi.get(vdi)!.value}`);
      if ((o.kind === 'volume') !== (this.xapi.get(vdi)!.kind === 'volume')) this.fail(`VDI ${vdi} has kind ${o.kind}`);
    }
    const gc = this.tree.gcPlan();
    if (gc.length > 0) this.fail(`not at a fixed point, gc would do ${JSON.stringify(gc)}`);
    const issues = this.tree.validate();
    if (issues.length > 0) this.fail(`validate: ${JSON.stringify(issues)}`);
    const names = this.sim.names().join('\n');
    if (names !== this.sim.expectedNames(this.tree).join('\n')) {
      this.fail(`storage and model disagree:\n${names}\nvs\n${this.sim.expectedNames(this.tree).join('\n')}`);
    }
    // seek through the index agrees with a scan, at random times.
    for (let k = 0; k < 3; k++) {
      const vdi = this.pick(want);
      if (vdi === undefined) break;
      const t = START + Math.floor(this.rnd() * (this.time - START + 2000));
      const got = this.tree.seek(vdi, t)?.id;
      const ref = seekByScan(this.tree, vdi, t)?.id;
      if (got !== ref) this.fail(`seek(${vdi}, ${t}) = ${String(got)}, scan says ${String(ref)}`);
      if (got !== undefined) this.count('seek-hit');
    }
    // Invisible objects only exist because something visible depends on them.
    for (const o of this.tree.objects()) {
      if (!isVisible(o) && this.caps.dependent && this.tree.children(o.id).size === 0) this.fail(`leaf ${o.id} is not visible`);
      if (!isVisible(o) && !this.caps.dependent) this.fail(`reflink keeps hidden ${o.id}`);
    }
  }

  step(): void {
    const r = this.rnd();
    try {
      if (this.xapi.size === 0 || r < 0.08) this.create();
      else if (r < 0.2) this.write();
      else if (r < 0.38) this.snapshot();
      else if (r < 0.52) this.clone();
      else if (r < 0.64) this.classicRevert();
      else if (r < 0.74) this.vdiRevert();
      else if (r < 0.97) this.delete();
      else this.reload();
    } catch (e) {
      if (!(e instanceof Crash)) throw e;
      this.recover(e.message);
    }
    this.check();
  }

  /**
   * After a crash: load the records again, run gcPlan, and judge the result as an sr_scan
   * would show it. Only the interrupted operation's own VDIs may differ from before.
   */
  recover(why: string): void {
    this.count('crash');
    this.log.push(why);
    const intent = this.intent;
    // gcPlan itself may be interrupted too: then load and collect again.
    for (;;) {
      this.reload();
      try {
        this.run(this.tree.gcPlan(), intent);
        break;
      } catch (e) {
        if (!(e instanceof Crash)) throw e;
        this.count('crash-during-gc');
      }
    }
    const { vanish, change, create } = intent;
    for (const [vdi, rec] of this.xapi) {
      const o = this.tree.byVdi(vdi);
      if (o === undefined) {
        if (vdi !== vanish) this.fail(`after a crash, VDI ${vdi} vanished`);
        this.xapi.delete(vdi);
        continue;
      }
      const got = this.sim.read(o, this.tree);
      if (got !== rec.value && !(vdi === change?.vdi && got === change.to)) {
        this.fail(`after a crash, VDI ${vdi} reads ${got}, expected ${rec.value}`);
      }
      if (got !== rec.value) this.count('crash-mid-revert-completed');
      rec.value = got;
    }
    for (const o of this.tree.visible()) {
      if (this.xapi.has(o.vdi!)) continue;
      if (create === undefined || o.vdi !== create.vdi) this.fail(`after a crash, unexpected VDI ${String(o.vdi)}`);
      this.xapi.set(create.vdi, { ...create.record });
      this.count('crash-after-create');
    }
    this.intent = {};
  }

  teardown(): void {
    for (let v = this.pick(this.visible()); v !== undefined; v = this.pick(this.visible())) {
      try {
        this.delete(v);
      } catch (e) {
        if (!(e instanceof Crash)) throw e;
        this.recover(e.message);
      }
      this.check();
    }
    if (this.tree.size !== 0) this.fail(`tree still holds ${JSON.stringify(this.tree.list())}`);
    if (this.sim.names().length !== 0) this.fail(`pool not empty: ${this.sim.names().join(', ')}`);
  }
}

const SEQUENCES = 500;
const STEPS = 60;

describe.each([
  ['zfs (dependent)', ZFS_CAPABILITIES],
  ['reflink (independent)', REFLINK_CAPABILITIES],
])('random xapi operation sequences on %s', (_name, caps) => {
  test(`${SEQUENCES} seeded sequences with crashes part-way through plans: gcPlan recovers, nothing else is lost`, () => {
    const stats: Stats = {};
    for (let seed = 1; seed <= SEQUENCES; seed++) {
      const w = new World(caps, prng(seed * 104729), stats, true);
      try {
        for (let i = 0; i < STEPS; i++) w.step();
        w.teardown();
      } catch (e) {
        throw new Error(`seed ${seed}: ${(e as Error).message}`);
      }
    }
    expect(stats.crash).toBeGreaterThan(500);
    expect(stats['crash-after-create']).toBeGreaterThan(10);
    if (caps.dependent) expect(stats['crash-mid-revert-completed']).toBeGreaterThan(5);
  });

  test(`${SEQUENCES} seeded sequences: no visible VDI ever loses data, gc always at a fixed point, pool ends empty`, () => {
    const stats: Stats = {};
    let maxObjects = 0;
    for (let seed = 1; seed <= SEQUENCES; seed++) {
      const w = new World(caps, prng(seed * 7919), stats);
      try {
        for (let i = 0; i < STEPS; i++) {
          w.step();
          maxObjects = Math.max(maxObjects, w.tree.size);
        }
        w.teardown();
      } catch (e) {
        throw new Error(`seed ${seed}: ${(e as Error).message}`);
      }
    }
    // The sequences really exercise what they are meant to.
    expect(stats.snapshot).toBeGreaterThan(1000);
    expect(stats.clone).toBeGreaterThan(1000);
    expect(stats['swap-vdi']).toBeGreaterThan(100);
    expect(maxObjects).toBeGreaterThan(20);
    expect(stats['seek-hit']).toBeGreaterThan(10000);
    if (caps.dependent) {
      expect(stats['kept-as-tombstone']).toBeGreaterThan(1000);
      expect(stats.cascade).toBeGreaterThan(1000);
      expect(stats['fast-revert']).toBeGreaterThan(50);
      expect(stats['head-discard']).toBeGreaterThan(500);
      expect(stats.maxDestroysInOnePlan).toBeGreaterThan(4);
    } else {
      expect(stats['kept-as-tombstone']).toBeUndefined();
      expect(stats.rollback).toBeUndefined();
    }
  });
});
