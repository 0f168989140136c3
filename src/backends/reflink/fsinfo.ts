// What filesystem an SR directory is on, and whether it really can reflink.
// statfs(2) magic numbers (linux/magic.h); OCFS2's is not in that header.
import { open, readFile, type FileHandle } from 'node:fs/promises';
import { SmError } from '../../errors.js';
import { toSmError } from './fs-errors.js';
import { tempPath } from './names.js';
import { errnoCode, sys } from './sys.js';
import { discard } from './atomic.js';

export const FS_MAGIC = {
  ocfs2: 0x7461636f,
  xfs: 0x58465342,
  btrfs: 0x9123683e,
} as const;

export type FsKind = keyof typeof FS_MAGIC | 'other';

const ST_RDONLY = 1;

export interface FsInfo {
  kind: FsKind;
  /** The statfs magic, e.g. 0xef53 for ext4, 0x01021994 for tmpfs. */
  magic: number;
  /** Mounted read-only (ST_RDONLY). */
  readonly: boolean;
  blockSize: number;
  totalBytes: number;
  /** Free for root. */
  freeBytes: number;
  /** Free for unprivileged users (what df shows as Avail). */
  availBytes: number;
}

export function fsKindOf(magic: number): FsKind {
  for (const [k, v] of Object.entries(FS_MAGIC)) if (v === magic) return k as FsKind;
  return 'other';
}

/** statfs of the SR directory. SRUnavailable if it is missing or unreachable. */
export function identifyFs(path: string): FsInfo {
  let st;
  try {
    st = sys().statfs(path);
  } catch (e) {
    throw toSmError(e, `statfs ${path}`, { notFound: 'SRUnavailable', fallback: 'SRUnavailable' });
  }
  const unit = st.frsize || st.bsize;
  return {
    kind: fsKindOf(st.type),
    magic: st.type,
    readonly: (st.flags & ST_RDONLY) !== 0,
    blockSize: st.bsize,
    totalBytes: st.blocks * unit,
    freeBytes: st.bfree * unit,
    availBytes: st.bavail * unit,
  };
}

export type ReflinkProbe = { ok: true } | { ok: false; code: string; reason: string };

const PROBE_BYTES = 8192;

/**
 * Proves that FICLONE works in `dir`: writes a small file, clones it into a
 * second one, reads the clone back, removes both. Never throws for filesystem
 * reasons: { ok: false, code, reason } says why (EOPNOTSUPP: no reflink; EROFS;
 * ENOSPC; ENOENT: no such directory; ...).
 */
export async function probeReflink(dir: string): Promise<ReflinkProbe> {
  const n = sys();
  const a = tempPath(dir, 'probe-src');
  const b = tempPath(dir, 'probe-dst');
  const data = Buffer.alloc(PROBE_BYTES);
  for (let i = 0; i < data.length; i++) data[i] = (i * 131 + 7) & 0xff;
  let fa: FileHandle | undefined;
  let fb: FileHandle | undefined;
  try {
    fa = await open(a, 'wx+', 0o600);
    await fa.writeFile(data);
    await fa.sync();
    fb = await open(b, 'wx', 0o600);
    n.ficlone(fa.fd, fb.fd);
    await fb.close();
    fb = undefined;
    const back = await readFile(b);
    if (!back.equals(data)) return { ok: false, code: 'EIO', reason: 'the clone does not read back as the source' };
    return { ok: true };
  } catch (e) {
    if (e instanceof SmError) throw e;
    const code = errnoCode(e) ?? 'EUNKNOWN';
    const msg = e instanceof Error ? e.message : String(e);
    const why =
      code === 'EOPNOTSUPP' || code === 'ENOTTY'
        ? 'the filesystem does not support reflink (FICLONE)'
        : code === 'EROFS'
          ? 'the filesystem is read-only'
          : code === 'ENOSPC' || code === 'EDQUOT'
            ? 'no space left for the probe files'
            : code === 'ENOENT'
              ? 'the directory does not exist'
              : 'the reflink probe failed';
    return { ok: false, code, reason: `${why}: ${msg}` };
  } finally {
    await discard(b, fb);
    await discard(a, fa);
  }
}
