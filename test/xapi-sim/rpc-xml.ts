// XenAPI over XML-RPC as xapi speaks it (mirage/ocaml-rpc src/lib/xmlrpc.ml):
// requests are decoded with the shared codec; responses are written with
// ocaml-rpc's encoder: `<?xml version="1.0"?>` header, int64 as a bare decimal,
// int32 as <i4>, floats as <double>%.16g, strings bare (empty: <value></value>),
// always wrapped in {Status, Value} / {Status, ErrorDescription}.
import { decodeMethodCall, escapeXml, type XmlRpcValue } from '../../src/smapi/xmlrpc.js';
import { ApiError, DateTimeValue, I32, I64, type Wire } from './wire.js';

/** %.16g as OCaml's Printf prints it. */
export function g16(n: number): string {
  if (Number.isNaN(n)) return 'nan';
  if (!Number.isFinite(n)) return n > 0 ? 'inf' : '-inf';
  if (Number.isInteger(n) && Math.abs(n) < 1e16) return String(n);
  const exp = Math.floor(Math.log10(Math.abs(n)));
  if (exp < -4 || exp >= 16) {
    const [m, e] = n.toExponential(15).split('e');
    const mant = m!.includes('.') ? m!.replace(/\.?0+$/, '') : m!;
    const ev = Number(e);
    return `${mant}e${ev < 0 ? '-' : '+'}${String(Math.abs(ev)).padStart(2, '0')}`;
  }
  const s = n.toPrecision(16);
  return s.includes('.') ? s.replace(/\.?0+$/, '') : s;
}

export function encodeXmlValue(v: Wire): string {
  if (v === null) return '<value><nil/></value>';
  if (typeof v === 'string') return `<value>${escapeXml(v)}</value>`;
  if (typeof v === 'boolean') return `<value><boolean>${v ? '1' : '0'}</boolean></value>`;
  if (typeof v === 'number') return `<value><double>${g16(v)}</double></value>`;
  if (v instanceof I64) return `<value>${Math.trunc(v.n)}</value>`;
  if (v instanceof I32) return `<value><i4>${Math.trunc(v.n)}</i4></value>`;
  if (v instanceof DateTimeValue) return `<value><dateTime.iso8601>${v.iso}</dateTime.iso8601></value>`;
  if (Array.isArray(v)) return `<value><array><data>${v.map(encodeXmlValue).join('')}</data></array></value>`;
  const members = Object.entries(v)
    .map(([k, x]) => `<member><name>${escapeXml(k)}</name>${encodeXmlValue(x)}</member>`)
    .join('');
  return `<value><struct>${members}</struct></value>`;
}

const HEADER = '<?xml version="1.0"?>';

export function xmlSuccess(value: Wire): string {
  return `${HEADER}<methodResponse><params><param>${encodeXmlValue({ Status: 'Success', Value: value })}</param></params></methodResponse>`;
}

export function xmlFailure(e: ApiError): string {
  return `${HEADER}<methodResponse><params><param>${encodeXmlValue({ Status: 'Failure', ErrorDescription: e.description })}</param></params></methodResponse>`;
}

/** system.listMethods: the bare value, no Status wrapper (api_server.ml). */
export function xmlBare(value: Wire): string {
  return `${HEADER}<methodResponse><params><param>${encodeXmlValue(value)}</param></params></methodResponse>`;
}

export function decodeXmlCall(body: string): { method: string; params: XmlRpcValue[] } {
  const c = decodeMethodCall(body);
  return { method: c.methodName, params: c.params };
}
