// XenAPI's XML-RPC conventions (xapi-flows.md 5.1), on our side of the codec:
// int64 travels as a decimal string, DateTime as <dateTime.iso8601> in xapi's
// own YYYYMMDDTHH:MM:SSZ form, floats as <double>, maps as structs. Arguments
// are built from the types below so a size can never go out as an XML-RPC
// <int> (32-bit on most parsers) and a date never in local time.
import { XapiProtocolError } from './errors.js';

export const NULL_REF = 'OpaqueRef:NULL';

const XAPI_TIME = /^(\d{4})-?(\d{2})-?(\d{2})T(\d{2}):?(\d{2}):?(\d{2})(?:\.\d+)?(Z|[+-]\d{2}(?::?\d{2})?)?$/;

/** A XenAPI DateTime, held in the exact text xapi writes: `19700101T00:00:00Z`. */
export class XapiDateTime {
  private constructor(readonly wire: string) {}

  static readonly EPOCH = new XapiDateTime('19700101T00:00:00Z');

  /** From a Date, or from any text xapi accepts (its own form, RFC 3339; no zone = UTC). */
  static from(v: Date | string | XapiDateTime): XapiDateTime {
    if (v instanceof XapiDateTime) return v;
    if (v instanceof Date) return new XapiDateTime(formatUtc(v));
    const m = XAPI_TIME.exec(v);
    if (!m) throw new TypeError(`not an ISO 8601 time: ${JSON.stringify(v)}`);
    const [, y, mo, d, h, mi, s, zone] = m;
    let ms = Date.UTC(+y!, +mo! - 1, +d!, +h!, +mi!, +s!);
    if (zone && zone !== 'Z') {
      const sign = zone.startsWith('-') ? -1 : 1;
      const digits = zone.slice(1).replace(':', '');
      ms -= sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2) || '0')) * 60_000;
    }
    return new XapiDateTime(formatUtc(new Date(ms)));
  }

  toDate(): Date {
    const m = XAPI_TIME.exec(this.wire)!;
    return new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!));
  }

  toString(): string {
    return this.wire;
  }
}

function formatUtc(d: Date): string {
  if (Number.isNaN(d.getTime())) throw new TypeError('invalid Date');
  const p = (n: number, w = 2): string => String(n).padStart(w, '0');
  return (
    `${p(d.getUTCFullYear(), 4)}${p(d.getUTCMonth() + 1)}${p(d.getUTCDate())}` +
    `T${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())}Z`
  );
}

/** A XenAPI float (task progress): goes out as <double>, even when whole. */
export class XapiFloat {
  constructor(readonly value: number) {
    if (!Number.isFinite(value)) throw new TypeError(`not a finite float: ${value}`);
  }
}

/**
 * One argument of a XenAPI call. A JS number is a XenAPI int (int64) and goes out
 * as a decimal string; floats must be wrapped in XapiFloat, dates in XapiDateTime.
 */
export type XapiArg = string | number | boolean | XapiDateTime | XapiFloat | readonly XapiArg[] | XapiMap;
export interface XapiMap {
  readonly [key: string]: XapiArg;
}

/** An int64 as xapi sends and accepts it: decimal text. */
export function int64(n: number): string {
  if (!Number.isSafeInteger(n)) throw new TypeError(`not an exact integer: ${n}`);
  return String(n);
}

// ---------------------------------------------------------------------------
// Reading results. Everything xapi returns is checked against the shape the
// caller expects; a mismatch is a protocol error naming the method and field.

export type StringMap = Record<string, string>;

function describe(v: unknown): string {
  if (v instanceof Date) return 'a dateTime';
  if (Array.isArray(v)) return 'an array';
  if (v === null) return 'nil';
  const s = JSON.stringify(v) ?? typeof v;
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date) && !Buffer.isBuffer(v);
}

export function readString(method: string, what: string, v: unknown): string {
  if (typeof v !== 'string') throw new XapiProtocolError(method, `${what} should be a string, got ${describe(v)}`);
  return v;
}

// Refs are opaque: xapi stores what it was given (FileSR introduces VDIs with
// metadata_of_pool ""), so only the type is checked.
export function readRef(method: string, what: string, v: unknown): string {
  return readString(method, what, v);
}

export function readInt(method: string, what: string, v: unknown): number {
  const n = typeof v === 'string' && /^-?\d+$/.test(v) ? Number(v) : typeof v === 'number' ? v : NaN;
  if (!Number.isSafeInteger(n)) throw new XapiProtocolError(method, `${what} should be an int, got ${describe(v)}`);
  return n;
}

export function readFloat(method: string, what: string, v: unknown): number {
  const n = typeof v === 'number' ? v : typeof v === 'string' && v.trim() !== '' ? Number(v) : NaN;
  if (!Number.isFinite(n)) throw new XapiProtocolError(method, `${what} should be a float, got ${describe(v)}`);
  return n;
}

export function readBool(method: string, what: string, v: unknown): boolean {
  if (typeof v !== 'boolean') throw new XapiProtocolError(method, `${what} should be a boolean, got ${describe(v)}`);
  return v;
}

/** A DateTime, returned in xapi's canonical text form. */
export function readTime(method: string, what: string, v: unknown): string {
  try {
    if (v instanceof Date || typeof v === 'string') return XapiDateTime.from(v).wire;
  } catch {
    // fall through to the protocol error
  }
  throw new XapiProtocolError(method, `${what} should be a dateTime, got ${describe(v)}`);
}

export function readStringMap(method: string, what: string, v: unknown): StringMap {
  if (!isPlainObject(v)) throw new XapiProtocolError(method, `${what} should be a struct, got ${describe(v)}`);
  const out: StringMap = {};
  for (const [k, x] of Object.entries(v)) out[k] = readString(method, `${what}.${k}`, x);
  return out;
}

export function readRefs(method: string, what: string, v: unknown): string[] {
  if (!Array.isArray(v)) throw new XapiProtocolError(method, `${what} should be an array, got ${describe(v)}`);
  return v.map((x, i) => readRef(method, `${what}[${i}]`, x));
}

export function readStruct(method: string, what: string, v: unknown): Record<string, unknown> {
  if (!isPlainObject(v)) throw new XapiProtocolError(method, `${what} should be a struct, got ${describe(v)}`);
  return v;
}

/** Field access on one returned record, with the method and field in every error. */
export class RecordReader {
  private readonly s: Record<string, unknown>;

  constructor(
    private readonly method: string,
    v: unknown,
    private readonly what = 'the record',
  ) {
    this.s = readStruct(method, what, v);
  }

  private field(k: string): unknown {
    if (!(k in this.s)) throw new XapiProtocolError(this.method, `${this.what} has no field ${k}`);
    return this.s[k];
  }

  private at(k: string): string {
    return `${this.what}.${k}`;
  }

  str(k: string): string {
    return readString(this.method, this.at(k), this.field(k));
  }
  ref(k: string): string {
    return readRef(this.method, this.at(k), this.field(k));
  }
  int(k: string): number {
    return readInt(this.method, this.at(k), this.field(k));
  }
  bool(k: string): boolean {
    return readBool(this.method, this.at(k), this.field(k));
  }
  time(k: string): string {
    return readTime(this.method, this.at(k), this.field(k));
  }
  map(k: string): StringMap {
    return readStringMap(this.method, this.at(k), this.field(k));
  }
  refs(k: string): string[] {
    return readRefs(this.method, this.at(k), this.field(k));
  }
  strs(k: string): string[] {
    const v = this.field(k);
    if (!Array.isArray(v)) throw new XapiProtocolError(this.method, `${this.at(k)} should be an array, got ${describe(v)}`);
    return v.map((x, i) => readString(this.method, `${this.at(k)}[${i}]`, x));
  }
  oneOf<T extends string>(k: string, allowed: readonly T[]): T {
    const v = this.str(k);
    if (!(allowed as readonly string[]).includes(v)) {
      throw new XapiProtocolError(this.method, `${this.at(k)} should be one of ${allowed.join('|')}, got ${describe(v)}`);
    }
    return v as T;
  }
}
