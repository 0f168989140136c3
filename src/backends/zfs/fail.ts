// What a failure of the ZFS backend becomes at the Backend boundary: always an
// SmError. ZFS command failures go through the layer's one table (errors.ts);
// file operations on raw disks by errno; a name the layer rejected is InvalidArg.
// Failures nobody classified take the operation's own kind (VDICreate, ...).
import { SmError, type SmErrorKind } from '../../errors.js';
import { ZfsError } from './errors.js';
import { ZfsNameError } from './names.js';

function errnoOf(e: unknown): string | undefined {
  const c = (e as { code?: unknown } | null)?.code;
  return typeof c === 'string' ? c : undefined;
}

function kindForErrno(code: string | undefined, fallback: SmErrorKind): SmErrorKind {
  switch (code) {
    case 'ENOSPC':
    case 'EDQUOT':
      return 'SRNoSpace';
    case 'ENOENT':
      return 'VolNotFound';
    case 'EEXIST':
      return 'VDIExists';
    case 'EBUSY':
      return 'VDIInUse';
    case 'EIO':
      return 'EIO';
    case 'ENOTCONN': // the zfs-fuse daemon went away under a mount
    case 'ENXIO':
    case 'ENODEV':
      return 'SRUnavailable';
    case 'EFBIG':
      return 'VDISize';
    default:
      return fallback;
  }
}

/** `e` as an SmError; `fallback` for what nothing more specific explains. */
export function smErrorOf(e: unknown, fallback: SmErrorKind, what?: string): SmError {
  if (e instanceof SmError) return e;
  const pre = what ? `${what}: ` : '';
  if (e instanceof ZfsError) {
    if (e.kind === 'Unknown') return new SmError(fallback, `${pre}${e.summary || e.message}`);
    const s = e.toSmError();
    return new SmError(s.kind, `${pre}${s.detail ?? e.kind}`);
  }
  if (e instanceof ZfsNameError) return new SmError('InvalidArg', `${pre}${e.message}`);
  const msg = e instanceof Error ? e.message : String(e);
  return new SmError(kindForErrno(errnoOf(e), fallback), `${pre}${msg}`);
}

/** Runs `fn`; whatever it throws comes out as an SmError. */
export async function mapFailure<T>(fallback: SmErrorKind, fn: () => Promise<T>, what?: string): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw smErrorOf(e, fallback, what);
  }
}
