// Storage objects as files: making one (crash-safe), finding one by id, and the
// StoredObject view of an image and its record.
//
// Making an object (create / snapshot / clone):
//   1. build the image under a temp name (sparse file, or FICLONE of the source
//      after fsyncing it) and fsync it;
//   2. create its sidecar `<name>.json` (temp, fsync, link: never replaces);
//   3. publish the image as `<name>` (link, never replaces; unlink the temp name;
//      fsync the directory).
// The sidecar goes first so that a published image always has its record: a crash
// after 2 leaves a sidecar without an image (listed as an orphan, ignored by
// inventory, removed by the next attach once old, or by the next create of that
// name) plus a temp file (reaped the same way), never an image nobody can account
// for. A crash inside 3 (after link, before unlink) leaves the finished image plus
// its temp name as a second link, which reaping removes harmlessly. On a failure at
// 2 or 3 the image name, the sidecar and the temp file are removed before the error
// is thrown: nothing is left behind.
import { link, lstat, unlink } from 'node:fs/promises';
import { join } from 'node:path';
import { SmError, type SmErrorKind } from '../../errors.js';
import type { LineageObject } from '../../lineage/model.js';
import { log } from '../../log.js';
import type { StoredObject } from '../backend.js';
import { discard, fsyncDir } from './atomic.js';
import { mapErrors, toSmError } from './fs-errors.js';
import { listVdis } from './listing.js';
import { objectName, parseObjectName, tempPath } from './names.js';
import { readRecord, removeRecord, writeRecordNew, type ObjectRecord } from './sidecar.js';
import { errnoCode } from './sys.js';

export interface Located {
  /** Image name: `<vdi>` or `<id>.hidden`. */
  name: string;
  path: string;
  record: ObjectRecord;
}

export function storedObject(r: ObjectRecord, path: string, size: number, allocated: number): StoredObject {
  const o: { -readonly [K in keyof StoredObject]: StoredObject[K] } = {
    id: r.id,
    kind: r.kind,
    created: r.created,
    deleted: r.deleted,
    virtual_size: size,
    physical_utilisation: allocated,
    handle: path,
  };
  if (r.vdi !== undefined) o.vdi = r.vdi;
  if (r.parent !== undefined) o.parent = r.parent;
  if (r.meta !== undefined) o.meta = { ...r.meta };
  return o;
}

export async function statObject(r: ObjectRecord, path: string): Promise<StoredObject> {
  const st = await mapErrors(`stat ${path}`, {}, () => lstat(path));
  return storedObject(r, path, st.size, st.blocks * 512);
}

async function isFile(path: string): Promise<boolean> {
  return lstat(path).then(
    (st) => st.isFile(),
    (e: unknown) => {
      if (errnoCode(e) === 'ENOENT') return false;
      throw toSmError(e, `stat ${path}`, { notFound: 'SRUnavailable' });
    },
  );
}

/**
 * The image of `obj`, found by its id whatever the caller's copy says about its VDI (it
 * may predate a swap): first the names its handle and fields point at, then a listing.
 */
export async function findObject(dir: string, obj: LineageObject): Promise<Located | undefined> {
  const names = new Set<string>();
  const handle = (obj as Partial<StoredObject>).handle;
  if (typeof handle === 'string') {
    const base = handle.slice(handle.lastIndexOf('/') + 1);
    if (handle === join(dir, base) && parseObjectName(base) !== undefined) names.add(base);
  }
  if (obj.vdi !== undefined) names.add(objectName(obj.id, obj.vdi));
  names.add(objectName(obj.id));
  names.add(objectName(obj.id, obj.id));
  for (const name of names) {
    const path = join(dir, name);
    if (!(await isFile(path))) continue;
    const record = await readRecord(dir, name).catch(() => undefined);
    if (record?.id === obj.id) return { name, path, record };
  }
  const l = await listVdis(dir);
  for (const e of l.vdis) if (e.record?.id === obj.id) return { name: e.name, path: e.path, record: e.record };
  return undefined;
}

/**
 * Makes object `record` as image `name` (see the top of the file); `build` writes the new
 * image to the temp path it is given (created O_EXCL) and fsyncs it.
 */
export async function publishObject(
  dir: string,
  name: string,
  record: ObjectRecord,
  fail: SmErrorKind,
  build: (tmp: string) => Promise<void>,
): Promise<StoredObject> {
  const path = join(dir, name);
  // The id must be new in both namespaces (the image name of a VDI object is its VDI's uuid).
  for (const n of new Set([name, objectName(record.id), objectName(record.id, record.id)])) {
    if (await lstat(join(dir, n)).then(() => true, () => false)) throw new SmError('VDIExists', `${n} already exists in ${dir}`);
  }
  // A sidecar without an image here is a crash leftover of this very name (we hold the SR lock).
  if (await removeRecord(dir, name)) log().warn(`flatsnap: removed the orphan sidecar ${path}.json`);

  const tmp = tempPath(dir, name);
  try {
    await build(tmp);
  } catch (e) {
    await discard(tmp);
    throw toSmError(e, `build ${path}`, { fallback: fail, notFound: 'VolNotFound' });
  }
  let sidecar = false;
  let linked = false;
  try {
    await writeRecordNew(dir, name, record);
    sidecar = true;
    await link(tmp, path);
    linked = true;
    await unlink(tmp);
    await fsyncDir(dir);
  } catch (e) {
    await discard(tmp);
    if (linked) await unlink(path).catch(() => undefined);
    if (sidecar) await removeRecord(dir, name).catch(() => undefined);
    await fsyncDir(dir).catch(() => undefined);
    throw toSmError(e, `publish ${path}`, { fallback: fail, notFound: 'SRUnavailable' });
  }
  return statObject(record, path);
}
