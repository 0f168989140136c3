// Per-VDI metadata beside the image: `<uuid>.json`, written atomically, so an SR
// re-introduced into a fresh pool comes back with sr-scan alone. The format is
// versioned and checked on read; unknown keys are ignored (a newer flatsnap of
// the same version may add optional ones), a newer version is refused.
import { open } from 'node:fs/promises';
import { SmError } from '../../errors.js';
import { removeDurably, writeFileAtomic } from './atomic.js';
import { mapErrors } from './fs-errors.js';
import { isVdiUuid, sidecarPath } from './names.js';

export const SIDECAR_FORMAT = 'flatsnap-vdi';
export const SIDECAR_VERSION = 1;
/** Reading stops here: a sidecar is a few hundred bytes, anything this big is not one. */
export const SIDECAR_MAX_BYTES = 256 * 1024;

/** xapi's DateTime as SM passes and db_introduce takes it: 19700101T00:00:00Z. */
const XAPI_TIME = /^\d{8}T\d{2}:\d{2}:\d{2}Z$/;
const VDI_TYPE = /^[a-z][a-z_]{0,31}$/;

export interface VdiMeta {
  uuid: string;
  nameLabel: string;
  nameDescription: string;
  /** The VDI this one was snapshotted or cloned from; null for a fresh disk. */
  parent: string | null;
  isSnapshot: boolean;
  /** xapi DateTime (19700101T00:00:00Z); required for snapshots. */
  snapshotTime: string | null;
  /** xapi's VDI type (user, suspend, metadata, ...), so a re-introduced VDI keeps it. */
  type?: string;
}

export type Decoded = { ok: true; meta: VdiMeta } | { ok: false; problem: string };

export function isXapiTime(s: string): boolean {
  if (!XAPI_TIME.test(s)) return false;
  const iso = `${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}${s.slice(8)}`;
  const t = Date.parse(iso);
  return !Number.isNaN(t) && new Date(t).toISOString().slice(0, 19) === iso.slice(0, 19);
}

/** A Date as xapi's DateTime string (UTC, whole seconds). */
export function toXapiTime(d: Date): string {
  return d.toISOString().replace(/-/g, '').replace(/\.\d{3}Z$/, 'Z');
}

/** Checks a parsed sidecar object; `expectUuid` is the uuid its file name says. */
export function validateVdiMeta(x: unknown, expectUuid?: string): Decoded {
  const bad = (problem: string): Decoded => ({ ok: false, problem });
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return bad('not a JSON object');
  const o = x as Record<string, unknown>;
  if (o.format !== SIDECAR_FORMAT) return bad(`format is ${JSON.stringify(o.format)}, not "${SIDECAR_FORMAT}"`);
  if (typeof o.version !== 'number' || !Number.isInteger(o.version)) return bad('version is not an integer');
  if (o.version > SIDECAR_VERSION) return bad(`version ${o.version} was written by a newer flatsnap (this one reads ${SIDECAR_VERSION})`);
  if (o.version !== SIDECAR_VERSION) return bad(`unknown version ${o.version}`);
  if (typeof o.uuid !== 'string' || !isVdiUuid(o.uuid)) return bad('uuid is not a lower-case uuid');
  if (expectUuid !== undefined && o.uuid !== expectUuid) return bad(`uuid ${o.uuid} does not match the file name ${expectUuid}`);
  if (typeof o.nameLabel !== 'string') return bad('nameLabel is not a string');
  if (typeof o.nameDescription !== 'string') return bad('nameDescription is not a string');
  if (o.parent !== null && (typeof o.parent !== 'string' || !isVdiUuid(o.parent))) return bad('parent is neither null nor a uuid');
  if (o.parent === o.uuid) return bad('parent is the VDI itself');
  if (typeof o.isSnapshot !== 'boolean') return bad('isSnapshot is not a boolean');
  if (o.snapshotTime !== null && (typeof o.snapshotTime !== 'string' || !isXapiTime(o.snapshotTime)))
    return bad('snapshotTime is neither null nor a time like 19700101T00:00:00Z');
  if (o.isSnapshot && o.snapshotTime === null) return bad('a snapshot without snapshotTime');
  if (o.type !== undefined && (typeof o.type !== 'string' || !VDI_TYPE.test(o.type))) return bad('type is not a VDI type name');
  const meta: VdiMeta = {
    uuid: o.uuid,
    nameLabel: o.nameLabel,
    nameDescription: o.nameDescription,
    parent: o.parent as string | null,
    isSnapshot: o.isSnapshot,
    snapshotTime: o.snapshotTime as string | null,
  };
  if (typeof o.type === 'string') meta.type = o.type;
  return { ok: true, meta };
}

export function encodeSidecar(meta: VdiMeta): string {
  // Validate what we write with the reader's rules: never write what we cannot read.
  const doc = { format: SIDECAR_FORMAT, version: SIDECAR_VERSION, ...meta };
  const v = validateVdiMeta(doc, meta.uuid);
  if (!v.ok) throw new SmError('InvalidArg', `VDI metadata for ${meta.uuid}: ${v.problem}`);
  return `${JSON.stringify(doc, null, 2)}\n`;
}

export function decodeSidecar(text: string, expectUuid?: string): Decoded {
  let x: unknown;
  try {
    x = JSON.parse(text);
  } catch (e) {
    return { ok: false, problem: `not JSON: ${e instanceof Error ? e.message : String(e)}` };
  }
  return validateVdiMeta(x, expectUuid);
}

/** Writes `<dir>/<uuid>.json` atomically and durably. */
export async function writeSidecar(dir: string, meta: VdiMeta): Promise<void> {
  const text = encodeSidecar(meta);
  const path = sidecarPath(dir, meta.uuid);
  await mapErrors(`write ${path}`, { fallback: 'SMGeneral', notFound: 'SRUnavailable' }, () => writeFileAtomic(path, text));
}

/** Reads `<dir>/<uuid>.json` as text, or undefined if it does not exist. */
export async function readSidecarText(path: string): Promise<string | undefined> {
  return mapErrors(`read ${path}`, {}, async () => {
    let fh;
    try {
      fh = await open(path, 'r');
    } catch (e) {
      if ((e as { code?: unknown }).code === 'ENOENT') return undefined;
      throw e;
    }
    try {
      const buf = Buffer.alloc(SIDECAR_MAX_BYTES + 1);
      let len = 0;
      for (;;) {
        const { bytesRead } = await fh.read(buf, len, buf.length - len, len);
        if (bytesRead === 0) break;
        len += bytesRead;
        if (len > SIDECAR_MAX_BYTES) throw new SmError('VDIUnavailable', `${path} is larger than ${SIDECAR_MAX_BYTES} bytes`);
      }
      return buf.toString('utf8', 0, len);
    } finally {
      await fh.close();
    }
  });
}

/** The VDI's metadata. VolNotFound if there is no sidecar, VDIUnavailable if it is invalid. */
export async function readSidecar(dir: string, uuid: string): Promise<VdiMeta> {
  const path = sidecarPath(dir, uuid);
  const text = await readSidecarText(path);
  if (text === undefined) throw new SmError('VolNotFound', `no metadata file ${path}`);
  const d = decodeSidecar(text, uuid);
  if (!d.ok) throw new SmError('VDIUnavailable', `${path}: ${d.problem}`);
  return d.meta;
}

/** Removes the sidecar durably; false if there was none. */
export async function removeSidecar(dir: string, uuid: string): Promise<boolean> {
  const path = sidecarPath(dir, uuid);
  return mapErrors(`remove ${path}`, { fallback: 'VDIRemove' }, () => removeDurably(path));
}
