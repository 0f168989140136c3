// The XAPI host-plugin protocol (xapi's xapi_plugins.ml, and XenAPIPlugin.py on the
// plugin side), reusing the SMAPIv1 XML-RPC codec:
//
// - xapi execs /etc/xapi.d/plugins/<name> with ONE argument: a methodCall whose
//   method is the function asked for and whose two params are the caller's session
//   and a struct of strings (host.call_plugin's args);
// - it reads ONE methodResponse from stdout whose single param is a XenAPI result
//   envelope: {Status: "Success", Value: <string>} is returned to the caller,
//   {Status: "Failure", ErrorDescription: [code, ...params]} raised as that XenAPI
//   error. A bare value is not accepted (xapi fails the call with an internal
//   error) and an XML-RPC fault becomes XENAPI_PLUGIN_FAILURE ["fault", ...], so
//   the envelope is always written.
//
// Failure codes follow XenAPIPlugin.py: UNKNOWN_XENAPI_PLUGIN_FUNCTION [fn] for a
// function the plugin does not have, XENAPI_PLUGIN_EXCEPTION [fn, kind, message]
// for anything that went wrong running one.
import { decodeMethodCall, isStruct, XmlRpcDecodeError, type XmlRpcStruct } from '../smapi/xmlrpc.js';
import { show } from '../smapi/validate.js';

export class PluginFailure extends Error {
  constructor(
    readonly code: string,
    readonly params: readonly string[],
  ) {
    super(`${code} ${params.join(' ')}`);
    this.name = 'PluginFailure';
  }
}

/** A failure while running `fn`: `kind` names what failed (an SmError kind, BadRequest...). */
export function pluginException(fn: string, kind: string, message: string): PluginFailure {
  return new PluginFailure('XENAPI_PLUGIN_EXCEPTION', [fn, kind, message]);
}

export interface PluginCall {
  fn: string;
  session: string;
  args: Record<string, string>;
}

/** argv (without node and the script) as xapi passes it; throws PluginFailure. */
export function parsePluginCall(argv: readonly string[]): PluginCall {
  if (argv.length !== 1) throw pluginException('', 'BadRequest', `expected exactly one argument (the XML-RPC call), got ${argv.length}`);
  let call;
  try {
    call = decodeMethodCall(argv[0]!);
  } catch (e) {
    if (e instanceof XmlRpcDecodeError) throw pluginException('', 'BadRequest', `the call is not XML-RPC: ${e.message}`);
    throw e;
  }
  const fn = call.methodName;
  if (call.params.length !== 2) throw pluginException(fn, 'BadRequest', `expected 2 params (session, args), got ${call.params.length}`);
  const [session, args] = call.params;
  if (typeof session !== 'string') throw pluginException(fn, 'BadRequest', `the session is not a string: ${show(session)}`);
  if (!isStruct(args)) throw pluginException(fn, 'BadRequest', `the args are not a struct: ${show(args)}`);
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(args)) {
    if (typeof v !== 'string') throw pluginException(fn, 'BadRequest', `args.${k} is not a string: ${show(v)}`);
    out[k] = v;
  }
  return { fn, session, args: out };
}

export function successEnvelope(value: string): XmlRpcStruct {
  return { Status: 'Success', Value: value };
}

export function failureEnvelope(code: string, params: readonly string[]): XmlRpcStruct {
  return { Status: 'Failure', ErrorDescription: [code, ...params] };
}
