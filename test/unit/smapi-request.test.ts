import { parseArgv, parseRequest, SM_COMMANDS, type SmCommand } from '../../src/smapi/request.js';
import { SmError } from '../../src/errors.js';
import { pyDumps } from '../helpers/python.js';
import { NEW_UUID, SR_UUID, VDI_UUID, smRequest } from '../helpers/requests.js';

// The keys each command carries, as xapi's sm.ml builds them.
function requestFor(cmd: SmCommand): string {
  switch (cmd) {
    case 'sr_get_driver_info':
      return smRequest(cmd);
    case 'sr_create':
      return smRequest(cmd, { args: ['107374182400'], device_config: { dataset: 'tank/sr' } });
    case 'sr_probe':
      return smRequest(cmd, { extra: { sr_sm_config: {} } });
    case 'vdi_create':
      return smRequest(cmd, {
        args: ['10737418240', 'disk', '', '', 'false', '19700101T00:00:00Z', '', 'false'],
        extra: { vdi_type: 'user', vdi_sm_config: {} },
      });
    case 'vdi_introduce':
      return smRequest(cmd, { extra: { vdi_location: VDI_UUID, new_uuid: NEW_UUID, vdi_sm_config: {} } });
    case 'vdi_attach':
    case 'vdi_activate':
      return smRequest(cmd, { vdi: true, args: ['true'] });
    case 'vdi_resize':
    case 'vdi_resize_online':
      return smRequest(cmd, { vdi: true, args: ['21474836480'] });
    case 'vdi_compose':
    case 'vdi_list_changed_blocks':
    case 'vdi_revert':
      return smRequest(cmd, { vdi: true, args: ['OpaqueRef:7d000000-0000-4000-8000-000000000009'] });
    case 'vdi_snapshot':
    case 'vdi_clone':
      return smRequest(cmd, { vdi: true, extra: { driver_params: { epochhint: NEW_UUID } } });
    case 'vdi_attach_from_config':
    case 'vdi_detach_from_config':
      return smRequest(cmd, { session: false, extra: { vdi_uuid: VDI_UUID } });
    default:
      return cmd.startsWith('vdi_') ? smRequest(cmd, { vdi: true }) : smRequest(cmd);
  }
}

describe('parseRequest on xapi-shaped requests', () => {
  test.each(SM_COMMANDS.map((c) => [c]))('%s', (cmd) => {
    const req = parseRequest(requestFor(cmd as SmCommand));
    expect(req.command).toBe(cmd);
    expect(req.host_ref).toMatch(/^OpaqueRef:/);
    if (cmd !== 'sr_get_driver_info') expect(req.device_config.SRmaster).toBe('true');
    if (cmd === 'sr_get_driver_info') expect(req.session_ref).toBeUndefined();
  });

  test('vdi_create decodes its 8 positional args with <value/> for the empty description', () => {
    const xml = requestFor('vdi_create');
    expect(xml).toContain('<value/>');
    const req = parseRequest(xml);
    expect(req.args).toEqual({
      kind: 'vdi_create',
      virtual_size: 10737418240,
      name_label: 'disk',
      name_description: '',
      metadata_of_pool: '',
      is_a_snapshot: false,
      snapshot_time: '19700101T00:00:00Z',
      snapshot_of: '',
      read_only: false,
    });
    expect(req.vdi_type).toBe('user');
    expect(req.vdi_sm_config).toEqual({});
    expect(req.sr_uuid).toBe(SR_UUID);
  });

  test('writable, resize, ref and sr_create args are typed', () => {
    expect(parseRequest(requestFor('vdi_attach')).args).toEqual({ kind: 'writable', writable: true });
    expect(parseRequest(smRequest('vdi_activate', { vdi: true, args: ['false'] })).args).toEqual({ kind: 'writable', writable: false });
    expect(parseRequest(requestFor('vdi_resize')).args).toEqual({ kind: 'resize', new_size: 21474836480 });
    expect(parseRequest(requestFor('vdi_revert')).args).toEqual({ kind: 'ref', ref: 'OpaqueRef:7d000000-0000-4000-8000-000000000009' });
    expect(parseRequest(requestFor('sr_create')).args).toEqual({ kind: 'sr_create', physical_size: 107374182400 });
  });

  test('VDI keys, driver_params, on_boot and caching are carried', () => {
    const req = parseRequest(requestFor('vdi_snapshot'));
    expect(req.vdi_uuid).toBe(VDI_UUID);
    expect(req.vdi_location).toBe(VDI_UUID);
    expect(req.vdi_ref).toMatch(/^OpaqueRef:/);
    expect(req.driver_params).toEqual({ epochhint: NEW_UUID });
    expect(req.vdi_on_boot).toBe('persist');
    expect(req.vdi_allow_caching).toBe(false);
    expect(req.sr_master).toBe(true);
  });

  test('non-ASCII labels survive', () => {
    const label = 'Ünïcødé 磁盘 — ☃ 🙂';
    const req = parseRequest(
      smRequest('vdi_create', { args: ['1024', label, 'désc\nligne 2', '', 'false', '19700101T00:00:00Z', '', 'false'] }),
    );
    expect(req.args.kind === 'vdi_create' && req.args.name_label).toBe(label);
    expect(req.args.kind === 'vdi_create' && req.args.name_description).toBe('désc\nligne 2');
  });

  test('DummyRef subtasks and local_cache_sr', () => {
    const req = parseRequest(
      smRequest('vdi_create', {
        args: ['1024', 'x', '', '', 'false', '19700101T00:00:00Z', '', 'false'],
        extra: { subtask_of: 'DummyRef:|0c53c1a5-7e4d-4d77-9f04-8a9f0d1b2c3d|VDI.create', local_cache_sr: SR_UUID },
      }),
    );
    expect(req.subtask_of).toBe('DummyRef:|0c53c1a5-7e4d-4d77-9f04-8a9f0d1b2c3d|VDI.create');
    expect(req.local_cache_sr).toBe(SR_UUID);
  });

  test("the reference's manual sr_get_driver_info request (SRTest.txt)", () => {
    const xml =
      '<methodCall><methodName>sr_get_driver_info</methodName><params><param><value><struct><member><name>host_ref</name><value>OpaqueRef:NULL</value></member><member><name>command</name><value>sr_get_driver_info</value></member><member><name>args</name><value><array><data/></array></value></member><member><name>device_config</name><value><struct/></value></member></struct></value></param></params></methodCall>';
    const req = parseRequest(xml);
    expect(req.command).toBe('sr_get_driver_info');
    expect(req.device_config).toEqual({});
  });

  test('the Python-style encoding (header, <string>, newlines) parses the same as the xapi style', async () => {
    const struct = {
      host_ref: 'OpaqueRef:133c0000-0000-4000-8000-000000000000',
      command: 'vdi_create',
      args: ['10737418240', 'Ünïcødé', 'Created by template provisioner', '', 'false', '19700101T00:00:00Z', '', 'false'],
      device_config: { SRmaster: 'true', device: '/dev/disk/by-id/x-part3' },
      session_ref: 'OpaqueRef:c2c60000-0000-4000-8000-000000000000',
      sr_ref: 'OpaqueRef:c5230000-0000-4000-8000-000000000000',
      vdi_type: 'system',
      sr_uuid: SR_UUID,
      vdi_sm_config: {},
      subtask_of: 'DummyRef:|0c530000-0000-4000-8000-000000000000|VDI.create',
    };
    const py = await pyDumps([struct], 'vdi_create');
    expect(py).toContain('<string>');
    const a = parseRequest(py);
    expect(a.args.kind === 'vdi_create' && a.args.name_label).toBe('Ünïcødé');
    expect(a.device_config.device).toBe('/dev/disk/by-id/x-part3');
    expect(a.subtask_of).toBe(struct.subtask_of);
  });

  test('entities and whitespace in strings are kept exactly', () => {
    const req = parseRequest(
      smRequest('vdi_create', { args: ['1024', '  a & <b> "c" \'d\'  ', '', '', 'false', '19700101T00:00:00Z', '', 'false'] }),
    );
    expect(req.args.kind === 'vdi_create' && req.args.name_label).toBe('  a & <b> "c" \'d\'  ');
  });
});

describe('bad input is a BadRequest (or IllegalXMLChar) naming what was wrong', () => {
  const expectFault = (fn: () => unknown, code: number, text: RegExp): void => {
    try {
      fn();
    } catch (e) {
      expect(e).toBeInstanceOf(SmError);
      expect((e as SmError).code).toBe(code);
      expect((e as SmError).message).toMatch(text);
      return;
    }
    throw new Error('expected a fault');
  };
  const vdiCreate = (a: string[]): string => smRequest('vdi_create', { args: a });
  const okArgs = ['1024', 'x', '', '', 'false', '19700101T00:00:00Z', '', 'false'];

  test('wrong argv count', () => {
    expectFault(() => parseArgv([]), 143, /exactly one argument/);
    expectFault(() => parseArgv(['a', 'b']), 143, /got 2/);
  });
  test('unparseable XML', () => {
    expectFault(() => parseRequest('<methodCall><methodName>x'), 143, /unparseable/);
    expectFault(() => parseRequest('not xml at all'), 143, /unparseable/);
    expectFault(() => parseRequest('<methodCall><methodName>sr_scan</methodName><params><param><value><int>x</int></value></param></params></methodCall>'), 143, /unparseable/);
  });
  test('methodName and command mismatch, unknown command', () => {
    expectFault(() => parseRequest(smRequest('sr_scan').replace('<methodName>sr_scan', '<methodName>sr_attach')), 143, /does not match/);
    expectFault(() => parseRequest(smRequest('sr_frobnicate')), 143, /unknown command/);
  });
  test('missing keys', () => {
    expectFault(() => parseRequest(smRequest('sr_scan', { session: false })), 143, /session_ref/);
    expectFault(() => parseRequest(smRequest('sr_scan', { sr: false })), 143, /sr_uuid/);
    expectFault(() => parseRequest(smRequest('vdi_delete')), 143, /vdi_ref/);
    expectFault(() => parseRequest(smRequest('vdi_create', { args: ['1024'] })), 143, /takes 8 args, got 1/);
    expectFault(() => parseRequest(smRequest('vdi_introduce')), 143, /new_uuid/);
  });
  test('a uuid that is not a uuid', () => {
    expectFault(() => parseRequest(smRequest('sr_scan').replace(SR_UUID, '../../etc')), 143, /sr_uuid is not a uuid/);
    expectFault(() => parseRequest(smRequest('vdi_delete', { vdi: true }).replace(`<name>vdi_uuid</name><value>${VDI_UUID}`, '<name>vdi_uuid</name><value>zzz')), 143, /vdi_uuid is not a uuid/);
  });
  test('a size that is not a decimal byte count', () => {
    for (const bad of ['10G', '-1', '1e9', '', ' 5', '0x10', '1.5', '99999999999999999999']) {
      expectFault(() => parseRequest(vdiCreate([bad, ...okArgs.slice(1)])), 143, /virtual_size/);
    }
    expectFault(() => parseRequest(smRequest('vdi_resize', { vdi: true, args: ['big'] })), 143, /new_size/);
  });
  test('a name with control characters', () => {
    // XML text cannot carry C0 controls; they can only arrive as character references.
    const withRef = (label: string, desc: string): string =>
      vdiCreate(['1024', 'LABEL', 'DESC', ...okArgs.slice(3)]).replace('LABEL', label).replace('DESC', desc);
    expectFault(() => parseRequest(withRef('bad&#x1;name', '')), 447, /control character U\+0001/);
    expectFault(() => parseRequest(withRef('two&#10;lines', '')), 447, /name_label/);
    expectFault(() => parseRequest(withRef('x', 'bell&#7;')), 447, /U\+0007/);
    expectFault(() => parseRequest(withRef('del&#x7f;', '')), 447, /U\+007F/);
    // A newline in a description is fine (XenCenter allows multi-line descriptions).
    expect(parseRequest(withRef('x', 'line&#10;two')).args).toMatchObject({ name_description: 'line\ntwo' });
  });
  test('booleans must be exactly true or false', () => {
    expectFault(() => parseRequest(smRequest('vdi_attach', { vdi: true, args: ['yes'] })), 143, /writable/);
  });
  test('a location that could be a path trick', () => {
    expectFault(() => parseRequest(smRequest('vdi_delete', { vdi: true }).replace(`<name>vdi_location</name><value>${VDI_UUID}`, '<name>vdi_location</name><value>../../x')), 143, /vdi_location/);
  });
});
