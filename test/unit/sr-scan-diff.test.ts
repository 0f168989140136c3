// The scan's reconciliation as a pure function: what it writes, and that applying
// its writes and diffing again writes nothing (xapi re-runs a scan that changed the
// SR's VDI set, up to 10 times: a scan must reach a fixed point at once).
import type { StoredObject, VdiMeta } from '../../src/backends/backend.js';
import { LineageTree, REFLINK_CAPABILITIES, ZFS_CAPABILITIES, type Capabilities } from '../../src/lineage/index.js';
import type { VdiRecord } from '../../src/xapi/records.js';
import { NULL_REF, XapiDateTime } from '../../src/xapi/wire.js';
import {
  OC_CREATED,
  OC_OBJECT,
  OC_PARENT,
  OC_VDI,
  SM_OBJECT_KEY,
  diffScan,
  diffSrSizes,
  diffVdi,
  lineageStamp,
  parentVdiOf,
  smConfigStamp,
  virtualAllocation,
  type MetaWrite,
  type XapiWrite,
} from '../../src/sr/xapi-sync.js';
import { SR_REF, vdiRecord } from './sr-fakes.js';

const T0 = Date.UTC(2026, 10, 25, 1, 0, 0);

function uuid(n: number): string {
  return `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
}

function meta(over: Partial<VdiMeta> = {}): VdiMeta {
  return {
    name_label: 'disk',
    name_description: '',
    vdi_type: 'user',
    is_a_snapshot: false,
    snapshot_time: '19700101T00:00:00Z',
    snapshot_of: '',
    read_only: false,
    ...over,
  };
}

function obj(over: Partial<StoredObject> & { id: string }): StoredObject {
  return { kind: 'volume', created: T0, deleted: false, virtual_size: 1 << 20, physical_utilisation: 4096, handle: `/x/${over.id}`, ...over };
}

class World {
  objects = new Map<string, StoredObject>();
  records = new Map<string, VdiRecord>();
  private n = 0;
  constructor(readonly caps: Capabilities = REFLINK_CAPABILITIES) {}

  tree(): LineageTree {
    return new LineageTree(this.caps, this.objects.values());
  }
  put(o: StoredObject): StoredObject {
    this.objects.set(o.id, o);
    return o;
  }
  addRecord(r: VdiRecord): string {
    const ref = `OpaqueRef:r${++this.n}`;
    this.records.set(ref, r);
    return ref;
  }
  diff() {
    return diffScan(this.tree(), this.objects, this.records, SR_REF);
  }

  /** What xapi and storage look like after the writes (xapi's semantics, incl. MAP_DUPLICATE_KEY). */
  apply(plan: { xapi: XapiWrite[]; storage: MetaWrite[] }): void {
    const refByUuid = new Map([...this.records].map(([ref, r]) => [r.uuid, ref]));
    for (const w of plan.xapi) {
      switch (w.op) {
        case 'introduce': {
          if ([...this.records.values()].some((r) => r.location === w.record.location)) throw new Error('LOCATION_NOT_UNIQUE');
          const ref = this.addRecord(
            vdiRecord({
              uuid: w.record.uuid,
              name_label: w.record.name_label ?? '',
              name_description: w.record.name_description ?? '',
              type: w.record.type ?? 'user',
              read_only: w.record.read_only ?? false,
              other_config: { ...(w.record.other_config ?? {}) },
              location: w.record.location,
              sm_config: { ...(w.record.sm_config ?? {}) },
              virtual_size: w.record.virtual_size,
              physical_utilisation: w.record.physical_utilisation,
              is_a_snapshot: w.record.is_a_snapshot ?? false,
              snapshot_time: XapiDateTime.from(w.record.snapshot_time ?? XapiDateTime.EPOCH).wire,
              snapshot_of: w.snapshot_of === '' ? NULL_REF : (refByUuid.get(w.snapshot_of) ?? NULL_REF),
            }),
          );
          refByUuid.set(w.vdi, ref);
          break;
        }
        case 'forget':
          if (!this.records.delete(w.ref)) throw new Error('HANDLE_INVALID');
          break;
        case 'set_virtual_size':
          this.records.get(w.ref)!.virtual_size = w.value;
          break;
        case 'set_physical_utilisation':
          this.records.get(w.ref)!.physical_utilisation = w.value;
          break;
        case 'set_read_only':
          this.records.get(w.ref)!.read_only = w.value;
          break;
        case 'set_key': {
          const m = this.records.get(w.ref)![w.map];
          if (w.replace) delete m[w.key];
          if (w.key in m) throw new Error('MAP_DUPLICATE_KEY');
          m[w.key] = w.value;
          break;
        }
        case 'remove_key':
          delete this.records.get(w.ref)![w.map][w.key];
          break;
      }
    }
    for (const m of plan.storage) this.objects.set(m.id, { ...this.objects.get(m.id)!, meta: m.meta });
  }
}

describe('diffScan', () => {
  test('storage has it, xapi does not: introduce with location = uuid, sizes, our keys, lineage', () => {
    const w = new World();
    const v = w.put(obj({ id: uuid(1), vdi: uuid(1), meta: meta({ name_label: 'root disk' }), virtual_size: 8 << 20 }));
    w.put(obj({ id: uuid(2), vdi: uuid(2), kind: 'snapshot', parent: v.id, created: T0 + 1000, meta: meta({ is_a_snapshot: true, snapshot_of: uuid(1), read_only: true, snapshot_time: '20261125T01:00:01Z' }) }));
    const plan = w.diff();
    expect(plan.storage).toEqual([]);
    expect(plan.xapi.map((x) => x.op)).toEqual(['introduce', 'introduce']);
    const [a, b] = plan.xapi as Array<Extract<XapiWrite, { op: 'introduce' }>>;
    expect(a!.vdi).toBe(uuid(1)); // the snapshot comes after the VDI it is a snapshot of
    expect(a!.record).toMatchObject({ uuid: uuid(1), location: uuid(1), name_label: 'root disk', SR: SR_REF, virtual_size: 8 << 20, managed: true, read_only: false });
    expect(a!.record.sm_config).toEqual({ [SM_OBJECT_KEY]: uuid(1) });
    expect(b!.record).toMatchObject({ is_a_snapshot: true, read_only: true, snapshot_time: '20261125T01:00:01Z' });
    expect(b!.snapshot_of).toBe(uuid(1));
    expect(b!.record.other_config).toEqual({ [OC_VDI]: uuid(2), [OC_OBJECT]: uuid(2), [OC_PARENT]: uuid(1), [OC_CREATED]: new Date(T0 + 1000).toISOString() });
    w.apply(plan);
    const snap = [...w.records.values()].find((r) => r.uuid === uuid(2))!;
    const [vRef] = [...w.records].find(([, r]) => r.uuid === uuid(1))!;
    expect(snap.snapshot_of).toBe(vRef);
    expect(w.diff()).toEqual({ xapi: [], storage: [] });
  });

  test('xapi has it, storage does not: forget ours, never a foreign row', () => {
    const w = new World();
    const ours = w.addRecord(vdiRecord({ uuid: uuid(7) }));
    const marked = w.addRecord(vdiRecord({ uuid: uuid(8), location: 'odd-location', sm_config: { [SM_OBJECT_KEY]: uuid(8) } }));
    w.addRecord(vdiRecord({ uuid: uuid(9), location: 'somebody-elses.iso' }));
    const plan = w.diff();
    expect(plan.xapi).toEqual([
      { op: 'forget', ref: ours, vdi: uuid(7) },
      { op: 'forget', ref: marked, vdi: uuid(8) },
    ]);
    w.apply(plan);
    expect([...w.records.values()].map((r) => r.location)).toEqual(['somebody-elses.iso']);
    expect(w.diff()).toEqual({ xapi: [], storage: [] });
  });

  test('tombstones and hidden objects are not VDIs', () => {
    const w = new World(ZFS_CAPABILITIES);
    const v = w.put(obj({ id: uuid(1), vdi: uuid(1), deleted: true, meta: meta() }));
    w.put(obj({ id: uuid(2), vdi: uuid(2), kind: 'snapshot', parent: v.id, created: T0 + 5, meta: meta({ is_a_snapshot: true }) }));
    w.put(obj({ id: uuid(3), kind: 'internal-snapshot', parent: v.id, created: T0 + 6 }));
    const stale = w.addRecord(vdiRecord({ uuid: uuid(1) }));
    const plan = w.diff();
    expect(plan.xapi.filter((x) => x.op === 'introduce').map((x) => (x as { vdi: string }).vdi)).toEqual([uuid(2)]);
    expect(plan.xapi).toContainEqual({ op: 'forget', ref: stale, vdi: uuid(1) });
  });

  test('changed sizes, read_only and keys: only what differs, users keys kept', () => {
    const w = new World();
    const o = w.put(obj({ id: uuid(1), vdi: uuid(1), meta: meta({ name_label: 'a' }), virtual_size: 2 << 20, physical_utilisation: 8192 }));
    const tree = w.tree();
    const ref = w.addRecord(
      vdiRecord({
        uuid: uuid(1),
        name_label: 'a',
        virtual_size: 1 << 20,
        physical_utilisation: 8192,
        read_only: true,
        sm_config: { [SM_OBJECT_KEY]: 'stale', host_x: 'RW' },
        other_config: { ...lineageStamp(tree, o), [OC_OBJECT]: 'copied-from-source', folder: '/mine', 'xo:backup': 'yes' },
      }),
    );
    const plan = w.diff();
    expect(plan.storage).toEqual([]);
    expect(plan.xapi).toEqual([
      { op: 'set_virtual_size', ref, value: 2 << 20 },
      { op: 'set_read_only', ref, value: false },
      { op: 'set_key', ref, map: 'sm_config', key: SM_OBJECT_KEY, value: uuid(1), replace: true },
      { op: 'set_key', ref, map: 'other_config', key: OC_OBJECT, value: uuid(1), replace: true },
    ]);
    w.apply(plan);
    const r = w.records.get(ref)!;
    expect(r.other_config).toMatchObject({ folder: '/mine', 'xo:backup': 'yes' });
    expect(r.sm_config.host_x).toBe('RW');
    expect(w.diff()).toEqual({ xapi: [], storage: [] });
  });

  test("a source's lineage keys copied onto a snapshot by xapi are restamped", () => {
    const w = new World();
    const v = w.put(obj({ id: uuid(1), vdi: uuid(1), meta: meta() }));
    const s = w.put(obj({ id: uuid(2), vdi: uuid(2), kind: 'snapshot', parent: v.id, created: T0 + 9, meta: meta({ is_a_snapshot: true, read_only: true }) }));
    const tree = w.tree();
    w.addRecord(vdiRecord({ uuid: uuid(1), virtual_size: v.virtual_size, physical_utilisation: v.physical_utilisation, name_label: 'disk', sm_config: { [SM_OBJECT_KEY]: uuid(1) }, other_config: lineageStamp(tree, v) }));
    const sref = w.addRecord(
      vdiRecord({ uuid: uuid(2), virtual_size: s.virtual_size, physical_utilisation: s.physical_utilisation, name_label: 'disk', read_only: true, is_a_snapshot: true, sm_config: smConfigStamp(s), other_config: { ...lineageStamp(tree, v), mine: '1' } }),
    );
    const plan = w.diff();
    expect(plan.xapi.every((x) => 'ref' in x && x.ref === sref)).toBe(true);
    expect(plan.xapi.map((x) => (x as { key?: string }).key)).toEqual([OC_VDI, OC_OBJECT, OC_PARENT, OC_CREATED]);
    w.apply(plan);
    expect(w.records.get(sref)!.other_config).toEqual({ ...lineageStamp(tree, s), mine: '1' });
    expect(w.diff()).toEqual({ xapi: [], storage: [] });
  });

  test("xapi's names and snapshot fields go to storage", () => {
    const w = new World();
    const v = w.put(obj({ id: uuid(1), vdi: uuid(1), meta: meta({ name_label: 'old' }) }));
    const s = w.put(obj({ id: uuid(2), vdi: uuid(2), kind: 'snapshot', parent: v.id, created: T0 + 9, meta: meta({ is_a_snapshot: true, read_only: true, snapshot_of: uuid(1) }) }));
    const c = w.put(obj({ id: uuid(3), vdi: uuid(3), parent: s.id, created: T0 + 10, meta: meta() }));
    const tree = w.tree();
    const base = (o: StoredObject) => ({ virtual_size: o.virtual_size, physical_utilisation: o.physical_utilisation, sm_config: smConfigStamp(o), other_config: lineageStamp(tree, o) });
    w.addRecord(vdiRecord({ uuid: uuid(1), ...base(v), name_label: 'renamed', name_description: 'desc', type: 'system' }));
    const cref = w.addRecord(vdiRecord({ uuid: uuid(3), ...base(c), name_label: 'disk', snapshot_time: '20261125T02:00:00Z' }));
    // classic VM.revert: xapi re-points the snapshot's snapshot_of to the new clone
    w.addRecord(vdiRecord({ uuid: uuid(2), ...base(s), name_label: 'disk', read_only: true, is_a_snapshot: true, snapshot_of: cref, snapshot_time: '20261125T01:00:00Z' }));
    const plan = w.diff();
    expect(plan.xapi).toEqual([]);
    const byId = new Map(plan.storage.map((m) => [m.id, m.meta]));
    expect(byId.get(uuid(1))).toMatchObject({ name_label: 'renamed', name_description: 'desc', vdi_type: 'system' });
    expect(byId.get(uuid(2))).toMatchObject({ snapshot_of: uuid(3), snapshot_time: '20261125T01:00:00Z', is_a_snapshot: true, read_only: true });
    expect(byId.get(uuid(3))).toMatchObject({ snapshot_time: '20261125T02:00:00Z' });
    w.apply(plan);
    expect(w.diff()).toEqual({ xapi: [], storage: [] });
  });

  test('a snapshot_of xapi cannot resolve (dangling after a delete) keeps what storage has', () => {
    const w = new World();
    const s = w.put(obj({ id: uuid(2), vdi: uuid(2), kind: 'snapshot', parent: uuid(1), created: T0, meta: meta({ is_a_snapshot: true, read_only: true, snapshot_of: uuid(1) }) }));
    const tree = w.tree();
    w.addRecord(vdiRecord({ uuid: uuid(2), name_label: 'disk', read_only: true, is_a_snapshot: true, snapshot_of: 'OpaqueRef:gone', virtual_size: s.virtual_size, physical_utilisation: s.physical_utilisation, sm_config: smConfigStamp(s), other_config: lineageStamp(tree, s) }));
    expect(w.diff()).toEqual({ xapi: [], storage: [] });
  });

  test('an object without metadata is introduced with defaults, which are stored too', () => {
    const w = new World();
    w.put(obj({ id: uuid(1), vdi: uuid(1) }));
    const plan = w.diff();
    expect(plan.storage).toHaveLength(1);
    w.apply(plan);
    expect(w.diff()).toEqual({ xapi: [], storage: [] });
  });

  // Random SRs in random states of disagreement: one round of writes always reaches the fixed point.
  test.each([
    ['reflink', REFLINK_CAPABILITIES],
    ['zfs', ZFS_CAPABILITIES],
  ])('property (%s): applying the writes and diffing again gives no writes', (_name, caps) => {
    let seed = 12345;
    const rnd = (n: number): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    for (let round = 0; round < 300; round++) {
      const w = new World(caps);
      let next = 1;
      const vols: StoredObject[] = [];
      for (let i = rnd(6); i >= 0; i--) {
        const id = uuid(next++);
        vols.push(w.put(obj({ id, vdi: id, deleted: rnd(5) === 0, created: T0 + next, meta: rnd(6) === 0 ? undefined : meta({ name_label: `v${id}` }), virtual_size: (1 + rnd(4)) << 20 })));
      }
      for (let i = rnd(6); i > 0; i--) {
        const of = vols[rnd(vols.length)]!;
        const id = uuid(next++);
        w.put(obj({ id, vdi: id, kind: 'snapshot', parent: of.id, created: T0 + next, meta: meta({ is_a_snapshot: true, read_only: true, snapshot_of: rnd(2) ? of.vdi! : '' }) }));
      }
      const tree = w.tree();
      for (const o of w.objects.values()) {
        if (!tree.isVisible(o.id) || rnd(3) === 0) continue; // missing from xapi
        const good = rnd(2) === 0;
        w.addRecord(
          vdiRecord({
            uuid: o.vdi!,
            name_label: rnd(2) ? (o.meta?.name_label ?? '') : 'renamed',
            virtual_size: good ? o.virtual_size : o.virtual_size + 512,
            physical_utilisation: good ? o.physical_utilisation : 0,
            read_only: rnd(4) === 0,
            is_a_snapshot: o.kind === 'snapshot',
            sm_config: good ? { [SM_OBJECT_KEY]: o.id } : rnd(2) ? { other: 'x' } : {},
            other_config: { ...(good ? lineageStamp(tree, o) : rnd(2) ? { [OC_VDI]: 'copied', [OC_PARENT]: 'x' } : {}), user: 'keep' },
          }),
        );
      }
      for (let i = rnd(3); i > 0; i--) w.addRecord(vdiRecord({ uuid: uuid(1000 + next++) })); // vanished from storage
      if (rnd(2)) w.addRecord(vdiRecord({ uuid: uuid(5000 + next++), location: 'foreign.iso' }));

      w.apply(w.diff());
      const again = w.diff();
      expect(again).toEqual({ xapi: [], storage: [] });
      // xapi now holds exactly the visible VDIs (plus the foreign row), users' keys intact.
      const want = w.tree().visible().map((o) => o.vdi!).sort();
      const have = [...w.records.values()].filter((r) => r.location !== 'foreign.iso').map((r) => r.location).sort();
      expect(have).toEqual(want);
      for (const r of w.records.values()) if (r.location !== 'foreign.iso' && r.other_config.user !== undefined) expect(r.other_config.user).toBe('keep');
    }
  });
});

describe('lineage keys', () => {
  test('the parent VDI is the nearest ancestor that backs or backed a VDI', () => {
    const w = new World(ZFS_CAPABILITIES);
    const a = w.put(obj({ id: uuid(1), vdi: uuid(1), deleted: true }));
    const i = w.put(obj({ id: uuid(2), kind: 'internal-snapshot', parent: a.id, created: T0 + 1 }));
    const b = w.put(obj({ id: uuid(3), vdi: uuid(3), parent: i.id, created: T0 + 2 }));
    const orphan = w.put(obj({ id: uuid(4), vdi: uuid(4), parent: uuid(99), created: T0 + 3 }));
    const tree = w.tree();
    expect(parentVdiOf(tree, b)).toBe(uuid(1));
    expect(parentVdiOf(tree, a)).toBe('');
    expect(parentVdiOf(tree, orphan)).toBe('');
    expect(lineageStamp(tree, a)[OC_PARENT]).toBeUndefined();
  });
});

describe('diffVdi', () => {
  test('in step: nothing to do', () => {
    const w = new World();
    const o = w.put(obj({ id: uuid(1), vdi: uuid(1), meta: meta() }));
    const tree = w.tree();
    const rec = vdiRecord({ uuid: uuid(1), name_label: 'disk', virtual_size: o.virtual_size, physical_utilisation: o.physical_utilisation, sm_config: { [SM_OBJECT_KEY]: o.id }, other_config: lineageStamp(tree, o) });
    expect(diffVdi(tree, o, 'OpaqueRef:x', rec, () => undefined)).toEqual({ xapi: [] });
  });
});

describe('SR sizes', () => {
  test('only what changed; virtual allocation sums the visible VDIs', () => {
    const w = new World();
    w.put(obj({ id: uuid(1), vdi: uuid(1), virtual_size: 100 }));
    w.put(obj({ id: uuid(2), vdi: uuid(2), virtual_size: 50, deleted: true }));
    w.put(obj({ id: uuid(3), virtual_size: 70 }));
    expect(virtualAllocation(w.tree(), w.objects)).toBe(100);
    const want = { physical_size: 10, physical_utilisation: 5, virtual_allocation: 100 };
    expect(diffSrSizes(undefined, want)).toHaveLength(3);
    expect(diffSrSizes({ ...want, physical_utilisation: 4 }, want)).toEqual([{ op: 'set_physical_utilisation', value: 5 }]);
    expect(diffSrSizes(want, want)).toEqual([]);
  });
});
