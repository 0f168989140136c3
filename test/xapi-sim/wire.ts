// Values as xapi puts them on the wire, and xapi's error type.
// ocaml-rpc distinguishes Int (int64: a bare decimal in XML-RPC), Int32 (<i4>),
// Float (<double>) and DateTime; plain JS numbers are Floats here, the others
// are wrapped so both encoders can emit exactly what xapi emits.
import { DateTimeValue } from '../../src/smapi/xmlrpc.js';

export { DateTimeValue };

export class I64 {
  constructor(readonly n: number) {}
}
export class I32 {
  constructor(readonly n: number) {}
}

export type Wire = string | number | boolean | null | I64 | I32 | DateTimeValue | Wire[] | WireStruct;
export interface WireStruct {
  [k: string]: Wire;
}

/** A XenAPI failure: code plus string params (ErrorDescription). */
export class ApiError extends Error {
  readonly params: string[];
  constructor(
    readonly code: string,
    params: unknown[] = [],
  ) {
    super(`${code}(${params.map(String).join(', ')})`);
    this.params = params.map((p) => String(p));
  }
  get description(): string[] {
    return [this.code, ...this.params];
  }
}

export const NULL_REF = 'OpaqueRef:NULL';

export function isStructWire(v: Wire | undefined): v is WireStruct {
  return (
    typeof v === 'object' &&
    v !== null &&
    !Array.isArray(v) &&
    !(v instanceof I64) &&
    !(v instanceof I32) &&
    !(v instanceof DateTimeValue)
  );
}

/** xapi's DB/wire date form: YYYYMMDDTHH:MM:SSZ. */
export function xapiDate(d: Date = new Date()): string {
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getUTCFullYear()}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}T${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}Z`;
}
export const EPOCH = '19700101T00:00:00Z';

/** Accepts xapi's compact form, RFC 3339 with dashes, or a zone-less form (= UTC). */
export function parseDate(s: string): string {
  const m = /^(\d{4})-?(\d{2})-?(\d{2})T(\d{2}):?(\d{2}):?(\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})?$/.exec(s.trim());
  if (!m) throw new ApiError('INVALID_VALUE', ['date', s]);
  const [, y, mo, d, h, mi, se, , z] = m;
  const iso = `${y}-${mo}-${d}T${h}:${mi}:${se}${z && z !== 'Z' ? z.replace(/^([+-]\d{2})(\d{2})$/, '$1:$2') : 'Z'}`;
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) throw new ApiError('INVALID_VALUE', ['date', s]);
  return xapiDate(date);
}
