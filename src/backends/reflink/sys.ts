// The reflink backend's view of the native addon, and the errno name of any
// failure. Node's fs errors carry `code` ('ENOSPC', ...) and a negative `errno`;
// the addon's carry the same `code` and a positive one, so `code` is what we test.
import { SmError } from '../../errors.js';
import { loadNative, nativeCandidates, type Native } from '../../native.js';

/** The addon, with the reflink syscalls; an SmError if it is missing or predates them. */
export function sys(): Native {
  const n = loadNative();
  if (!n || typeof n.ficlone !== 'function' || typeof n.statfs !== 'function' || typeof n.fiemapCount !== 'function') {
    throw new SmError(
      'SMGeneral',
      `the native helper with FICLONE/statfs/FIEMAP is missing (looked in ${nativeCandidates().join(', ')})`,
    );
  }
  return n;
}

/** 'ENOSPC', 'EXDEV', ... for system errors from Node or the addon; undefined otherwise. */
export function errnoCode(e: unknown): string | undefined {
  if (e && typeof e === 'object' && 'code' in e) {
    const c = (e as { code: unknown }).code;
    if (typeof c === 'string' && /^E[A-Z0-9]+$/.test(c)) return c;
  }
  return undefined;
}
