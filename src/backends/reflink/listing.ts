// An SR directory as image entries: one readdir, then one lstat and one sidecar
// read per image. Nothing is repaired here; the caller (sr_scan, `flatsnap check`,
// the backend's inventory) decides what to do with orphans and stale temp files.
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { mapErrors } from './fs-errors.js';
import { SIDECAR_SUFFIX, SR_MARKER, isTempName, parseObjectName, parseSwapName, tempOwner } from './names.js';
import { decodeRecord, readSidecarText, validateVdiMeta, type ObjectRecord, type VdiMeta } from './sidecar.js';
import { removeDurably } from './atomic.js';

export interface VdiEntry {
  /** The uuid in the image name: the VDI's for `<uuid>`, the object id for `<id>.hidden`. */
  uuid: string;
  /** The image's file name: `<uuid>` or `<uuid>.hidden`. */
  name: string;
  /** `<id>.hidden`: an object that backs no VDI. */
  hidden: boolean;
  path: string;
  /** Apparent size: the virtual size. */
  size: number;
  /** st_blocks * 512: shared extents count in every file that shares them. */
  allocated: number;
  /** The sidecar as a (version 2) object record, version 1 sidecars upgraded; null when missing or invalid. */
  record: ObjectRecord | null;
  /** A version 1 sidecar's metadata as written (null for version 2 sidecars, and when missing or invalid). */
  meta: VdiMeta | null;
  problem?: string;
}

export interface SrListing {
  /** Images (VDI images and hidden objects), sorted by name. */
  vdis: VdiEntry[];
  /** Image names with a sidecar but no image (an interrupted create or delete). */
  orphanSidecars: string[];
  /** `.flatsnap-tmp.*` names: work in progress, or left by a crash. */
  temps: string[];
  /** VDI uuids with a swap intent (`.flatsnap-swap.<uuid>.json`): a swap to roll forward. */
  swaps: string[];
  /** The SR marker `.flatsnap-sr.json` is present. */
  marker: boolean;
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
    const swaps: string[] = [];
    const other: string[] = [];
    let marker = false;
    for (const d of dirents) {
      const name = d.name;
      const swap = parseSwapName(name);
      if (parseObjectName(name) !== undefined && d.isFile()) images.push(name);
      else if (isTempName(name)) temps.push(name);
      else if (name === SR_MARKER) marker = true;
      else if (swap !== undefined) swaps.push(swap);
      else if (name.endsWith(SIDECAR_SUFFIX) && parseObjectName(name.slice(0, -SIDECAR_SUFFIX.length)) !== undefined) {
        const image = name.slice(0, -SIDECAR_SUFFIX.length);
        if (!names.has(image)) orphanSidecars.push(image);
      } else other.push(name);
    }
    images.sort();
    const vdis = (
      await mapLimit(images, 16, async (name): Promise<VdiEntry | undefined> => {
        const parsed = parseObjectName(name)!;
        const path = join(dir, name);
        let st;
        try {
          st = await lstat(path);
        } catch (e) {
          if ((e as { code?: unknown }).code === 'ENOENT') return undefined; // deleted meanwhile
          throw e;
        }
        const entry: VdiEntry = {
          uuid: parsed.uuid,
          name,
          hidden: parsed.hidden,
          path,
          size: st.size,
          allocated: st.blocks * 512,
          record: null,
          meta: null,
        };
        if (!names.has(name + SIDECAR_SUFFIX)) {
          entry.problem = 'no sidecar';
          return entry;
        }
        const text = await readSidecarText(join(dir, name + SIDECAR_SUFFIX)).catch((e: unknown) => {
          entry.problem = e instanceof Error ? e.message : String(e);
          return undefined;
        });
        if (text === undefined) {
          entry.problem ??= 'no sidecar';
          return entry;
        }
        const dec = decodeRecord(text, name);
        if (!dec.ok) {
          entry.problem = dec.problem;
          return entry;
        }
        entry.record = dec.record;
        if (dec.version === 1) {
          const v1 = validateVdiMeta(JSON.parse(text), parsed.uuid);
          if (v1.ok) entry.meta = v1.meta;
        }
        return entry;
      })
    ).filter((e): e is VdiEntry => e !== undefined);
    orphanSidecars.sort();
    temps.sort();
    swaps.sort();
    other.sort();
    return { vdis, orphanSidecars, temps, swaps, marker, other };
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
