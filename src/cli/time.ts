// Times on the command line (`flatsnap seek --at TIME`) and in its output.
//
// Accepted, always with a zone (a time without one is ambiguous on a host whose clock may
// be local; xapi itself writes UTC with "Z"):
//   2026-11-25T01:02:03Z            ISO 8601 extended (also "2026-11-25 01:02:03Z", lower-case t/z)
//   2026-11-25T01:02:03.456+01:00   fractions (any digits, cut to the millisecond), offsets
//   2026-11-25T01:02Z               seconds may be left out
//   20261125T01:02:03Z              xapi's DateTime (basic date, extended time)
//   20261125T010203.456Z            ISO 8601 basic: also a snapshot name's stamp
//   now                             the current time
// Every field is range-checked (no 30 February, no 24:00, no leap second), and the result
// must lie in 1970..9999, the range a snapshot name can carry.
import { MAX_TIME, MIN_TIME } from '../lineage/names.js';

export class TimeSyntaxError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TimeSyntaxError';
  }
}

// date: YYYY-MM-DD or YYYYMMDD (the back-reference keeps one style); time: hh:mm[:ss] or
// hhmm[ss], then an optional fraction; zone: Z, ±hh, ±hh:mm or ±hhmm.
const TIME_RE =
  /^(\d{4})(-?)(\d{2})\2(\d{2})[Tt ](\d{2})(:?)(\d{2})(?:\6(\d{2})(?:[.,](\d{1,9}))?)?(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)?$/;

const EXAMPLES = 'e.g. 2026-11-25T01:02:03Z, 2026-11-25T02:02:03+01:00, 20261125T01:02:03Z (xapi) or "now"';

/** `text` as ms since the epoch (UTC). `now` is the clock for "now". Throws TimeSyntaxError. */
export function parseTime(text: string, now: () => number = Date.now): number {
  const s = text.trim();
  if (s === 'now') return clampNow(now());
  const m = TIME_RE.exec(s);
  if (!m) {
    if (/^\d{4}-?\d{2}-?\d{2}$/.test(s)) throw new TimeSyntaxError(`${show(text)} has no time of day; give one with a zone, ${EXAMPLES}`);
    throw new TimeSyntaxError(`${show(text)} is not a time; ${EXAMPLES}`);
  }
  const [, ys, , mos, ds, hs, , mis, ss, frac, z, sign, ohs, oms] = m;
  if (z === undefined && sign === undefined) {
    throw new TimeSyntaxError(`${show(text)} has no time zone; add Z for UTC or an offset such as +01:00 (${EXAMPLES})`);
  }
  const y = Number(ys);
  const mo = Number(mos);
  const d = Number(ds);
  const h = Number(hs);
  const mi = Number(mis);
  const sec = ss === undefined ? 0 : Number(ss);
  const ms = frac === undefined ? 0 : Number(frac.slice(0, 3).padEnd(3, '0')); // cut, not rounded: "at or before"
  if (mo < 1 || mo > 12) throw new TimeSyntaxError(`${show(text)}: month ${mos} is not 01..12`);
  if (d < 1 || d > daysIn(y, mo)) throw new TimeSyntaxError(`${show(text)}: day ${ds} does not exist in ${ys}-${mos}`);
  if (h > 23) throw new TimeSyntaxError(`${show(text)}: hour ${hs} is not 00..23`);
  if (mi > 59) throw new TimeSyntaxError(`${show(text)}: minute ${mis} is not 00..59`);
  if (sec > 59) throw new TimeSyntaxError(`${show(text)}: second ${ss} is not 00..59`);
  let offset = 0;
  if (sign !== undefined) {
    const oh = Number(ohs);
    const om = oms === undefined ? 0 : Number(oms);
    if (oh > 23 || om > 59) throw new TimeSyntaxError(`${show(text)}: offset ${sign}${ohs}${oms === undefined ? '' : `:${oms}`} is not a zone offset`);
    offset = (sign === '-' ? -1 : 1) * (oh * 60 + om) * 60_000;
  }
  const t = Date.UTC(y, mo - 1, d, h, mi, sec, ms) - offset;
  if (y < 100 || !Number.isFinite(t) || t < MIN_TIME || t > MAX_TIME) {
    throw new TimeSyntaxError(`${show(text)} is outside 1970-01-01T00:00:00Z..9999-12-31T23:59:59.999Z`);
  }
  return t;
}

function clampNow(t: number): number {
  return Math.min(Math.max(Math.floor(t), MIN_TIME), MAX_TIME);
}

function daysIn(y: number, mo: number): number {
  return new Date(Date.UTC(y, mo, 0)).getUTCDate();
}

/** ms since the epoch as ISO 8601 UTC with milliseconds: 2026-11-25T01:02:03.456Z. */
export function isoTime(ms: number): string {
  return new Date(ms).toISOString();
}

function show(s: string): string {
  const j = JSON.stringify(s);
  return j.length > 60 ? `${j.slice(0, 57)}..."` : j;
}
