// One XenAPI call over XML-RPC, the way the Python SM library's XenAPI.xapi_local()
// makes it: HTTP POST over xapi's Unix socket, the request's session as first
// parameter, `Subtask-of` so xapi files the work under the calling task.
// The session belongs to xapi (it is cached and reused across plugin calls), so
// it is never logged out and never written into an error or a log line.
import { validateHeaderValue } from 'node:http';
import type * as Xmlrpc from 'xmlrpc';
import { VERSION } from '../version.js';
import { XapiError, XapiProtocolError, XapiTransportError } from './errors.js';
import { XapiDateTime, XapiFloat, int64, type XapiArg } from './wire.js';

export const XAPI_SOCKET = '/var/lib/xcp/xapi';

export type XapiEndpoint = { socketPath: string; path: string } | { host: string; port: number; path: string };

/** FLATSNAP_XAPI_URL (http://host:port[/path], for the simulator) or xapi's local socket. */
export function resolveEndpoint(env: NodeJS.ProcessEnv = process.env): XapiEndpoint {
  const url = env.FLATSNAP_XAPI_URL;
  if (!url) return { socketPath: XAPI_SOCKET, path: '/' };
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new XapiTransportError('(connect)', `FLATSNAP_XAPI_URL is not a URL: ${JSON.stringify(url)}`);
  }
  if (u.protocol !== 'http:') throw new XapiTransportError('(connect)', `FLATSNAP_XAPI_URL must be http://, got ${u.protocol}`);
  return {
    host: u.hostname.replace(/^\[(.*)\]$/, '$1'),
    port: u.port ? Number(u.port) : 80,
    path: `${u.pathname}${u.search}` || '/',
  };
}

// The xmlrpc package loads http and https when it is loaded, which costs more
// than the rest of a driver start-up; commands that never call xapi (driver
// info, bad requests) must not pay for it, so it is loaded on the first call.
type XmlrpcLib = typeof Xmlrpc;
let xmlrpcLib: Promise<XmlrpcLib> | undefined;
function loadXmlrpc(): Promise<XmlrpcLib> {
  xmlrpcLib ??= import('xmlrpc').then((m) => ((m as { default?: XmlrpcLib }).default ?? m) as XmlrpcLib);
  return xmlrpcLib;
}

// The xmlrpc package would write a Date as local time without a zone, and any
// whole number as a 32-bit <int>; these custom types write exactly what xapi
// writes. (Its global dateFormatter is left alone: it is shared process-wide.)
function customParam(lib: XmlrpcLib, tagName: string, raw: string): unknown {
  return Object.assign(new lib.CustomType(raw), { tagName });
}

function toParam(lib: XmlrpcLib, a: XapiArg): unknown {
  if (typeof a === 'string' || typeof a === 'boolean') return a;
  if (typeof a === 'number') return int64(a);
  if (a instanceof XapiDateTime) return customParam(lib, 'dateTime.iso8601', a.wire);
  if (a instanceof XapiFloat) return customParam(lib, 'double', String(a.value));
  if (Array.isArray(a)) return a.map((x) => toParam(lib, x));
  if (typeof a === 'object' && a !== null && Object.getPrototypeOf(a) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(a as Record<string, XapiArg>)) {
      if (v === undefined) throw new TypeError(`map key ${JSON.stringify(k)} has no value`);
      out[k] = toParam(lib, v);
    }
    return out;
  }
  throw new TypeError(`cannot send ${Object.prototype.toString.call(a)} to xapi (wrap dates in XapiDateTime)`);
}

// Calls that would end xapi's shared SM session for every later plugin call.
const FORBIDDEN = new Set(['session.logout', 'session.local_logout', 'Async.session.logout']);

interface XmlRpcError extends Error {
  code?: unknown;
  faultCode?: unknown;
  faultString?: unknown;
  res?: { statusCode?: number };
}

export interface TransportOptions {
  /** session_ref from the SMAPIv1 request. */
  session: string;
  /** subtask_of from the SMAPIv1 request, sent as `Subtask-of`. */
  subtaskOf?: string;
  endpoint?: XapiEndpoint;
}

export class XapiTransport {
  readonly #session: string;
  readonly #options: Record<string, unknown>;
  #client: Xmlrpc.Client | undefined;

  constructor(o: TransportOptions) {
    this.#session = o.session;
    const headers: Record<string, string> = {
      'User-Agent': `flatsnap/${VERSION}`,
      // One connection per call: a reused connection that xapi closed while idle
      // fails with ECONNRESET, and a db_introduce that may or may not have run
      // cannot be retried safely. Connecting to a local socket costs microseconds.
      Connection: 'close',
    };
    if (o.subtaskOf) {
      validateHeaderValue('Subtask-of', o.subtaskOf);
      headers['Subtask-of'] = o.subtaskOf;
    }
    // xmlrpc hands these options to http.request unchanged, so socketPath and
    // agent work although its typings do not list them.
    this.#options = { ...(o.endpoint ?? resolveEndpoint()), headers, agent: false };
  }

  /** Calls `method(session, ...args)` and returns the Value of a Success. */
  async call(method: string, args: readonly XapiArg[]): Promise<unknown> {
    if (FORBIDDEN.has(method)) throw new Error(`${method}: the SM session belongs to xapi and is never logged out`);
    const lib = await loadXmlrpc();
    this.#client ??= lib.createClient(this.#options as Parameters<XmlrpcLib['createClient']>[0]);
    const client = this.#client;
    let params: unknown[];
    try {
      params = [this.#session, ...args.map((a) => toParam(lib, a))];
    } catch (e) {
      throw new XapiProtocolError(method, `cannot encode the request: ${(e as Error).message}`);
    }
    return new Promise((resolve, reject) => {
      let settled = false;
      const done = (err: unknown, value?: unknown): void => {
        // The package does not guard its callback: a request error can follow a parse error.
        if (settled) return;
        settled = true;
        try {
          if (err) throw this.classify(method, err as XmlRpcError);
          resolve(this.unwrap(method, value));
        } catch (e) {
          reject(e);
        }
      };
      try {
        client.methodCall(method, params, done);
      } catch (e) {
        // Serialisation happens synchronously: xmlbuilder refuses characters XML cannot carry.
        done(new XapiProtocolError(method, `cannot encode the request: ${(e as Error).message}`));
      }
    });
  }

  private classify(method: string, err: XmlRpcError): Error {
    if (err instanceof XapiProtocolError) return err;
    const msg = oneLine(err.message);
    if (err.faultCode !== undefined) {
      return new XapiProtocolError(method, `XML-RPC fault ${String(err.faultCode)}: ${oneLine(String(err.faultString ?? ''))}`);
    }
    // A system error code means the connection failed, whether before or during the response.
    if (typeof err.code === 'string' && /^E[A-Z]+$/.test(err.code)) return new XapiTransportError(method, msg, err.code);
    // Everything else the package reports came from parsing what the server sent.
    const status = err.res?.statusCode;
    const http = status !== undefined && status !== 200 ? `HTTP ${status}, ` : '';
    return new XapiProtocolError(method, `not an XML-RPC response (${http}${msg})`);
  }

  private unwrap(method: string, v: unknown): unknown {
    if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof Date || Buffer.isBuffer(v)) {
      throw new XapiProtocolError(method, 'the response is not a XenAPI {Status, ...} struct');
    }
    const r = v as Record<string, unknown>;
    if (r.Status === 'Success') {
      if (!('Value' in r)) throw new XapiProtocolError(method, 'a Success response without Value');
      return r.Value;
    }
    if (r.Status === 'Failure') {
      const d = r.ErrorDescription;
      if (!Array.isArray(d) || typeof d[0] !== 'string' || d[0] === '') {
        throw new XapiProtocolError(method, 'a Failure response without an ErrorDescription code');
      }
      const params = d.slice(1).map((p) => this.scrub(typeof p === 'string' ? p : JSON.stringify(p)));
      throw new XapiError(method, this.scrub(d[0]), params);
    }
    throw new XapiProtocolError(method, `the response Status is ${JSON.stringify(r.Status ?? null)}`);
  }

  // SESSION_INVALID and friends carry the session ref as a parameter.
  private scrub(s: string): string {
    return this.#session ? s.split(this.#session).join('<session>') : s;
  }
}

function oneLine(s: string): string {
  return s.replace(/\s*\n\s*/g, ' ').trim();
}
