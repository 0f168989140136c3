// What the files in a reflink SR directory are called:
//   <uuid>                       the VDI's sparse raw image (location == uuid)
//   <uuid>.json                  its sidecar metadata
//   .flatsnap-tmp.<pid>-<hex>.<hint>  work in progress: never a VDI, removable when
//                                no flatsnap process of this host is running `pid`
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { SmError } from '../../errors.js';

export const SIDECAR_SUFFIX = '.json';
export const TEMP_PREFIX = '.flatsnap-tmp.';

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
