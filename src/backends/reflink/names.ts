// What the files in a reflink SR directory are called:
//   <uuid>                       the sparse raw image that backs VDI <uuid> (location == uuid):
//                                a volume, a snapshot VDI, or a tombstone of one
//   <id>.hidden                  an object that backs no VDI: an internal snapshot, a helper
//                                clone, a volume unbound by a revert
//   <name>.json                  the sidecar of image <name> (its lineage record and VdiMeta)
//   .flatsnap-sr.json            the SR marker (sr uuid, created, version); also the file the
//                                cross-host lock flocks (src/sr/shared-sr.ts): written once,
//                                never replaced while the SR exists
//   .flatsnap-swap.<uuid>.json   a swap-vdi of VDI <uuid> in progress (rolled forward on the
//                                next inventory or attach)
//   .flatsnap-tmp.<pid>-<hex>.<hint>  work in progress: never a VDI, removable when
//                                no flatsnap process of this host is running `pid`
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { SmError } from '../../errors.js';

export const SIDECAR_SUFFIX = '.json';
export const TEMP_PREFIX = '.flatsnap-tmp.';
export const HIDDEN_SUFFIX = '.hidden';
export const SR_MARKER = '.flatsnap-sr.json';
export const SWAP_PREFIX = '.flatsnap-swap.';

// Lower case only: request validation lower-cases uuids, and one spelling per VDI
// keeps the directory free of near-duplicates.
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function isVdiUuid(s: string): boolean {
  return UUID.test(s);
}

function checkUuid(uuid: string): string {
  // Also what keeps a uuid from naming anything outside the SR directory.
  if (!isVdiUuid(uuid)) throw new SmError('InvalidArg', `not a lower-case uuid: ${JSON.stringify(uuid)}`);
  return uuid;
}

export function volumePath(dir: string, uuid: string): string {
  return join(dir, checkUuid(uuid));
}

export function sidecarPath(dir: string, uuid: string): string {
  return join(dir, checkUuid(uuid) + SIDECAR_SUFFIX);
}

/** A fresh temporary name in `dir` (same filesystem, so it can be renamed into place). */
export function tempPath(dir: string, hint: string): string {
  const safe = hint.replace(/[^A-Za-z0-9_-]/g, '_').slice(0, 64);
  return join(dir, `${TEMP_PREFIX}${process.pid}-${randomBytes(6).toString('hex')}.${safe}`);
}

export function isTempName(name: string): boolean {
  return name.startsWith(TEMP_PREFIX);
}

/** The pid encoded in a temp name, if any. */
export function tempOwner(name: string): number | undefined {
  const m = /^\.flatsnap-tmp\.(\d+)-/.exec(name);
  return m ? Number(m[1]) : undefined;
}

/**
 * The image name of an object: its VDI's uuid while it backs one (tombstones keep it), else
 * `<id>.hidden`. The two namespaces never collide, so a revert can move the old volume off
 * `<vdi>` to `<its id>.hidden` even when its id is that very uuid.
 */
export function objectName(id: string, vdi?: string): string {
  return vdi !== undefined ? checkUuid(vdi) : `${checkUuid(id)}${HIDDEN_SUFFIX}`;
}

/** What an image name says: the uuid in it and whether it is a hidden object. undefined if not an image name. */
export function parseObjectName(name: string): { uuid: string; hidden: boolean } | undefined {
  if (isVdiUuid(name)) return { uuid: name, hidden: false };
  if (name.endsWith(HIDDEN_SUFFIX)) {
    const uuid = name.slice(0, -HIDDEN_SUFFIX.length);
    if (isVdiUuid(uuid)) return { uuid, hidden: true };
  }
  return undefined;
}

/** `<dir>/<name>` for an image name (checked). */
export function imagePath(dir: string, name: string): string {
  if (parseObjectName(name) === undefined) throw new SmError('InvalidArg', `not an image name: ${JSON.stringify(name)}`);
  return join(dir, name);
}

/** `<dir>/<name>.json` for an image name (checked). */
export function imageSidecarPath(dir: string, name: string): string {
  return imagePath(dir, name) + SIDECAR_SUFFIX;
}

/** The intent file of a swap of VDI `vdi`. */
export function swapPath(dir: string, vdi: string): string {
  return join(dir, `${SWAP_PREFIX}${checkUuid(vdi)}${SIDECAR_SUFFIX}`);
}

/** The VDI uuid of a swap intent file name, or undefined. */
export function parseSwapName(name: string): string | undefined {
  if (!name.startsWith(SWAP_PREFIX) || !name.endsWith(SIDECAR_SUFFIX)) return undefined;
  const uuid = name.slice(SWAP_PREFIX.length, -SIDECAR_SUFFIX.length);
  return isVdiUuid(uuid) ? uuid : undefined;
}
