// ZFS failures, classified from stderr. One table maps each kind to the stderr
// patterns that identify it, the SM error it becomes at the SMAPI boundary, and
// whether the command layer retries it. Patterns are those of OpenZFS 2.x libzfs
// and zfs(8) (run with LC_ALL=C) and of zfs-fuse 0.7, which mostly share the
// Solaris wording; see test/fixtures/openzfs/ for the exact texts.
import { SmError, type SmErrorKind } from '../../errors.js';
import { ZfsNameError } from './names.js';

export type ZfsErrorKind =
  | 'NotInstalled' // the zfs/zpool binary is missing
  | 'DaemonDown' // OpenZFS module not loaded, zfs-fuse daemon not running
  | 'Permission'
  | 'NoSpace'
  | 'Held' // a snapshot with user holds
  | 'HasClones' // destroy refused: clones depend on it
  | 'HasChildren' // destroy refused: it has snapshots or child datasets
  | 'Busy' // EBUSY: mounted and in use, being sent, ... (retried)
  | 'NotMounted'
  | 'AlreadyMounted'
  | 'NoPool'
  | 'ParentNotFound' // create/clone/rename target's parent is missing
  | 'NotFound'
  | 'Exists'
  | 'PoolSuspended'
  | 'IoError'
  | 'Unsupported' // ENOTSUP/ENOSYS: e.g. volumes on zfs-fuse
  | 'InvalidArgument'
  | 'Usage' // zfs printed its usage: an option or property this build lacks
  | 'Timeout'
  | 'Unknown';

interface Rule {
  readonly kind: ZfsErrorKind;
  readonly sm: SmErrorKind;
  readonly retry: boolean;
  readonly patterns: readonly RegExp[];
}

/**
 * THE mapping table. Order matters: the first rule whose pattern matches wins
 * (e.g. "has dependent clones" before "has children", "being held" before
 * "busy", "parent does not exist" before "does not exist").
 */
export const ZFS_ERROR_TABLE: readonly Rule[] = [
  {
    kind: 'DaemonDown',
    sm: 'SRUnavailable',
    retry: false,
    patterns: [
      /make sure that the zfs-fuse daemon is running/i,
      /failed to initialize ZFS library/i,
      /Failed to initialize the libzfs library/i,
      /The ZFS modules are not loaded/i,
      /The ZFS modules cannot be auto-loaded/i,
      /\/dev\/zfs and \/proc\/self\/mounts are required/i,
    ],
  },
  {
    kind: 'Permission',
    sm: 'SRUnavailable',
    retry: false,
    patterns: [/permission denied/i, /must be run as root/i, /Operation not permitted/i],
  },
  {
    kind: 'NoSpace',
    sm: 'SRNoSpace',
    retry: false,
    patterns: [
      /: out of space$/m,
      /size is greater than available space/,
      /Disk quota exceeded/,
      /No space left on device/,
    ],
  },
  { kind: 'Held', sm: 'VDIInUse', retry: false, patterns: [/it's being held/, /is being held/] },
  { kind: 'HasClones', sm: 'VDIRemove', retry: false, patterns: [/has dependent clones/] },
  { kind: 'HasChildren', sm: 'VDIRemove', retry: false, patterns: [/has children/] },
  { kind: 'PoolSuspended', sm: 'SRUnavailable', retry: false, patterns: [/pool I\/O is currently suspended/, /pool is unavailable/] },
  {
    kind: 'Busy',
    sm: 'VDIInUse',
    retry: true,
    patterns: [
      /dataset is busy/,
      /pool or dataset is busy/,
      /mountpoint or dataset is busy/,
      /target is busy/,
      /device is busy/i,
      /pool is busy/,
    ],
  },
  { kind: 'NotMounted', sm: 'SMGeneral', retry: false, patterns: [/not currently mounted/] },
  { kind: 'AlreadyMounted', sm: 'SMGeneral', retry: false, patterns: [/filesystem already mounted/] },
  { kind: 'NoPool', sm: 'SRUnavailable', retry: false, patterns: [/no such pool(?! or dataset)/] },
  { kind: 'ParentNotFound', sm: 'SRUnavailable', retry: false, patterns: [/parent does not exist/] },
  {
    kind: 'NotFound',
    sm: 'VolNotFound',
    retry: false,
    patterns: [/dataset does not exist/, /could not find any snapshots to destroy/, /no such pool or dataset/, /snapshot does not exist/],
  },
  { kind: 'Exists', sm: 'VDIExists', retry: false, patterns: [/dataset already exists/, /pool or dataset exists/, /destination already exists/] },
  { kind: 'IoError', sm: 'EIO', retry: false, patterns: [/: I\/O error$/m] },
  {
    kind: 'Unsupported',
    sm: 'SMGeneral',
    retry: false,
    patterns: [/Function not implemented/, /[Oo]peration not supported/, /unsupported version/],
  },
  {
    kind: 'InvalidArgument',
    sm: 'InvalidArg',
    retry: false,
    patterns: [
      /invalid character/,
      /invalid name/,
      /must be a multiple of/,
      /too long/,
      /invalid property value/,
      /bad numeric value/,
      /volume size cannot be zero/,
      /bad volume size/,
      /bad volume block size/,
      /cannot be inherited/,
      /read-only property/,
      /read only property/,
      /property cannot be set/,
      /must be an absolute path/,
      /operation does not apply to pools/,
    ],
  },
  {
    kind: 'Usage',
    sm: 'SMGeneral',
    retry: false,
    patterns: [/^usage:/m, /invalid option '/, /unrecognized command '/, /bad property list/, /invalid property '/, /missing value in property=value/],
  },
  // Kinds decided without stderr: kept here so the table is the one place to read.
  { kind: 'NotInstalled', sm: 'SRUnavailable', retry: false, patterns: [] },
  { kind: 'Timeout', sm: 'SRUnavailable', retry: false, patterns: [] },
  { kind: 'Unknown', sm: 'SMGeneral', retry: false, patterns: [] },
];

const BY_KIND = new Map<ZfsErrorKind, Rule>(ZFS_ERROR_TABLE.map((r) => [r.kind, r]));

function ruleOf(kind: ZfsErrorKind): Rule {
  const r = BY_KIND.get(kind);
  if (!r) throw new Error(`no rule for ZFS error kind ${kind}`);
  return r;
}

/** The kind a failed command's stderr names; 'Unknown' if none matches. */
export function classifyStderr(stderr: string): ZfsErrorKind {
  for (const r of ZFS_ERROR_TABLE) if (r.patterns.some((p) => p.test(stderr))) return r.kind;
  return 'Unknown';
}

export function isRetryable(kind: ZfsErrorKind): boolean {
  return ruleOf(kind).retry;
}

export function smKindOf(kind: ZfsErrorKind): SmErrorKind {
  return ruleOf(kind).sm;
}

/**
 * The datasets zfs lists after "use '-r' to destroy the following datasets:"
 * (children or snapshots) or "use '-R' ..." (clones).
 */
export function parseDependents(stderr: string): string[] {
  const lines = stderr.split('\n');
  const i = lines.findIndex((l) => /^use '-[rR]' to destroy the following datasets:/.test(l));
  if (i < 0) return [];
  const out: string[] = [];
  for (const l of lines.slice(i + 1)) {
    const t = l.trim();
    if (!t) continue;
    if (/\s/.test(t) || t.startsWith("cannot ") || t.startsWith('use ')) break;
    out.push(t);
  }
  return out;
}

/** The first "cannot <verb> '<name>': <reason>" line, the most useful one-line summary. */
export function summarizeStderr(stderr: string): string {
  const lines = stderr
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  const cannot = lines.find((l) => /^cannot /.test(l) || /^internal error:/.test(l));
  const s = cannot ?? lines[0] ?? '';
  // Fault strings travel in XML: keep them one printable line.
  // eslint-disable-next-line no-control-regex
  return s.replace(/[\u0000-\u001f\u007f]/g, ' ').slice(0, 500);
}

export interface ZfsErrorInit {
  kind: ZfsErrorKind;
  argv: readonly string[];
  stderr?: string;
  exitCode?: number;
  signal?: string;
  detail?: string;
  attempts?: number;
}

/** A zfs/zpool command that failed, with what it said and what that means. */
export class ZfsError extends Error {
  readonly kind: ZfsErrorKind;
  /** Program and arguments, e.g. ['zfs', 'destroy', 'tank/sr/x']. */
  readonly argv: readonly string[];
  readonly stderr: string;
  readonly exitCode: number | undefined;
  readonly signal: string | undefined;
  /** Datasets zfs listed as blocking a destroy (HasChildren / HasClones). */
  readonly dependents: string[];
  /** How many times the command ran (more than 1 after busy retries). */
  readonly attempts: number;
  /** One printable line: zfs's own "cannot ..." text, or what went wrong. */
  readonly summary: string;

  constructor(init: ZfsErrorInit) {
    const summary = init.detail ?? summarizeStderr(init.stderr ?? '');
    super(`${init.argv.join(' ')}: ${init.kind}${summary ? `: ${summary}` : ''}`);
    this.name = 'ZfsError';
    this.kind = init.kind;
    this.argv = init.argv;
    this.stderr = init.stderr ?? '';
    this.exitCode = init.exitCode;
    this.signal = init.signal;
    this.dependents = parseDependents(this.stderr);
    this.attempts = init.attempts ?? 1;
    this.summary = summary;
  }

  get retryable(): boolean {
    return isRetryable(this.kind);
  }

  /** The SM error this becomes when nothing more specific applies. */
  toSmError(): SmError {
    return new SmError(smKindOf(this.kind), this.summary || this.kind);
  }
}

export function isZfsError(e: unknown, ...kinds: ZfsErrorKind[]): e is ZfsError {
  return e instanceof ZfsError && (kinds.length === 0 || kinds.includes(e.kind));
}

/**
 * The SmError for a failure of this layer: SmErrors as they are, ZfsErrors by
 * the table, a rejected name as InvalidArg; undefined for anything else (the
 * caller rethrows it).
 */
export function toSmError(e: unknown): SmError | undefined {
  if (e instanceof SmError) return e;
  if (e instanceof ZfsError) return e.toSmError();
  if (e instanceof ZfsNameError) return new SmError('InvalidArg', e.message);
  return undefined;
}
