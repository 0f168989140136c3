// The bundled executable, run as xapi runs it, answers with exactly one
// methodResponse on stdout and exit status 0, whatever it is given.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runDriver } from '../helpers/driver.js';
import { smRequest } from '../helpers/requests.js';

let dir: string;
let env: Record<string, string>;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'flatsnap-exec-'));
  env = { FLATSNAP_SMLOG: join(dir, 'SMlog'), FLATSNAP_LOCK_DIR: join(dir, 'lock') };
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

test('sr_get_driver_info answers every field xapi requires, without a session', async () => {
  const r = await runDriver([smRequest('sr_get_driver_info')], env);
  expect(r.exitCode).toBe(0);
  expect(r.parsed.fault).toBeUndefined();
  const info = r.parsed.params![0] as Record<string, unknown>;
  for (const k of ['name', 'description', 'vendor', 'copyright', 'driver_version', 'required_api_version']) {
    expect(typeof info[k]).toBe('string');
  }
  expect(Array.isArray(info.capabilities)).toBe(true);
  expect(Array.isArray(info.configuration)).toBe(true);
  // Never advertised by an SMAPIv1 driver: it sends static-vdis down the SMAPIv3 path.
  expect(info.capabilities).not.toContain('VDI_ATTACH_OFFLINE');
});

test('stdout holds one methodResponse and nothing else; logs go to SMlog', async () => {
  const r = await runDriver([smRequest('sr_get_driver_info')], env);
  expect(r.stdout.match(/<methodResponse>/g)).toHaveLength(1);
  expect(r.stdout.trim().endsWith('</methodResponse>')).toBe(true);
  const log = readFileSync(env.FLATSNAP_SMLOG!, 'utf8');
  expect(log).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} SM: \[\d+\] sr_get_driver_info$/m);
  expect(log).toMatch(/sr_get_driver_info ok in [\d.]+ ms/);
});

test('a command not implemented yet answers fault 38, not a crash', async () => {
  const r = await runDriver([smRequest('vdi_generate_config', { vdi: true })], env);
  expect(r.exitCode).toBe(0);
  expect(r.parsed.fault?.code).toBe(38);
  expect(r.parsed.fault?.string).toMatch(/vdi_generate_config is not implemented/);
});

describe('bad input gets a well-formed fault and exit 0', () => {
  const cases: Array<[string, string[], number, RegExp]> = [
    ['no argument', [], 143, /exactly one argument/],
    ['two arguments', ['<a/>', '<b/>'], 143, /got 2/],
    ['unparseable XML', ['<methodCall><oops'], 143, /unparseable/],
    ['command mismatch', [smRequest('sr_scan').replace('<methodName>sr_scan', '<methodName>sr_attach')], 143, /does not match/],
    ['missing session', [smRequest('sr_scan', { session: false })], 143, /session_ref/],
    ['bad uuid', [smRequest('sr_scan').replace(/<name>sr_uuid<\/name><value>[^<]+/, '<name>sr_uuid</name><value>nope')], 143, /sr_uuid is not a uuid/],
    ['bad size', [smRequest('vdi_resize', { vdi: true, args: ['12GiB'] })], 143, /not a decimal byte count/],
    ['control character', [smRequest('vdi_create', { args: ['1', 'X', '', '', 'false', '19700101T00:00:00Z', '', 'false'] }).replace('<value>X</value>', '<value>a&#x1b;b</value>')], 447, /U\+001B/],
  ];
  test.each(cases)('%s', async (_name, argv, code, msg) => {
    const r = await runDriver(argv, env);
    expect(r.exitCode).toBe(0);
    expect(r.parsed.fault?.code).toBe(code);
    expect(r.parsed.fault?.string).toMatch(msg);
  });
});

test('the session ref is never logged', async () => {
  await runDriver([smRequest('vdi_generate_config', { vdi: true })], env);
  expect(readFileSync(env.FLATSNAP_SMLOG!, 'utf8')).not.toContain('5e55e55e-0000-4000-8000-000000000001');
});
