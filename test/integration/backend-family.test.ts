// Backend.family on real storage (a zfs-fuse pool, an XFS reflink loop filesystem): the
// part of the SR the per-VDI commands read instead of a full inventory must give exactly
// the decisions the full inventory gives. An SR is taken through snapshots, clones of
// snapshots and of live disks, snapshots of snapshots, deletes that leave tombstones,
// reverts by rollback and by clone + swap, by the real SM handlers (xapi is the in-memory
// fake of the unit tests, the rows hold what the handlers wrote); then for every visible
// VDI, located through the hints in its row: the object, every plan (delete, snapshot,
// clone, revert to each of its snapshots) and the lineage stamp from family() equal those
// from inventory(). Stale or missing hints must give undefined, never a wrong family.
// Needs root and zfs-fuse / losetup + mkfs.xfs: skipped locally without them, failing under CI=true.
import { afterAll, beforeAll, expect, test } from '@jest/globals';
import { execa } from 'execa';
import { randomUUID } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Backend, StoredObject, VdiHint } from '../../src/backends/backend.js';
import { ReflinkBackend } from '../../src/backends/reflink/backend.js';
import { ZfsBackend } from '../../src/backends/zfs/backend.js';
import { PROP } from '../../src/backends/zfs/records.js';
import { formatSnapshotName } from '../../src/lineage/names.js';
import { snapshotMeta, vdiMeta } from '../conformance/backend-conformance.js';
import { LineageTree, type Plan } from '../../src/lineage/index.js';
import type { SmCommand } from '../../src/smapi/request.js';
import type { XmlRpcStruct, XmlRpcValue } from '../../src/smapi/xmlrpc.js';
import '../../src/sr/commands.js';
import { SrContext } from '../../src/sr/context.js';
import { lookup } from '../../src/sr/registry.js';
import { SM_OBJECT_KEY, SM_VOLUME_KEY, lineageStamp } from '../../src/sr/xapi-sync.js';
import { FakeXapi, smReq, type ReqOptions } from '../unit/sr-fakes.js';
import { createLoopFs, describeLoopFs, type LoopFs } from './harness/loopfs.js';
import { describeZfs } from './harness/zfs-pool.js';

const MiB = 1 << 20;
const T0 = Date.UTC(2026, 10, 25, 1, 0, 0);

let lockDir: string;
beforeAll(() => {
  process.env.FLATSNAP_SMLOG = '/dev/null';
  lockDir = mkdtempSync(join(tmpdir(), 'flatsnap-family-'));
  process.env.FLATSNAP_LOCK_DIR = lockDir;
  process.env.FLATSNAP_DATAPATH = 'direct';
});
afterAll(() => {
  rmSync(lockDir, { recursive: true, force: true });
});

/** The SM handlers on a real backend, xapi in memory. */
class Host {
  xapi = new FakeXapi();
  clock = T0;

  constructor(readonly backend: Backend) {}

  async run(command: SmCommand, o: ReqOptions = {}): Promise<XmlRpcValue> {
    const spec = await lookup(command);
    if (!spec) throw new Error(`${command} is not registered`);
    this.clock += 60_000;
    return spec.run(new SrContext(smReq(command, o), { backend: this.backend, xapi: this.xapi, now: () => this.clock }));
  }

  vdi(uuid: string): { uuid: string; ref: string } {
    const hit = this.xapi.byUuid(uuid);
    if (!hit) throw new Error(`no xapi row for ${uuid}`);
    return { uuid, ref: hit[0] };
  }

  async create(): Promise<string> {
    const r = (await this.run('vdi_create', { args: [String(4 * MiB), 'disk', '', '', 'false', '19700101T00:00:00Z', '', 'false'], extra: { vdi_type: 'user', vdi_sm_config: {} } })) as XmlRpcStruct;
    return r.uuid as string;
  }

  /** xapi's VDI.snapshot / VDI.clone: the SM call, then vdi_update of the new VDI. */
  async copy(kind: 'vdi_snapshot' | 'vdi_clone', of: string): Promise<string> {
    const r = (await this.run(kind, { vdi: this.vdi(of), extra: { driver_params: { epochhint: 'x' } } })) as XmlRpcStruct;
    await this.run('vdi_update', { vdi: this.vdi(r.uuid as string) });
    return r.uuid as string;
  }

  async delete(vdi: string): Promise<void> {
    await this.run('vdi_delete', { vdi: this.vdi(vdi) });
  }

  async revert(snapshot: string, target: string): Promise<void> {
    await this.run('vdi_revert', { vdi: this.vdi(snapshot), args: [this.vdi(target).ref] });
  }

  hint(vdi: string): VdiHint {
    const sm = this.xapi.byUuid(vdi)![1].sm_config;
    return { vdi, ...(sm[SM_OBJECT_KEY] ? { object: sm[SM_OBJECT_KEY] } : {}), ...(sm[SM_VOLUME_KEY] ? { volume: sm[SM_VOLUME_KEY] } : {}) };
  }
}

/** A lineage tree and its objects from a list of stored objects. */
function load(b: Backend, objs: readonly StoredObject[]): { tree: LineageTree; objects: Map<string, StoredObject> } {
  return { tree: new LineageTree(b.capabilities, objs), objects: new Map(objs.map((o) => [o.id, o] as const)) };
}

/**
 * Every plan about `vdi` a per-VDI command can make, with fixed new ids and time; `retires`:
 * also those that destroy or tombstone (delete, revert).
 */
function decisions(l: ReturnType<typeof load>, vdi: string, snapshots: readonly string[], retires = true): Record<string, unknown> {
  const ids = (): (() => string) => {
    let n = 0;
    return () => `bbbbbbbb-0000-4000-8000-${(++n).toString(16).padStart(12, '0')}`;
  };
  const plan = (f: () => Plan): unknown => {
    try {
      return f();
    } catch (e) {
      return `refused: ${e instanceof Error ? e.message : String(e)}`;
    }
  };
  const t = l.tree.byVdi(vdi);
  const o = t === undefined ? undefined : l.objects.get(t.id);
  const n = { vdi: 'cccccccc-0000-4000-8000-000000000001', time: T0 + 999_000_000, newId: ids() };
  const makes = {
    object: o,
    snapshot: plan(() => l.tree.planSnapshot(vdi, { ...n, newId: ids() })),
    clone: plan(() => l.tree.planClone(vdi, { ...n, newId: ids() })),
  };
  if (!retires) return makes;
  return {
    ...makes,
    delete: plan(() => l.tree.planDelete(vdi)),
    reverts: snapshots.map((s) => ({
      s,
      rollback: plan(() => l.tree.planRevert(s, vdi, { time: n.time, newId: ids() })),
      clone: plan(() => l.tree.planRevert(s, vdi, { time: n.time, newId: ids(), rollback: false })),
    })),
  };
}

function familyFlow(backend: () => Backend): void {
  let h: Host;
  const made: Record<string, string> = {};

  test('a lineage with every kind of object', async () => {
    h = new Host(backend());
    const a = (made.a = await h.create());
    const b = (made.b = await h.create());
    made.a1 = await h.copy('vdi_snapshot', a);
    made.a2 = await h.copy('vdi_snapshot', a);
    made.c = await h.copy('vdi_clone', made.a1); // clone of a snapshot
    made.d = await h.copy('vdi_clone', a); // clone of a live disk (ZFS: internal snapshot)
    made.ss = await h.copy('vdi_snapshot', made.a2); // snapshot of a snapshot (ZFS: hidden clone)
    made.b1 = await h.copy('vdi_snapshot', b);
    await h.delete(b); // ZFS: a tombstone while b1 lives
    made.c1 = await h.copy('vdi_snapshot', made.c);
    await h.revert(made.c1, made.c); // the newest: ZFS rolls back
    made.c2 = await h.copy('vdi_snapshot', made.c);
    made.c3 = await h.copy('vdi_snapshot', made.c);
    await h.revert(made.c2, made.c); // not the newest: clone + swap
    made.c4 = await h.copy('vdi_snapshot', made.c); // a snapshot of the swapped-in volume
    await h.delete(made.a1); // ZFS: a tombstone, c is its clone
    made.e = await h.copy('vdi_clone', made.ss);
    made.lone = await h.create(); // a tree of its own
  }, 120_000);

  test('family() gives every visible VDI the plans and lineage stamp inventory() gives', async () => {
    const b = h.backend;
    const full = load(b, await b.inventory());
    const visible = full.tree.visible().map((o) => o.vdi!);
    expect(visible.length).toBe(12);
    let stamped = 0;
    for (const v of visible) {
      // the snapshots xapi would offer to revert to: snapshot VDIs whose row's snapshot_of is v
      const ref = h.vdi(v).ref;
      const snaps = [...h.xapi.vdis.values()].filter((r) => r.snapshot_of === ref).map((r) => r.uuid);
      const hints = [h.hint(v), ...snaps.map((s) => h.hint(s))];
      // vdi_delete, vdi_revert: every plan
      const fam = await b.family!(hints, { ancestors: false, descendants: true });
      expect({ v, fam: fam === undefined ? 'undefined' : 'ok' }).toEqual({ v, fam: 'ok' });
      const part = load(b, fam!);
      expect(part.tree.size).toBeLessThanOrEqual(full.tree.size);
      expect({ v, ...decisions(part, v, snaps) }).toEqual({ v, ...decisions(full, v, snaps) });
      // vdi_snapshot, vdi_clone: the plans that make things, from the narrower family
      const line = await b.family!([h.hint(v)], { ancestors: false, descendants: false });
      expect({ v, line: line === undefined ? 'undefined' : 'ok' }).toEqual({ v, line: 'ok' });
      expect({ v, ...decisions(load(b, line!), v, [], false) }).toEqual({ v, ...decisions(full, v, [], false) });
      // vdi_update (ancestors, nothing below): the stamp too; only a parent that is gone may make it give up
      const withAncestors = await b.family!([h.hint(v)], { ancestors: true, descendants: false });
      const o = full.objects.get(full.tree.byVdi(v)!.id)!;
      if (withAncestors === undefined) {
        expect({ v, dependent: b.capabilities.dependent, parentGone: o.parent !== undefined && !full.tree.has(o.parent) }).toEqual({ v, dependent: false, parentGone: true });
        continue;
      }
      const a = load(b, withAncestors);
      if (b.capabilities.dependent) expect(a.tree.size).toBeLessThan(full.tree.size);
      expect({ v, stamp: lineageStamp(a.tree, a.objects.get(o.id)!), plans: decisions(a, v, [], false) }).toEqual({ v, stamp: lineageStamp(full.tree, o), plans: decisions(full, v, [], false) });
      stamped++;
    }
    expect(stamped).toBeGreaterThanOrEqual(b.capabilities.dependent ? visible.length : 6);
    // the lone disk's family is just that disk
    const lone = await b.family!([h.hint(made.lone!)]);
    expect(lone!.map((o) => o.id)).toEqual([made.lone]);
  }, 120_000);

  test('a stale or missing hint gives undefined (a full inventory), never a wrong family', async () => {
    const b = h.backend;
    if (!b.capabilities.dependent) {
      // reflink finds every VDI by its name: hints are not needed
      expect(await b.family!([{ vdi: made.c1! }], { ancestors: false })).toBeDefined();
      return;
    }
    for (const descendants of [true, false]) {
      expect(await b.family!([{ vdi: made.c1! }], { descendants })).toBeUndefined();
      expect(await b.family!([{ ...h.hint(made.c1!), volume: made.lone! }], { descendants })).toBeUndefined();
      // a volume VDI named by a stale object hint: never that volume's word
      const stale = await b.family!([{ vdi: made.c!, object: made.lone! }], { descendants });
      expect(stale === undefined || load(b, stale).tree.byVdi(made.c!) !== undefined).toBe(true);
    }
    // a VDI that is gone: what inventory says too (nothing backs it)
    const gone = await b.family!([{ vdi: made.b! }]);
    expect(gone === undefined || load(b, gone).tree.byVdi(made.b!) === undefined).toBe(true);
  });

  test('the handlers work from the family, never an inventory; sizes move by what changed', async () => {
    const b = h.backend as Backend & { inventory: Backend['inventory'] };
    const inventory = b.inventory.bind(b);
    let listed = 0;
    b.inventory = () => {
      listed++;
      return inventory();
    };
    try {
      const before = h.xapi.sr.virtual_allocation;
      const s = await h.copy('vdi_snapshot', made.lone!);
      const size = h.xapi.byUuid(s)![1].virtual_size;
      expect(h.xapi.sr.virtual_allocation).toBe(before + size);
      const c = await h.copy('vdi_clone', s);
      await h.run('vdi_resize', { vdi: h.vdi(c), args: [String(8 * MiB)] });
      expect(h.xapi.sr.virtual_allocation).toBe(before + size + 8 * MiB);
      await h.revert(s, made.lone!);
      await h.delete(c);
      await h.delete(s);
      expect(h.xapi.sr.virtual_allocation).toBe(before);
      const n = await h.create();
      expect(h.xapi.sr.virtual_allocation).toBe(before + h.xapi.byUuid(n)![1].virtual_size);
      await h.delete(n);
      expect(h.xapi.sr.virtual_allocation).toBe(before);
      await h.run('sr_update');
      expect(h.xapi.sr.virtual_allocation).toBe(before);
      expect(listed).toBe(0);
    } finally {
      b.inventory = inventory;
    }
  });
}

describeZfs(
  'Backend.family on ZFS',
  (z) => {
    beforeAll(async () => {
      await new ZfsBackend(`${z.pool.name}/family`).createSr('dddddddd-0000-4000-8000-000000000001');
    }, 60_000);
    familyFlow(() => new ZfsBackend(`${z.pool.name}/family`));

    test('a swap interrupted after binding the new volume: found by name, the old one is not trusted', async () => {
      const root = `${z.pool.name}/family`;
      const b = new ZfsBackend(root);
      const v = randomUUID();
      const disk = await b.create(v, vdiMeta('swapped'), 4 * MiB, T0 + 5_000_000);
      const sid = randomUUID();
      const snap = await b.snapshot(sid, disk, formatSnapshotName(T0 + 5_000_001, sid), 'snapshot', snapshotMeta(v, T0 + 5_000_001));
      const fresh = await b.clone(randomUUID(), snap, undefined, T0 + 5_000_002);
      // swapVdi's first steps (mark the old volume, bind the new one), then a crash: both claim v
      await execa('zfs', ['set', `${PROP.swapTo}=${fresh.id}`, `${root}/${v}`]);
      await execa('zfs', ['set', `${PROP.vdi}=${v}`, `${root}/${fresh.id}`]);
      const full = load(b, await new ZfsBackend(root).inventory());
      expect(full.tree.byVdi(v)?.id).toBe(fresh.id); // the later-created claimant
      for (const descendants of [false, true]) {
        const fam = await new ZfsBackend(root).family!([{ vdi: v, object: v }], { descendants });
        expect(fam).toBeDefined();
        expect(load(b, fam!).tree.byVdi(v)?.id).toBe(fresh.id);
      }
    });
  },
  { tag: 'family', sizeMiB: 512 },
);

describeLoopFs('Backend.family on XFS reflink', ['xfs'], () => {
  let fs: LoopFs | undefined;
  let dir = '';
  beforeAll(async () => {
    fs = await createLoopFs('xfs', { sizeMiB: 320 });
    dir = join(fs.mountpoint, 'sr');
    await mkdir(dir);
    await new ReflinkBackend(dir).createSr('dddddddd-0000-4000-8000-000000000002');
  }, 120_000);
  afterAll(async () => {
    await fs?.teardown();
  });
  // No background unshare after the flow's snapshots: it changes files' allocated bytes
  // between the two looks this test compares.
  familyFlow(() => new ReflinkBackend(dir, { unshare: 'off' }));
});
