// The plan runner: every finished step recorded in the tree, undo before the point
// of no return, reclaim failures after it left for garbage collection, errors mapped.
import type { VdiMeta } from '../../src/backends/backend.js';
import { SmError } from '../../src/errors.js';
import { LineageTree, REFLINK_CAPABILITIES, ZFS_CAPABILITIES, type Capabilities } from '../../src/lineage/index.js';
import type { Lineage } from '../../src/sr/context.js';
import { runPlan, stepError } from '../../src/sr/run-plan.js';
import { Undo, withUndo } from '../../src/sr/undo.js';
import { FakeBackend } from './sr-fakes.js';

beforeAll(() => {
  process.env.FLATSNAP_SMLOG = '/dev/null';
});

const T0 = Date.UTC(2026, 10, 25, 1, 0, 0);
const META: VdiMeta = { name_label: 'd', name_description: '', vdi_type: 'user', is_a_snapshot: false, snapshot_time: '19700101T00:00:00Z', snapshot_of: '', read_only: false };
const u = (n: number): string => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;

async function load(b: FakeBackend): Promise<Lineage> {
  const inv = await b.inventory();
  return { tree: new LineageTree(b.capabilities, inv), objects: new Map(inv.map((o) => [o.id, o])) };
}

function setup(caps: Capabilities = REFLINK_CAPABILITIES) {
  const b = new FakeBackend(caps);
  b.seed({ id: u(1), vdi: u(1), meta: META, data: 'A', created: T0 });
  return b;
}

let ids = 100;
const newId = (): string => u(ids++);

test('snapshot: the new object is on storage, in the tree and in the object map', async () => {
  const b = setup();
  const l = await load(b);
  const plan = l.tree.planSnapshot(u(1), { vdi: u(2), time: T0 + 1000, newId });
  const r = await withUndo((undo) => runPlan({ backend: b, tree: l.tree, objects: l.objects }, plan, { fail: 'VDISnapshot', undo, what: 't', meta: () => META }));
  expect(r.committed).toBe(false);
  expect(r.created.map((o) => o.id)).toEqual([u(2)]);
  expect(l.tree.isVisible(u(2))).toBe(true);
  expect(l.objects.get(u(2))?.parent).toBe(u(1));
  expect(b.read(u(2))).toBe('A');
});

test('a failing later step destroys what earlier steps made (ZFS: internal snapshot, then clone)', async () => {
  const b = setup(ZFS_CAPABILITIES);
  b.failOn = (op) => (op === 'clone' ? new SmError('SMGeneral', 'boom') : undefined);
  const l = await load(b);
  const plan = l.tree.planClone(u(1), { vdi: u(3), time: T0 + 1000, newId });
  expect(plan.map((a) => a.op)).toEqual(['snapshot', 'clone']);
  const e = await withUndo((undo) => runPlan({ backend: b, tree: l.tree, objects: l.objects }, plan, { fail: 'VDIClone', undo, what: 'clone', meta: () => META })).catch((x: unknown) => x);
  expect(e).toBeInstanceOf(SmError);
  expect((e as SmError).kind).toBe('VDIClone');
  expect((e as SmError).message).toMatch(/clone .*: boom/);
  expect([...b.objects.keys()]).toEqual([u(1)]);
  expect(b.calls.filter((c) => c.startsWith('destroy'))).toHaveLength(1);
});

test("the caller's failure after the plan (db_introduce) also undoes it", async () => {
  const b = setup();
  const l = await load(b);
  const plan = l.tree.planSnapshot(u(1), { vdi: u(4), time: T0 + 1000, newId });
  await expect(
    withUndo(async (undo) => {
      await runPlan({ backend: b, tree: l.tree, objects: l.objects }, plan, { fail: 'VDISnapshot', undo, what: 't', meta: () => META });
      throw new Error('db_introduce failed');
    }),
  ).rejects.toThrow('db_introduce failed');
  expect([...b.objects.keys()]).toEqual([u(1)]);
});

test('no space passes through as itself', async () => {
  const b = setup();
  b.failOn = (op) => (op === 'snapshot' ? new SmError('SRNoSpace', 'ENOSPC') : undefined);
  const l = await load(b);
  const plan = l.tree.planSnapshot(u(1), { vdi: u(5), time: T0 + 1000, newId });
  const e = (await withUndo((undo) => runPlan({ backend: b, tree: l.tree, objects: l.objects }, plan, { fail: 'VDISnapshot', undo, what: 't', meta: () => META })).catch((x: unknown) => x)) as SmError;
  expect(e.kind).toBe('SRNoSpace');
  expect(e.code).toBe(44);
});

test('stepError keeps telling kinds, wraps the rest', () => {
  expect(stepError(new SmError('SRUnavailable', 'x'), 'VDIClone', 'w').kind).toBe('SRUnavailable');
  const e = stepError(new SmError('VolNotFound', 'no such file'), 'VDIClone', 'clone X');
  expect(e.kind).toBe('VDIClone');
  expect(e.message).toBe('Failed to clone VDI [opterr=clone X: no such file]');
  expect(stepError(new Error('plain'), 'VDIDelete', 'w').code).toBe(80);
});

test('delete: a failing tombstone changes nothing', async () => {
  const b = setup();
  b.failOn = (op) => (op === 'markTombstone' ? new SmError('SharedFileSystemNoWrite', 'EROFS') : undefined);
  const l = await load(b);
  const forgot: string[] = [];
  const plan = l.tree.planDelete(u(1));
  const e = (await withUndo((undo) =>
    runPlan({ backend: b, tree: l.tree, objects: l.objects }, plan, { fail: 'VDIDelete', undo, what: 'd', forget: async (v) => void forgot.push(v) }),
  ).catch((x: unknown) => x)) as SmError;
  expect(e.kind).toBe('SharedFileSystemNoWrite');
  expect(forgot).toEqual([]);
  expect(l.tree.isVisible(u(1))).toBe(true);
  expect(b.objects.get(u(1))?.deleted).toBe(false);
});

test('delete: after the tombstone, a failing destroy is left for gc and the command succeeds', async () => {
  const b = setup();
  b.failOn = (op) => (op === 'destroy' ? new SmError('EIO', 'io') : undefined);
  const l = await load(b);
  const forgot: string[] = [];
  const plan = l.tree.planDelete(u(1));
  const r = await withUndo((undo) => runPlan({ backend: b, tree: l.tree, objects: l.objects }, plan, { fail: 'VDIDelete', undo, what: 'd', forget: async (v) => void forgot.push(v) }));
  expect(r.committed).toBe(true);
  expect(r.incomplete?.action).toEqual({ op: 'destroy', object: u(1) });
  expect(forgot).toEqual([u(1)]);
  expect(l.tree.isVisible(u(1))).toBe(false);
  // What is left is exactly what gc reclaims.
  b.failOn = () => undefined;
  const l2 = await load(b);
  expect(l2.tree.gcPlan()).toEqual([{ op: 'destroy', object: u(1) }]);
});

test('a failing forget-in-xapi is not fatal', async () => {
  const b = setup();
  const l = await load(b);
  const plan = l.tree.planDelete(u(1));
  const r = await withUndo((undo) =>
    runPlan({ backend: b, tree: l.tree, objects: l.objects }, plan, {
      fail: 'VDIDelete',
      undo,
      what: 'd',
      forget: async () => {
        throw new Error('xapi away');
      },
    }),
  );
  expect(r.incomplete).toBeUndefined();
  expect(b.objects.size).toBe(0);
});

test('revert (reflink): clone + swap; a failing tombstone swaps back and destroys the clone', async () => {
  const b = setup();
  b.seed({ id: u(2), vdi: u(2), kind: 'snapshot', parent: u(1), meta: { ...META, is_a_snapshot: true }, data: 'S', created: T0 + 1000 });
  b.write(u(1), 'B');
  b.failOn = (op) => (op === 'markTombstone' ? new SmError('SMGeneral', 'nope') : undefined);
  const l = await load(b);
  const plan = l.tree.planRevert(u(2), u(1), { time: T0 + 2000, newId });
  expect(plan.map((a) => a.op)).toEqual(['clone', 'swap-vdi', 'mark-tombstone', 'destroy']);
  await expect(withUndo((undo) => runPlan({ backend: b, tree: l.tree, objects: l.objects }, plan, { fail: 'VDIClone', undo, what: 'r' }))).rejects.toThrow(/nope/);
  expect(b.read(u(1))).toBe('B');
  expect([...b.objects.keys()].sort()).toEqual([u(1), u(2)]);
  expect(b.objects.get(u(1))?.vdi).toBe(u(1));

  b.failOn = () => undefined;
  const l2 = await load(b);
  const plan2 = l2.tree.planRevert(u(2), u(1), { time: T0 + 3000, newId });
  await withUndo((undo) => runPlan({ backend: b, tree: l2.tree, objects: l2.objects }, plan2, { fail: 'VDIClone', undo, what: 'r' }));
  expect(b.read(u(1))).toBe('S');
  expect(b.read(u(2))).toBe('S');
  expect(b.objects.size).toBe(2);
  expect(l2.tree.byVdi(u(1))?.id).not.toBe(u(1));
  expect(l2.tree.gcPlan()).toEqual([]);
});

test('an optional rollback that fails is ignored (ZFS tombstone head)', async () => {
  const b = setup(ZFS_CAPABILITIES);
  b.seed({ id: u(2), vdi: u(2), kind: 'snapshot', parent: u(1), meta: { ...META, is_a_snapshot: true }, created: T0 + 1000 });
  b.failOn = (op) => (op === 'rollback' ? new SmError('SMGeneral', 'busy') : undefined);
  const l = await load(b);
  const plan = l.tree.planDelete(u(1));
  expect(plan.map((a) => a.op)).toEqual(['mark-tombstone', 'forget-in-xapi', 'rollback']);
  const r = await withUndo((undo) => runPlan({ backend: b, tree: l.tree, objects: l.objects }, plan, { fail: 'VDIDelete', undo, what: 'd' }));
  expect(r.incomplete).toBeUndefined();
  expect(b.objects.get(u(1))?.deleted).toBe(true);
});

test('the commit drops the undo of earlier steps', async () => {
  const b = setup();
  const l = await load(b);
  const undo = new Undo();
  undo.add('earlier', async () => undefined);
  await runPlan({ backend: b, tree: l.tree, objects: l.objects }, l.tree.planDelete(u(1)), { fail: 'VDIDelete', undo, what: 'd' });
  expect(undo.pending).toEqual([]);
});
