// One place that turns filesystem failures into the SM errors xapi shows.
// Every exported function of the reflink layer throws SmError only.
import { SmError, type SmErrorKind } from '../../errors.js';
import { errnoCode } from './sys.js';

export interface ErrorMapping {
  /** Kind for failures without a more specific meaning (default SMGeneral). */
  fallback?: SmErrorKind;
  /** Kind for ENOENT (default VolNotFound). */
  notFound?: SmErrorKind;
  /** Kind for EEXIST (default VDIExists). */
  exists?: SmErrorKind;
}

/** The SmError kind an errno name stands for, given the caller's defaults. */
export function kindForErrno(code: string | undefined, m: ErrorMapping = {}): SmErrorKind {
  switch (code) {
    case 'ENOSPC':
    case 'EDQUOT':
      return 'SRNoSpace';
    case 'EROFS':
      return 'SharedFileSystemNoWrite';
    case 'ENOENT':
      return m.notFound ?? 'VolNotFound';
    case 'EEXIST':
      return m.exists ?? 'VDIExists';
    case 'EIO':
    case 'EUCLEAN': // filesystem corruption detected (XFS, btrfs)
      return 'EIO';
    case 'ENOTCONN': // OCFS2 cluster stack gone, FUSE daemon dead
    case 'ESTALE':
    case 'ENODEV':
      return 'SRUnavailable';
    case 'EFBIG':
      return 'VDISize';
    default:
      return m.fallback ?? 'SMGeneral';
  }
}

/** `e` as an SmError: SmErrors pass through; system errors are mapped by errno. */
export function toSmError(e: unknown, what: string, m: ErrorMapping = {}): SmError {
  if (e instanceof SmError) return e;
  const code = errnoCode(e);
  const msg = e instanceof Error ? e.message : String(e);
  return new SmError(kindForErrno(code, m), `${what}: ${msg}`);
}

/** Runs `fn`, mapping whatever it throws. */
export async function mapErrors<T>(what: string, m: ErrorMapping, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    throw toSmError(e, what, m);
  }
}
