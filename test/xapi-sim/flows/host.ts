// host.call_plugin: running a XAPI host plugin on a host of the pool, as xapi's
// message_forwarding.ml (forward to the host) and xapi_plugins.ml (find, exec, parse)
// do it.
//
// - the host must exist (HANDLE_INVALID) and be reachable: a host whose other_config
//   has xapi-sim-unreachable=true stands for one the master cannot connect to
//   (CANNOT_CONTACT_HOST [host], do_op_on_common);
// - the plugin must be a name listed in the plugins directory (--xapi-plugins, the
//   hosts' /etc/xapi.d/plugins; all hosts share it, as they share the filesystem),
//   else XENAPI_MISSING_PLUGIN [name];
// - it is exec'd with one argument, methodCall(fn, [session, struct of strings]),
//   bare strings, no header (Xml.to_string of XMLRPC.To.methodCall); the session is
//   the caller's on the master, a pool session of that host elsewhere (the forwarded
//   call logs in to the slave), destroyed afterwards. Its environment is the one SM
//   plugins get on that host (its lock directory, its datapath root);
// - stdout is read as xapi's XMLRPC.From.methodResponse does: {Status: Success,
//   Value: <string>} is the result, {Status: Failure, ErrorDescription: [code, ...]}
//   is raised as that error, an XML-RPC fault is XENAPI_PLUGIN_FAILURE ["fault",
//   code, reason], non-zero exit ["non-zero exit", stdout, stderr], a signal
//   ["signal: SIG...", stdout, stderr], unparsable XML ["failed to parse plugin
//   output", stdout, error]; any other shape (a bare value, a non-string Value) is
//   xapi's RunTimeTypeError, an INTERNAL_ERROR.
import { execFile } from 'node:child_process';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { decodeMethodResponse, encodeMethodCall, isStruct, XAPI_STYLE, XmlRpcDecodeError } from '../../../src/smapi/xmlrpc.js';
import { destroySession, newSession, type Ctx, type Registry } from '../api.js';
import { pluginEnv } from '../sm-exec.js';
import { ApiError } from '../wire.js';

const UNREACHABLE = 'xapi-sim-unreachable';

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

function exec(file: string, arg: string, env: NodeJS.ProcessEnv): Promise<Run> {
  return new Promise((resolve) => {
    execFile(file, [arg], { env, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 }, (err, stdout, stderr) => {
      const e = err as (NodeJS.ErrnoException & { code?: number | string; signal?: NodeJS.Signals }) | null;
      if (e && typeof e.code === 'string') {
        resolve({ code: 127, signal: null, stdout: String(stdout ?? ''), stderr: `${e.code}: ${e.message}` });
        return;
      }
      resolve({ code: e ? (typeof e.code === 'number' ? e.code : null) : 0, signal: e?.signal ?? null, stdout: String(stdout ?? ''), stderr: String(stderr ?? '') });
    });
  });
}

/** Xapi_plugins.find_plugin: only a name the plugins directory lists. */
function findPlugin(dir: string | undefined, name: string): string {
  let all: string[] = [];
  try {
    if (dir !== undefined) all = fs.readdirSync(dir);
  } catch {
    all = [];
  }
  if (!all.includes(name)) throw new ApiError('XENAPI_MISSING_PLUGIN', [name]);
  return path.join(dir!, name);
}

const rtte = (what: string) => new ApiError('INTERNAL_ERROR', [`XMLRPC.RunTimeTypeError("${what}")`]);

/** XMLRPC.From.methodResponse + From.string, and the mapping xapi_plugins.ml applies. */
export function pluginResult(r: Run): string {
  const out = r.stdout;
  if (r.signal) throw new ApiError('XENAPI_PLUGIN_FAILURE', [`signal: ${r.signal}`, out, r.stderr]);
  if (r.code !== 0) throw new ApiError('XENAPI_PLUGIN_FAILURE', ['non-zero exit', out, r.stderr]);
  let resp;
  try {
    resp = decodeMethodResponse(out);
  } catch (e) {
    if (e instanceof XmlRpcDecodeError && /not well-formed/.test(e.message)) {
      throw new ApiError('XENAPI_PLUGIN_FAILURE', ['failed to parse plugin output', out, e.message]);
    }
    throw rtte(e instanceof Error ? e.message : String(e));
  }
  if (!resp.ok) throw new ApiError('XENAPI_PLUGIN_FAILURE', ['fault', String(resp.faultCode), resp.faultString]);
  const v = resp.value;
  if (!isStruct(v)) throw rtte('Status');
  if (v.Status === 'Success') {
    if (typeof v.Value !== 'string') throw rtte('string');
    return v.Value;
  }
  if (v.Status === 'Failure') {
    const d = v.ErrorDescription;
    if (!Array.isArray(d) || d.length === 0 || d.some((x) => typeof x !== 'string')) throw rtte('ErrorDescription');
    throw new ApiError(d[0] as string, d.slice(1) as string[]);
  }
  throw rtte('Status');
}

export async function callPlugin(ctx: Ctx, host: string, plugin: string, fn: string, args: Record<string, string>): Promise<string> {
  const db = ctx.db;
  const oc = db.field<Record<string, string>>('host', host, 'other_config');
  if (oc[UNREACHABLE] === 'true') throw new ApiError('CANNOT_CONTACT_HOST', [host]);
  const file = findPlugin(ctx.sim.settings.xapiPluginsDir, plugin);
  const forwarded = host !== ctx.sim.host;
  const session = forwarded ? newSession(db, host, { is_local_superuser: true, pool: true, auth_user_name: '' }) : ctx.session;
  let r: Run;
  const argv1 = encodeMethodCall(fn, [session, args], XAPI_STYLE);
  try {
    db.flush();
    r = await exec(file, argv1, pluginEnv(ctx.sim, host));
  } finally {
    if (forwarded) destroySession(db, session);
  }
  if (ctx.sim.settings.smLog) {
    const entry = { time: new Date().toISOString(), cmd: `plugin:${plugin}/${fn}`, host: db.field<string>('host', host, 'uuid'), exe: file, argv1, ...r };
    fs.appendFileSync(ctx.sim.settings.smLog, `${JSON.stringify(entry)}\n`);
  }
  return pluginResult(r);
}

export function registerHost(reg: Registry): void {
  reg.add('host.call_plugin', {
    params: [
      ['host', 'ref'],
      ['plugin', 'string'],
      ['fn', 'string'],
      ['args', 'map'],
    ],
    async: true,
    fn: (c, host: string, plugin: string, fn: string, args: Record<string, string>) => {
      c.db.get('host', host);
      return callPlugin(c, host, plugin, fn, args);
    },
  });
}
