// The command line of `flatsnap`: one subcommand, then --options (`--name value` or
// `--name=value`). Every value is checked here, before any storage or xapi is touched;
// a bad command line is a UsageError (exit status 2) whose message names the option.
import { isAbsolute, normalize } from 'node:path';
import { SmError } from '../errors.js';
import { requireDatasetConfig } from '../backends/type-analysis.js';
import { XAPI_SOCKET, type XapiEndpoint } from '../xapi/transport.js';
import { TimeSyntaxError, parseTime } from './time.js';

export class UsageError extends Error {
  constructor(
    message: string,
    /** The subcommand whose usage to point at, if known. */
    readonly command?: CommandName,
  ) {
    super(message);
    this.name = 'UsageError';
  }
}

export const COMMANDS = ['tree', 'seek', 'gc', 'check', 'relayout'] as const;
export type CommandName = (typeof COMMANDS)[number];

/** Where the SR's storage is: the same keys as its device-config. */
export type StorageTarget = { readonly kind: 'zfs'; readonly dataset: string } | { readonly kind: 'reflink'; readonly path: string };

export interface XapiOptions {
  readonly endpoint: XapiEndpoint;
  /** For messages: "the local xapi socket /var/lib/xcp/xapi" or the URL. */
  readonly where: string;
  readonly user: string;
  readonly password: string;
}

interface Common {
  readonly target: StorageTarget;
  readonly json: boolean;
  /** Phase timings on stderr. */
  readonly timings: boolean;
}

export type Invocation =
  | { readonly cmd: 'help'; readonly topic?: CommandName }
  | { readonly cmd: 'version' }
  | (Common & { readonly cmd: 'tree'; readonly vdi?: string })
  | (Common & {
      readonly cmd: 'seek';
      readonly at: number;
      readonly vdi?: string;
      readonly vm?: string;
      readonly xapi?: XapiOptions;
    })
  | (Common & { readonly cmd: 'gc'; readonly dryRun: boolean })
  | (Common & { readonly cmd: 'check'; readonly xapi?: XapiOptions; readonly health: boolean })
  | (Common & { readonly cmd: 'relayout'; readonly vdi?: string; readonly minExtents?: number; readonly unshare: boolean; readonly unshareIfRoom: boolean; readonly rewrite: boolean })
  | {
      readonly cmd: 'relayout';
      /** Every flatsnap reflink SR plugged on this host (asks xapi), instead of one --path. */
      readonly allSrs: true;
      readonly json: boolean;
      readonly timings: boolean;
      readonly xapi: XapiOptions;
      /** This host's uuid; default: INSTALLATION_UUID of /etc/xensource-inventory. */
      readonly host?: string;
      readonly minExtents?: number;
    };

/** What parsing may read: the environment, the clock, password files. */
export interface ArgsEnv {
  env?: NodeJS.ProcessEnv;
  now?: () => number;
  readFile?: (path: string) => string;
}

type Kind = 'string' | 'boolean';
const COMMON: Record<string, Kind> = { dataset: 'string', path: 'string', json: 'boolean', timings: 'boolean', help: 'boolean' };
const XAPI: Record<string, Kind> = { xapi: 'string', user: 'string', password: 'string', 'password-file': 'string' };
const OPTIONS: Record<CommandName, Record<string, Kind>> = {
  tree: { ...COMMON, vdi: 'string' },
  seek: { ...COMMON, vdi: 'string', vm: 'string', at: 'string', ...XAPI },
  gc: { ...COMMON, 'dry-run': 'boolean' },
  check: { ...COMMON, 'no-health': 'boolean', ...XAPI },
  relayout: { ...COMMON, vdi: 'string', all: 'boolean', 'all-srs': 'boolean', host: 'string', 'min-extents': 'string', unshare: 'boolean', 'if-room': 'boolean', 'no-relayout': 'boolean', ...XAPI },
};

type Parsed = Map<string, string | true>;

/** `--a v --b=w --flag` into a map; unknown, repeated or value-less options are usage errors. */
export function parseOptions(cmd: CommandName, argv: readonly string[]): Parsed {
  const spec = OPTIONS[cmd];
  const out: Parsed = new Map();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '-h') {
      out.set('help', true);
      continue;
    }
    if (!arg.startsWith('--') || arg === '--') {
      throw new UsageError(`unexpected argument ${show(arg)}: options are given as --name value`, cmd);
    }
    const eq = arg.indexOf('=');
    const name = arg.slice(2, eq < 0 ? undefined : eq);
    const kind = spec[name];
    if (kind === undefined) throw new UsageError(`unknown option --${name} for "flatsnap ${cmd}"`, cmd);
    if (out.has(name)) throw new UsageError(`--${name} is given more than once`, cmd);
    if (kind === 'boolean') {
      if (eq >= 0) throw new UsageError(`--${name} takes no value`, cmd);
      out.set(name, true);
      continue;
    }
    let value: string | undefined;
    if (eq >= 0) value = arg.slice(eq + 1);
    else {
      value = argv[++i];
      // `--vdi --json`: the value is missing, not "--json".
      if (value === undefined || (value.startsWith('--') && value.length > 2)) {
        throw new UsageError(`--${name} needs a value`, cmd);
      }
    }
    if (value === '') throw new UsageError(`--${name} needs a non-empty value`, cmd);
    out.set(name, value);
  }
  return out;
}

/** The whole command line (without node and the script). */
export function parseArgs(argv: readonly string[], e: ArgsEnv = {}): Invocation {
  const env = e.env ?? process.env;
  const [first, ...rest] = argv;
  if (first === undefined) throw new UsageError('no command given');
  if (first === '--help' || first === '-h') return { cmd: 'help' };
  if (first === '--version' || first === 'version') return { cmd: 'version' };
  if (first === 'help') {
    if (rest.length === 0) return { cmd: 'help' };
    const topic = rest[0]!;
    if (rest.length > 1 || !isCommand(topic)) throw new UsageError(`"flatsnap help" takes one of ${COMMANDS.join(', ')}`);
    return { cmd: 'help', topic };
  }
  if (!isCommand(first)) {
    throw new UsageError(first.startsWith('-') ? `give a command before the options (one of ${COMMANDS.join(', ')})` : `unknown command ${show(first)}`);
  }
  const cmd = first;
  const o = parseOptions(cmd, rest);
  if (o.has('help')) return { cmd: 'help', topic: cmd };
  const str = (name: string): string | undefined => {
    const v = o.get(name);
    return typeof v === 'string' ? v : undefined;
  };
  if (cmd === 'relayout' && o.has('all-srs')) {
    const other = ['path', 'dataset', 'vdi', 'all', 'unshare', 'if-room', 'no-relayout'].filter((k) => o.has(k));
    if (other.length > 0) throw new UsageError(`--all-srs finds the SRs itself (from xapi): no ${other.map((k) => `--${k}`).join(', ')}`, cmd);
    const host = str('host');
    const min = minExtentsArg(cmd, str('min-extents'));
    return {
      cmd,
      allSrs: true,
      json: o.has('json'),
      timings: o.has('timings'),
      xapi: xapiOptions(cmd, o, e, env, true)!,
      ...(host !== undefined ? { host: requireUuidArg(cmd, 'host', host) } : {}),
      ...(min !== undefined ? { minExtents: min } : {}),
    };
  }
  const common: Common = { target: storageTarget(cmd, str('dataset'), str('path')), json: o.has('json'), timings: o.has('timings') };

  switch (cmd) {
    case 'tree': {
      const vdi = str('vdi');
      return { cmd, ...common, ...(vdi === undefined ? {} : { vdi: requireUuidArg(cmd, 'vdi', vdi) }) };
    }
    case 'seek': {
      const vdi = str('vdi');
      const vm = str('vm');
      if ((vdi === undefined) === (vm === undefined)) throw new UsageError('give exactly one of --vdi UUID (one disk) and --vm UUID (every disk of a VM)', cmd);
      const atText = str('at');
      if (atText === undefined) throw new UsageError('--at TIME is required: the time to seek to, e.g. --at 2026-11-25T01:02:03Z', cmd);
      let at: number;
      try {
        at = parseTime(atText, e.now);
      } catch (err) {
        if (err instanceof TimeSyntaxError) throw new UsageError(`--at: ${err.message}`, cmd);
        throw err;
      }
      if (vdi !== undefined) {
        rejectXapiOptions(cmd, o, 'are only used with --vm');
        return { cmd, ...common, at, vdi: requireUuidArg(cmd, 'vdi', vdi) };
      }
      // A VM's disks come from xapi: --xapi, else FLATSNAP_XAPI_URL, else the local socket.
      return { cmd, ...common, at, vm: requireUuidArg(cmd, 'vm', vm!), xapi: xapiOptions(cmd, o, e, env, true)! };
    }
    case 'gc':
      return { cmd, ...common, dryRun: o.has('dry-run') };
    case 'check': {
      const xapi = xapiOptions(cmd, o, e, env, false);
      return { cmd, ...common, health: !o.has('no-health'), ...(xapi === undefined ? {} : { xapi }) };
    }
    case 'relayout': {
      const vdi = str('vdi');
      if ((vdi === undefined) === !o.has('all')) throw new UsageError('give exactly one of --vdi UUID (one disk) and --all (every disk over --min-extents)', cmd);
      if (common.target.kind !== 'reflink') throw new UsageError('relayout is for reflink SRs (--path DIR): ZFS does not fragment this way', cmd);
      rejectXapiOptions(cmd, o, 'go with --all-srs only');
      if (o.has('host')) throw new UsageError('--host goes with --all-srs only', cmd);
      if (vdi !== undefined && o.has('min-extents')) throw new UsageError('--min-extents goes with --all', cmd);
      if (o.has('no-relayout') && !o.has('unshare')) throw new UsageError('--no-relayout goes with --unshare (otherwise there is nothing to do)', cmd);
      if (o.has('if-room') && !o.has('unshare')) throw new UsageError('--if-room goes with --unshare', cmd);
      const min = minExtentsArg(cmd, str('min-extents'));
      return {
        cmd,
        ...common,
        ...(vdi !== undefined ? { vdi: requireUuidArg(cmd, 'vdi', vdi) } : {}),
        ...(min !== undefined ? { minExtents: min } : {}),
        unshare: o.has('unshare'),
        unshareIfRoom: o.has('if-room'),
        rewrite: !o.has('no-relayout'),
      };
    }
  }
}

function isCommand(s: string): s is CommandName {
  return (COMMANDS as readonly string[]).includes(s);
}

// ---- values ----------------------------------------------------------------

function minExtentsArg(cmd: CommandName, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  if (!/^[1-9][0-9]{0,8}$/.test(v)) throw new UsageError(`--min-extents: ${show(v)} is not a positive extent count`, cmd);
  return Number(v);
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A uuid as xe prints it (any case accepted, returned lower-case). */
export function requireUuidArg(cmd: CommandName, name: string, v: string): string {
  const u = v.toLowerCase();
  if (!UUID.test(u)) throw new UsageError(`--${name}: ${show(v)} is not a uuid (8-4-4-4-12 hex digits, as xe prints them)`, cmd);
  return u;
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

/** The SR's directory: absolute, clean, not "/"; normalised (no "//", no trailing "/"). */
export function requirePathArg(cmd: CommandName, v: string): string {
  const bad = (why: string): UsageError => new UsageError(`--path: ${show(v)} ${why}`, cmd);
  if (CONTROL.test(v)) throw bad('contains a control character');
  if (!isAbsolute(v)) throw bad('is not an absolute path (give the SR directory, e.g. /srv/flatsnap/sr1)');
  if (v.split('/').some((p) => p === '.' || p === '..')) throw bad('contains "." or ".." components');
  if (v.length > 1024) throw bad('is longer than 1024 characters');
  const p = normalize(v).replace(/(.)\/+$/, '$1');
  if (p === '/') throw bad('is the root directory');
  return p;
}

/** POOL/PATH, checked exactly as device-config:dataset is. */
export function requireDatasetArg(cmd: CommandName, v: string): string {
  try {
    return requireDatasetConfig(v);
  } catch (e) {
    if (e instanceof SmError) throw new UsageError((e.detail ?? e.message).replace(/^device-config:dataset /, '--dataset: '), cmd);
    throw e;
  }
}

function storageTarget(cmd: CommandName, dataset: string | undefined, path: string | undefined): StorageTarget {
  if (dataset !== undefined && path !== undefined) throw new UsageError('give either --dataset (ZFS) or --path (reflink), not both', cmd);
  if (dataset !== undefined) return { kind: 'zfs', dataset: requireDatasetArg(cmd, dataset) };
  if (path !== undefined) return { kind: 'reflink', path: requirePathArg(cmd, path) };
  throw new UsageError("which SR? give its storage: --dataset POOL/PATH (ZFS) or --path DIR (reflink), as in the SR's device-config", cmd);
}

function rejectXapiOptions(cmd: CommandName, o: Parsed, why: string): void {
  const given = Object.keys(XAPI).filter((k) => o.has(k));
  if (given.length > 0) throw new UsageError(`${given.map((k) => `--${k}`).join(', ')} ${why}`, cmd);
}

/** --xapi URL|local, --user, --password / --password-file / $FLATSNAP_XAPI_PASSWORD. */
function xapiOptions(cmd: CommandName, o: Parsed, e: ArgsEnv, env: NodeJS.ProcessEnv, required: boolean): XapiOptions | undefined {
  const url = o.get('xapi');
  if (typeof url !== 'string') {
    if (!required) {
      rejectXapiOptions(cmd, o, 'need --xapi URL (or --xapi local): they are for comparing the SR with xapi');
      return undefined;
    }
  }
  const ep = typeof url === 'string' ? parseXapiUrl(cmd, url) : envEndpoint(cmd, env);
  const user = typeof o.get('user') === 'string' ? (o.get('user') as string) : 'root';
  if (CONTROL.test(user)) throw new UsageError(`--user: ${show(user)} contains a control character`, cmd);
  const pw = o.get('password');
  const pwFile = o.get('password-file');
  if (typeof pw === 'string' && typeof pwFile === 'string') throw new UsageError('give --password or --password-file, not both', cmd);
  let password = env.FLATSNAP_XAPI_PASSWORD ?? '';
  if (typeof pw === 'string') password = pw;
  if (typeof pwFile === 'string') {
    const read = e.readFile;
    if (read === undefined) throw new UsageError('--password-file cannot be read here', cmd);
    try {
      password = read(pwFile).replace(/\r?\n$/, '');
    } catch (err) {
      throw new UsageError(`--password-file: cannot read ${show(pwFile)}: ${(err as { code?: string }).code ?? String(err)}`, cmd);
    }
  }
  return { ...ep, user, password };
}

/** `local` (xapi's socket in dom0) or http://host[:port][/path]. */
export function parseXapiUrl(cmd: CommandName, v: string): { endpoint: XapiEndpoint; where: string } {
  if (v === 'local') return { endpoint: { socketPath: XAPI_SOCKET, path: '/' }, where: `the local xapi socket ${XAPI_SOCKET}` };
  let u: URL;
  try {
    u = new URL(v);
  } catch {
    throw new UsageError(`--xapi: ${show(v)} is neither "local" nor a URL such as http://127.0.0.1/`, cmd);
  }
  if (u.protocol === 'https:') {
    throw new UsageError('--xapi: https is not supported; run flatsnap on a host of the pool with --xapi local, or give http://', cmd);
  }
  if (u.protocol !== 'http:') throw new UsageError(`--xapi: ${show(v)} is not an http:// URL`, cmd);
  if (u.username !== '' || u.password !== '') throw new UsageError('--xapi: put the credentials in --user and --password, not in the URL', cmd);
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  if (host === '') throw new UsageError(`--xapi: ${show(v)} has no host`, cmd);
  return { endpoint: { host, port: u.port ? Number(u.port) : 80, path: `${u.pathname}${u.search}` || '/' }, where: u.href };
}

function envEndpoint(cmd: CommandName, env: NodeJS.ProcessEnv): { endpoint: XapiEndpoint; where: string } {
  const url = env.FLATSNAP_XAPI_URL;
  if (url === undefined || url === '') return parseXapiUrl(cmd, 'local');
  try {
    return parseXapiUrl(cmd, url);
  } catch (e) {
    if (e instanceof UsageError) throw new UsageError(`FLATSNAP_XAPI_URL: ${e.message.replace(/^--xapi: /, '')}`, cmd);
    throw e;
  }
}

export function show(s: string): string {
  const j = JSON.stringify(s);
  return j.length > 80 ? `${j.slice(0, 77)}..."` : j;
}
