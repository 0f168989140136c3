import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { DateTimeValue, type XmlRpcStruct } from '../../src/smapi/xmlrpc.js';
import { XapiClient } from '../../src/xapi/client.js';
import { XapiError, XapiProtocolError, XapiTransportError } from '../../src/xapi/errors.js';
import { XAPI_SOCKET, XapiTransport, resolveEndpoint, type XapiEndpoint } from '../../src/xapi/transport.js';
import { vdisInSr } from '../../src/xapi/vdi.js';
import { XapiDateTime } from '../../src/xapi/wire.js';
import { pyLoads } from '../helpers/python.js';
import { FakeXapi, xapiResponse, type Reply } from './xapi-fake-server.js';

const SESSION = 'OpaqueRef:5e55e55e-0000-4000-8000-000000000001';
const SUBTASK = 'OpaqueRef:7a5c0000-0000-4000-8000-000000000009';
const SR = 'OpaqueRef:5a000000-0000-4000-8000-000000000002';
const VDI = 'OpaqueRef:7d000000-0000-4000-8000-000000000003';
const SNAP = 'OpaqueRef:7d000000-0000-4000-8000-000000000004';
const HOST = 'OpaqueRef:4b1c0e5e-0c4a-4c59-9d2f-7c0c9e7f1a01';
const VDI_UUID = '11111111-2222-4333-8444-555555555555';
const TEN_GIB = 10 * 2 ** 30; // beyond a 32-bit <int>

let fake: FakeXapi;
let endpoint: XapiEndpoint;
const allMethods: string[] = [];

beforeEach(async () => {
  fake = new FakeXapi();
  endpoint = { host: '127.0.0.1', port: await fake.listen(), path: '/' };
});

afterEach(async () => {
  await fake.close(); // first: a failed check below must not leave the server running
  allMethods.push(...fake.methods);
  for (const c of fake.calls) expect(c.params[0]).toBe(SESSION);
  expect(fake.rejected).toEqual([]);
});

afterAll(() => {
  // The session is xapi's, cached across plugin calls: nothing here may end it.
  expect(allMethods.length).toBeGreaterThan(20);
  expect(allMethods.filter((m) => /session\./i.test(m))).toEqual([]);
});

function client(subtaskOf?: string): XapiClient {
  return new XapiClient({ session: SESSION, subtaskOf, endpoint });
}

/** A VDI record the way xapi's get_record sends it: int64 as strings, every field present. */
function vdiRecordWire(over: XmlRpcStruct = {}): XmlRpcStruct {
  return {
    uuid: VDI_UUID,
    name_label: 'disk 0',
    name_description: '',
    allowed_operations: ['snapshot', 'clone'],
    current_operations: {},
    SR,
    VBDs: ['OpaqueRef:0bd00000-0000-4000-8000-000000000001'],
    crash_dumps: [],
    virtual_size: String(TEN_GIB),
    physical_utilisation: '1048576',
    type: 'user',
    sharable: false,
    read_only: false,
    other_config: { 'flatsnap:x': 'y' },
    storage_lock: false,
    location: VDI_UUID,
    managed: true,
    missing: false,
    parent: 'OpaqueRef:NULL',
    xenstore_data: {},
    sm_config: { 'vdi-type': 'raw' },
    is_a_snapshot: true,
    snapshot_of: SNAP,
    snapshots: [],
    snapshot_time: new DateTimeValue('20250319T04:16:24Z'),
    tags: [],
    allow_caching: false,
    on_boot: 'persist',
    metadata_of_pool: 'OpaqueRef:NULL',
    metadata_latest: false,
    is_tools_iso: false,
    cbt_enabled: false,
    ...over,
  };
}

describe('VDI.db_introduce', () => {
  test('sends session + the 19 positional parameters with XenAPI wire types', async () => {
    const ref = 'OpaqueRef:7d000000-0000-4000-8000-0000000000aa';
    fake.reply = () => ({ value: ref });
    const got = await client().VDI.db_introduce({
      uuid: VDI_UUID,
      name_label: 'snap of disk 0',
      name_description: 'made by flatsnap',
      SR,
      type: 'user',
      sharable: false,
      read_only: true,
      other_config: { a: 'b' },
      location: VDI_UUID,
      xenstore_data: { 'vm-data/x': '1' },
      sm_config: { 'vdi-type': 'raw' },
      managed: true,
      virtual_size: TEN_GIB,
      physical_utilisation: 4096,
      metadata_of_pool: '',
      is_a_snapshot: true,
      snapshot_time: new Date(Date.UTC(2025, 2, 19, 4, 16, 24, 789)),
      snapshot_of: SNAP,
      cbt_enabled: false,
    });
    expect(got).toBe(ref);
    expect(fake.methods).toEqual(['VDI.db_introduce']);
    expect(fake.last().params).toEqual([
      SESSION,
      VDI_UUID,
      'snap of disk 0',
      'made by flatsnap',
      SR,
      'user',
      false,
      true,
      { a: 'b' },
      VDI_UUID,
      { 'vm-data/x': '1' },
      { 'vdi-type': 'raw' },
      true,
      '10737418240',
      '4096',
      '',
      true,
      new DateTimeValue('20250319T04:16:24Z'),
      SNAP,
      false,
    ]);
    const body = fake.last().body;
    expect(body).toContain('<dateTime.iso8601>20250319T04:16:24Z</dateTime.iso8601>');
    expect(body).not.toContain('<int>');
    expect(body).toContain('<boolean>1</boolean>');
  });

  test('defaults: name "", type user, maps {}, managed, NULL refs, the epoch, cbt off', async () => {
    fake.reply = () => ({ value: 'OpaqueRef:new' });
    await client().VDI.db_introduce({ uuid: VDI_UUID, SR, location: 'loc', virtual_size: 0, physical_utilisation: 0 });
    expect(fake.last().params).toEqual([
      SESSION,
      VDI_UUID,
      '',
      '',
      SR,
      'user',
      false,
      false,
      {},
      'loc',
      {},
      {},
      true,
      '0',
      '0',
      'OpaqueRef:NULL',
      false,
      new DateTimeValue('19700101T00:00:00Z'),
      'OpaqueRef:NULL',
      false,
    ]);
    expect(fake.last().body).toContain('<dateTime.iso8601>19700101T00:00:00Z</dateTime.iso8601>');
  });

  test('a snapshot_time string from a vdi_create request is normalised to xapi form', async () => {
    fake.reply = () => ({ value: 'OpaqueRef:new' });
    const base = { uuid: VDI_UUID, SR, location: 'l', virtual_size: 1, physical_utilisation: 1 };
    await client().VDI.db_introduce({ ...base, snapshot_time: '2026-11-25T03:02:03+02:00' });
    expect(fake.last().params[17]).toEqual(new DateTimeValue('20261125T01:02:03Z'));
  });

  test("Python's xmlrpc.client reads the request as SM's VDI._db_introduce would have sent it", async () => {
    fake.reply = () => ({ value: 'OpaqueRef:new' });
    await client().VDI.db_introduce({
      uuid: VDI_UUID,
      name_label: 'a & <b>',
      SR,
      location: VDI_UUID,
      sm_config: { 'vdi-type': 'raw' },
      virtual_size: TEN_GIB,
      physical_utilisation: 0,
    });
    expect(await pyLoads(fake.last().body)).toEqual({
      method: 'VDI.db_introduce',
      params: [
        SESSION,
        VDI_UUID,
        'a & <b>',
        '',
        SR,
        'user',
        false,
        false,
        {},
        VDI_UUID,
        {},
        { 'vdi-type': 'raw' },
        true,
        '10737418240',
        '0',
        'OpaqueRef:NULL',
        false,
        { $datetime: '19700101T00:00:00Z' },
        'OpaqueRef:NULL',
        false,
      ],
    });
  });

  test('LOCATION_NOT_UNIQUE comes back as a typed XapiError', async () => {
    fake.reply = () => ({ failure: ['LOCATION_NOT_UNIQUE', SR, 'loc'] });
    const e = await client()
      .VDI.db_introduce({ uuid: VDI_UUID, SR, location: 'loc', virtual_size: 1, physical_utilisation: 1 })
      .catch((x: unknown) => x);
    expect(e).toBeInstanceOf(XapiError);
    expect(e).toMatchObject({ method: 'VDI.db_introduce', code: 'LOCATION_NOT_UNIQUE', params: [SR, 'loc'] });
    expect((e as Error).message).toBe(`VDI.db_introduce: LOCATION_NOT_UNIQUE ["${SR}", "loc"]`);
  });
});

describe('every other call: exact method name and parameters', () => {
  const at = new Date(Date.UTC(2024, 0, 2, 3, 4, 5));
  const cases: Array<[string, (x: XapiClient) => Promise<unknown>, unknown[]]> = [
    ['VDI.db_forget', (x) => x.VDI.db_forget(VDI), [VDI]],
    ['VDI.set_virtual_size', (x) => x.VDI.set_virtual_size(VDI, TEN_GIB), [VDI, '10737418240']],
    ['VDI.set_physical_utilisation', (x) => x.VDI.set_physical_utilisation(VDI, 512), [VDI, '512']],
    ['VDI.set_read_only', (x) => x.VDI.set_read_only(VDI, true), [VDI, true]],
    ['VDI.set_sharable', (x) => x.VDI.set_sharable(VDI, false), [VDI, false]],
    ['VDI.set_managed', (x) => x.VDI.set_managed(VDI, false), [VDI, false]],
    ['VDI.set_missing', (x) => x.VDI.set_missing(VDI, true), [VDI, true]],
    ['VDI.set_is_a_snapshot', (x) => x.VDI.set_is_a_snapshot(VDI, true), [VDI, true]],
    ['VDI.set_snapshot_of', (x) => x.VDI.set_snapshot_of(VDI, SNAP), [VDI, SNAP]],
    ['VDI.set_snapshot_time', (x) => x.VDI.set_snapshot_time(VDI, at), [VDI, new DateTimeValue('20240102T03:04:05Z')]],
    ['VDI.set_cbt_enabled', (x) => x.VDI.set_cbt_enabled(VDI, false), [VDI, false]],
    ['VDI.set_sm_config', (x) => x.VDI.set_sm_config(VDI, { k: 'v' }), [VDI, { k: 'v' }]],
    ['VDI.add_to_sm_config', (x) => x.VDI.add_to_sm_config(VDI, 'k', 'v'), [VDI, 'k', 'v']],
    ['VDI.remove_from_sm_config', (x) => x.VDI.remove_from_sm_config(VDI, 'k'), [VDI, 'k']],
    ['VDI.set_other_config', (x) => x.VDI.set_other_config(VDI, {}), [VDI, {}]],
    ['VDI.add_to_other_config', (x) => x.VDI.add_to_other_config(VDI, 'k', ''), [VDI, 'k', '']],
    ['VDI.remove_from_other_config', (x) => x.VDI.remove_from_other_config(VDI, 'k'), [VDI, 'k']],
    ['SR.set_physical_size', (x) => x.SR.set_physical_size(SR, TEN_GIB * 100), [SR, '1073741824000']],
    ['SR.set_physical_utilisation', (x) => x.SR.set_physical_utilisation(SR, 0), [SR, '0']],
    ['SR.set_virtual_allocation', (x) => x.SR.set_virtual_allocation(SR, TEN_GIB), [SR, '10737418240']],
    ['SR.add_to_other_config', (x) => x.SR.add_to_other_config(SR, 'dirty', ''), [SR, 'dirty', '']],
    ['SR.remove_from_other_config', (x) => x.SR.remove_from_other_config(SR, 'dirty'), [SR, 'dirty']],
    ['SR.set_sm_config', (x) => x.SR.set_sm_config(SR, { a: '1' }), [SR, { a: '1' }]],
    ['SR.add_to_sm_config', (x) => x.SR.add_to_sm_config(SR, 'a', '1'), [SR, 'a', '1']],
    ['SR.remove_from_sm_config', (x) => x.SR.remove_from_sm_config(SR, 'a'), [SR, 'a']],
  ];

  test.each(cases)('%s', async (method, run, params) => {
    await expect(run(client())).resolves.toBeUndefined();
    expect(fake.calls.map((c) => [c.method, c.params])).toEqual([[method, [SESSION, ...params]]]);
    expect(fake.last().body).not.toContain('<int>');
  });

  test('getters return typed values', async () => {
    const x = client();
    fake.reply = (c) => {
      switch (c.method) {
        case 'VDI.get_by_uuid':
        case 'SR.get_by_uuid':
        case 'VM.get_by_uuid':
          return { value: `OpaqueRef:for-${String(c.params[1])}` };
        case 'VDI.get_is_a_snapshot':
          return { value: true };
        case 'host.call_plugin':
          return { value: 'plugin output' };
        default:
          return { value: { k: 'v', empty: '' } };
      }
    };
    expect(await x.VDI.get_by_uuid(VDI_UUID)).toBe(`OpaqueRef:for-${VDI_UUID}`);
    expect(await x.SR.get_by_uuid('sr-uuid')).toBe('OpaqueRef:for-sr-uuid');
    expect(await x.VM.get_by_uuid('vm-uuid')).toBe('OpaqueRef:for-vm-uuid');
    expect(await x.VDI.get_is_a_snapshot(VDI)).toBe(true);
    expect(await x.VDI.get_sm_config(VDI)).toEqual({ k: 'v', empty: '' });
    expect(await x.VDI.get_other_config(VDI)).toEqual({ k: 'v', empty: '' });
    expect(await x.SR.get_other_config(SR)).toEqual({ k: 'v', empty: '' });
    expect(await x.SR.get_sm_config(SR)).toEqual({ k: 'v', empty: '' });
    expect(await x.host.call_plugin(HOST, 'flatsnap', 'ping', { a: 'b' })).toBe('plugin output');
    expect(fake.calls.map((c) => [c.method, c.params.slice(1)])).toEqual([
      ['VDI.get_by_uuid', [VDI_UUID]],
      ['SR.get_by_uuid', ['sr-uuid']],
      ['VM.get_by_uuid', ['vm-uuid']],
      ['VDI.get_is_a_snapshot', [VDI]],
      ['VDI.get_sm_config', [VDI]],
      ['VDI.get_other_config', [VDI]],
      ['SR.get_other_config', [SR]],
      ['SR.get_sm_config', [SR]],
      ['host.call_plugin', [HOST, 'flatsnap', 'ping', { a: 'b' }]],
    ]);
  });

  test('task.set_progress sends a <double>, even for a whole number', async () => {
    const x = client();
    await x.task.set_progress(SUBTASK, 0.5);
    expect(fake.last().body).toContain('<double>0.5</double>');
    await x.task.set_progress(SUBTASK, 1);
    expect(fake.last().body).toContain('<double>1</double>');
    expect(fake.calls.map((c) => [c.method, c.params])).toEqual([
      ['task.set_progress', [SESSION, SUBTASK, 0.5]],
      ['task.set_progress', [SESSION, SUBTASK, 1]],
    ]);
    await expect(x.task.set_progress(SUBTASK, NaN)).rejects.toThrow(TypeError);
  });

  test('strings with markup and non-ASCII arrive intact', async () => {
    const label = 'Tom & Jerry <disk> ]]> "é" 磁盘';
    await client().VDI.add_to_other_config(VDI, label, label);
    expect(fake.last().params).toEqual([SESSION, VDI, label, label]);
  });
});

describe('records', () => {
  test('VDI.get_record: ints from strings, xapi time text, extra fields ignored', async () => {
    fake.reply = () => ({ value: vdiRecordWire() });
    const r = await client().VDI.get_record(VDI);
    expect(fake.calls.map((c) => [c.method, c.params])).toEqual([['VDI.get_record', [SESSION, VDI]]]);
    expect(r).toEqual({
      uuid: VDI_UUID,
      name_label: 'disk 0',
      name_description: '',
      SR,
      VBDs: ['OpaqueRef:0bd00000-0000-4000-8000-000000000001'],
      virtual_size: TEN_GIB,
      physical_utilisation: 1048576,
      type: 'user',
      sharable: false,
      read_only: false,
      other_config: { 'flatsnap:x': 'y' },
      location: VDI_UUID,
      managed: true,
      missing: false,
      xenstore_data: {},
      sm_config: { 'vdi-type': 'raw' },
      is_a_snapshot: true,
      snapshot_of: SNAP,
      snapshots: [],
      snapshot_time: '20250319T04:16:24Z',
      metadata_of_pool: 'OpaqueRef:NULL',
      on_boot: 'persist',
      allow_caching: false,
      cbt_enabled: false,
    });
  });

  test('a record missing a field, or with a bad int, is a protocol error naming it', async () => {
    const { virtual_size: _, ...missing } = vdiRecordWire();
    fake.reply = () => ({ value: missing });
    await expect(client().VDI.get_record(VDI)).rejects.toThrow(
      new XapiProtocolError('VDI.get_record', 'the record has no field virtual_size'),
    );
    fake.reply = () => ({ value: vdiRecordWire({ physical_utilisation: '12ab' }) });
    const e = await client().VDI.get_record(VDI).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(XapiProtocolError);
    expect((e as Error).message).toBe('VDI.get_record: the record.physical_utilisation should be an int, got "12ab"');
  });

  test('VDI.get_all_records_where with the SR filter returns ref -> record', async () => {
    const other = 'OpaqueRef:7d000000-0000-4000-8000-0000000000bb';
    fake.reply = () => ({ value: { [VDI]: vdiRecordWire(), [other]: vdiRecordWire({ uuid: 'u2', virtual_size: '7' }) } });
    const all = await client().VDI.get_all_records_where(vdisInSr(SR));
    expect(fake.last().params).toEqual([SESSION, `field "SR" = "${SR}"`]);
    expect([...all.keys()]).toEqual([VDI, other]);
    expect(all.get(other)).toMatchObject({ uuid: 'u2', virtual_size: 7 });
    expect(() => vdisInSr('OpaqueRef:" or true or "')).toThrow(TypeError);
  });

  test('SR.get_record', async () => {
    fake.reply = () => ({
      value: {
        uuid: 'sr-uuid',
        name_label: 'flatsnap',
        name_description: 'd',
        allowed_operations: [],
        current_operations: {},
        VDIs: [VDI],
        PBDs: ['OpaqueRef:pbd'],
        virtual_allocation: '0',
        physical_utilisation: '-1',
        physical_size: '-1',
        type: 'flatsnap',
        content_type: 'user',
        shared: false,
        other_config: { dirty: '' },
        tags: [],
        sm_config: {},
        blobs: {},
        local_cache_enabled: false,
        introduced_by: 'OpaqueRef:NULL',
        clustered: false,
        is_tools_sr: false,
      },
    });
    expect(await client().SR.get_record(SR)).toEqual({
      uuid: 'sr-uuid',
      name_label: 'flatsnap',
      name_description: 'd',
      VDIs: [VDI],
      PBDs: ['OpaqueRef:pbd'],
      virtual_allocation: 0,
      physical_utilisation: -1,
      physical_size: -1,
      type: 'flatsnap',
      content_type: 'user',
      shared: false,
      other_config: { dirty: '' },
      sm_config: {},
    });
    expect(fake.last().method).toBe('SR.get_record');
  });

  test('VM.get_record and VBD.get_record', async () => {
    const VM = 'OpaqueRef:0b000000-0000-4000-8000-000000000001';
    const VBD = 'OpaqueRef:0bd00000-0000-4000-8000-000000000001';
    fake.reply = (c): Reply =>
      c.method === 'VM.get_record'
        ? {
            value: {
              uuid: 'vm-uuid',
              name_label: 'vm',
              power_state: 'Halted',
              is_a_template: false,
              is_a_snapshot: false,
              is_control_domain: false,
              snapshot_of: 'OpaqueRef:NULL',
              snapshots: [],
              snapshot_time: new DateTimeValue('19700101T00:00:00Z'),
              suspend_VDI: 'OpaqueRef:NULL',
              VBDs: [VBD],
              other_config: {},
              VIFs: [],
            },
          }
        : {
            value: {
              uuid: 'vbd-uuid',
              VM,
              VDI,
              device: 'xvda',
              userdevice: '0',
              mode: 'RW',
              type: 'Disk',
              empty: false,
              bootable: true,
              currently_attached: false,
              other_config: { owner: '' },
              unpluggable: true,
            },
          };
    const x = client();
    expect(await x.VM.get_record(VM)).toMatchObject({ uuid: 'vm-uuid', VBDs: [VBD], snapshot_time: '19700101T00:00:00Z' });
    expect(await x.VBD.get_record(VBD)).toEqual({
      uuid: 'vbd-uuid',
      VM,
      VDI,
      device: 'xvda',
      userdevice: '0',
      mode: 'RW',
      type: 'Disk',
      empty: false,
      bootable: true,
      currently_attached: false,
      other_config: { owner: '' },
    });
    expect(fake.calls.map((c) => [c.method, c.params])).toEqual([
      ['VM.get_record', [SESSION, VM]],
      ['VBD.get_record', [SESSION, VBD]],
    ]);
  });
});

describe('session and Subtask-of', () => {
  test('Subtask-of goes on every call, with that exact header name', async () => {
    const x = client(SUBTASK);
    await x.VDI.set_missing(VDI, false);
    await x.SR.set_physical_size(SR, 1);
    expect(fake.calls).toHaveLength(2);
    for (const c of fake.calls) {
      expect(c.headers['subtask-of']).toBe(SUBTASK);
      expect(c.rawHeaderNames).toContain('Subtask-of');
      expect(c.headers['content-type']).toBe('text/xml');
      expect(Number(c.headers['content-length'])).toBe(Buffer.byteLength(c.body));
      expect(c.url).toBe('/');
    }
  });

  test('no Subtask-of header without a subtask', async () => {
    await client().VDI.set_missing(VDI, false);
    expect(fake.last().headers['subtask-of']).toBeUndefined();
  });

  test('forRequest takes session_ref and subtask_of from the SMAPIv1 request', async () => {
    const x = XapiClient.forRequest({ session_ref: SESSION, subtask_of: SUBTASK }, endpoint);
    await x.VDI.db_forget(VDI);
    expect(fake.last().params).toEqual([SESSION, VDI]);
    expect(fake.last().headers['subtask-of']).toBe(SUBTASK);
    expect(() => XapiClient.forRequest({}, endpoint)).toThrow(XapiTransportError);
  });

  test('session.logout is refused without reaching xapi', async () => {
    const t = new XapiTransport({ session: SESSION, endpoint });
    await expect(t.call('session.logout', [])).rejects.toThrow(/never logged out/);
    expect(fake.calls).toEqual([]);
  });

  test('the session ref never appears in an error, even when xapi echoes it', async () => {
    fake.reply = () => ({ failure: ['SESSION_INVALID', SESSION] });
    const e = await client().VDI.db_forget(VDI).catch((x: unknown) => x);
    expect(e).toMatchObject({ code: 'SESSION_INVALID', params: ['<session>'] });
    expect((e as Error).message).not.toContain(SESSION);
  });

  test('the session is not visible on the client object', () => {
    const x = client(SUBTASK);
    expect(JSON.stringify(x)).not.toContain(SESSION);
    expect(inspect(x, { depth: 10, showHidden: true })).not.toContain(SESSION);
  });
});

describe('errors', () => {
  test('Failure with no params', async () => {
    fake.reply = () => ({ failure: ['HANDLE_INVALID'] });
    await expect(client().VDI.get_record(VDI)).rejects.toMatchObject({
      name: 'XapiError',
      code: 'HANDLE_INVALID',
      params: [],
      message: 'VDI.get_record: HANDLE_INVALID',
    });
  });

  test.each([
    ['a non-XML reply', { raw: 'hello, world' }, /VDI.db_forget: not an XML-RPC response/],
    ['an HTML error page', { raw: '<html><body>500 Internal Error</body></html>', status: 500, contentType: 'text/html' }, /HTTP 500/],
    ['an HTTP 404', { raw: 'nope', status: 404 }, /HTTP 404, Not Found/],
    ['an XML-RPC fault', { raw: '<methodResponse><fault><value><struct><member><name>faultCode</name><value><int>5</int></value></member><member><name>faultString</name><value>boom</value></member></struct></value></fault></methodResponse>' }, /XML-RPC fault 5: boom/],
    ['a struct without Status', { raw: xapiResponse({ Value: 'x' }) }, /not a XenAPI \{Status, \.\.\.\} struct|Status is null/],
    ['a bare value', { raw: xapiResponse('OpaqueRef:x') }, /not a XenAPI/],
    ['Success without Value', { raw: xapiResponse({ Status: 'Success' }) }, /without Value/],
    ['Failure without a code', { raw: xapiResponse({ Status: 'Failure', ErrorDescription: [] }) }, /without an ErrorDescription code/],
    ['an unknown Status', { raw: xapiResponse({ Status: 'Pending' }) }, /Status is "Pending"/],
  ])('%s is a protocol error', async (_, reply, msg) => {
    fake.reply = () => reply;
    const e = await client().VDI.db_forget(VDI).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(XapiProtocolError);
    expect((e as Error).message).toMatch(msg);
  });

  test('a result of the wrong type is a protocol error', async () => {
    fake.reply = () => ({ value: { not: 'a ref' } });
    await expect(client().VDI.get_by_uuid(VDI_UUID)).rejects.toThrow(
      new XapiProtocolError('VDI.get_by_uuid', 'the result should be a string, got {"not":"a ref"}'),
    );
  });

  test('connection refused is a transport error', async () => {
    const port = 'port' in endpoint ? endpoint.port : 0;
    await fake.close();
    fake = new FakeXapi(); // afterEach closes this one
    const x = new XapiClient({ session: SESSION, endpoint: { host: '127.0.0.1', port, path: '/' } });
    const e = await x.VDI.db_forget(VDI).catch((y: unknown) => y);
    expect(e).toBeInstanceOf(XapiTransportError);
    expect(e).toMatchObject({ method: 'VDI.db_forget', errno: 'ECONNREFUSED' });
  });

  test('a missing socket is a transport error', async () => {
    const x = new XapiClient({ session: SESSION, endpoint: { socketPath: '/nonexistent/flatsnap/xapi', path: '/' } });
    await expect(x.VDI.db_forget(VDI)).rejects.toMatchObject({ name: 'XapiTransportError', errno: 'ENOENT' });
  });

  test('xapi closing the connection mid-call is a transport error', async () => {
    fake.reply = () => ({ hangUp: true });
    const e = await client().VDI.db_forget(VDI).catch((y: unknown) => y);
    expect(e).toBeInstanceOf(XapiTransportError);
  });

  test('what cannot be encoded is refused before anything is sent', async () => {
    const x = client();
    await expect(x.VDI.set_virtual_size(VDI, 1.5)).rejects.toThrow(/cannot encode the request: not an exact integer: 1.5/);
    await expect(x.VDI.set_virtual_size(VDI, 2 ** 60)).rejects.toBeInstanceOf(XapiProtocolError);
    await expect(x.VDI.add_to_other_config(VDI, 'k', 'a\u0001b')).rejects.toThrow(/cannot encode the request/);
    const t = new XapiTransport({ session: SESSION, endpoint });
    await expect(t.call('VDI.set_snapshot_time', [VDI, new Date() as never])).rejects.toThrow(/wrap dates in XapiDateTime/);
    expect(fake.calls).toEqual([]);
  });

  test('a Subtask-of with a newline is refused at construction', () => {
    expect(() => client('OpaqueRef:x\r\nX-Evil: 1')).toThrow();
  });
});

describe('endpoints', () => {
  test('the default is HTTP over xapi\'s Unix socket, path /', () => {
    expect(XAPI_SOCKET).toBe('/var/lib/xcp/xapi');
    expect(resolveEndpoint({})).toEqual({ socketPath: '/var/lib/xcp/xapi', path: '/' });
  });

  test('FLATSNAP_XAPI_URL overrides it', () => {
    expect(resolveEndpoint({ FLATSNAP_XAPI_URL: 'http://127.0.0.1:8099' })).toEqual({ host: '127.0.0.1', port: 8099, path: '/' });
    expect(resolveEndpoint({ FLATSNAP_XAPI_URL: 'http://sim.local/RPC2' })).toEqual({ host: 'sim.local', port: 80, path: '/RPC2' });
    expect(resolveEndpoint({ FLATSNAP_XAPI_URL: 'http://[::1]:1234/x' })).toEqual({ host: '::1', port: 1234, path: '/x' });
    expect(() => resolveEndpoint({ FLATSNAP_XAPI_URL: 'https://h/' })).toThrow(XapiTransportError);
    expect(() => resolveEndpoint({ FLATSNAP_XAPI_URL: 'not a url' })).toThrow(XapiTransportError);
  });

  test('the client follows FLATSNAP_XAPI_URL when no endpoint is given', async () => {
    const saved = process.env.FLATSNAP_XAPI_URL;
    process.env.FLATSNAP_XAPI_URL = `http://127.0.0.1:${'port' in endpoint ? endpoint.port : 0}/xmlrpc`;
    try {
      await XapiClient.forRequest({ session_ref: SESSION }).VDI.set_managed(VDI, true);
    } finally {
      if (saved === undefined) delete process.env.FLATSNAP_XAPI_URL;
      else process.env.FLATSNAP_XAPI_URL = saved;
    }
    expect(fake.last()).toMatchObject({ method: 'VDI.set_managed', url: '/xmlrpc' });
  });

  test('HTTP over a Unix socket', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'flatsnap-xapi-'));
    const sock = new FakeXapi();
    try {
      await sock.listen(join(dir, 'xapi'));
      sock.reply = () => ({ value: vdiRecordWire() });
      const x = new XapiClient({ session: SESSION, subtaskOf: SUBTASK, endpoint: { socketPath: join(dir, 'xapi'), path: '/' } });
      expect((await x.VDI.get_record(VDI)).virtual_size).toBe(TEN_GIB);
      expect(sock.calls.map((c) => [c.method, c.params, c.url, c.headers['subtask-of']])).toEqual([
        ['VDI.get_record', [SESSION, VDI], '/', SUBTASK],
      ]);
    } finally {
      await sock.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('XapiDateTime', () => {
  test.each([
    ['19700101T00:00:00Z', '19700101T00:00:00Z'],
    ['20250319T04:16:24', '20250319T04:16:24Z'],
    ['2025-03-19T04:16:24Z', '20250319T04:16:24Z'],
    ['2025-03-19T04:16:24.999Z', '20250319T04:16:24Z'],
    ['2025-03-19T06:16:24+02:00', '20250319T04:16:24Z'],
    ['2025-03-19T00:16:24-0400', '20250319T04:16:24Z'],
  ])('%s -> %s', (input, wire) => {
    expect(XapiDateTime.from(input).wire).toBe(wire);
  });

  test('from a Date, to a Date', () => {
    const d = new Date(Date.UTC(2025, 2, 19, 4, 16, 24));
    expect(XapiDateTime.from(d).wire).toBe('20250319T04:16:24Z');
    expect(XapiDateTime.from(d).toDate()).toEqual(d);
    expect(XapiDateTime.EPOCH.toDate().getTime()).toBe(0);
    expect(() => XapiDateTime.from('yesterday')).toThrow(TypeError);
    expect(() => XapiDateTime.from(new Date(NaN))).toThrow(TypeError);
  });
});
