// The typed SMAPIv1 request: argv[1] decoded into the keys of xapi's sm_exec
// `call` record, with the positional `args` decoded per command. Everything is
// validated here, before any handler runs, so bad input changes nothing.
import { SmError, badRequest } from '../errors.js';
import { decodeMethodCall, isStruct, XmlRpcDecodeError, type XmlRpcStruct, type XmlRpcValue } from './xmlrpc.js';
import {
  parseBool,
  parseSize,
  requireDescription,
  requireLabel,
  requireRef,
  requireUuid,
  show,
} from './validate.js';

export const SM_COMMANDS = [
  'sr_get_driver_info',
  'sr_create',
  'sr_delete',
  'sr_attach',
  'sr_detach',
  'sr_scan',
  'sr_update',
  'sr_probe',
  'sr_content_type',
  'vdi_create',
  'vdi_delete',
  'vdi_update',
  'vdi_introduce',
  'vdi_attach',
  'vdi_detach',
  'vdi_activate',
  'vdi_deactivate',
  'vdi_snapshot',
  'vdi_clone',
  'vdi_resize',
  'vdi_resize_online',
  'vdi_generate_config',
  'vdi_attach_from_config',
  'vdi_detach_from_config',
  'vdi_epoch_begin',
  'vdi_epoch_end',
  'vdi_compose',
  'vdi_revert',
  'vdi_enable_cbt',
  'vdi_disable_cbt',
  'vdi_data_destroy',
  'vdi_list_changed_blocks',
] as const;
export type SmCommand = (typeof SM_COMMANDS)[number];

export interface VdiCreateArgs {
  virtual_size: number;
  name_label: string;
  name_description: string;
  metadata_of_pool: string;
  is_a_snapshot: boolean;
  snapshot_time: string;
  snapshot_of: string;
  read_only: boolean;
}

/** Positional args, decoded per command (smapiv1-protocol.md section 1.5). */
export type SmArgs =
  | { kind: 'none' }
  | { kind: 'sr_create'; physical_size: number }
  | ({ kind: 'vdi_create' } & VdiCreateArgs)
  | { kind: 'writable'; writable: boolean }
  | { kind: 'resize'; new_size: number }
  | { kind: 'ref'; ref: string };

export interface SmRequest {
  command: SmCommand;
  host_ref: string;
  session_ref?: string;
  device_config: Record<string, string>;
  /** device_config.SRmaster == "true" */
  sr_master: boolean;
  sr_ref?: string;
  sr_uuid?: string;
  vdi_ref?: string;
  vdi_uuid?: string;
  vdi_location?: string;
  vdi_type?: string;
  vdi_sm_config?: Record<string, string>;
  sr_sm_config?: Record<string, string>;
  driver_params?: Record<string, string>;
  new_uuid?: string;
  subtask_of?: string;
  vdi_on_boot?: 'persist' | 'reset';
  vdi_allow_caching?: boolean;
  local_cache_sr?: string;
  args: SmArgs;
  /** The raw positional args, for logging. */
  raw_args: string[];
}

function str(s: XmlRpcStruct, key: string): string | undefined {
  const v = s[key];
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw badRequest(`${key} must be a string, got ${show(v)}`);
  return v;
}

function stringMap(s: XmlRpcStruct, key: string): Record<string, string> | undefined {
  const v = s[key];
  if (v === undefined) return undefined;
  if (!isStruct(v)) throw badRequest(`${key} must be a struct`);
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) {
    if (typeof x !== 'string') throw badRequest(`${key}.${k} must be a string, got ${show(x)}`);
    out[k] = x;
  }
  return out;
}

function need<T>(v: T | undefined, key: string, command: string): T {
  if (v === undefined) throw badRequest(`${command} needs the key ${key}`);
  return v;
}

function decodeArgs(command: SmCommand, args: string[]): SmArgs {
  const want = (n: number): void => {
    if (args.length < n) throw badRequest(`${command} takes ${n} args, got ${args.length}`);
  };
  switch (command) {
    case 'sr_create':
      want(1);
      return { kind: 'sr_create', physical_size: parseSize('physical_size', args[0]!) };
    case 'vdi_create': {
      want(8);
      const a = args as [string, string, string, string, string, string, string, string];
      return {
        kind: 'vdi_create',
        virtual_size: parseSize('virtual_size', a[0]),
        name_label: requireLabel('name_label', a[1]),
        name_description: requireDescription('name_description', a[2]),
        metadata_of_pool: a[3] === '' ? '' : requireRef('metadata_of_pool', a[3]),
        is_a_snapshot: parseBool('is_a_snapshot', a[4]),
        snapshot_time: a[5],
        snapshot_of: a[6],
        read_only: parseBool('read_only', a[7]),
      };
    }
    case 'vdi_attach':
    case 'vdi_activate':
      want(1);
      return { kind: 'writable', writable: parseBool('writable', args[0]!) };
    case 'vdi_resize':
    case 'vdi_resize_online':
      want(1);
      return { kind: 'resize', new_size: parseSize('new_size', args[0]!) };
    case 'vdi_compose':
    case 'vdi_list_changed_blocks':
    case 'vdi_revert':
      want(1);
      return { kind: 'ref', ref: requireRef(`${command} argument`, args[0]!) };
    default:
      return { kind: 'none' };
  }
}

const VDI_COMMANDS_NEEDING_REF = new Set<SmCommand>([
  'vdi_delete', 'vdi_update', 'vdi_attach', 'vdi_detach', 'vdi_activate', 'vdi_deactivate',
  'vdi_snapshot', 'vdi_clone', 'vdi_resize', 'vdi_resize_online', 'vdi_generate_config',
  'vdi_epoch_begin', 'vdi_epoch_end', 'vdi_compose', 'vdi_revert', 'vdi_enable_cbt',
  'vdi_disable_cbt', 'vdi_data_destroy', 'vdi_list_changed_blocks',
]);
// Commands that run without a session: discovery, and static-vdis at boot.
const SESSIONLESS = new Set<SmCommand>(['sr_get_driver_info', 'vdi_attach_from_config', 'vdi_detach_from_config']);

/** Turns the process argv (without node and script) into a typed request. */
export function parseArgv(argv: string[]): SmRequest {
  if (argv.length !== 1) throw badRequest(`expected exactly one argument (the XML-RPC request), got ${argv.length}`);
  return parseRequest(argv[0]!);
}

// The XML parser silently drops control characters that arrive as character
// references; a request carrying one is refused instead of quietly altered.
function refuseControlReferences(xml: string): void {
  for (const m of xml.matchAll(/&#(x[0-9a-f]+|[0-9]+);/gi)) {
    const ref = m[1]!;
    const cp = ref[0] === 'x' || ref[0] === 'X' ? parseInt(ref.slice(1), 16) : parseInt(ref, 10);
    if ((cp < 0x20 && cp !== 0x09 && cp !== 0x0a && cp !== 0x0d) || (cp >= 0x7f && cp <= 0x9f)) {
      const u = `U+${cp.toString(16).toUpperCase().padStart(4, '0')}`;
      throw new SmError('IllegalXMLChar', `the request contains the control character ${u} (${m[0]})`);
    }
  }
}

export function parseRequest(xml: string): SmRequest {
  refuseControlReferences(xml);
  let call;
  try {
    call = decodeMethodCall(xml);
  } catch (e) {
    if (e instanceof XmlRpcDecodeError) throw badRequest(`unparseable XML-RPC request: ${e.message}`);
    throw e;
  }
  if (call.params.length !== 1 || !isStruct(call.params[0])) {
    throw badRequest('the request must carry exactly one struct parameter');
  }
  const p = call.params[0] as XmlRpcStruct;
  const command = need(str(p, 'command'), 'command', call.methodName);
  if (command !== call.methodName) {
    throw badRequest(`methodName ${show(call.methodName)} does not match command ${show(command)}`);
  }
  if (!(SM_COMMANDS as readonly string[]).includes(command)) throw badRequest(`unknown command ${show(command)}`);
  const cmd = command as SmCommand;

  const rawArgs = p.args ?? [];
  if (!Array.isArray(rawArgs) || rawArgs.some((a: XmlRpcValue) => typeof a !== 'string')) {
    throw badRequest('args must be an array of strings');
  }
  const args = rawArgs as string[];
  const device_config = need(stringMap(p, 'device_config'), 'device_config', cmd);
  const host_ref = str(p, 'host_ref') ?? 'OpaqueRef:NULL';
  requireRef('host_ref', host_ref);

  const req: SmRequest = {
    command: cmd,
    host_ref,
    device_config,
    sr_master: device_config.SRmaster === 'true',
    args: decodeArgs(cmd, args),
    raw_args: args,
  };

  const session = str(p, 'session_ref');
  if (session !== undefined) req.session_ref = requireRef('session_ref', session);
  else if (!SESSIONLESS.has(cmd)) throw badRequest(`${cmd} needs the key session_ref`);

  const srRef = str(p, 'sr_ref');
  if (srRef !== undefined) req.sr_ref = requireRef('sr_ref', srRef);
  const srUuid = str(p, 'sr_uuid');
  if (srUuid !== undefined) req.sr_uuid = requireUuid('sr_uuid', srUuid);
  if (cmd !== 'sr_get_driver_info' && cmd !== 'sr_probe' && req.sr_uuid === undefined) {
    throw badRequest(`${cmd} needs the key sr_uuid`);
  }

  const vdiRef = str(p, 'vdi_ref');
  if (vdiRef !== undefined) req.vdi_ref = requireRef('vdi_ref', vdiRef);
  const vdiUuid = str(p, 'vdi_uuid');
  if (vdiUuid !== undefined) req.vdi_uuid = requireUuid('vdi_uuid', vdiUuid);
  const loc = str(p, 'vdi_location');
  if (loc !== undefined) {
    // The location is ours (a uuid on both backends), but an introduced VDI may name
    // anything: keep it to one printable token so it can never become a path trick.
    if (!/^[A-Za-z0-9][A-Za-z0-9._:@+-]{0,254}$/.test(loc)) throw badRequest(`vdi_location is not a valid location: ${show(loc)}`);
    req.vdi_location = loc;
  }
  if (VDI_COMMANDS_NEEDING_REF.has(cmd)) {
    need(req.vdi_ref, 'vdi_ref', cmd);
    need(req.vdi_location, 'vdi_location', cmd);
  }

  const vdiType = str(p, 'vdi_type');
  if (vdiType !== undefined) {
    if (!/^[a-z_]{1,32}$/.test(vdiType)) throw badRequest(`vdi_type is not a VDI type: ${show(vdiType)}`);
    req.vdi_type = vdiType;
  }
  const vdiSm = stringMap(p, 'vdi_sm_config');
  if (vdiSm) req.vdi_sm_config = vdiSm;
  const srSm = stringMap(p, 'sr_sm_config');
  if (srSm) req.sr_sm_config = srSm;
  const dp = stringMap(p, 'driver_params');
  if (dp) req.driver_params = dp;
  const newUuid = str(p, 'new_uuid');
  if (newUuid !== undefined) req.new_uuid = requireUuid('new_uuid', newUuid);
  if (cmd === 'vdi_introduce') {
    need(req.new_uuid, 'new_uuid', cmd);
    need(req.vdi_location, 'vdi_location', cmd);
  }
  const subtask = str(p, 'subtask_of');
  if (subtask !== undefined) req.subtask_of = requireRef('subtask_of', subtask);
  const onBoot = str(p, 'vdi_on_boot');
  if (onBoot !== undefined) {
    if (onBoot !== 'persist' && onBoot !== 'reset') throw badRequest(`vdi_on_boot must be persist or reset: ${show(onBoot)}`);
    req.vdi_on_boot = onBoot;
  }
  const caching = str(p, 'vdi_allow_caching');
  if (caching !== undefined) req.vdi_allow_caching = parseBool('vdi_allow_caching', caching);
  const lc = str(p, 'local_cache_sr');
  if (lc !== undefined && lc !== '') req.local_cache_sr = requireUuid('local_cache_sr', lc);
  return req;
}
