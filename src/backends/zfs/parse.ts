// Parsers for what zfs/zpool print. Pure functions, tested against recorded
// OpenZFS 2.x and zfs-fuse output (test/unit/zfs-parse.test.ts).
//
// `zfs get -H -p -o name,property,value,source` prints one line per dataset and
// property: fields separated by one tab, numbers exact (bytes, seconds), '-'
// for "no value" (an unset user property, `origin` of a non-clone, `volsize` of
// a filesystem), and the source as `-`, `local`, `default`, `temporary`,
// `received` or `inherited from <dataset>`.
import { decodeUserValue } from './codec.js';
import { isUserProp } from './names.js';

export type PropSource = 'none' | 'local' | 'default' | 'temporary' | 'received' | 'inherited';

export interface ZfsProp {
  /** Raw value as printed ('-' included). */
  readonly value: string;
  readonly source: PropSource;
  /** For source 'inherited': the dataset it comes from. */
  readonly inheritedFrom?: string;
}

export type DatasetType = 'filesystem' | 'volume' | 'snapshot' | 'bookmark' | 'unknown';

/** One dataset or snapshot from a bulk `zfs get`, with the usual properties typed. */
export interface ZfsDataset {
  readonly name: string;
  readonly type: DatasetType;
  /** Every property line for this dataset, raw. */
  readonly props: ReadonlyMap<string, ZfsProp>;
  /** User properties set on this very dataset or snapshot (source local or received), decoded. Inherited ones are not here. */
  readonly user: Readonly<Record<string, string>>;
  /** Clone origin snapshot. */
  readonly origin?: string;
  readonly used?: number;
  readonly referenced?: number;
  readonly available?: number;
  readonly logicalReferenced?: number;
  /** Volumes only. */
  readonly volsize?: number;
  readonly volblocksize?: number;
  /** 0 means none. */
  readonly refreservation?: number;
  /** 0 means none. */
  readonly refquota?: number;
  /** Seconds since the epoch. */
  readonly creation?: number;
  readonly createtxg?: number;
  readonly guid?: string;
  /** Filesystems only. */
  readonly mounted?: boolean;
  readonly mountpoint?: string;
  readonly canmount?: string;
  /** Snapshots only: marked by `zfs destroy -d` and kept alive by clones or holds. */
  readonly deferDestroy?: boolean;
  /** Snapshots only: number of user holds. */
  readonly userrefs?: number;
}

export interface GetResult {
  /** By name, in the order zfs printed them (parents before children, a dataset before its snapshots). */
  readonly datasets: Map<string, ZfsDataset>;
  /** Lines that could not be parsed (a foreign property value with a newline, ...). */
  readonly warnings: string[];
}

export function parseSource(s: string): { source: PropSource; inheritedFrom?: string } {
  switch (s) {
    case '-':
      return { source: 'none' };
    case 'local':
    case 'default':
    case 'temporary':
    case 'received':
      return { source: s };
  }
  const m = /^inherited from (.+)$/.exec(s);
  if (m) return { source: 'inherited', inheritedFrom: m[1] };
  return { source: 'none' };
}

/**
 * A byte count or other integer printed with -p. undefined for '-' and 'none';
 * undefined also for values past 2^53 (e.g. filesystem_limit's 2^64-1 "none").
 */
export function parseIntValue(v: string | undefined): number | undefined {
  if (v === undefined || v === '-' || v === 'none' || v === '') return undefined;
  if (!/^\d+$/.test(v)) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : undefined;
}

function parseOnOff(v: string | undefined): boolean | undefined {
  if (v === 'yes' || v === 'on') return true;
  if (v === 'no' || v === 'off') return false;
  return undefined;
}

function parseType(v: string | undefined): DatasetType {
  switch (v) {
    case 'filesystem':
    case 'volume':
    case 'snapshot':
    case 'bookmark':
      return v;
    default:
      return 'unknown';
  }
}

function typeFromName(name: string): DatasetType {
  if (name.includes('#')) return 'bookmark';
  if (name.includes('@')) return 'snapshot';
  return 'unknown';
}

/** The typed view of one dataset's property lines. */
export function toDataset(name: string, props: ReadonlyMap<string, ZfsProp>): ZfsDataset {
  const raw = (k: string): string | undefined => {
    const p = props.get(k);
    if (!p || (p.value === '-' && p.source === 'none')) return undefined;
    return p.value;
  };
  const num = (k: string) => parseIntValue(raw(k));
  const user: Record<string, string> = {};
  for (const [k, p] of props) {
    if (!isUserProp(k)) continue;
    if (p.source === 'local' || p.source === 'received') user[k] = decodeUserValue(p.value);
  }
  const type = raw('type') !== undefined ? parseType(raw('type')) : typeFromName(name);
  const origin = raw('origin');
  const mountpoint = raw('mountpoint');
  const d: { -readonly [K in keyof ZfsDataset]: ZfsDataset[K] } = { name, type, props, user };
  if (origin !== undefined) d.origin = origin;
  const set = <K extends keyof ZfsDataset>(k: K, v: ZfsDataset[K] | undefined) => {
    if (v !== undefined) d[k] = v;
  };
  set('used', num('used'));
  set('referenced', num('referenced'));
  set('available', num('available'));
  set('logicalReferenced', num('logicalreferenced'));
  set('volsize', num('volsize'));
  set('volblocksize', num('volblocksize'));
  set('refreservation', num('refreservation'));
  set('refquota', num('refquota'));
  set('creation', num('creation'));
  set('createtxg', num('createtxg'));
  set('guid', raw('guid'));
  set('mounted', parseOnOff(raw('mounted')));
  set('mountpoint', mountpoint);
  set('canmount', raw('canmount'));
  set('deferDestroy', parseOnOff(raw('defer_destroy')));
  set('userrefs', num('userrefs'));
  return d;
}

/**
 * Parses `zfs get -H [-p] -o name,property,value,source ...` output. Bookmarks
 * (OpenZFS prints them when asked for type "all") are dropped.
 */
export function parseGet(text: string): GetResult {
  const byName = new Map<string, Map<string, ZfsProp>>();
  const warnings: string[] = [];
  for (const line of text.split('\n')) {
    if (line === '') continue;
    const f = line.split('\t');
    if (f.length < 4) {
      warnings.push(`unparsable zfs get line: ${JSON.stringify(line).slice(0, 200)}`);
      continue;
    }
    const name = f[0]!;
    const prop = f[1]!;
    // A value with a tab in it (never ours: we encode) spans several fields.
    const value = f.slice(2, -1).join('\t');
    const { source, inheritedFrom } = parseSource(f[f.length - 1]!);
    if (name.includes('#')) continue;
    let m = byName.get(name);
    if (!m) byName.set(name, (m = new Map()));
    m.set(prop, inheritedFrom === undefined ? { value, source } : { value, source, inheritedFrom });
  }
  const datasets = new Map<string, ZfsDataset>();
  for (const [name, props] of byName) datasets.set(name, toDataset(name, props));
  return { datasets, warnings };
}

/** Parses `zfs list -H -o name` (or any single-column -H output): one name per line. */
export function parseNames(text: string): string[] {
  return text.split('\n').filter((l) => l !== '');
}

// ---- sizes -------------------------------------------------------------------

const UNITS = 'BKMGTPEZ';

/**
 * A human-readable size as zfs/zpool print without -p ("1.98G", "556K", "0",
 * "16.0E"); powers of 1024. Approximate by nature (3 significant digits): only
 * for zfs-fuse, whose zpool has no -p.
 */
export function parseHumanSize(v: string): number | undefined {
  if (v === '-' || v === 'none' || v === '') return undefined;
  const m = /^(\d+(?:\.\d+)?)([BKMGTPEZ]?)$/.exec(v.trim());
  if (!m) return undefined;
  const exp = m[2] ? UNITS.indexOf(m[2]) : 0;
  return Math.round(Number(m[1]) * 1024 ** exp);
}

// ---- zpool ----------------------------------------------------------------------

export type PoolHealth = 'ONLINE' | 'DEGRADED' | 'FAULTED' | 'OFFLINE' | 'UNAVAIL' | 'REMOVED' | 'SUSPENDED' | string;

export interface PoolStats {
  readonly name: string;
  readonly size: number;
  readonly allocated: number;
  readonly free: number;
  readonly health: PoolHealth;
  /** False when the sizes were parsed from human-readable text (zfs-fuse). */
  readonly exact: boolean;
}

/**
 * Parses `zpool list -H [-p] -o name,size,allocated,free,health` lines. With
 * -p sizes are exact bytes; without (zfs-fuse) they are rounded human text.
 */
export function parseZpoolList(text: string, exact: boolean): PoolStats[] {
  const out: PoolStats[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const f = line.split('\t');
    if (f.length < 5) continue;
    const [name, size, alloc, free, health] = f as [string, string, string, string, string];
    const p = exact ? parseIntValue : parseHumanSize;
    out.push({ name, size: p(size) ?? 0, allocated: p(alloc) ?? 0, free: p(free) ?? 0, health, exact });
  }
  return out;
}

// ---- version ---------------------------------------------------------------------

export interface OpenZfsVersion {
  readonly major: number;
  readonly minor: number;
  readonly patch: number;
  /** Full userland version string, e.g. "zfs-2.2.2-0ubuntu9.1". */
  readonly userland: string;
  /** Kernel module version line, e.g. "zfs-kmod-2.2.2-0ubuntu9.1", if printed. */
  readonly kmod?: string;
}

/** Parses `zfs version` (OpenZFS >= 0.8): "zfs-2.2.2-1\nzfs-kmod-2.2.2-1". */
export function parseZfsVersion(stdout: string): OpenZfsVersion | undefined {
  const lines = stdout.split('\n').map((l) => l.trim());
  const userland = lines.find((l) => /^zfs-\d/.test(l));
  if (!userland) return undefined;
  const m = /^zfs-(\d+)\.(\d+)\.(\d+)/.exec(userland);
  if (!m) return undefined;
  const kmod = lines.find((l) => l.startsWith('zfs-kmod-'));
  const v = { major: Number(m[1]), minor: Number(m[2]), patch: Number(m[3]), userland };
  return kmod ? { ...v, kmod } : v;
}
