// The SR as a whole: a directory on a reflink filesystem with a marker file
// `.flatsnap-sr.json` that says which SR it is. The marker is what makes the
// directory ours: create refuses a non-empty directory without it, attach
// refuses a directory whose marker names another SR (or none: not mounted?).
import { lstat, readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { SmError } from '../../errors.js';
import { log } from '../../log.js';
import type { ProbeResult, SrStats } from '../backend.js';
import { removeDurably, writeFileNew } from './atomic.js';
import { mapErrors } from './fs-errors.js';
import { identifyFs, probeReflink } from './fsinfo.js';
import { listVdis, removeStaleTemps } from './listing.js';
import { SR_MARKER, isTempName, isVdiUuid } from './names.js';
import { readSidecarText, removeRecord } from './sidecar.js';

export const MARKER_FORMAT = 'flatsnap-sr';
export const MARKER_VERSION = 1;

export interface SrMarker {
  format: typeof MARKER_FORMAT;
  version: typeof MARKER_VERSION;
  sr_uuid: string;
  /** ms since the epoch */
  created: number;
  backend: 'reflink';
}

/** Entries a fresh filesystem may hold that do not make a directory "not empty". */
const IGNORABLE = new Set(['lost+found']);

/** A directory that exists and is a directory, else SRUnavailable. */
async function checkDir(dir: string): Promise<void> {
  const st = await lstat(dir).catch((e: unknown) => {
    throw new SmError('SRUnavailable', `${dir}: ${(e as { code?: string }).code === 'ENOENT' ? 'no such directory' : String(e)}`);
  });
  if (!st.isDirectory()) throw new SmError('SRUnavailable', `${dir} is not a directory`);
}

/** The marker, undefined when there is none; SRUnavailable when it is unreadable or not ours. */
export async function readMarker(dir: string): Promise<SrMarker | undefined> {
  const path = join(dir, SR_MARKER);
  const text = await mapErrors(`read ${path}`, { notFound: 'SRUnavailable', fallback: 'SRUnavailable' }, () =>
    readSidecarText(path),
  );
  if (text === undefined) return undefined;
  let x: unknown;
  try {
    x = JSON.parse(text);
  } catch {
    throw new SmError('SRUnavailable', `${path} is not JSON`);
  }
  const o = (typeof x === 'object' && x !== null ? x : {}) as Record<string, unknown>;
  if (o.format !== MARKER_FORMAT) throw new SmError('SRUnavailable', `${path} is not a flatsnap SR marker`);
  if (typeof o.version !== 'number' || o.version > MARKER_VERSION)
    throw new SmError('SRUnavailable', `${path} has version ${String(o.version)}, this flatsnap reads ${MARKER_VERSION}`);
  if (typeof o.sr_uuid !== 'string' || !isVdiUuid(o.sr_uuid) || typeof o.created !== 'number')
    throw new SmError('SRUnavailable', `${path} is damaged (sr_uuid / created)`);
  return { format: MARKER_FORMAT, version: MARKER_VERSION, sr_uuid: o.sr_uuid, created: o.created, backend: 'reflink' };
}

/** Whether the directory can reflink; throws when it cannot and copies are not allowed. */
async function checkReflink(dir: string, allowCopy: boolean): Promise<boolean> {
  const p = await probeReflink(dir);
  if (p.ok) return true;
  if (p.code === 'EROFS') throw new SmError('SharedFileSystemNoWrite', `${dir}: ${p.reason}`);
  if (p.code === 'ENOSPC' || p.code === 'EDQUOT') throw new SmError('SRNoSpace', `${dir}: ${p.reason}`);
  if (!allowCopy) {
    const fs = identifyFs(dir).kind;
    throw new SmError(
      'SRUnavailable',
      `${dir} (${fs === 'other' ? 'not XFS, btrfs or OCFS2' : fs}) cannot reflink: ${p.reason}. ` +
        'Use XFS made with reflink=1, btrfs or OCFS2, or set device-config:allow-copy=true to copy whole images instead',
    );
  }
  log().warn(`flatsnap: ${dir} cannot reflink (${p.reason}); allow-copy is set: every snapshot and clone will be a FULL COPY`);
  return false;
}

function checkWritable(dir: string): void {
  if (identifyFs(dir).readonly) throw new SmError('SharedFileSystemNoWrite', `${dir} is on a read-only mount`);
}

function checkSrUuid(srUuid: string): void {
  if (!isVdiUuid(srUuid)) throw new SmError('InvalidArg', `not a lower-case SR uuid: ${JSON.stringify(srUuid)}`);
}

/**
 * Makes `dir` SR `srUuid`: it must be an existing directory on a filesystem that can
 * reflink (unless allowCopy), empty or already this SR. Returns whether reflink works.
 */
export async function createSr(dir: string, srUuid: string, allowCopy: boolean): Promise<boolean> {
  checkSrUuid(srUuid);
  await checkDir(dir);
  const marker = await readMarker(dir);
  if (marker !== undefined) {
    if (marker.sr_uuid !== srUuid) throw new SmError('SRExists', `${dir} already holds flatsnap SR ${marker.sr_uuid}`);
  } else {
    const names = await mapErrors(`list ${dir}`, { fallback: 'SRUnavailable' }, () => readdir(dir));
    const foreign = names.filter((n) => !IGNORABLE.has(n) && !isTempName(n)).sort();
    if (foreign.length > 0) {
      const shown = foreign.slice(0, 5).join(', ') + (foreign.length > 5 ? `, ... (${foreign.length} entries)` : '');
      throw new SmError('SRExists', `${dir} is not empty and is not a flatsnap SR (it holds ${shown}); refusing to take it over`);
    }
  }
  checkWritable(dir);
  const reflink = await checkReflink(dir, allowCopy);
  if (marker === undefined) {
    const doc: SrMarker = { format: MARKER_FORMAT, version: MARKER_VERSION, sr_uuid: srUuid, created: Date.now(), backend: 'reflink' };
    await mapErrors(`create ${join(dir, SR_MARKER)}`, { exists: 'SRExists', fallback: 'SMGeneral', notFound: 'SRUnavailable' }, () =>
      writeFileNew(join(dir, SR_MARKER), `${JSON.stringify(doc, null, 2)}\n`),
    );
  }
  return reflink;
}

/** The marker must name `srUuid`; else SRUnavailable with what was found. */
export async function requireSr(dir: string, srUuid: string): Promise<SrMarker> {
  checkSrUuid(srUuid);
  await checkDir(dir);
  const marker = await readMarker(dir);
  if (marker === undefined)
    throw new SmError('SRUnavailable', `${dir} holds no flatsnap SR (no ${SR_MARKER}): is the filesystem mounted?`);
  if (marker.sr_uuid !== srUuid) throw new SmError('SRUnavailable', `${dir} holds flatsnap SR ${marker.sr_uuid}, not ${srUuid}`);
  return marker;
}

/** Checks that `dir` is SR `srUuid`, writable and (unless allowCopy) able to reflink. Returns whether reflink works. */
export async function attachSr(dir: string, srUuid: string, allowCopy: boolean): Promise<boolean> {
  await requireSr(dir, srUuid);
  checkWritable(dir);
  return checkReflink(dir, allowCopy);
}

/** Removes crash leftovers that are older than `olderThanMs`: temp files and sidecars without an image. */
export async function removeLeftovers(dir: string, olderThanMs: number): Promise<string[]> {
  const l = await listVdis(dir);
  const removed = await removeStaleTemps(dir, l.temps, olderThanMs);
  const now = Date.now();
  for (const name of l.orphanSidecars) {
    const st = await lstat(join(dir, `${name}.json`)).catch(() => undefined);
    if (!st || (olderThanMs > 0 && now - st.mtimeMs < olderThanMs)) continue;
    if (await removeRecord(dir, name)) removed.push(`${name}.json`);
  }
  if (removed.length > 0) log().info(`flatsnap: removed crash leftovers in ${dir}: ${removed.join(', ')}`);
  return removed;
}

/** Unmakes the SR: refuses while images remain; removes leftovers and the marker, keeps the directory. */
export async function deleteSr(dir: string, srUuid: string): Promise<void> {
  checkSrUuid(srUuid);
  await checkDir(dir);
  const marker = await readMarker(dir);
  if (marker === undefined) return;
  if (marker.sr_uuid !== srUuid) throw new SmError('SRUnavailable', `${dir} holds flatsnap SR ${marker.sr_uuid}, not ${srUuid}`);
  const l = await listVdis(dir);
  const left = [...l.vdis.map((v) => v.name), ...l.swaps.map((s) => `swap of ${s}`)];
  if (left.length > 0) {
    throw new SmError('SRNotEmpty', `${dir} still holds ${left.length} object(s): ${left.slice(0, 5).join(', ')}${left.length > 5 ? ', ...' : ''}`);
  }
  await removeLeftovers(dir, 0);
  await mapErrors(`remove ${join(dir, SR_MARKER)}`, { fallback: 'SMGeneral' }, () => removeDurably(join(dir, SR_MARKER)));
}

export function srStats(dir: string): SrStats {
  const fs = identifyFs(dir);
  return { physical_size: fs.totalBytes, physical_utilisation: Math.max(0, fs.totalBytes - fs.freeBytes) };
}

export async function probeSr(dir: string): Promise<ProbeResult[]> {
  await checkDir(dir);
  const marker = await readMarker(dir);
  if (marker === undefined) return [];
  return [{ sr_uuid: marker.sr_uuid, handle: dir, size: identifyFs(dir).totalBytes }];
}
