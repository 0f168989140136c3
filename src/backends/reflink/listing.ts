// An SR directory as VDI entries: one readdir, then one lstat and one sidecar
// read per VDI. Nothing is repaired here; the caller (sr_scan, `flatsnap check`)
// decides what to do with orphans and stale temp files.
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { mapErrors } from './fs-errors.js';
import { SIDECAR_SUFFIX, isTempName, isVdiUuid, tempOwner } from './names.js';
import { decodeSidecar, readSidecarText, type VdiMeta } from './sidecar.js';
import { removeDurably } from './atomic.js';

export interface VdiEntry {
  uuid: string;
  path: string;
  /** Apparent size: the virtual size. */
  size: number;
  /** st_blocks * 512: shared extents count in every file that shares them. */
  allocated: number;
  /** The sidecar's metadata; null when it is missing or invalid (see `problem`). */
  meta: VdiMeta | null;
  problem?: string;
}

export interface SrListing {
  /** Sorted by uuid. */
  vdis: VdiEntry[];
  /** uuids with a sidecar but no image (an interrupted create or delete). */
  orphanSidecars: string[];
  /** `.flatsnap-tmp.*` names: work in progress, or left by a crash. */
  temps: string[];
  /** Anything else (not ours; never touched). */
  other: string[];
}

// Bounded fan-out so a directory of thousands of VDIs does not open thousands of files at once.
async function mapLimit<T, R>(items: T[], limit: number, fn: (t: T) => Promise<R>): Promise<R[]> {
  const out = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return out;
}

export async function listVdis(dir: string): Promise<SrListing> {
  return mapErrors(`list ${dir}`, { notFound: 'SRUnavailable', fallback: 'SRScan' }, async () => {
    const dirents = await readdir(dir, { withFileTypes: true });
    const names = new Set(dirents.map((d) => d.name));
    const images: string[] = [];
    const orphanSidecars: string[] = [];
    const temps: string[] = [];
    const other: string[] = [];
    for (const d of dirents) {
      const name = d.name;
      if (isVdiUuid(name) && d.isFile()) images.push(name);
      else if (isTempName(name)) temps.push(name);
      else if (name.endsWith(SIDECAR_SUFFIX) && isVdiUuid(name.slice(0, -SIDECAR_SUFFIX.length))) {
        const uuid = name.slice(0, -SIDECAR_SUFFIX.length);
        if (!names.has(uuid)) orphanSidecars.push(uuid);
      } else other.push(name);
    }
    images.sort();
    const vdis = (
      await mapLimit(images, 16, async (uuid): Promise<VdiEntry | undefined> => {
        const path = join(dir, uuid);
        let st;
        try {
          st = await lstat(path);
        } catch (e) {
          if ((e as { code?: unknown }).code === 'ENOENT') return undefined; // deleted meanwhile
          throw e;
        }
        const entry: VdiEntry = { uuid, path, size: st.size, allocated: st.blocks * 512, meta: null };
        if (!names.has(uuid + SIDECAR_SUFFIX)) {
          entry.problem = 'no sidecar';
          return entry;
        }
        const text = await readSidecarText(join(dir, uuid + SIDECAR_SUFFIX)).catch((e: unknown) => {
          entry.problem = e instanceof Error ? e.message : String(e);
          return undefined;
        });
        if (text === undefined) {
          entry.problem ??= 'no sidecar';
          return entry;
        }
        const dec = decodeSidecar(text, uuid);
        if (dec.ok) entry.meta = dec.meta;
        else entry.problem = dec.problem;
        return entry;
      })
    ).filter((e): e is VdiEntry => e !== undefined);
    orphanSidecars.sort();
    temps.sort();
    other.sort();
    return { vdis, orphanSidecars, temps, other };
  });
}

/**
 * Removes temp files left by crashed runs: those not made by this process and
 * not modified for `olderThanMs` (default 15 min, a guard against another host's
 * work in progress on a shared filesystem). Call it under the SR lock on the SR
 * master. Returns the names removed.
 */
export async function removeStaleTemps(
  dir: string,
  temps: readonly string[],
  olderThanMs = 15 * 60 * 1000,
): Promise<string[]> {
  const removed: string[] = [];
  const now = Date.now();
  for (const name of temps) {
    if (!isTempName(name) || name.includes('/')) continue;
    if (tempOwner(name) === process.pid) continue;
    const path = join(dir, name);
    const gone = await mapErrors(`remove ${path}`, {}, async () => {
      if (olderThanMs > 0) {
        const st = await lstat(path).catch(() => undefined);
        if (!st || now - st.mtimeMs < olderThanMs) return false;
      }
      return removeDurably(path);
    });
    if (gone) removed.push(name);
  }
  return removed;
}
