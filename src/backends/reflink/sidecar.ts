// Metadata beside each image: `<name>.json`, written atomically, so an SR
// re-introduced into a fresh pool comes back with sr-scan alone. The format is
// versioned and checked on read; unknown keys are ignored (a newer flatsnap of
// the same version may add optional ones), a newer version is refused.
//
// Version 2 (written by the backend) is one storage object's lineage record plus
// its VDI's metadata:
//   { format: "flatsnap-vdi", version: 2, id, kind, vdi?, parent?, created, deleted,
//     meta?: { name_label, name_description, vdi_type, is_a_snapshot, snapshot_time,
//              snapshot_of, read_only } }
// Version 1 (one VDI per file, camelCase fields, no lineage) is still read: the
// `VdiMeta`/`encodeSidecar`/`decodeSidecar` functions below handle it as before, and
// `decodeRecord` upgrades it to a version 2 record.
import { open } from 'node:fs/promises';
import { SmError } from '../../errors.js';
import type { ObjectKind } from '../../lineage/model.js';
import { isNameableTime } from '../../lineage/names.js';
import type { VdiMeta as ObjectMeta } from '../backend.js';
import { EPOCH, VDI_TYPE, isXapiTime, metaProblem } from '../meta.js';

export { isXapiTime, metaProblem };
import { removeDurably, writeFileAtomic, writeFileNew } from './atomic.js';
import { mapErrors } from './fs-errors.js';
import { imageSidecarPath, isVdiUuid, parseObjectName, sidecarPath } from './names.js';

export const SIDECAR_FORMAT = 'flatsnap-vdi';
/** The version-1 (VDI-only) layout that `VdiMeta` describes. */
export const SIDECAR_VERSION = 1;
/** The version-2 object record the backend writes. */
export const RECORD_VERSION = 2;
/** Reading stops here: a sidecar is a few hundred bytes, anything this big is not one. */
export const SIDECAR_MAX_BYTES = 256 * 1024;

/** xapi's DateTime as SM passes and db_introduce takes it: 19700101T00:00:00Z. */

/** Version 1: one VDI's metadata (read for compatibility; the backend writes ObjectRecord). */
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
  if (o.version === RECORD_VERSION) return bad(`version ${o.version} is an object record (read it with decodeRecord)`);
  if (o.version > RECORD_VERSION) return bad(`version ${o.version} was written by a newer flatsnap (this one reads ${RECORD_VERSION})`);
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
      // Sized from fstat: a scan reads one sidecar per object, and a zero-filled
      // 256 KiB buffer each time was most of a 10^4-object inventory.
      const { size } = await fh.stat();
      if (size > SIDECAR_MAX_BYTES) throw new SmError('VDIUnavailable', `${path} is larger than ${SIDECAR_MAX_BYTES} bytes`);
      let buf = Buffer.allocUnsafe(size + 1);
      let len = 0;
      for (;;) {
        if (len === buf.length) {
          // The file grew since fstat: keep reading, still bounded.
          if (buf.length > SIDECAR_MAX_BYTES) throw new SmError('VDIUnavailable', `${path} is larger than ${SIDECAR_MAX_BYTES} bytes`);
          const bigger = Buffer.allocUnsafe(Math.min(buf.length * 2, SIDECAR_MAX_BYTES + 1));
          buf.copy(bigger, 0, 0, len);
          buf = bigger;
        }
        const { bytesRead } = await fh.read(buf, len, buf.length - len, len);
        if (bytesRead === 0) break;
        len += bytesRead;
      }
      if (len > SIDECAR_MAX_BYTES) throw new SmError('VDIUnavailable', `${path} is larger than ${SIDECAR_MAX_BYTES} bytes`);
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

// ---- version 2: object records ------------------------------------------------

/** One storage object as its sidecar keeps it: the lineage record and, for VDIs, xapi's metadata. */
export interface ObjectRecord {
  id: string;
  kind: ObjectKind;
  vdi?: string;
  parent?: string;
  created: number;
  deleted: boolean;
  meta?: ObjectMeta;
}

export type DecodedRecord = { ok: true; record: ObjectRecord; version: number } | { ok: false; problem: string };

const KINDS: readonly ObjectKind[] = ['volume', 'snapshot', 'internal-snapshot'];

/** Only the VdiMeta fields, in a fixed order (drops anything else a caller's object carries). */
function pickMeta(o: ObjectMeta): ObjectMeta {
  return {
    name_label: o.name_label,
    name_description: o.name_description,
    vdi_type: o.vdi_type,
    is_a_snapshot: o.is_a_snapshot,
    snapshot_time: o.snapshot_time,
    snapshot_of: o.snapshot_of,
    read_only: o.read_only,
  };
}

/**
 * Checks a parsed version-2 document (or a record about to be written). `expectName` is the
 * image name the sidecar belongs to: `<vdi>` for an object that backs a VDI, `<id>.hidden` else.
 */
export function validateRecord(x: unknown, expectName?: string): DecodedRecord {
  const bad = (problem: string): DecodedRecord => ({ ok: false, problem });
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return bad('not a JSON object');
  const o = x as Record<string, unknown>;
  if (typeof o.id !== 'string' || !isVdiUuid(o.id)) return bad('id is not a lower-case uuid');
  if (typeof o.kind !== 'string' || !KINDS.includes(o.kind as ObjectKind)) return bad(`kind ${JSON.stringify(o.kind)} is not one of ${KINDS.join(', ')}`);
  const kind = o.kind as ObjectKind;
  if (o.vdi !== undefined && (typeof o.vdi !== 'string' || !isVdiUuid(o.vdi))) return bad('vdi is not a lower-case uuid');
  if (o.parent !== undefined && (typeof o.parent !== 'string' || !isVdiUuid(o.parent))) return bad('parent is not a lower-case uuid');
  if (o.parent === o.id) return bad('parent is the object itself');
  if (typeof o.created !== 'number' || !Number.isSafeInteger(o.created) || o.created < 0) return bad('created is not a time in ms');
  if (typeof o.deleted !== 'boolean') return bad('deleted is not a boolean');
  if (kind === 'internal-snapshot' && o.vdi !== undefined) return bad('an internal snapshot backs no VDI');
  if (kind === 'snapshot' && o.vdi !== o.id) return bad('a snapshot VDI object must have vdi === id');
  if (kind !== 'volume' && !isNameableTime(o.created)) return bad('a snapshot time must be nameable (1970..9999)');
  if (o.meta !== undefined) {
    const p = metaProblem(o.meta);
    if (p) return bad(p);
  }
  if (expectName !== undefined) {
    const n = parseObjectName(expectName);
    if (n === undefined) return bad(`${expectName} is not an image name`);
    if (n.hidden ? o.vdi !== undefined || o.id !== n.uuid : o.vdi !== n.uuid)
      return bad(`the record (id ${o.id}, vdi ${String(o.vdi)}) does not belong to the image ${expectName}`);
  }
  const record: ObjectRecord = { id: o.id, kind, created: o.created, deleted: o.deleted };
  if (o.vdi !== undefined) record.vdi = o.vdi as string;
  if (o.parent !== undefined) record.parent = o.parent as string;
  if (o.meta !== undefined) record.meta = pickMeta(o.meta as ObjectMeta);
  return { ok: true, record, version: RECORD_VERSION };
}

/** A version-1 VDI sidecar as a version-2 record (a volume or snapshot VDI with id === uuid). */
export function upgradeV1(m: VdiMeta): ObjectRecord {
  const snapTime = m.snapshotTime ?? EPOCH;
  const record: ObjectRecord = {
    id: m.uuid,
    kind: m.isSnapshot ? 'snapshot' : 'volume',
    vdi: m.uuid,
    // Version 1 kept no creation time: a snapshot's is its snapshot time, a volume's unknown (0).
    created: m.isSnapshot ? xapiTimeToMs(snapTime) : 0,
    deleted: false,
    meta: {
      name_label: m.nameLabel,
      name_description: m.nameDescription,
      vdi_type: m.type ?? 'user',
      is_a_snapshot: m.isSnapshot,
      snapshot_time: snapTime,
      snapshot_of: m.isSnapshot ? (m.parent ?? '') : '',
      read_only: false,
    },
  };
  if (m.parent !== null) record.parent = m.parent;
  return record;
}

/** 19700101T00:00:00Z as ms since the epoch (the caller has checked it with isXapiTime). */
export function xapiTimeToMs(s: string): number {
  return Date.parse(`${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}${s.slice(8)}`);
}

/** Decodes a sidecar of either version as a record; `expectName` as in validateRecord. */
export function decodeRecord(text: string, expectName?: string): DecodedRecord {
  let x: unknown;
  try {
    x = JSON.parse(text);
  } catch (e) {
    return { ok: false, problem: `not JSON: ${e instanceof Error ? e.message : String(e)}` };
  }
  if (typeof x !== 'object' || x === null || Array.isArray(x)) return { ok: false, problem: 'not a JSON object' };
  const o = x as Record<string, unknown>;
  if (o.format !== SIDECAR_FORMAT) return { ok: false, problem: `format is ${JSON.stringify(o.format)}, not "${SIDECAR_FORMAT}"` };
  if (o.version === SIDECAR_VERSION) {
    const n = expectName === undefined ? undefined : parseObjectName(expectName);
    if (n?.hidden) return { ok: false, problem: `a version 1 sidecar cannot belong to the hidden image ${expectName}` };
    const v1 = validateVdiMeta(x, n?.uuid);
    return v1.ok ? { ok: true, record: upgradeV1(v1.meta), version: SIDECAR_VERSION } : v1;
  }
  if (o.version !== RECORD_VERSION) {
    if (typeof o.version === 'number' && o.version > RECORD_VERSION)
      return { ok: false, problem: `version ${o.version} was written by a newer flatsnap (this one reads ${RECORD_VERSION})` };
    return { ok: false, problem: `unknown version ${JSON.stringify(o.version)}` };
  }
  return validateRecord(x, expectName);
}

export function encodeRecord(record: ObjectRecord, name: string): string {
  const doc: Record<string, unknown> = { format: SIDECAR_FORMAT, version: RECORD_VERSION, id: record.id, kind: record.kind };
  if (record.vdi !== undefined) doc.vdi = record.vdi;
  if (record.parent !== undefined) doc.parent = record.parent;
  doc.created = record.created;
  doc.deleted = record.deleted;
  if (record.meta !== undefined) doc.meta = pickMeta(record.meta);
  // Never write what we could not read back.
  const v = validateRecord(doc, name);
  if (!v.ok) throw new SmError('InvalidArg', `record of ${record.id}: ${v.problem}`);
  const text = `${JSON.stringify(doc, null, 2)}\n`;
  if (Buffer.byteLength(text) > SIDECAR_MAX_BYTES) throw new SmError('InvalidArg', `record of ${record.id} is larger than ${SIDECAR_MAX_BYTES} bytes`);
  return text;
}

const WRITE_ERRORS = { fallback: 'SMGeneral', notFound: 'SRUnavailable' } as const;

/** Replaces (or creates) the sidecar of image `name` atomically and durably. */
export async function writeRecord(dir: string, name: string, record: ObjectRecord): Promise<void> {
  const text = encodeRecord(record, name);
  const path = imageSidecarPath(dir, name);
  await mapErrors(`write ${path}`, WRITE_ERRORS, () => writeFileAtomic(path, text));
}

/** Creates the sidecar of image `name` durably; VDIExists (untouched) if it exists. */
export async function writeRecordNew(dir: string, name: string, record: ObjectRecord): Promise<void> {
  const text = encodeRecord(record, name);
  const path = imageSidecarPath(dir, name);
  await mapErrors(`create ${path}`, WRITE_ERRORS, () => writeFileNew(path, text));
}

/** The record of image `name`: undefined if there is no sidecar, VDIUnavailable if it is invalid. */
export async function readRecord(dir: string, name: string): Promise<ObjectRecord | undefined> {
  const path = imageSidecarPath(dir, name);
  const text = await readSidecarText(path);
  if (text === undefined) return undefined;
  const d = decodeRecord(text, name);
  if (!d.ok) throw new SmError('VDIUnavailable', `${path}: ${d.problem}`);
  return d.record;
}

/** Removes the sidecar of image `name` durably; false if there was none. */
export async function removeRecord(dir: string, name: string): Promise<boolean> {
  const path = imageSidecarPath(dir, name);
  return mapErrors(`remove ${path}`, { fallback: 'VDIRemove' }, () => removeDurably(path));
}
