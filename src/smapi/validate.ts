// Validators for everything a request can carry. Each throws a BadRequest (or
// IllegalXMLChar) SmError that names the field and shows the bad value escaped,
// so a fault message never carries raw control characters back to xapi.
import { SmError, badRequest } from '../errors.js';

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const REF = /^(OpaqueRef|DummyRef):[^\s<>&\u0000-\u001f\u007f]*$/;
// 2^53-1 keeps every size exact in a JS number; no disk gets near 8 PiB.
const MAX_SIZE = Number.MAX_SAFE_INTEGER;

export function show(v: unknown): string {
  const s = JSON.stringify(v) ?? String(v);
  return s.length > 80 ? `${s.slice(0, 77)}..."` : s;
}

export function isUuid(s: string): boolean {
  return UUID.test(s);
}

export function requireUuid(field: string, v: string): string {
  if (!isUuid(v)) throw badRequest(`${field} is not a uuid: ${show(v)}`);
  return v.toLowerCase();
}

export function requireRef(field: string, v: string): string {
  if (!REF.test(v)) throw badRequest(`${field} is not an OpaqueRef: ${show(v)}`);
  return v;
}

/** A byte count as xapi writes it (%Lu): decimal digits only. */
export function parseSize(field: string, v: string): number {
  if (!/^\d{1,16}$/.test(v)) throw badRequest(`${field} is not a decimal byte count: ${show(v)}`);
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n > MAX_SIZE) throw badRequest(`${field} is too large: ${show(v)}`);
  return n;
}

/** OCaml's %b: exactly "true" or "false". */
export function parseBool(field: string, v: string): boolean {
  if (v === 'true') return true;
  if (v === 'false') return false;
  throw badRequest(`${field} is not "true" or "false": ${show(v)}`);
}

// eslint-disable-next-line no-control-regex
const CONTROL_ANY = /[\u0000-\u001f\u007f-\u009f]/;
// eslint-disable-next-line no-control-regex
const CONTROL_BUT_WHITESPACE = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/;
const MAX_NAME = 4096;

/** A name label: one line of printable text. */
export function requireLabel(field: string, v: string): string {
  if (CONTROL_ANY.test(v)) throw new SmError('IllegalXMLChar', `${field} contains a control character: ${show(v)}`);
  if (v.length > MAX_NAME) throw badRequest(`${field} is longer than ${MAX_NAME} characters`);
  return v;
}

/** A description may span lines (XenCenter allows it), but no other controls. */
export function requireDescription(field: string, v: string): string {
  if (CONTROL_BUT_WHITESPACE.test(v)) throw new SmError('IllegalXMLChar', `${field} contains a control character: ${show(v)}`);
  if (v.length > 4 * MAX_NAME) throw badRequest(`${field} is longer than ${4 * MAX_NAME} characters`);
  return v;
}

/** xapi's DateTime text, e.g. 19700101T00:00:00Z or 2026-11-25T01:02:03Z. */
export function parseXapiTime(field: string, v: string): Date {
  const m = /^(\d{4})-?(\d{2})-?(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(Z|[+-]\d{2}:?\d{2})?$/.exec(v);
  if (!m) throw badRequest(`${field} is not an ISO 8601 time: ${show(v)}`);
  const [, y, mo, d, h, mi, s] = m;
  const ms = Date.UTC(+y!, +mo! - 1, +d!, +h!, +mi!, +s!);
  if (Number.isNaN(ms)) throw badRequest(`${field} is not a valid time: ${show(v)}`);
  return new Date(ms);
}

/** An absolute path with no "..", no NUL, no control characters. */
export function requireAbsolutePath(field: string, v: string): string {
  if (!v.startsWith('/') || CONTROL_ANY.test(v) || v.split('/').some((p) => p === '..' || p === '.')) {
    throw badRequest(`${field} is not a clean absolute path: ${show(v)}`);
  }
  if (v.length > 1024) throw badRequest(`${field} is too long`);
  return v.length > 1 ? v.replace(/\/+$/, '') : v;
}
