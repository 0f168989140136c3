// Driving SMAPIv1 plugins exactly as xapi's sm_exec.ml does: one argv[1] holding
// a methodCall (xapi's encoding, key order below), env PATH + ORIGINATOR=SM (+ the
// one test variable FLATSNAP_XAPI_URL), a fresh __sm__backend session per call,
// and strict parsing of stdout with xapi's fault and exit-status mapping.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  decodeMethodResponse,
  encodeMethodCall,
  encodeValue,
  isStruct,
  XAPI_STYLE,
  type XmlRpcStruct,
  type XmlRpcValue,
} from '../../src/smapi/xmlrpc.js';
import { destroySession, hostOf, newSession, onHost, SM_USER, type Ctx, type SimCore } from './api.js';
import { ApiError, NULL_REF } from './wire.js';

export const SM_PATH = '/sbin:/usr/sbin:/bin:/usr/bin';

/** faultCode 38: the backend does not implement the command. Callers map it. */
export class NotImplemented extends Error {
  constructor(readonly cmd: string) {
    super(`Not_implemented_in_backend (${cmd})`);
  }
}

export interface SmCall {
  cmd: string;
  sr?: string;
  vdi?: string;
  args?: string[];
  /** explicit device_config (sr_create / sr_probe); SRmaster is added */
  deviceConfig?: Record<string, string>;
  /** plugin type when there is no SR (sr_probe) */
  type?: string;
  srSmConfig?: Record<string, string>;
  vdiType?: string;
  vdiLocation?: string;
  vdiUuid?: string;
  driverParams?: Record<string, string>;
  vdiSmConfig?: Record<string, string>;
  newUuid?: string;
}

/** sm.ml srmaster_only: xapi raises MasterOnly off the SR master and the storage layer redirects the call there. */
export const MASTER_ONLY = new Set(['sr_scan', 'vdi_create', 'vdi_delete', 'vdi_snapshot', 'vdi_clone', 'vdi_resize', 'vdi_resize_online', 'vdi_compose']);

/** Capability names xapi knows (smint.ml); anything else is dropped with a warning. */
export const KNOWN_CAPS = new Set(
  'SR_CREATE SR_DELETE SR_ATTACH SR_DETACH SR_SCAN SR_PROBE SR_UPDATE SR_SUPPORTS_LOCAL_CACHING SR_METADATA SR_TRIM SR_MULTIPATH SR_CACHING SR_STATS VDI_CREATE VDI_DELETE VDI_ATTACH VDI_DETACH VDI_MIRROR VDI_MIRROR_IN VDI_RESIZE VDI_RESIZE_ONLINE VDI_CLONE VDI_SNAPSHOT VDI_ACTIVATE VDI_ACTIVATE_READONLY VDI_DEACTIVATE VDI_UPDATE VDI_INTRODUCE VDI_GENERATE_CONFIG VDI_ATTACH_OFFLINE VDI_RESET_ON_BOOT VDI_CONFIG_CBT VDI_COMPOSE LARGE_VDI THIN_PROVISIONING VDI_READ_CACHING VDI_REVERT'.split(
    ' ',
  ),
);

export function smOfType(ctx: { db: Ctx['db'] }, type: string): string {
  const sm = ctx.db.where('SM', (r) => r.type === type)[0];
  if (sm === undefined) throw new ApiError('SM_PLUGIN_COMMUNICATION_FAILURE', [type]);
  return sm;
}

export function features(ctx: Ctx, sr: string): Record<string, number> {
  const type = ctx.db.field<string>('SR', sr, 'type');
  const sm = ctx.db.where('SM', (r) => r.type === type)[0];
  return sm === undefined ? {} : ctx.db.field<Record<string, number>>('SM', sm, 'features');
}

export const hasCap = (ctx: Ctx, sr: string, cap: string): boolean => Object.hasOwn(features(ctx, sr), cap);

/** The PBD of `sr` on the host `ctx` runs on (Sm.get_my_pbd_for_sr). */
export function myPbd(ctx: Ctx, sr: string): string | undefined {
  const host = hostOf(ctx);
  return ctx.db.where('PBD', (r) => r.SR === sr && r.host === host)[0];
}

/**
 * Helpers.get_srmaster: the pool master for a shared SR, else the host of its (one) PBD;
 * undefined when a local SR has no PBD.
 */
export function srMasterOf(ctx: Ctx, sr: string): string | undefined {
  if (ctx.db.field('SR', sr, 'shared') === true) return ctx.db.field<string>('pool', ctx.sim.pool, 'master');
  const pbd = ctx.db.where('PBD', (r) => r.SR === sr)[0];
  return pbd === undefined ? undefined : ctx.db.field<string>('PBD', pbd, 'host');
}

/** SRmaster first, "true" on the SR master (always for sr_create / sr_probe), else "false" (sm.ml sm_master). */
function deviceConfigFor(ctx: Ctx, call: SmCall): Record<string, string> {
  const base = call.deviceConfig ?? (call.sr ? pbdConfig(ctx, call.sr) : {});
  const master = call.deviceConfig !== undefined || call.sr === undefined || srMasterOf(ctx, call.sr) === hostOf(ctx);
  const out: Record<string, string> = { SRmaster: String(master) };
  for (const [k, v] of Object.entries(base)) if (k !== 'SRmaster') out[k] = v;
  return out;
}

function pbdConfig(ctx: Ctx, sr: string): Record<string, string> {
  const pbd = myPbd(ctx, sr);
  if (pbd === undefined) throw new ApiError('SR_NO_PBDS', [sr]);
  return ctx.db.field<Record<string, string>>('PBD', pbd, 'device_config');
}

/** The request struct, in sm_exec.ml's key order (xmlrpc_of_call). */
export function requestStruct(ctx: Ctx, call: SmCall, session: string | undefined): XmlRpcStruct {
  const db = ctx.db;
  const s: XmlRpcStruct = {
    host_ref: hostOf(ctx),
    command: call.cmd,
    args: call.args ?? [],
    device_config: call.cmd === 'sr_get_driver_info' ? {} : deviceConfigFor(ctx, call),
  };
  if (session !== undefined) s.session_ref = session;
  if (call.srSmConfig) s.sr_sm_config = call.srSmConfig;
  if (call.sr) s.sr_ref = call.sr;
  if (call.vdiType !== undefined) s.vdi_type = call.vdiType;
  if (call.sr) s.sr_uuid = db.field<string>('SR', call.sr, 'uuid');
  if (call.vdi) s.vdi_ref = call.vdi;
  const loc = call.vdiLocation ?? (call.vdi ? db.field<string>('VDI', call.vdi, 'location') : undefined);
  if (loc !== undefined) s.vdi_location = loc;
  const uuid = call.vdi ? db.field<string>('VDI', call.vdi, 'uuid') : call.cmd === 'vdi_create' ? call.vdiUuid : undefined;
  if (uuid !== undefined) s.vdi_uuid = uuid;
  if (call.driverParams) s.driver_params = call.driverParams;
  if (call.vdiSmConfig) s.vdi_sm_config = call.vdiSmConfig;
  if (call.newUuid !== undefined) s.new_uuid = call.newUuid;
  if (call.cmd !== 'sr_get_driver_info') s.subtask_of = ctx.task;
  if (call.vdi) {
    s.vdi_on_boot = db.field<string>('VDI', call.vdi, 'on_boot');
    s.vdi_allow_caching = String(db.field<boolean>('VDI', call.vdi, 'allow_caching'));
  }
  const lc = db.field<string>('host', hostOf(ctx), 'local_cache_sr');
  if (lc !== NULL_REF && db.has('SR', lc)) s.local_cache_sr = db.field<string>('SR', lc, 'uuid');
  return s;
}

interface ExecResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function run(file: string, arg: string, env: NodeJS.ProcessEnv): Promise<ExecResult> {
  return new Promise((resolve) => {
    execFile(file, [arg], { env, encoding: 'utf8', maxBuffer: 256 * 1024 * 1024 }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: number | string; signal?: NodeJS.Signals }) | null;
      if (e && typeof e.code === 'string') {
        // could not exec at all (ENOENT, EACCES): xapi's fork fails likewise
        resolve({ code: 127, signal: null, stdout: String(stdout ?? ''), stderr: `${e.code}: ${e.message}` });
        return;
      }
      resolve({
        code: e ? (typeof e.code === 'number' ? e.code : null) : 0,
        signal: e?.signal ?? null,
        stdout: String(stdout ?? ''),
        stderr: String(stderr ?? ''),
      });
    });
  });
}

function driverFile(ctx: Ctx, call: SmCall): string {
  const type = call.type ?? (call.sr ? ctx.db.field<string>('SR', call.sr, 'type') : undefined);
  if (type === undefined) throw new Error('SM call without SR or type');
  const sm = smOfType(ctx, type);
  return ctx.db.field<string>('SM', sm, 'driver_filename');
}

/**
 * xapi's plugin environment plus FLATSNAP_XAPI_URL; with a lock root, FLATSNAP_LOCK_DIR
 * for the host the plugin runs on, so each simulated host has its own /var/lock/sm;
 * with a datapath root, FLATSNAP_DATAPATH_ROOT likewise (its own tap-ctl and /dev/sm).
 */
export function pluginEnv(sim: SimCore, host: string = sim.host): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { PATH: SM_PATH, ORIGINATOR: 'SM', FLATSNAP_XAPI_URL: sim.settings.url };
  if (sim.settings.lockRoot !== undefined) env.FLATSNAP_LOCK_DIR = hostLockDir(sim, host);
  if (sim.settings.datapathRoot !== undefined) env.FLATSNAP_DATAPATH_ROOT = hostDatapathRoot(sim, host);
  return env;
}

/** The directory that stands for `host`'s "/" in the datapath (with a datapath root). */
export function hostDatapathRoot(sim: SimCore, host: string): string {
  const uuid = sim.db.has('host', host) ? sim.db.field<string>('host', host, 'uuid') : 'no-host';
  return path.join(sim.settings.datapathRoot ?? '/', uuid);
}

/** The per-host lock directory of `host` (with a lock root). */
export function hostLockDir(sim: SimCore, host: string): string {
  const uuid = sim.db.has('host', host) ? sim.db.field<string>('host', host, 'uuid') : 'no-host';
  return path.join(sim.settings.lockRoot ?? '/var/lock/sm', uuid);
}

/** Runs one SM command and returns the raw result value (faults mapped). */
export async function smExec(ctx0: Ctx, call: SmCall, file?: string): Promise<XmlRpcValue> {
  const needsSession = call.cmd !== 'sr_get_driver_info';
  let ctx = ctx0;
  if (MASTER_ONLY.has(call.cmd) && call.sr !== undefined && call.deviceConfig === undefined) {
    // MasterOnly, caught by storage_smapiv1.ml's redirect: the call runs on the SR master.
    const master = srMasterOf(ctx, call.sr);
    if (master === undefined) throw new ApiError('SR_NO_PBDS', [call.sr]);
    ctx = onHost(ctx, master);
  }
  const exe = file ?? driverFile(ctx, call);
  const session = needsSession
    ? newSession(ctx.db, hostOf(ctx), {
        is_local_superuser: true,
        auth_user_name: SM_USER,
        other_config: call.sr ? { _sm_session: call.sr } : {},
      })
    : undefined;
  let res: ExecResult;
  let xml: string;
  try {
    xml = encodeMethodCall(call.cmd, [requestStruct(ctx, call, session)], XAPI_STYLE);
    ctx.db.flush(); // the plugin calls back into us: let it see a consistent DB
    res = await run(exe, xml, pluginEnv(ctx.sim, hostOf(ctx)));
  } finally {
    if (session !== undefined) destroySession(ctx.db, session);
  }
  logCall(ctx.sim, { cmd: call.cmd, exe, argv1: xml, ...res });
  if (res.signal) throw new ApiError('SR_BACKEND_FAILURE', [`received signal: ${res.signal}`, res.stdout, res.stderr]);
  if (res.code !== 0) throw new ApiError('SR_BACKEND_FAILURE', ['non-zero exit', res.stdout, res.stderr]);
  let resp;
  try {
    resp = decodeMethodResponse(res.stdout);
  } catch (e) {
    const msg = (e as Error).message;
    if (/exactly one param/.test(msg)) throw new ApiError('INTERNAL_ERROR', ['Unexpected response from SM plugin']);
    throw new ApiError('SR_BACKEND_FAILURE', [`Xml.Error(${msg})`, res.stdout, res.stderr]);
  }
  if (resp.ok) return resp.value;
  switch (resp.faultCode) {
    case 38:
      throw new NotImplemented(call.cmd);
    case 39:
      throw new ApiError('SR_NOT_EMPTY', []);
    case 24:
      throw new ApiError('VDI_IN_USE', []);
    case 16:
      throw new ApiError('SR_DEVICE_IN_USE', []);
    case 144:
      throw new ApiError('VDI_MISSING', [call.sr ?? '', call.vdi ?? '']);
    default:
      throw new ApiError(`SR_BACKEND_FAILURE_${resp.faultCode}`, ['', resp.faultString, res.stderr]);
  }
}

function logCall(sim: SimCore, entry: Record<string, unknown>): void {
  if (!sim.settings.smLog) return;
  fs.appendFileSync(sim.settings.smLog, `${JSON.stringify({ time: new Date().toISOString(), ...entry })}\n`);
}

function parseFailure(v: XmlRpcValue, reason: string): ApiError {
  return new ApiError('SR_BACKEND_FAILURE', ['', `XML parse failure: ${encodeValue(v, XAPI_STYLE)}`, reason]);
}

/** parse_unit: only <nil/> is accepted (XMLRPC.From.nil). */
export async function smUnit(ctx: Ctx, call: SmCall): Promise<void> {
  const v = await smExec(ctx, call);
  if (v !== null) {
    throw new ApiError('INTERNAL_ERROR', [`XMLRPC.RunTimeTypeError("nil", ${encodeValue(v, XAPI_STYLE)})`]);
  }
}

export interface VdiInfo {
  uuid: string;
  location: string;
}

/** parse_vdi_info: a struct whose members are all strings, with uuid and location. */
export async function smVdiInfo(ctx: Ctx, call: SmCall): Promise<VdiInfo> {
  const v = await smExec(ctx, call);
  if (!isStruct(v)) throw parseFailure(v, 'XMLRPC unmarshall RunTimeTypeError: looking for structure');
  for (const [k, x] of Object.entries(v)) {
    if (typeof x !== 'string') throw parseFailure(v, `XMLRPC unmarshall RunTimeTypeError: looking for string (member ${k})`);
  }
  if (typeof v.uuid !== 'string') throw parseFailure(v, '<struct> missing field: uuid');
  if (typeof v.location !== 'string') throw parseFailure(v, '<struct> missing field: location');
  return { uuid: v.uuid, location: v.location };
}

export interface AttachInfo {
  params?: string;
  params_nbd: string;
  o_direct: boolean;
  o_direct_reason: string;
  xenstore_data: Record<string, string>;
}

/** parse_attach_result: params_nbd is required since CP-31856. */
export async function smAttach(ctx: Ctx, call: SmCall): Promise<AttachInfo> {
  const v = await smExec(ctx, call);
  if (!isStruct(v)) throw parseFailure(v, 'XMLRPC unmarshall RunTimeTypeError: looking for structure');
  if (v.params !== undefined && typeof v.params !== 'string') throw parseFailure(v, 'XMLRPC unmarshall RunTimeTypeError: looking for string');
  if (v.params_nbd === undefined) throw parseFailure(v, '<struct> missing field: params_nbd');
  if (typeof v.params_nbd !== 'string') throw parseFailure(v, 'XMLRPC unmarshall RunTimeTypeError: looking for string');
  const xd: Record<string, string> = {};
  if (isStruct(v.xenstore_data)) for (const [k, x] of Object.entries(v.xenstore_data)) if (typeof x === 'string') xd[k] = x;
  return {
    params: v.params,
    params_nbd: v.params_nbd,
    o_direct: typeof v.o_direct === 'boolean' ? v.o_direct : true,
    o_direct_reason: typeof v.o_direct_reason === 'string' ? v.o_direct_reason : '',
    xenstore_data: xd,
  };
}

export async function smString(ctx: Ctx, call: SmCall): Promise<string> {
  const v = await smExec(ctx, call);
  if (typeof v !== 'string') throw new ApiError('INTERNAL_ERROR', [`XMLRPC.RunTimeTypeError("string", ${encodeValue(v, XAPI_STYLE)})`]);
  return v;
}

// ---------------------------------------------------------------------------
// Discovery (Sm.register / sm_exec.get_supported)

export interface DriverInfo {
  name: string;
  description: string;
  vendor: string;
  copyright: string;
  driver_version: string;
  required_api_version: string;
  features: Record<string, number>;
  text_features: string[];
  configuration: Record<string, string>;
  supported_image_formats: string[];
}

function str(v: XmlRpcValue | undefined, field: string): string {
  if (v === undefined) throw new Error(`Backend_missing_field ${field}`);
  if (typeof v !== 'string') throw new Error(`XMLRPC.RunTimeTypeError string ${field}`);
  return v;
}

export function parseDriverInfo(v: XmlRpcValue, log: (s: string) => void): DriverInfo {
  if (!isStruct(v)) throw new Error('XMLRPC.RunTimeTypeError structure');
  const capsRaw = v.capabilities;
  if (!Array.isArray(capsRaw)) throw new Error(capsRaw === undefined ? 'Backend_missing_field capabilities' : 'RunTimeTypeError array');
  const features: Record<string, number> = {};
  for (const c of capsRaw) {
    const s = str(c, 'capabilities');
    const m = /^([A-Z_]+)(?:\/(\d+))?$/.exec(s);
    if (!m || !KNOWN_CAPS.has(m[1]!)) {
      log(`SM.feature: unknown feature ${s}`);
      continue;
    }
    if (!Object.hasOwn(features, m[1]!)) features[m[1]!] = m[2] === undefined ? 1 : Number(m[2]);
  }
  const confRaw = v.configuration;
  if (!Array.isArray(confRaw)) throw new Error('Backend_missing_field configuration');
  const configuration: Record<string, string> = {};
  for (const kv of confRaw) {
    if (!isStruct(kv)) throw new Error('RunTimeTypeError structure');
    configuration[str(kv.key, 'key')] = str(kv.description, 'description');
  }
  const fmts = v.supported_image_formats;
  return {
    name: str(v.name, 'name'),
    description: str(v.description, 'description'),
    vendor: str(v.vendor, 'vendor'),
    copyright: str(v.copyright, 'copyright'),
    driver_version: str(v.driver_version, 'driver_version'),
    required_api_version: str(v.required_api_version, 'required_api_version'),
    features,
    text_features: Object.entries(features).map(([k, n]) => (n === 1 ? k : `${k}/${n}`)),
    configuration,
    supported_image_formats: Array.isArray(fmts) ? fmts.map((x) => str(x, 'supported_image_formats')) : [],
  };
}

export async function discoverPlugins(ctx: Ctx, log: (s: string) => void): Promise<void> {
  const { smDir, smPlugins } = ctx.sim.settings;
  const whitelist = smPlugins?.map((s) => s.toLowerCase());
  let entries: string[] = [];
  try {
    entries = fs.readdirSync(smDir).sort();
  } catch (e) {
    log(`Not scanning ${smDir} for SM backends: ${(e as Error).message}`);
  }
  const seen = new Set<string>();
  for (const entry of entries) {
    if (!entry.endsWith('SR') || entry.length <= 2) continue;
    const driver = entry.slice(0, -2);
    const type = driver.toLowerCase();
    if (whitelist && !whitelist.includes('*') && !whitelist.includes(type)) {
      log(`Skipping SMAPIv1 plugin ${driver}: not in sm-plugins whitelist`);
      continue;
    }
    const file = path.join(smDir, entry);
    try {
      fs.accessSync(file, fs.constants.X_OK);
      const info = parseDriverInfo(await smExec(ctx, { cmd: 'sr_get_driver_info' }, file), log);
      seen.add(type);
      const fields = {
        name_label: info.name,
        name_description: info.description,
        type,
        vendor: info.vendor,
        copyright: info.copyright,
        version: info.driver_version,
        required_api_version: info.required_api_version,
        configuration: info.configuration,
        capabilities: info.text_features,
        features: info.features,
        driver_filename: file,
        supported_image_formats: info.supported_image_formats,
      };
      const existing = ctx.db.where('SM', (r) => r.type === type)[0];
      if (existing === undefined) ctx.db.create('SM', fields);
      else ctx.db.update('SM', existing, fields);
      log(`SM plugin ${driver} registered as type ${type}`);
    } catch (e) {
      const err = e instanceof ApiError ? e.description.join(' ') : (e as Error).message;
      log(`Rejecting SM plugin: ${driver} because of exception: ${err} (executable)`);
    }
  }
  // unregister types that are neither found nor in use (Storage_access.on_xapi_start)
  for (const sm of ctx.db.all('SM')) {
    const type = ctx.db.field<string>('SM', sm, 'type');
    if (seen.has(type)) continue;
    if (ctx.db.where('SR', (r) => r.type === type).length === 0) ctx.db.destroy('SM', sm);
  }
}
