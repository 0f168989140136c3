// A XenAPI session of the operator command's own: session.login_with_password and
// session.logout. src/xapi's transport always sends a session as the first parameter
// (a driver gets its session from xapi and must never log it out), so these two calls
// are made here directly with the same XML-RPC package and the same error classes.
// The password is never logged, printed or put in an error.
import type * as Xmlrpc from 'xmlrpc';
import { VERSION } from '../version.js';
import { XapiClient } from '../xapi/client.js';
import { XapiError, XapiProtocolError, XapiTransportError } from '../xapi/errors.js';
import type { XapiEndpoint } from '../xapi/transport.js';
import type { XapiOptions } from './args.js';

type XmlrpcLib = typeof Xmlrpc;

async function loadXmlrpc(): Promise<XmlrpcLib> {
  const m = await import('xmlrpc');
  return ((m as { default?: XmlrpcLib }).default ?? m) as XmlrpcLib;
}

/** One call without a session parameter; returns the Value of a Success. */
async function sessionCall(endpoint: XapiEndpoint, method: string, params: string[]): Promise<unknown> {
  const lib = await loadXmlrpc();
  const client = lib.createClient({
    ...endpoint,
    headers: { 'User-Agent': `flatsnap-cli/${VERSION}`, Connection: 'close' },
    agent: false,
  } as unknown as Parameters<XmlrpcLib['createClient']>[0]);
  const value = await new Promise<unknown>((resolve, reject) => {
    let settled = false;
    client.methodCall(method, params, (err: unknown, v: unknown) => {
      if (settled) return;
      settled = true;
      if (!err) return resolve(v);
      const e = err as { code?: unknown; message?: string; faultCode?: unknown };
      if (typeof e.code === 'string' && /^E[A-Z]+$/.test(e.code)) reject(new XapiTransportError(method, String(e.message ?? e.code), e.code));
      else reject(new XapiProtocolError(method, `not an XML-RPC response (${String(e.message ?? err)})`));
    });
  });
  if (typeof value !== 'object' || value === null) throw new XapiProtocolError(method, 'the response is not a XenAPI {Status, ...} struct');
  const r = value as Record<string, unknown>;
  if (r.Status === 'Success') return r.Value;
  const d = Array.isArray(r.ErrorDescription) ? r.ErrorDescription.map(String) : [];
  throw new XapiError(method, d[0] ?? 'unknown failure', d.slice(1));
}

export async function loginWithPassword(endpoint: XapiEndpoint, user: string, password: string): Promise<string> {
  const m = 'session.login_with_password';
  let v: unknown;
  try {
    v = await sessionCall(endpoint, m, [user, password, '1.0', 'flatsnap-cli']);
  } catch (e) {
    // xapi's authentication failure carries the user name and a reason, never the password;
    // scrub anyway, in case a server echoes what it was sent.
    if (e instanceof XapiError && password !== '') throw new XapiError(m, e.code, e.params.map((p) => p.split(password).join('******')));
    throw e;
  }
  if (typeof v !== 'string' || !v.startsWith('OpaqueRef:')) throw new XapiProtocolError(m, 'the result is not a session ref');
  return v;
}

export async function logout(endpoint: XapiEndpoint, session: string): Promise<void> {
  await sessionCall(endpoint, 'session.logout', [session]);
}

/** Logs in, runs `fn` with a client on that session, and always logs out. */
export async function withXapi<T>(o: XapiOptions, fn: (x: XapiClient) => Promise<T>): Promise<T> {
  const session = await loginWithPassword(o.endpoint, o.user, o.password);
  try {
    return await fn(new XapiClient({ session, endpoint: o.endpoint }));
  } finally {
    await logout(o.endpoint, session).catch(() => undefined);
  }
}
