// The simulator's wire behaviour: the exact bytes it execs plugins with, its
// environment, the XenAPI envelopes it answers with (XML-RPC and JSON-RPC),
// and how plugin faults and crashes map onto xapi's errors.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { ApiFailure, Client, rawCall, readSmLog, removeDir, ROOT, startSim, type SimProc } from './sim-helpers.js';

describe('plugin requests and the XenAPI envelope', () => {
  let sim: SimProc;
  let c: Client;
  let host: string;
  let sr: string;

  beforeAll(async () => {
    sim = await startSim();
    c = await new Client(sim.url).login();
    host = (await c.call<string[]>('host.get_all'))[0]!;
    sr = await c.callAsync<string>('SR.create', host, { path: path.join(sim.dir, 'sr') }, '0', 'sr', '', 'filefixture', 'user', false, {});
  });
  afterAll(async () => {
    await sim?.stop();
    if (sim) removeDir(sim.dir);
  });

  it('probes plugins with the bare sr_get_driver_info request xapi sends', () => {
    const first = readSmLog(sim.smLog)[0]!;
    expect(first.cmd).toBe('sr_get_driver_info');
    expect(first.exe).toBe(path.join(ROOT, 'test/fixtures/filesr/FileFixtureSR'));
    expect(first.argv1).toBe(
      `<methodCall><methodName>sr_get_driver_info</methodName><params><param><value><struct><member><name>host_ref</name><value>${host}</value></member><member><name>command</name><value>sr_get_driver_info</value></member><member><name>args</name><value><array><data/></array></value></member><member><name>device_config</name><value><struct/></value></member></struct></value></param></params></methodCall>`,
    );
  });

  it('sends vdi_snapshot with xapi key order, bare strings and SRmaster first', async () => {
    const vdi = await c.callAsync<string>('VDI.create', { name_label: '', SR: sr, virtual_size: '1048576', type: 'user', sharable: false, read_only: false, other_config: {}, xenstore_data: {}, sm_config: {}, tags: [] });
    const create = readSmLog(sim.smLog).filter((e) => e.cmd === 'vdi_create').pop()!;
    // empty name_label and empty metadata_of_pool/snapshot_of are <value/>
    expect(create.argv1).toContain(
      '<member><name>args</name><value><array><data><value>1048576</value><value/><value/><value/><value>false</value><value>19700101T00:00:00Z</value><value/><value>false</value></data></array></value></member>',
    );
    expect(create.argv1).toMatch(/<name>sr_ref<\/name><value>OpaqueRef:[^<]+<\/value><\/member><member><name>vdi_type<\/name><value>user<\/value><\/member><member><name>sr_uuid<\/name>/);
    expect(create.argv1).toContain('<member><name>vdi_sm_config</name><value><struct/></value></member>');

    const task = await c.call<string>('Async.VDI.snapshot', vdi, { k: 'v' });
    for (;;) {
      const st = await c.call('task.get_status', task);
      if (st !== 'pending') break;
      await new Promise((r) => setTimeout(r, 20));
    }
    const e = readSmLog(sim.smLog).filter((x) => x.cmd === 'vdi_snapshot').pop()!;
    expect(e.argv1.startsWith('<methodCall><methodName>vdi_snapshot</methodName><params><param><value><struct>')).toBe(true);
    expect(e.argv1).not.toContain('\n');
    expect(e.argv1).not.toContain('<string>');
    expect(e.argv1).not.toContain('<?xml');
    const keys = [...e.argv1.matchAll(/<member><name>([a-z_A-Z]+)<\/name>/g)].map((m) => m[1]);
    expect(keys).toEqual([
      'host_ref',
      'command',
      'args',
      'device_config',
      'SRmaster',
      'path',
      'session_ref',
      'sr_ref',
      'sr_uuid',
      'vdi_ref',
      'vdi_location',
      'vdi_uuid',
      'driver_params',
      'k',
      'subtask_of',
      'vdi_on_boot',
      'vdi_allow_caching',
    ]);
    expect(e.argv1).toContain(`<member><name>subtask_of</name><value>${task}</value></member>`);
    expect(e.argv1).toContain('<member><name>vdi_on_boot</name><value>persist</value></member><member><name>vdi_allow_caching</name><value>false</value></member>');
    expect(e.argv1).toContain('<member><name>SRmaster</name><value>true</value></member>');
    await c.call('task.destroy', task);
  });

  it('runs plugins with xapi environment plus FLATSNAP_XAPI_URL only', () => {
    const seen = JSON.parse(fs.readFileSync(path.join(sim.dir, 'sr', '.attach-env.json'), 'utf8')) as { env: Record<string, string>; argv: string[] };
    // Python itself adds LC_CTYPE when it coerces the C locale (PEP 538)
    const { LC_CTYPE: _lc, ...env } = seen.env;
    expect(env).toEqual({ PATH: '/sbin:/usr/sbin:/bin:/usr/bin', ORIGINATOR: 'SM', FLATSNAP_XAPI_URL: sim.url });
    expect(seen.argv).toHaveLength(2);
    expect(seen.argv[1]).toContain('<methodName>sr_attach</methodName>');
    expect(seen.argv[1]).toMatch(/<name>session_ref<\/name><value>OpaqueRef:/);
  });

  it('answers in the ocaml-rpc XML-RPC envelope on any path', async () => {
    for (const p of ['/', '/RPC2', '/xmlrpc', '/some/where']) {
      const { body, contentType } = await rawCall(sim.url, 'session.get_this_host', [c.session, c.session], p);
      expect(contentType).toBe('text/xml');
      expect(body).toBe(
        `<?xml version="1.0"?><methodResponse><params><param><value><struct><member><name>Status</name><value>Success</value></member><member><name>Value</name><value>${host}</value></member></struct></value></param></params></methodResponse>`,
      );
    }
    const { body } = await rawCall(sim.url, 'VDI.get_record', [c.session, 'OpaqueRef:nope']);
    expect(body).toBe(
      '<?xml version="1.0"?><methodResponse><params><param><value><struct><member><name>Status</name><value>Failure</value></member><member><name>ErrorDescription</name><value><array><data><value>HANDLE_INVALID</value><value>VDI</value><value>OpaqueRef:nope</value></data></array></value></member></struct></value></param></params></methodResponse>',
    );
    const sz = await rawCall(sim.url, 'SR.get_virtual_allocation', [c.session, sr]);
    expect(sz.body).toMatch(/<name>Value<\/name><value>\d+<\/value>/); // int64: bare decimal
    const lm = await rawCall(sim.url, 'system.listMethods', []);
    expect(Array.isArray(lm.value)).toBe(true); // no Status wrapper
    expect(lm.value as string[]).toEqual(expect.arrayContaining(['VM.get_all_records', 'Async.VM.snapshot', 'event.from', 'VDI.db_introduce']));
  });

  it('speaks JSON-RPC 1.0 and 2.0 at /jsonrpc with Content-Type application/json', async () => {
    const post = async (body: unknown) => {
      const res = await fetch(new URL('/jsonrpc', sim.url), { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
      return { type: res.headers.get('content-type'), json: (await res.json()) as Record<string, unknown> };
    };
    const v2 = await post({ jsonrpc: '2.0', method: 'session.login_with_password', params: ['root', 'x'], id: 7 });
    expect(v2.type).toBe('application/json');
    expect(v2.json).toEqual({ jsonrpc: '2.0', result: expect.stringMatching(/^OpaqueRef:/), id: 7 });
    const session = v2.json.result as string;
    const err2 = await post({ jsonrpc: '2.0', method: 'VM.get_record', params: [session, 'OpaqueRef:x'], id: 8 });
    expect(err2.json).toEqual({ jsonrpc: '2.0', error: { code: 1, message: 'HANDLE_INVALID', data: ['VM', 'OpaqueRef:x'] }, id: 8 });
    const v1 = await post({ method: 'SR.get_physical_size', params: [session, sr], id: 'a' });
    expect(v1.json).toEqual({ result: expect.any(Number), error: null, id: 'a' });
    const err1 = await post({ method: 'SR.get_physical_size', params: ['OpaqueRef:bad', sr], id: 'b' });
    expect(err1.json).toEqual({ result: null, error: ['SESSION_INVALID', 'OpaqueRef:bad'], id: 'b' });
    // sessions are shared between the transports
    expect(await new Client(sim.url).raw('SR.get_uuid', [session, sr])).toMatch(/-/);
  });

  it('serves the same API on the unix socket', async () => {
    const body = '<methodCall><methodName>session.login_with_password</methodName><params><param><value>root</value></param><param><value>x</value></param></params></methodCall>';
    const text = await new Promise<string>((resolve, reject) => {
      const req = http.request({ socketPath: path.join(sim.dir, 'xapi.sock'), path: '/', method: 'POST', headers: { 'Content-Type': 'text/xml', 'Content-Length': Buffer.byteLength(body) } }, (res) => {
        let s = '';
        res.on('data', (d: Buffer) => (s += d.toString()));
        res.on('end', () => resolve(s));
      });
      req.on('error', reject);
      req.end(body);
    });
    expect(text).toMatch(/<name>Status<\/name><value>Success<\/value>.*OpaqueRef:/);
  });

  it('checks sessions, parameter counts and map keys like xapi', async () => {
    await expect(c.raw('VM.get_all', ['OpaqueRef:junk'])).rejects.toMatchObject({ description: ['SESSION_INVALID', 'OpaqueRef:junk'] });
    await expect(c.call('VM.get_all', 'extra')).rejects.toMatchObject({ description: ['MESSAGE_PARAMETER_COUNT_MISMATCH', 'VM.get_all', '1', '2'] });
    await expect(c.call('VM.frobnicate')).rejects.toMatchObject({ description: ['MESSAGE_METHOD_UNKNOWN', 'VM.frobnicate'] });
    await expect(c.call('VDI.get_by_uuid', 'nope')).rejects.toMatchObject({ description: ['UUID_INVALID', 'VDI', 'nope'] });
    await c.call('SR.add_to_other_config', sr, 'k', 'v');
    await expect(c.call('SR.add_to_other_config', sr, 'k', 'w')).rejects.toMatchObject({ description: ['MAP_DUPLICATE_KEY', 'SR', 'other_config', sr, 'k'] });
    await c.call('SR.remove_from_other_config', sr, 'k');
    await c.call('SR.remove_from_other_config', sr, 'k'); // absent: no error
    const where = await c.call<Record<string, unknown>>('SR.get_all_records_where', `field "type" = "filefixture" and not (field "shared" = "true")`);
    expect(Object.keys(where)).toEqual([sr]);
    await expect(c.raw('session.login_with_password', ['alice', 'x'])).rejects.toMatchObject({ code: 'SESSION_AUTHENTICATION_FAILED' });
  });
});

describe('plugin faults and failures', () => {
  let sim: SimProc;
  let c: Client;
  let host: string;

  beforeAll(async () => {
    sim = await startSim({ smDir: path.join(ROOT, 'test/fixtures/badsr') });
    c = await new Client(sim.url).login();
    host = (await c.call<string[]>('host.get_all'))[0]!;
  });
  afterAll(async () => {
    await sim?.stop();
    if (sim) removeDir(sim.dir);
  });

  const create = (dc: Record<string, string>) => c.callAsync<string>('SR.create', host, dc, '0', 'bad', '', 'badfixture', 'user', false, {});
  const failure = async (p: Promise<unknown>): Promise<string[]> => {
    try {
      await p;
    } catch (e) {
      if (e instanceof ApiFailure) return e.description;
      throw e;
    }
    throw new Error('expected a failure');
  };

  it('registers only whitelisted plugins (--sm-plugins)', async () => {
    const other = await startSim({ smDir: path.join(ROOT, 'test/fixtures/badsr'), extraArgs: ['--sm-plugins', 'somethingelse'] });
    try {
      const oc = await new Client(other.url).login();
      expect(await oc.call('SM.get_all')).toEqual([]);
      expect(readSmLog(other.smLog)).toEqual([]);
    } finally {
      await other.stop();
      removeDir(other.dir);
    }
  });

  it('rejects plugins whose driver info is incomplete', async () => {
    const types = (await c.call<string[]>('SM.get_all')).length;
    expect(types).toBe(1);
    expect(await c.call('SR.get_supported_types')).toEqual(['badfixture']);
  });

  it('maps a non-zero exit to SR_BACKEND_FAILURE non-zero exit with stdout and stderr', async () => {
    expect(await failure(create({ bad: 'exit', 'bad-cmd': 'sr_create' }))).toEqual(['SR_BACKEND_FAILURE', 'non-zero exit', 'partial output', 'something broke']);
    expect(await c.call('SR.get_all')).toEqual([]); // the SR and PBD rows were removed
    expect(await c.call('PBD.get_all')).toEqual([]);
  });

  it('maps unparsable output to SR_BACKEND_FAILURE with the parser error, stdout and stderr', async () => {
    const d = await failure(create({ bad: 'garbage', 'bad-cmd': 'sr_create' }));
    expect(d[0]).toBe('SR_BACKEND_FAILURE');
    expect(d.slice(2)).toEqual(['this is not XML', '']);
  });

  it.each([
    ['38', ['SR_OPERATION_NOT_SUPPORTED', '<sr>']],
    ['39', ['SR_NOT_EMPTY']],
    ['24', ['VDI_IN_USE']],
    ['16', ['SR_DEVICE_IN_USE']],
    ['144', ['VDI_MISSING', '<sr>', '']],
    ['44', ['SR_BACKEND_FAILURE_44', '', 'fixture fault', 'stderr of the fault']],
    ['202', ['SR_BACKEND_FAILURE_202', '', 'fixture fault', 'stderr of the fault']],
  ])('maps fault %s', async (code, expected) => {
    const d = await failure(create({ bad: 'fault', code, 'bad-cmd': 'sr_create' }));
    const sr = d.find((x) => x.startsWith('OpaqueRef:')) ?? '';
    expect(d).toEqual(expected.map((x) => (x === '<sr>' ? sr : x)));
  });

  it('requires <nil/> for unit results and {uuid, location} for new VDIs', async () => {
    const d = await failure(create({ bad: 'notnil', 'bad-cmd': 'sr_create' }));
    expect(d[0]).toBe('INTERNAL_ERROR');
    const sr = await create({ bad: 'noloc', 'bad-cmd': 'vdi_create' });
    const d2 = await failure(c.callAsync('VDI.create', { name_label: 'x', SR: sr, virtual_size: '1', type: 'user', sharable: false, read_only: false, other_config: {}, xenstore_data: {}, sm_config: {}, tags: [] }));
    expect(d2[0]).toBe('SR_BACKEND_FAILURE');
    expect(d2[1]).toBe('');
    expect(d2[2]).toMatch(/^XML parse failure: <value><struct>/);
    expect(d2[3]).toBe('<struct> missing field: location');
    // capabilities gate calls before any exec
    const before = readSmLog(sim.smLog).length;
    expect(await failure(c.callAsync('SR.probe', host, {}, 'badfixture', {}))).toEqual(['SR_BACKEND_FAILURE', "Operation 'sr_probe' not supported by this SR type", '', '']);
    expect(readSmLog(sim.smLog).length).toBe(before);
  });
});
