// `flatsnap` command-line parsing: what each subcommand accepts, and usage errors
// (exit status 2) with messages that name the option.
import { describe, expect, test } from '@jest/globals';
import { type ArgsEnv, type Invocation, UsageError, parseArgs, parseOptions, requirePathArg } from '../../src/cli/args.js';
import { EXIT, run } from '../../src/cli/main.js';
import type { Io } from '../../src/cli/output.js';

const VDI = '3f2c8a1e-0b7d-4c55-9d41-6a2f1b0c9e77';
const VM = '5b1d0c2e-7a44-4f1e-8c3a-0d9e2f6b1a55';
const T = Date.UTC(2026, 10, 25, 1, 2, 3);
const ENV: ArgsEnv = { env: {}, now: () => T, readFile: () => 'secret\n' };

const parse = (...argv: string[]): Invocation => parseArgs(argv, ENV);
const usage = (argv: string[], msg: RegExp | string): void => {
  expect(() => parseArgs(argv, ENV)).toThrow(UsageError);
  expect(() => parseArgs(argv, ENV)).toThrow(msg);
};

describe('help and version', () => {
  test.each([[[]], [['nope']], [['--json']]])('%j is a usage error', (argv) => {
    expect(() => parse(...argv)).toThrow(UsageError);
  });
  test('forms of help', () => {
    expect(parse('--help')).toEqual({ cmd: 'help' });
    expect(parse('-h')).toEqual({ cmd: 'help' });
    expect(parse('help')).toEqual({ cmd: 'help' });
    expect(parse('help', 'seek')).toEqual({ cmd: 'help', topic: 'seek' });
    expect(parse('gc', '--help')).toEqual({ cmd: 'help', topic: 'gc' });
    // --help wins even over a bad command line.
    expect(parse('seek', '--vdi', 'nope', '-h')).toEqual({ cmd: 'help', topic: 'seek' });
    usage(['help', 'nope'], /takes one of tree, seek, gc, check/);
    expect(parse('--version')).toEqual({ cmd: 'version' });
  });
  test('options before the command', () => {
    usage(['--path', '/srv/sr', 'tree'], /give a command before the options/);
  });
});

describe('the SR: --dataset or --path', () => {
  test('reflink directory, normalised', () => {
    expect(parse('tree', '--path', '/srv/sr/')).toMatchObject({ cmd: 'tree', target: { kind: 'reflink', path: '/srv/sr' } });
    expect(parse('tree', '--path=//srv//sr')).toMatchObject({ target: { kind: 'reflink', path: '/srv/sr' } });
  });
  test('ZFS dataset, checked like device-config:dataset', () => {
    expect(parse('tree', '--dataset', 'tank/flatsnap/sr1')).toMatchObject({ target: { kind: 'zfs', dataset: 'tank/flatsnap/sr1' } });
    usage(['tree', '--dataset', 'tank'], /--dataset: .*whole pool/);
    usage(['tree', '--dataset', 'tank/sr@snap'], /--dataset: .*snapshot/);
    usage(['tree', '--dataset', '/tank/sr'], /--dataset: .*must not start with "\/"/);
    usage(['tree', '--dataset', 'tank/a b'], /--dataset: .*invalid component/);
  });
  test('exactly one of them', () => {
    usage(['tree'], /which SR\? give its storage: --dataset POOL\/PATH \(ZFS\) or --path DIR/);
    usage(['tree', '--path', '/srv/sr', '--dataset', 'tank/sr'], /either --dataset \(ZFS\) or --path \(reflink\), not both/);
  });
  test.each([
    ['srv/sr', /not an absolute path/],
    ['/', /root directory/],
    ['///', /root directory/],
    ['/srv/../etc', /"\." or "\.\." components/],
    ['/srv/./sr', /"\." or "\.\." components/],
    ['/srv/s\nr', /control character/],
    [`/${'a'.repeat(1100)}`, /longer than 1024/],
  ])('--path %j', (p, msg) => {
    expect(() => requirePathArg('tree', p)).toThrow(msg);
  });
});

describe('option syntax', () => {
  test('--name value and --name=value', () => {
    expect(parseOptions('tree', ['--vdi', VDI, '--json'])).toEqual(new Map<string, string | true>([['vdi', VDI], ['json', true]]));
    expect(parseOptions('tree', [`--vdi=${VDI}`])).toEqual(new Map([['vdi', VDI]]));
  });
  test.each<[string[], RegExp]>([
    [['--frob'], /unknown option --frob for "flatsnap tree"/],
    [['--dry-run'], /unknown option --dry-run for "flatsnap tree"/], // gc's, not tree's
    [['--vdi'], /--vdi needs a value/],
    [['--vdi', '--json'], /--vdi needs a value/],
    [['--vdi='], /--vdi needs a non-empty value/],
    [['--json=yes'], /--json takes no value/],
    [['--json', '--json'], /--json is given more than once/],
    [['--vdi', VDI, '--vdi', VDI], /--vdi is given more than once/],
    [['extra'], /unexpected argument "extra"/],
    [['--'], /unexpected argument "--"/],
    [['-x'], /unexpected argument "-x"/],
  ])('%j', (argv, msg) => {
    expect(() => parseOptions('tree', argv)).toThrow(msg);
  });
});

describe('tree', () => {
  test('--vdi is a uuid, any case, returned lower-case', () => {
    expect(parse('tree', '--path', '/srv/sr', '--vdi', VDI.toUpperCase(), '--json')).toEqual({
      cmd: 'tree',
      target: { kind: 'reflink', path: '/srv/sr' },
      json: true,
      timings: false,
      vdi: VDI,
    });
    usage(['tree', '--path', '/srv/sr', '--vdi', 'disk0'], /--vdi: "disk0" is not a uuid/);
    usage(['tree', '--path', '/srv/sr', '--vdi', `${VDI}x`], /is not a uuid/);
  });
});

describe('seek', () => {
  const base = ['seek', '--path', '/srv/sr'];
  test('--vdi and --at', () => {
    expect(parse(...base, '--vdi', VDI, '--at', '20261125T01:02:03Z')).toEqual({
      cmd: 'seek',
      target: { kind: 'reflink', path: '/srv/sr' },
      json: false,
      timings: false,
      at: T,
      vdi: VDI,
    });
    expect(parse(...base, '--vdi', VDI, '--at', 'now')).toMatchObject({ at: T });
  });
  test('--at is required and checked', () => {
    usage([...base, '--vdi', VDI], /--at TIME is required/);
    usage([...base, '--vdi', VDI, '--at', '2026-11-25T01:02:03'], /--at: .*no time zone/);
    usage([...base, '--vdi', VDI, '--at', '2026-02-30T00:00:00Z'], /--at: .*day 30 does not exist/);
  });
  test('exactly one of --vdi and --vm', () => {
    usage([...base, '--at', 'now'], /exactly one of --vdi UUID \(one disk\) and --vm UUID/);
    usage([...base, '--at', 'now', '--vdi', VDI, '--vm', VM], /exactly one of --vdi/);
    usage([...base, '--at', 'now', '--vm', 'web01'], /--vm: "web01" is not a uuid/);
  });
  test('xapi options only with --vm', () => {
    usage([...base, '--at', 'now', '--vdi', VDI, '--xapi', 'local'], /--xapi are only used with --vm/);
    usage([...base, '--at', 'now', '--vdi', VDI, '--user', 'root', '--password', 'x'], /--user, --password are only used with --vm/);
  });
  test('--vm: xapi from --xapi, else FLATSNAP_XAPI_URL, else the local socket', () => {
    const vm = [...base, '--at', 'now', '--vm', VM];
    expect(parseArgs([...vm, '--xapi', 'http://10.0.0.1:8080/x', '--user', 'admin', '--password', 'pw'], ENV)).toMatchObject({
      vm: VM,
      xapi: { endpoint: { host: '10.0.0.1', port: 8080, path: '/x' }, user: 'admin', password: 'pw' },
    });
    expect(parseArgs(vm, ENV)).toMatchObject({ xapi: { endpoint: { socketPath: '/var/lib/xcp/xapi', path: '/' }, user: 'root', password: '' } });
    expect(parseArgs(vm, { ...ENV, env: { FLATSNAP_XAPI_URL: 'http://127.0.0.1:4000/', FLATSNAP_XAPI_PASSWORD: 'envpw' } })).toMatchObject({
      xapi: { endpoint: { host: '127.0.0.1', port: 4000, path: '/' }, password: 'envpw' },
    });
    expect(parseArgs([...vm, '--xapi', 'http://[::1]/'], ENV)).toMatchObject({ xapi: { endpoint: { host: '::1', port: 80 } } });
    expect(() => parseArgs(vm, { ...ENV, env: { FLATSNAP_XAPI_URL: 'nope' } })).toThrow(/FLATSNAP_XAPI_URL: "nope" is neither/);
  });
  test('--xapi URLs that are refused', () => {
    const vm = [...base, '--at', 'now', '--vm', VM, '--xapi'];
    usage([...vm, 'https://pool.example/'], /https is not supported/);
    usage([...vm, 'ftp://pool.example/'], /not an http:\/\/ URL/);
    usage([...vm, 'http://root:pw@pool.example/'], /credentials in --user and --password, not in the URL/);
    usage([...vm, 'pool.example'], /neither "local" nor a URL/);
  });
  test('--password-file: its first line; not with --password', () => {
    const vm = [...base, '--at', 'now', '--vm', VM, '--xapi', 'local'];
    expect(parseArgs([...vm, '--password-file', '/root/pw'], ENV)).toMatchObject({ xapi: { password: 'secret' } });
    usage([...vm, '--password-file', '/root/pw', '--password', 'x'], /--password or --password-file, not both/);
    const missing: ArgsEnv = {
      ...ENV,
      readFile: () => {
        throw Object.assign(new Error('nope'), { code: 'ENOENT' });
      },
    };
    expect(() => parseArgs([...vm, '--password-file', '/root/pw'], missing)).toThrow(/--password-file: cannot read "\/root\/pw": ENOENT/);
    usage([...vm, '--user', 'ro\u0007ot'], /--user: .*control character/);
  });
});

describe('gc and check', () => {
  test('gc --dry-run', () => {
    expect(parse('gc', '--path', '/srv/sr', '--dry-run')).toMatchObject({ cmd: 'gc', dryRun: true });
    expect(parse('gc', '--path', '/srv/sr')).toMatchObject({ cmd: 'gc', dryRun: false });
    usage(['gc', '--path', '/srv/sr', '--vdi', VDI], /unknown option --vdi for "flatsnap gc"/);
  });
  test('check: xapi only with --xapi', () => {
    expect(parse('check', '--path', '/srv/sr')).toEqual({ cmd: 'check', target: { kind: 'reflink', path: '/srv/sr' }, json: false, timings: false, health: true });
    expect(parse('check', '--path', '/srv/sr', '--no-health', '--xapi', 'local')).toMatchObject({ health: false, xapi: { user: 'root', password: '' } });
    usage(['check', '--path', '/srv/sr', '--user', 'root'], /--user need --xapi URL/);
  });
});

describe('run(): exit status and where messages go', () => {
  const capture = (): Io & { outs: string[]; errs: string[] } => {
    const outs: string[] = [];
    const errs: string[] = [];
    return { outs, errs, out: (l) => outs.push(l), err: (l) => errs.push(l) };
  };
  test('usage error: 2, message and a pointer to the help on stderr, nothing on stdout', async () => {
    const io = capture();
    expect(await run(['seek', '--path', '/srv/sr', '--vdi', 'x', '--at', 'now'], io, ENV)).toBe(EXIT.usage);
    expect(io.outs).toEqual([]);
    expect(io.errs[0]).toBe('flatsnap: --vdi: "x" is not a uuid (8-4-4-4-12 hex digits, as xe prints them)');
    expect(io.errs[1]).toMatch(/flatsnap seek --help/);
  });
  test('help: 0 on stdout', async () => {
    const io = capture();
    expect(await run(['help', 'check'], io, ENV)).toBe(EXIT.ok);
    expect(io.outs.join('\n')).toMatch(/^usage: flatsnap check/);
  });
  test('a storage failure: 3; with --json also a JSON error on stdout', async () => {
    const io = capture();
    expect(await run(['tree', '--path', '/nonexistent/flatsnap-cli-test', '--json'], io, ENV)).toBe(EXIT.failed);
    expect(io.errs[0]).toMatch(/^flatsnap tree: .*\/nonexistent\/flatsnap-cli-test.*no such directory/);
    expect(JSON.parse(io.outs.join('\n'))).toEqual({ error: { message: expect.stringMatching(/no such directory/), kind: 'SRUnavailable' } });
  });
});
