// The flatsnap-tapdisk host plugin: what it accepts (the call xapi makes, args validated
// before anything runs), what it answers (the XenAPI envelope xapi requires, read back
// by Python's xmlrpc.client), and the built plugin pausing a tapdisk of a simulated
// host (fake tap-ctl under FLATSNAP_DATAPATH_ROOT; needs root for the fake's mknod).
import { execa } from 'execa';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { TapdiskDatapath } from '../../src/datapath/tapdisk.js';
import { PluginFailure, parsePluginCall, type PluginCall } from '../../src/host-plugin/protocol.js';
import { validateCall } from '../../src/host-plugin/tapdisk-plugin.js';
import { encodeMethodCall, type XmlRpcValue } from '../../src/smapi/xmlrpc.js';
import { XAPI_ENV } from '../helpers/driver.js';
import { fakeTapState, installFakeTapCtl } from '../helpers/fake-tap-ctl.js';
import { pyLoads } from '../helpers/python.js';

const SR = '11111111-2222-4333-8444-555555555555';
const VDI = 'aaaaaaaa-0000-4000-8000-000000000001';
const PLUGIN = join(process.cwd(), 'plugin', 'flatsnap-tapdisk');

/** The argv[1] xapi_plugins.ml writes: methodCall(fn, [session, struct]), bare strings. */
const xapiCall = (fn: string, args: XmlRpcValue, session: XmlRpcValue = 'OpaqueRef:s') => encodeMethodCall(fn, [session, args]);

function failure(f: () => unknown): [string, ...string[]] {
  try {
    f();
  } catch (e) {
    if (e instanceof PluginFailure) return [e.code, ...e.params];
    throw e;
  }
  throw new Error('expected a PluginFailure');
}

const call = (fn: string, args: Record<string, string>): PluginCall => ({ fn, session: 'OpaqueRef:s', args });

describe('the call xapi makes', () => {
  test('parsed: function, session, args', () => {
    expect(parsePluginCall([xapiCall('pause', { sr_uuid: SR, vdi_uuid: VDI })])).toEqual({ fn: 'pause', session: 'OpaqueRef:s', args: { sr_uuid: SR, vdi_uuid: VDI } });
  });

  test.each<[string, string[], string]>([
    ['no argument', [], 'expected exactly one argument'],
    ['two arguments', ['a', 'b'], 'expected exactly one argument'],
    ['not XML', ['pause sr=x'], 'not XML-RPC'],
    ['one param', [encodeMethodCall('pause', ['OpaqueRef:s'])], 'expected 2 params'],
    ['args not a struct', [xapiCall('pause', ['x'])], 'args are not a struct'],
    ['an arg not a string', [xapiCall('pause', { sr_uuid: 1 })], 'args.sr_uuid is not a string'],
    ['session not a string', [xapiCall('pause', {}, 5)], 'session is not a string'],
  ])('refused: %s', (_what, argv, msg) => {
    const f = failure(() => parsePluginCall(argv));
    expect(f[0]).toBe('XENAPI_PLUGIN_EXCEPTION');
    expect(f[2]).toBe('BadRequest');
    expect(f[3]).toContain(msg);
  });
});

describe('argument validation', () => {
  test('pause and unpause with two uuids (normalised to lower case)', () => {
    expect(validateCall(call('pause', { sr_uuid: SR, vdi_uuid: VDI }))).toEqual({ fn: 'pause', target: { srUuid: SR, vdiUuid: VDI } });
    expect(validateCall(call('unpause', { sr_uuid: SR.toUpperCase(), vdi_uuid: VDI.toUpperCase() }))).toEqual({ fn: 'unpause', target: { srUuid: SR, vdiUuid: VDI } });
  });

  test('a function it does not have: UNKNOWN_XENAPI_PLUGIN_FUNCTION, as XenAPIPlugin answers', () => {
    expect(failure(() => validateCall(call('refresh', { sr_uuid: SR, vdi_uuid: VDI })))).toEqual(['UNKNOWN_XENAPI_PLUGIN_FUNCTION', 'refresh']);
  });

  test.each<[string, Record<string, string>, string]>([
    ['missing vdi_uuid', { sr_uuid: SR }, 'pause needs args.vdi_uuid'],
    ['missing sr_uuid', { vdi_uuid: VDI }, 'pause needs args.sr_uuid'],
    ['a path for a uuid', { sr_uuid: SR, vdi_uuid: '../../etc/passwd' }, 'vdi_uuid is not a uuid'],
    ['a shell word for a uuid', { sr_uuid: `${SR}; reboot`, vdi_uuid: VDI }, 'sr_uuid is not a uuid'],
    ['an empty uuid', { sr_uuid: '', vdi_uuid: VDI }, 'sr_uuid is not a uuid'],
    ['an arg it does not know', { sr_uuid: SR, vdi_uuid: VDI, failfast: 'true' }, 'unknown args: failfast'],
  ])('refused before anything runs: %s', (_what, args, msg) => {
    const f = failure(() => validateCall(call('pause', args)));
    expect(f.slice(0, 3)).toEqual(['XENAPI_PLUGIN_EXCEPTION', 'pause', 'BadRequest']);
    expect(f[3]).toContain(msg);
  });
});

const built = existsSync(PLUGIN);
const root = process.getuid?.() === 0;
(built ? describe : describe.skip)('the built plugin, as xapi runs it', () => {
  let dir: string;
  let env: Record<string, string>;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'flatsnap-host-plugin-'));
    env = { ...XAPI_ENV, FLATSNAP_SMLOG: join(dir, 'SMlog'), FLATSNAP_LOCK_DIR: join(dir, 'lock'), FLATSNAP_DATAPATH_ROOT: join(dir, 'host') };
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const run = async (argv: string[]) => {
    const r = await execa(PLUGIN, argv, { env, extendEnv: false, reject: false });
    expect(r.exitCode).toBe(0);
    expect(r.stdout.match(/<methodResponse>/g)).toHaveLength(1);
    return (await pyLoads(r.stdout)).params![0] as { Status: string; Value?: string; ErrorDescription?: string[] };
  };

  test('bad input: a Failure envelope, exit 0, nothing run', async () => {
    expect(await run([xapiCall('pause', { sr_uuid: SR, vdi_uuid: 'x' })])).toEqual({
      Status: 'Failure',
      ErrorDescription: ['XENAPI_PLUGIN_EXCEPTION', 'pause', 'BadRequest', expect.stringContaining('vdi_uuid is not a uuid')],
    });
    expect(await run([xapiCall('resume', {})])).toEqual({ Status: 'Failure', ErrorDescription: ['UNKNOWN_XENAPI_PLUGIN_FUNCTION', 'resume'] });
    expect(await run([])).toMatchObject({ Status: 'Failure' });
  });

  test('a host without blktap: Success "no-blktap"', async () => {
    expect(await run([xapiCall('pause', { sr_uuid: SR, vdi_uuid: VDI })])).toEqual({ Status: 'Success', Value: 'no-blktap' });
  });

  (root ? test : test.skip)('pauses and unpauses the tapdisk serving the VDI on its host, under the per-VDI lock', async () => {
    const bin = join(dir, 'host', 'usr', 'sbin');
    installFakeTapCtl(bin);
    const image = join(dir, 'image');
    writeFileSync(image, '');
    const h = join(dir, 'host');
    const dp = new TapdiskDatapath({ tapCtl: join(bin, 'tap-ctl'), smDev: join(h, 'dev/sm'), blktapRun: join(h, 'run/blktap-control'), tapdevDir: join(h, 'dev/xen/blktap-2') });
    const t = { srUuid: SR, vdiUuid: VDI };
    expect(await run([xapiCall('pause', { sr_uuid: SR, vdi_uuid: VDI })])).toEqual({ Status: 'Success', Value: 'not-running' });
    await dp.attach({ ...t, path: image }, true);
    await dp.activate(t, true);
    expect(await run([xapiCall('pause', { sr_uuid: SR, vdi_uuid: VDI })])).toEqual({ Status: 'Success', Value: 'paused' });
    expect(fakeTapState(bin).taps[0]).toMatchObject({ paused: true });
    expect(await run([xapiCall('unpause', { sr_uuid: SR, vdi_uuid: VDI })])).toEqual({ Status: 'Success', Value: 'unpaused' });
    expect(fakeTapState(bin).taps[0]).not.toHaveProperty('paused');
    expect(existsSync(join(dir, 'lock', VDI, 'vdi'))).toBe(true);
    // tap-ctl failing: the kind and message come back in the envelope
    writeFileSync(join(bin, 'fail-pause'), '');
    expect(await run([xapiCall('pause', { sr_uuid: SR, vdi_uuid: VDI })])).toEqual({
      Status: 'Failure',
      ErrorDescription: ['XENAPI_PLUGIN_EXCEPTION', 'pause', 'TapdiskFailed', expect.stringContaining('pause failed (fail-pause)')],
    });
  });
});
