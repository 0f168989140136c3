// The SM command handlers against an in-memory backend and an in-memory xapi:
// what each one writes to storage and to xapi, what it answers, and that a
// refused or failed call changes nothing.
import { SmError } from '../../src/errors.js';
import { ZFS_CAPABILITIES, type Capabilities } from '../../src/lineage/index.js';
import type { SmCommand } from '../../src/smapi/request.js';
import type { XmlRpcStruct, XmlRpcValue } from '../../src/smapi/xmlrpc.js';
import '../../src/sr/commands.js';
import { SrContext } from '../../src/sr/context.js';
import { driverInfo } from '../../src/sr/driver-info.js';
import { lookup } from '../../src/sr/registry.js';
import { OC_OBJECT, OC_PARENT, OC_VDI, SM_OBJECT_KEY } from '../../src/sr/xapi-sync.js';
import { XapiError } from '../../src/xapi/errors.js';
import { NULL_REF } from '../../src/xapi/wire.js';
import { FakeBackend, FakeXapi, SR_REF, smReq, useHandlerEnv, vdiRecord, type ReqOptions } from './sr-fakes.js';

useHandlerEnv('sr-handlers');

const T0 = Date.UTC(2026, 10, 25, 1, 0, 0);

class Host {
  backend: FakeBackend;
  xapi = new FakeXapi();
  clock = T0;
  private n = 0;

  constructor(caps?: Capabilities) {
    this.backend = new FakeBackend(caps);
  }

  newUuid = (): string => `aaaaaaaa-0000-4000-8000-${(++this.n).toString(16).padStart(12, '0')}`;

  async run(command: SmCommand, o: ReqOptions = {}): Promise<XmlRpcValue> {
    const spec = await lookup(command);
    if (!spec) throw new Error(`${command} is not registered`);
    this.clock += 1000;
    const ctx = new SrContext(smReq(command, o), { backend: this.backend, xapi: this.xapi, now: () => this.clock, newUuid: this.newUuid });
    return spec.run(ctx);
  }

  ref(uuid: string): string {
    const hit = this.xapi.byUuid(uuid);
    if (!hit) throw new Error(`no xapi row for ${uuid}`);
    return hit[0];
  }

  vdi(uuid: string): { uuid: string; ref: string } {
    return { uuid, ref: this.ref(uuid) };
  }

  row(uuid: string) {
    return this.xapi.vdis.get(this.ref(uuid))!;
  }

  async create(name = 'disk', size = 1 << 20): Promise<string> {
    const r = (await this.run('vdi_create', { args: [String(size), name, 'desc', '', 'false', '19700101T00:00:00Z', '', 'false'], extra: { vdi_type: 'user', vdi_sm_config: {} } })) as XmlRpcStruct;
    return r.uuid as string;
  }

  async snapshot(uuid: string): Promise<string> {
    return ((await this.run('vdi_snapshot', { vdi: this.vdi(uuid), extra: { driver_params: { epochhint: 'x' } } })) as XmlRpcStruct).uuid as string;
  }

  async clone(uuid: string): Promise<string> {
    return ((await this.run('vdi_clone', { vdi: this.vdi(uuid) })) as XmlRpcStruct).uuid as string;
  }

  async delete(uuid: string): Promise<void> {
    const hit = this.xapi.byUuid(uuid);
    await this.run('vdi_delete', { vdi: { uuid, ref: hit?.[0] ?? 'OpaqueRef:gone' } });
    // xapi removes the row itself after a successful vdi_delete if the driver has not.
    if (hit && this.xapi.vdis.has(hit[0])) this.xapi.vdis.delete(hit[0]);
  }
}

async function fault(p: Promise<unknown>): Promise<SmError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof SmError) return e;
    throw e;
  }
  throw new Error('expected an SmError');
}

describe('sr_get_driver_info', () => {
  test('advertises exactly what is registered, never VDI_ATTACH_OFFLINE', () => {
    expect(driverInfo().capabilities).toEqual([
      'SR_PROBE',
      'SR_UPDATE',
      'THIN_PROVISIONING',
      'VDI_ACTIVATE',
      'VDI_ATTACH',
      'VDI_CLONE',
      'VDI_CREATE',
      'VDI_DEACTIVATE',
      'VDI_DELETE',
      'VDI_DETACH',
      'VDI_INTRODUCE',
      'VDI_RESIZE',
      'VDI_REVERT',
      'VDI_SNAPSHOT',
      'VDI_UPDATE',
    ]);
    expect(driverInfo().configuration.map((c) => c.key)).toEqual(expect.arrayContaining(['dataset', 'path', 'allow-copy']));
  });
});

describe('vdi_create', () => {
  test('a thin volume, introduced before answering, location == uuid', async () => {
    const h = new Host();
    const r = (await h.run('vdi_create', {
      args: ['1000000', 'data disk', 'the description', '', 'false', '19700101T00:00:00Z', '', 'false'],
      extra: { vdi_type: 'system', vdi_sm_config: { base_mirror: 'm1', type: 'raw' } },
    })) as XmlRpcStruct;
    expect(r.uuid).toBe(r.location);
    const row = h.row(r.uuid as string);
    expect(row).toMatchObject({ name_label: 'data disk', name_description: 'the description', type: 'system', read_only: false, is_a_snapshot: false, location: r.uuid, SR: SR_REF, managed: true });
    expect(row.virtual_size).toBeGreaterThanOrEqual(1000000);
    expect(row.physical_utilisation).toBe(0);
    expect(row.sm_config).toEqual({ base_mirror: 'm1', [SM_OBJECT_KEY]: r.uuid });
    expect(row.other_config[OC_VDI]).toBe(r.uuid);
    const stored = h.backend.objects.get(r.uuid as string)!;
    expect(stored.meta).toMatchObject({ name_label: 'data disk', vdi_type: 'system', read_only: false });
    // SR sizes reported after the change
    expect(h.xapi.sr.virtual_allocation).toBe(row.virtual_size);
    expect(h.xapi.sr.physical_size).toBe(h.backend.stat.physical_size);
  });

  test("the backup case's deterministic uuid is used; an existing one is refused", async () => {
    const h = new Host();
    const uuid = 'bbbbbbbb-0000-4000-8000-000000000001';
    const args = ['512', 'Pool Metadata Backup', '', '', 'false', '19700101T00:00:00Z', '', 'false'];
    expect(((await h.run('vdi_create', { args, extra: { vdi_uuid: uuid } })) as XmlRpcStruct).uuid).toBe(uuid);
    expect((await fault(h.run('vdi_create', { args, extra: { vdi_uuid: uuid } }))).kind).toBe('VDIExists');
  });

  test('a failed db_introduce destroys the new volume', async () => {
    const h = new Host();
    h.xapi.failOn = (m) => (m === 'VDI.db_introduce' ? new XapiError(m, 'SESSION_INVALID', []) : undefined);
    await expect(h.create()).rejects.toThrow(/SESSION_INVALID/);
    expect(h.backend.objects.size).toBe(0);
    expect(h.xapi.vdis.size).toBe(0);
  });

  test('not on a slave: refused before storage is touched', async () => {
    const h = new Host();
    const e = await fault(h.run('vdi_create', { master: false, args: ['512', 'x', '', '', 'false', '19700101T00:00:00Z', '', 'false'] }));
    expect(e.message).toMatch(/SR master only/);
    expect(h.backend.calls).toEqual([]);
    expect(h.xapi.calls).toEqual([]);
  });

  test('no space on storage: SRNoSpace (44), nothing introduced', async () => {
    const h = new Host();
    h.backend.failOn = (op) => (op === 'create' ? new SmError('SRNoSpace', 'ENOSPC') : undefined);
    expect((await fault(h.create())).code).toBe(44);
    expect(h.xapi.vdis.size).toBe(0);
  });
});

describe('vdi_snapshot / vdi_clone', () => {
  test('snapshot: a new read-only VDI, snapshot_of the source; the source is untouched', async () => {
    const h = new Host();
    const v = await h.create('root');
    h.backend.write(v, 'v1');
    const s = await h.snapshot(v);
    expect(s).not.toBe(v);
    const row = h.row(s);
    expect(row).toMatchObject({ location: s, read_only: true, is_a_snapshot: true, snapshot_of: h.ref(v), name_label: 'root' });
    expect(row.snapshot_time).not.toBe('19700101T00:00:00Z');
    expect(row.other_config[OC_PARENT]).toBe(v);
    expect(h.backend.read(s)).toBe('v1');
    h.backend.write(v, 'v2');
    expect(h.backend.read(s)).toBe('v1');
    expect(h.row(v).read_only).toBe(false);
    expect(h.xapi.sr.other_config.dirty).toBe(''); // a rescan restamps the lineage keys xapi overwrites
  });

  test('clone: a writable, plain VDI', async () => {
    const h = new Host();
    const v = await h.create();
    h.backend.write(v, 'data');
    const c = await h.clone(v);
    expect(h.row(c)).toMatchObject({ read_only: false, is_a_snapshot: false, snapshot_of: NULL_REF });
    expect(h.backend.read(c)).toBe('data');
  });

  test('a failed db_introduce after the snapshot destroys it (ZFS: and its helper objects)', async () => {
    const h = new Host(ZFS_CAPABILITIES);
    const v = await h.create();
    const s = await h.snapshot(v);
    const before = [...h.backend.objects.keys()].sort();
    h.xapi.failOn = (m) => (m === 'VDI.db_introduce' ? new XapiError(m, 'INTERNAL_ERROR', ['x']) : undefined);
    await expect(h.snapshot(s)).rejects.toThrow(/INTERNAL_ERROR/); // snapshot of a snapshot: helper clone + snapshot
    await expect(h.clone(v)).rejects.toThrow(/INTERNAL_ERROR/); // internal snapshot + clone
    expect([...h.backend.objects.keys()].sort()).toEqual(before);
  });

  test('of a VDI storage does not have: VDIMissing (144)', async () => {
    const h = new Host();
    const ref = h.xapi.add(vdiRecord({ uuid: 'cccccccc-0000-4000-8000-000000000001' }));
    const e = await fault(h.run('vdi_snapshot', { vdi: { uuid: 'cccccccc-0000-4000-8000-000000000001', ref } }));
    expect(e.code).toBe(144);
  });
});

describe('vdi_delete', () => {
  test('forgets the row; idempotent', async () => {
    const h = new Host();
    const v = await h.create();
    const ref = h.ref(v);
    await h.run('vdi_delete', { vdi: { uuid: v, ref } });
    expect(h.xapi.vdis.has(ref)).toBe(false);
    expect(h.backend.objects.size).toBe(0);
    expect(h.xapi.calls).toContain('VDI.db_forget');
    // again: already gone is a success
    await h.run('vdi_delete', { vdi: { uuid: v, ref } });
  });

  test.each([
    ['reflink', undefined],
    ['zfs', ZFS_CAPABILITIES],
  ])('%s: deleting a VDI keeps its snapshots readable; the last delete empties the SR', async (_n, caps) => {
    const h = new Host(caps);
    const v = await h.create();
    h.backend.write(v, 'A');
    const s1 = await h.snapshot(v);
    h.backend.write(v, 'B');
    const s2 = await h.snapshot(v);
    await h.delete(v);
    expect(h.backend.read(s1)).toBe('A');
    expect(h.backend.read(s2)).toBe('B');
    expect(h.xapi.byUuid(v)).toBeUndefined();
    await h.delete(s1);
    await h.delete(s2);
    expect(h.backend.objects.size).toBe(0);
    expect(h.xapi.vdis.size).toBe(0);
  });

  test.each([
    ['reflink', undefined],
    ['zfs', ZFS_CAPABILITIES],
  ])('%s: classic VM.revert (delete the disk, then clone its snapshot) keeps the data and every snapshot', async (_n, caps) => {
    const h = new Host(caps);
    const v = await h.create();
    h.backend.write(v, 'A');
    const s1 = await h.snapshot(v);
    h.backend.write(v, 'B');
    const s2 = await h.snapshot(v);
    h.backend.write(v, 'C');
    await h.delete(v);
    const n = await h.clone(s1);
    expect(h.backend.read(n)).toBe('A');
    expect(h.backend.read(s2)).toBe('B');
    h.backend.write(n, 'D');
    expect(h.backend.read(s1)).toBe('A');
    // the scan agrees with everything
    await h.run('sr_scan');
    h.xapi.calls.length = 0;
    await h.run('sr_scan');
    expect(h.xapi.writes).toEqual([]);
  });
});

describe('vdi_revert', () => {
  test.each([
    ['reflink', undefined],
    ['zfs', ZFS_CAPABILITIES],
  ])('%s: the target keeps its uuid and ref, takes the snapshot, keeps newer snapshots', async (_n, caps) => {
    const h = new Host(caps);
    const v = await h.create();
    h.backend.write(v, 'A');
    const s1 = await h.snapshot(v);
    h.backend.write(v, 'B');
    const s2 = await h.snapshot(v);
    h.backend.write(v, 'C');
    const vref = h.ref(v);
    await h.run('vdi_revert', { vdi: h.vdi(s1), args: [vref] });
    expect(h.backend.read(v)).toBe('A');
    expect(h.backend.read(s1)).toBe('A');
    expect(h.backend.read(s2)).toBe('B');
    expect(h.ref(v)).toBe(vref);
    const obj = [...h.backend.objects.values()].find((o) => o.vdi === v && !o.deleted)!;
    expect(h.row(v).sm_config[SM_OBJECT_KEY]).toBe(obj.id);
    expect(h.row(v).other_config[OC_OBJECT]).toBe(obj.id);
    // revert to the newest as well (ZFS: the plain-rollback fast path)
    await h.run('vdi_revert', { vdi: h.vdi(s2), args: [vref] });
    expect(h.backend.read(v)).toBe('B');
    await h.run('sr_scan');
    h.xapi.calls.length = 0;
    await h.run('sr_scan');
    expect(h.xapi.writes).toEqual([]);
  });

  test('zfs: the newest own snapshot is a plain rollback; if refused, the clone path is taken', async () => {
    const h = new Host(ZFS_CAPABILITIES);
    const v = await h.create();
    h.backend.write(v, 'A');
    const s = await h.snapshot(v);
    h.backend.write(v, 'B');
    await h.run('vdi_revert', { vdi: h.vdi(s), args: [h.ref(v)] });
    expect(h.backend.read(v)).toBe('A');
    expect(h.backend.calls.filter((c) => c.startsWith('rollback'))).toEqual([`rollback ${v}`]);
    expect(h.backend.calls.some((c) => c.startsWith('clone'))).toBe(false);

    h.backend.write(v, 'C');
    h.backend.failOn = (op) => (op === 'rollback' ? new SmError('SMGeneral', 'more recent snapshots exist') : undefined);
    await h.run('vdi_revert', { vdi: h.vdi(s), args: [h.ref(v)] });
    expect(h.backend.read(v)).toBe('A');
    expect(h.backend.read(s)).toBe('A');
    expect(h.backend.calls.some((c) => c.startsWith('swapVdi'))).toBe(true);
  });

  test('a target in another SR is refused', async () => {
    const h = new Host();
    const v = await h.create();
    const s = await h.snapshot(v);
    const other = h.xapi.add(vdiRecord({ uuid: 'dddddddd-0000-4000-8000-000000000001', SR: 'OpaqueRef:other' }));
    expect((await fault(h.run('vdi_revert', { vdi: h.vdi(s), args: [other] }))).kind).toBe('InvalidArg');
  });
});

describe('vdi_resize', () => {
  test('grows, records the size in xapi, answers {uuid, location}; same size is a no-op', async () => {
    const h = new Host();
    const v = await h.create('d', 1 << 20);
    const r = (await h.run('vdi_resize', { vdi: h.vdi(v), args: [String(4 << 20)] })) as XmlRpcStruct;
    expect(r).toEqual({ uuid: v, location: v });
    expect(h.row(v).virtual_size).toBe(4 << 20);
    h.backend.calls.length = 0;
    await h.run('vdi_resize', { vdi: h.vdi(v), args: [String(4 << 20)] });
    expect(h.backend.calls.filter((c) => c.startsWith('resize'))).toEqual([]);
  });

  test('shrinking is refused with VDISize (79), nothing changes', async () => {
    const h = new Host();
    const v = await h.create('d', 4 << 20);
    h.xapi.calls.length = 0;
    const e = await fault(h.run('vdi_resize', { vdi: h.vdi(v), args: [String(1 << 20)] }));
    expect(e.code).toBe(79);
    expect(e.message).toMatch(/shrinking .* is not supported/);
    expect(h.xapi.writes).toEqual([]);
    expect(h.row(v).virtual_size).toBe(4 << 20);
  });
});

describe('vdi_update', () => {
  test("restamps our other_config keys one by one (users' keys survive) and stores xapi's names", async () => {
    const h = new Host();
    const v = await h.create('orig');
    const s = await h.snapshot(v);
    // what xapi does after the call: the source's other_config replaces the snapshot's
    const row = h.row(s);
    row.other_config = { ...h.row(v).other_config, folder: '/vms', 'XenCenter.CustomFields.x': 'y' };
    row.name_label = 'renamed';
    await h.run('vdi_update', { vdi: h.vdi(s) });
    expect(h.row(s).other_config).toMatchObject({ [OC_VDI]: s, [OC_OBJECT]: s, [OC_PARENT]: v, folder: '/vms', 'XenCenter.CustomFields.x': 'y' });
    expect(h.backend.objects.get(s)!.meta!.name_label).toBe('renamed');
    expect(h.xapi.calls).not.toContain('VDI.set_other_config');
    h.xapi.calls.length = 0;
    await h.run('vdi_update', { vdi: h.vdi(s) });
    expect(h.xapi.writes).toEqual([]);
  });
});

describe('vdi_introduce', () => {
  test('re-introduces a forgotten VDI with its stored metadata', async () => {
    const h = new Host();
    const v = await h.create('keep me');
    h.xapi.vdis.delete(h.ref(v));
    const r = await h.run('vdi_introduce', { extra: { new_uuid: v, vdi_location: v, vdi_sm_config: {} } });
    expect(r).toEqual({ uuid: v, location: v });
    expect(h.row(v).name_label).toBe('keep me');
  });

  test('refuses a location that is not the uuid, an unknown volume, a known one', async () => {
    const h = new Host();
    const v = await h.create();
    const other = 'eeeeeeee-0000-4000-8000-000000000001';
    expect((await fault(h.run('vdi_introduce', { extra: { new_uuid: other, vdi_location: v } }))).kind).toBe('InvalidArg');
    expect((await fault(h.run('vdi_introduce', { extra: { new_uuid: other, vdi_location: other } }))).kind).toBe('VolNotFound');
    expect((await fault(h.run('vdi_introduce', { extra: { new_uuid: v, vdi_location: v } }))).kind).toBe('VDIExists');
  });
});

describe('sr_scan', () => {
  test('introduces what storage has, forgets what it lost, then reaches a fixed point', async () => {
    const h = new Host();
    const v = await h.create('a');
    const s = await h.snapshot(v);
    // a fresh pool: xapi knows nothing, plus a stale row of ours and a foreign one
    h.xapi.vdis.clear();
    h.xapi.add(vdiRecord({ uuid: 'ffffffff-0000-4000-8000-000000000001' }));
    const foreign = h.xapi.add(vdiRecord({ uuid: 'ffffffff-0000-4000-8000-000000000002', location: 'x.iso' }));
    await h.run('sr_scan');
    expect([...h.xapi.vdis.values()].map((r) => r.uuid).sort()).toEqual([v, s, 'ffffffff-0000-4000-8000-000000000002'].sort());
    expect(h.xapi.vdis.has(foreign)).toBe(true);
    expect(h.row(s)).toMatchObject({ is_a_snapshot: true, snapshot_of: h.ref(v), name_label: 'a', read_only: true });
    h.xapi.calls.length = 0;
    h.backend.calls.length = 0;
    await h.run('sr_scan');
    expect(h.xapi.writes).toEqual([]);
    expect(h.xapi.calls.filter((c) => c === 'VDI.get_all_records_where')).toHaveLength(1);
    expect(h.backend.calls.filter((c) => c === 'inventory')).toHaveLength(1);
  });

  test('master only', async () => {
    const h = new Host();
    expect((await fault(h.run('sr_scan', { master: false }))).message).toMatch(/SR master only/);
  });

  test('an SR that is not there (unmounted) fails instead of forgetting every VDI', async () => {
    const h = new Host();
    await h.create();
    h.backend.calls.length = 0;
    await h.run('sr_scan');
    expect(h.backend.calls).not.toContain(`attachSr ${'11111111-2222-4333-8444-555555555555'}`); // nothing to forget: no extra check
    // the filesystem went away under the mountpoint: storage looks empty
    h.backend.objects.clear();
    h.backend.failOn = (op) => (op === 'attachSr' ? new SmError('SRUnavailable', 'no marker') : undefined);
    expect((await fault(h.run('sr_scan'))).kind).toBe('SRUnavailable');
    expect(h.xapi.vdis.size).toBe(1);
  });

  test('reclaims leftovers (garbage collection)', async () => {
    const h = new Host();
    h.backend.seed({ id: 'abababab-0000-4000-8000-000000000001', deleted: true, vdi: 'abababab-0000-4000-8000-000000000001' });
    await h.run('sr_scan');
    expect(h.backend.objects.size).toBe(0);
  });
});

describe('SR commands', () => {
  test('sr_create builds the root; sr_delete refuses while VDIs remain (39), then removes and detaches', async () => {
    const h = new Host();
    await h.run('sr_create', { args: ['0'] });
    expect(h.backend.srCreated).toBe(true);
    await h.run('sr_attach');
    const v = await h.create();
    const e = await fault(h.run('sr_delete'));
    expect(e.code).toBe(39);
    expect(e.message).toContain(v);
    await h.delete(v);
    await h.run('sr_delete');
    expect(h.backend.srDeleted).toBe(true);
    expect(h.backend.attached).toBe(false);
  });

  test('sr_attach: the master marks the SR dirty and reports sizes; a slave attaches and only reads the VDI rows', async () => {
    const h = new Host();
    await h.run('sr_attach');
    expect(h.xapi.sr.other_config.dirty).toBe('');
    expect(h.xapi.sr.physical_size).toBe(1 << 30);
    await h.run('sr_attach'); // already dirty: fine
    const slave = new Host();
    await slave.run('sr_attach', { master: false });
    expect(slave.backend.attached).toBe(true);
    // The crash-leftover sweep (reset-vdis.ts): one read, no write when nothing is stale.
    expect(slave.xapi.calls).toEqual(['VDI.get_all_records_where']);
  });

  test('sr_update writes only what changed', async () => {
    const h = new Host();
    await h.create('a', 3 << 20);
    await h.run('sr_update');
    expect(h.xapi.sr).toMatchObject({ physical_size: 1 << 30, physical_utilisation: 1 << 20, virtual_allocation: 3 << 20 });
    h.xapi.calls.length = 0;
    await h.run('sr_update');
    expect(h.xapi.writes).toEqual([]);
  });

  test('sr_probe answers an XML document', async () => {
    const h = new Host();
    const xml = (await h.run('sr_probe')) as string;
    expect(xml).toMatch(/^<\?xml version="1.0" \?><SRlist><SR><UUID>11111111-2222-4333-8444-555555555555<\/UUID><Location>\/fake<\/Location><size>\d+<\/size><\/SR><\/SRlist>$/);
  });

  test('a bad device_config is refused before storage is touched', async () => {
    const spec = (await lookup('sr_create'))!;
    const ctx = new SrContext(smReq('sr_create', { args: ['0'], dc: { path: 'relative' } }));
    expect((await fault(spec.run(ctx))).kind).toBe('InvalidArg');
  });
});

describe('datapath (direct mode)', () => {
  test('attach answers params, params_nbd "", o_direct and xenstore data; the rest are idempotent no-ops', async () => {
    const h = new Host();
    const v = await h.create();
    const r = (await h.run('vdi_attach', { vdi: h.vdi(v), args: ['true'] })) as XmlRpcStruct;
    expect(r).toEqual({
      params: `/fake/${v}`,
      params_nbd: '',
      o_direct: true,
      o_direct_reason: 'SR_NOT_SUPPORTED',
      xenstore_data: { 'storage-type': 'flatsnap', 'vdi-uuid': v },
    });
    expect(await h.run('vdi_attach', { vdi: h.vdi(v), args: ['false'] })).toMatchObject({ params: `/fake/${v}` });
    for (const cmd of ['vdi_activate', 'vdi_deactivate', 'vdi_detach', 'vdi_detach'] as const) {
      expect(await h.run(cmd, { vdi: h.vdi(v), args: cmd === 'vdi_activate' ? ['true'] : [] })).toBeNull();
    }
  });

  test('attach of a VDI storage does not have: VDIUnavailable (46)', async () => {
    const h = new Host();
    const ref = h.xapi.add(vdiRecord({ uuid: 'cccccccc-0000-4000-8000-000000000009' }));
    expect((await fault(h.run('vdi_attach', { vdi: { uuid: 'cccccccc-0000-4000-8000-000000000009', ref }, args: ['true'] }))).code).toBe(46);
  });

  test('epoch_begin/end: nil; on_boot=reset is not supported', async () => {
    const h = new Host();
    const v = await h.create();
    expect(await h.run('vdi_epoch_begin', { vdi: h.vdi(v) })).toBeNull();
    expect(await h.run('vdi_epoch_end', { vdi: h.vdi(v) })).toBeNull();
    expect((await fault(h.run('vdi_epoch_begin', { vdi: h.vdi(v), extra: { vdi_on_boot: 'reset' } }))).code).toBe(38);
  });
});
