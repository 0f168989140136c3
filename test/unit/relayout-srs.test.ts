// `flatsnap relayout --all-srs` (src/cli/relayout-srs.ts), the parts without storage: its
// command line, this host's uuid from the inventory, and which SRs it picks from xapi's
// records. On a real XFS with the simulator: test/integration/relayout-all-srs.test.ts.
import { describe, expect, test } from '@jest/globals';
import { type ArgsEnv, type Invocation, UsageError, parseArgs } from '../../src/cli/args.js';
import { hostUuidFrom, selectSrs } from '../../src/cli/relayout-srs.js';
import { XAPI_SOCKET } from '../../src/xapi/transport.js';

const HOST = '0c7d2a4e-8f31-4b6a-9e55-1d2c3b4a5f60';
const ENV: ArgsEnv = { env: {}, readFile: () => 'secret\n' };
const parse = (...argv: string[]): Invocation => parseArgs(argv, ENV);
const usage = (argv: string[], msg: RegExp): void => {
  expect(() => parseArgs(argv, ENV)).toThrow(UsageError);
  expect(() => parseArgs(argv, ENV)).toThrow(msg);
};

describe('the command line', () => {
  test('--all-srs needs no SR and asks the local xapi by default', () => {
    expect(parse('relayout', '--all-srs')).toEqual({
      cmd: 'relayout',
      allSrs: true,
      json: false,
      timings: false,
      xapi: { endpoint: { socketPath: XAPI_SOCKET, path: '/' }, where: `the local xapi socket ${XAPI_SOCKET}`, user: 'root', password: '' },
    });
    expect(parse('relayout', '--all-srs', '--host', HOST.toUpperCase(), '--min-extents', '500', '--json', '--xapi', 'http://127.0.0.1:8080/', '--password-file', '/p')).toMatchObject({
      allSrs: true,
      json: true,
      host: HOST,
      minExtents: 500,
      xapi: { endpoint: { host: '127.0.0.1', port: 8080, path: '/' }, password: 'secret' },
    });
  });

  test('usage errors', () => {
    usage(['relayout', '--all-srs', '--path', '/srv/sr'], /--all-srs finds the SRs itself \(from xapi\): no --path/);
    usage(['relayout', '--all-srs', '--all', '--vdi', HOST], /no --vdi, --all/);
    usage(['relayout', '--all-srs', '--host', 'me'], /--host: "me" is not a uuid/);
    usage(['relayout', '--all-srs', '--min-extents', '0'], /--min-extents: "0" is not a positive extent count/);
    usage(['relayout', '--path', '/srv/sr', '--all', '--xapi', 'local'], /--xapi go with --all-srs only/);
    usage(['relayout', '--path', '/srv/sr', '--all', '--host', HOST], /--host goes with --all-srs only/);
    usage(['relayout', '--path', '/srv/sr', '--vdi', HOST, '--min-extents', '5'], /--min-extents goes with --all/);
    usage(['relayout'], /which SR\?/);
  });
});

test("this host's uuid from /etc/xensource-inventory", () => {
  const inv = `PRODUCT_BRAND='XCP-ng'\nINSTALLATION_UUID='${HOST.toUpperCase()}'\nCONTROL_DOMAIN_UUID='5b1d0c2e-7a44-4f1e-8c3a-0d9e2f6b1a55'\n`;
  expect(hostUuidFrom(inv)).toBe(HOST);
  expect(hostUuidFrom(`INSTALLATION_UUID=${HOST}\n`)).toBe(HOST);
  expect(hostUuidFrom("CONTROL_DOMAIN_UUID='5b1d0c2e-7a44-4f1e-8c3a-0d9e2f6b1a55'\n")).toBeUndefined();
});

describe('which SRs', () => {
  const sr = (uuid: string, type: string, shared = false) => ({ uuid, name_label: `sr ${uuid}`, type, shared });
  const srs = new Map([
    ['SR:a', sr('a', 'flatsnap')],
    ['SR:b', sr('b', 'flatsnap')],
    ['SR:c', sr('c', 'flatsnap')],
    ['SR:z', sr('z', 'flatsnap')],
    ['SR:ext', sr('ext', 'ext')],
    ['SR:ocfs2', sr('ocfs2', 'flatsnap', true)],
    ['SR:bad', sr('bad', 'flatsnap')],
    ['SR:unplugged', sr('unplugged', 'flatsnap')],
    ['SR:u', sr('u', 'flatsnap')],
  ]);
  const pbd = (host: string, SR: string, device_config: Record<string, string>, currently_attached = true) => ({ host, SR, device_config, currently_attached });
  const pbds = new Map([
    ['PBD:1', pbd('H:me', 'SR:a', { path: '/srv/a' })],
    ['PBD:2', pbd('H:me', 'SR:b', { path: '/srv/b', relayout: 'off', unshare: 'off' })],
    ['PBD:3', pbd('H:me', 'SR:c', { path: '/srv/c', relayout: '500' })],
    ['PBD:4', pbd('H:me', 'SR:z', { dataset: 'tank/sr' })],
    ['PBD:5', pbd('H:me', 'SR:ext', { device: '/dev/sdb' })],
    ['PBD:6', pbd('H:me', 'SR:ocfs2', { path: '/srv/ocfs2' })],
    ['PBD:7', pbd('H:other', 'SR:ocfs2', { path: '/srv/ocfs2' })],
    ['PBD:8', pbd('H:me', 'SR:bad', { path: 'relative' })],
    ['PBD:9', pbd('H:me', 'SR:unplugged', { path: '/srv/u' }, false)],
    ['PBD:10', pbd('H:other', 'SR:a', { path: '/srv/a-there' })],
    ['PBD:11', pbd('H:me', 'SR:u', { path: '/srv/u2', relayout: 'off', unshare: 'on' })],
  ]);

  test('on a pool member: its own plugged reflink SRs, each with its threshold; relayout=off, shared and refused ones skipped', () => {
    const r = selectSrs('H:me', 'H:other', pbds, srs, undefined);
    expect(r.targets).toEqual([
      // The default: unshare=auto, the unshare only while the filesystem has room.
      { sr: 'a', name_label: 'sr a', path: '/srv/a', threshold: 2048, unshare: true, unshareIfRoom: true, rewrite: true },
      { sr: 'c', name_label: 'sr c', path: '/srv/c', threshold: 500, unshare: true, unshareIfRoom: true, rewrite: true },
      // relayout=off with unshare=on: only the unshare, whatever the room.
      { sr: 'u', name_label: 'sr u', path: '/srv/u2', threshold: 2048, unshare: true, unshareIfRoom: false, rewrite: false },
    ]);
    expect(r.skipped).toEqual([
      { sr: 'b', name_label: 'sr b', path: '/srv/b', skipped: 'device-config:relayout and unshare are off' },
      { sr: 'bad', name_label: 'sr bad', skipped: expect.stringMatching(/device-config refused: .*relative/) },
      { sr: 'ocfs2', name_label: 'sr ocfs2', path: '/srv/ocfs2', skipped: 'a shared SR: its SR master (the pool master) relayouts it' },
    ]);
  });

  test('on the pool master the shared SR is its to relayout; --min-extents overrides every threshold', () => {
    const r = selectSrs('H:me', 'H:me', pbds, srs, 100);
    expect(r.targets.map((t) => [t.sr, t.threshold])).toEqual([
      ['a', 100],
      ['c', 100],
      ['ocfs2', 100],
      ['u', 100],
    ]);
    expect(r.skipped.map((s) => s.sr)).toEqual(['b', 'bad']);
  });

  test('the other host sees its own PBD of SR a, path and all', () => {
    const r = selectSrs('H:other', 'H:me', pbds, srs, undefined);
    expect(r.targets).toEqual([{ sr: 'a', name_label: 'sr a', path: '/srv/a-there', threshold: 2048, unshare: true, unshareIfRoom: true, rewrite: true }]);
    expect(r.skipped.map((s) => s.sr)).toEqual(['ocfs2']);
  });
});
