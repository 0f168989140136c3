// Snapshot names: UTC creation time first, then the object's uuid, so that plain
// string order of names is time order (the paper's "snapshots named by timestamp").
//
//   VDI snapshot       20261125T014729.123Z-3f2c8a1e-0b7d-4c55-9d41-6a2f1b0c9e77
//   internal snapshot  20261125T014729.123Z-int-5b1d0c2e-7a44-4f1e-8c3a-0d9e2f6b1a55
//
// Fixed width (20-character stamp), only [0-9A-Za-z.-], so the names are valid ZFS
// snapshot names and file names alike. The `int-` tag cannot be mistaken for a uuid
// ("i", "n", "t" are not hex) and sorts after every uuid taken in the same millisecond,
// so the two kinds still interleave in time order.

/** Length of a stamp such as `20261125T014729.123Z`. */
export const STAMP_LENGTH = 20;
/** The earliest time a name can carry: 1970-01-01T00:00:00.000Z. */
export const MIN_TIME = 0;
/** The latest time a name can carry: 9999-12-31T23:59:59.999Z (four-digit years keep the width fixed). */
export const MAX_TIME = Date.UTC(9999, 11, 31, 23, 59, 59, 999);
/** The tag between the stamp and the uuid of an internal snapshot. */
export const INTERNAL_TAG = 'int';

const STAMP_RE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})\.(\d{3})Z$/;
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export type SnapshotNameKind = 'vdi' | 'internal';

export interface SnapshotName {
  readonly kind: SnapshotNameKind;
  /** Milliseconds since the epoch, UTC. */
  readonly time: number;
  readonly uuid: string;
}

/** A canonical (lower-case, hyphenated) uuid, the form xapi uses. */
export function isUuid(s: string): boolean {
  return UUID_RE.test(s);
}

export function isNameableTime(ms: number): boolean {
  return Number.isInteger(ms) && ms >= MIN_TIME && ms <= MAX_TIME;
}

const pad = (n: number, width: number): string => String(n).padStart(width, '0');

/** `ms` (integer, 1970..9999) as `YYYYMMDDTHHMMSS.mmmZ`. */
export function formatTimestamp(ms: number): string {
  if (!isNameableTime(ms)) throw new RangeError(`time not representable in a snapshot name: ${ms}`);
  const d = new Date(ms);
  return (
    pad(d.getUTCFullYear(), 4) + pad(d.getUTCMonth() + 1, 2) + pad(d.getUTCDate(), 2) + 'T' +
    pad(d.getUTCHours(), 2) + pad(d.getUTCMinutes(), 2) + pad(d.getUTCSeconds(), 2) + '.' +
    pad(d.getUTCMilliseconds(), 3) + 'Z'
  );
}

/** The inverse of formatTimestamp; undefined for anything that is not exactly a canonical stamp. */
export function parseTimestamp(s: string): number | undefined {
  const m = STAMP_RE.exec(s);
  if (!m) return undefined;
  const [y, mo, d, h, mi, se, ms] = m.slice(1).map(Number) as [number, number, number, number, number, number, number];
  if (y < 1970) return undefined; // Date.UTC would also remap years 0..99
  const t = Date.UTC(y, mo - 1, d, h, mi, se, ms);
  // Round trip rejects what Date.UTC silently normalises: month 13, 30 February, 24:00...
  return isNameableTime(t) && formatTimestamp(t) === s ? t : undefined;
}

function checkUuid(uuid: string): void {
  if (!isUuid(uuid)) throw new RangeError(`not a canonical lower-case uuid: ${JSON.stringify(uuid)}`);
}

/** Name of the storage snapshot behind snapshot VDI `uuid` taken at `time`. */
export function formatSnapshotName(time: number, uuid: string): string {
  checkUuid(uuid);
  return `${formatTimestamp(time)}-${uuid}`;
}

/** Name of a hidden snapshot (taken to clone a live volume), object id `uuid`, taken at `time`. */
export function formatInternalSnapshotName(time: number, uuid: string): string {
  checkUuid(uuid);
  return `${formatTimestamp(time)}-${INTERNAL_TAG}-${uuid}`;
}

export function formatName(n: SnapshotName): string {
  return n.kind === 'vdi' ? formatSnapshotName(n.time, n.uuid) : formatInternalSnapshotName(n.time, n.uuid);
}

/**
 * Parses either kind of snapshot name; undefined for anything malformed (wrong width, bad
 * date, upper-case or short uuid, unknown tag, trailing text...). format(parse(s)) === s.
 */
export function parseSnapshotName(name: string): SnapshotName | undefined {
  if (name.length < STAMP_LENGTH + 1 || name[STAMP_LENGTH] !== '-') return undefined;
  const time = parseTimestamp(name.slice(0, STAMP_LENGTH));
  if (time === undefined) return undefined;
  let rest = name.slice(STAMP_LENGTH + 1);
  let kind: SnapshotNameKind = 'vdi';
  if (rest.startsWith(`${INTERNAL_TAG}-`)) {
    kind = 'internal';
    rest = rest.slice(INTERNAL_TAG.length + 1);
  }
  return isUuid(rest) ? { kind, time, uuid: rest } : undefined;
}

export function isSnapshotName(name: string): boolean {
  return parseSnapshotName(name) !== undefined;
}
