// Storage objects on ZFS: one dataset per volume, one ZFS snapshot per snapshot
// object, a ZFS clone per clone. The caller (backend.ts) has validated ids, names
// and metadata; everything here is commands and their order.
//
// Nothing is left half-made: when a step after the creating command fails (the
// sparse file of a raw disk, the read-back), what was created is destroyed again
// before the error goes on.
import { truncate } from 'node:fs/promises';
import { SmError } from '../../errors.js';
import { type LineageObject, snapshotNameOf } from '../../lineage/index.js';
import type { StoredObject, VdiMeta } from '../backend.js';
import { roundUp } from './cli.js';
import { type ZfsCtx, BLOCK_SIZE, SECTOR } from './context.js';
import { isZfsError } from './errors.js';
import type { ZfsDataset } from './parse.js';
import { createSparseFile, growSparseFile, rawFilePath } from './rawfile.js';
import { zfsMountReadOnly, zfsRollback } from './commands.js';
import {
  type NewRecord,
  OBJECT_PROPS,
  PROP,
  decodeDataset,
  metaProps,
  recordProps,
  snapshotFullName,
  viewName,
  volumeName,
} from './records.js';

/** An object found on storage: its ZFS name, what `zfs get` said, and the decoded object. */
export interface Located {
  readonly name: string;
  readonly ds: ZfsDataset;
  readonly obj: StoredObject;
}

/** Whether a located object's bytes are a zvol (a volume, or a snapshot of one) rather than a raw file. */
export const isZvol = (l: Located): boolean => l.ds.type === 'volume' || l.ds.volsize !== undefined;

/** Where object `o` lives: `<root>/<id>`, or `<root>/<parent>@<name>` for snapshot kinds. */
export function nameOf(ctx: ZfsCtx, o: LineageObject): string {
  if (o.kind === 'volume') return volumeName(ctx.root, o.id);
  if (o.parent === undefined) throw new SmError('InvalidArg', `${o.kind} ${o.id} has no parent volume`);
  return snapshotFullName(ctx.root, o.parent, snapshotNameOf(o));
}

/**
 * The object `o` names, as this call last read it (known.ts), else by one `zfs get`;
 * VolNotFound unless it is there and is that object.
 */
export async function locate(ctx: ZfsCtx, o: LineageObject, what = 'object'): Promise<Located> {
  const name = nameOf(ctx, o);
  return locateName(ctx, name, o.id, what, ctx.known.get(name));
}

async function locateName(ctx: ZfsCtx, name: string, id: string, what: string, known?: ZfsDataset): Promise<Located> {
  const ds = known ?? (await ctx.cli.getDataset(name, OBJECT_PROPS));
  if (ds === undefined) throw new SmError('VolNotFound', `no ${what} ${id}: ${name} does not exist`);
  if (known === undefined) ctx.known.remember([ds]);
  const dec = decodeDataset(ctx.root, ds);
  if (dec.what !== 'object' || dec.obj.id !== id) {
    throw new SmError('VolNotFound', `no ${what} ${id}: ${name} is not that flatsnap object${dec.what === 'foreign' ? ` (${dec.reason})` : ''}`);
  }
  for (const w of dec.warnings) ctx.log.warn(`flatsnap: ${name}: ${w}`);
  return { name, ds, obj: dec.obj };
}

/** After `name` was created: run the follow-up steps, or destroy `name` again and rethrow. */
async function completeOrUndo<T>(ctx: ZfsCtx, name: string, steps: () => Promise<T>): Promise<T> {
  try {
    return await steps();
  } catch (e) {
    ctx.known.forget(name);
    await ctx.cli.destroy(name, { missingOk: true }).catch((de: unknown) => {
      ctx.log.warn(`flatsnap: could not destroy the half-made ${name}: ${String(de)}`);
    });
    throw e;
  }
}

/** The mountpoint of filesystem `name`, mounting it if needed; `known` saves the `zfs get` when the caller has it. */
async function mountedPath(ctx: ZfsCtx, name: string, known?: ZfsDataset): Promise<string> {
  const d = known?.name === name ? known : (await ctx.cli.get([name], ['mounted', 'mountpoint'])).datasets.get(name);
  const mp = d?.mountpoint;
  if (mp === undefined || !mp.startsWith('/')) {
    throw new SmError('SRUnavailable', `${name} has no mountpoint (mountpoint=${String(mp)}): its raw disk cannot be reached`);
  }
  if (d?.mounted !== true) {
    await ctx.cli.mount(name);
    ctx.known.mounted(name);
  }
  return mp;
}

async function waitForPath(ctx: ZfsCtx, path: string, timeoutMs = ctx.zvolTimeoutMs): Promise<string> {
  // Counted in the waits' own time (ctx.sleep), not the clock: a check costs next to nothing.
  for (let waited = 0; !ctx.fileExists(path); waited += 50) {
    if (waited >= timeoutMs) throw new SmError('VDIUnavailable', `${path} did not appear within ${timeoutMs} ms (udev)`);
    await ctx.sleep(50);
  }
  return path;
}

/** How long a snapshot device of a zvol with snapdev=visible may take to show before it is asked for again. */
const SNAPDEV_GRACE_MS = 2000;

/**
 * Sets user properties on a located object so that a failure leaves them as they were:
 * one atomic `zfs set` where ZFS takes several at once; else (zfs-fuse) one by one in
 * the given order, and on a failure the ones already set are put back.
 */
export async function setUserProps(ctx: ZfsCtx, l: Located, changes: Readonly<Record<string, string>>): Promise<void> {
  const keys = Object.keys(changes);
  if (keys.length === 0) return;
  const f = await ctx.cli.features();
  if (f.multiSet || keys.length === 1) {
    try {
      await ctx.cli.set(l.name, { user: changes });
    } catch (e) {
      ctx.known.forget(l.name);
      throw e;
    }
    ctx.known.setUser(l.name, changes);
    return;
  }
  const done: string[] = [];
  try {
    for (const k of keys) {
      await ctx.cli.set(l.name, { user: { [k]: changes[k]! } });
      done.push(k);
    }
    ctx.known.setUser(l.name, changes);
  } catch (e) {
    ctx.known.forget(l.name);
    for (const k of done.reverse()) {
      const old = l.ds.user[k];
      const undo = old === undefined ? ctx.cli.inherit(l.name, k) : ctx.cli.set(l.name, { user: { [k]: old } });
      await undo.catch((ue: unknown) => ctx.log.warn(`flatsnap: could not put ${k} of ${l.name} back: ${String(ue)}`));
    }
    throw e;
  }
}

/** The properties of `props` whose stored value differs. */
function changed(l: Located, props: Readonly<Record<string, string>>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(props)) if (l.ds.user[k] !== v) out[k] = v;
  return out;
}

// ---- creating ------------------------------------------------------------------------

/**
 * A new volume: a sparse zvol (`-s -b 16K -V size`) where ZFS has volumes, else a
 * filesystem with a sparse `disk.raw` of `size` bytes rounded up to whole sectors.
 * A zvol inherits volmode=dev from the SR root (pool.ts). Not `-o volmode=dev` here:
 * OpenZFS 2.x then makes the device with the default volmode (partitions scanned),
 * removes it and makes it again, so /dev/zvol/... appears, vanishes and reappears
 * (seen in test/kernel: an open right after the first appearance got ENOENT).
 */
export async function createVolume(ctx: ZfsCtx, r: NewRecord & { meta: VdiMeta }, size: number): Promise<StoredObject> {
  const f = await ctx.cli.features();
  const name = volumeName(ctx.root, r.id);
  if (f.volumes) {
    await ctx.cli.createVolume(name, Math.max(size, BLOCK_SIZE), {
      sparse: true,
      volblocksize: BLOCK_SIZE,
      user: recordProps(r, f.maxUserValueBytes),
    });
    return completeOrUndo(ctx, name, async () => (await locateName(ctx, name, r.id, 'volume')).obj);
  }
  const bytes = roundUp(size, SECTOR);
  await ctx.cli.createFilesystem(name, {
    props: { atime: 'off', recordsize: String(BLOCK_SIZE) },
    user: recordProps({ ...r, size: bytes }, f.maxUserValueBytes),
  });
  return completeOrUndo(ctx, name, async () => {
    await createSparseFile(rawFilePath(await mountedPath(ctx, name)), bytes);
    return (await locateName(ctx, name, r.id, 'volume')).obj;
  });
}

/** `zfs snapshot -o ... <of>@<snap>`: the object's record set atomically with it. */
export async function snapshotVolume(
  ctx: ZfsCtx,
  of: Located,
  snap: string,
  r: NewRecord,
): Promise<StoredObject> {
  const f = await ctx.cli.features();
  const name = `${of.name}@${snap}`;
  // Raw files: the size at snapshot time travels with the snapshot (zvol snapshots have volsize).
  const rec = isZvol(of) ? r : { ...r, size: of.obj.virtual_size };
  await ctx.cli.snapshot(name, { user: recordProps(rec, f.maxUserValueBytes) });
  ctx.known.forget(of.name); // its space accounting moved
  return completeOrUndo(ctx, name, async () => (await locateName(ctx, name, r.id, r.kind)).obj);
}

/** `zfs clone -o ... <snapshot> <root>/<id>`. */
export async function cloneSnapshot(ctx: ZfsCtx, from: Located, r: NewRecord): Promise<StoredObject> {
  const f = await ctx.cli.features();
  const name = volumeName(ctx.root, r.id);
  const zvol = isZvol(from);
  const rec = zvol ? r : { ...r, size: from.obj.virtual_size };
  // Clones inherit native properties from the SR root, not from their origin: set ours again
  // (a zvol clone's volmode=dev comes from the root, for the reason createVolume gives).
  await ctx.cli.clone(from.name, name, {
    props: zvol ? {} : { atime: 'off' },
    user: recordProps(rec, f.maxUserValueBytes),
  });
  ctx.known.forget(from.name);
  return completeOrUndo(ctx, name, async () => (await locateName(ctx, name, r.id, 'volume')).obj);
}

// ---- changing ---------------------------------------------------------------------------

export async function markTombstone(ctx: ZfsCtx, l: Located): Promise<void> {
  if (!l.obj.deleted) await setUserProps(ctx, l, { [PROP.deleted]: '1' });
}

export async function setMeta(ctx: ZfsCtx, l: Located, meta: VdiMeta): Promise<void> {
  const f = await ctx.cli.features();
  await setUserProps(ctx, l, changed(l, metaProps(meta, f.maxUserValueBytes)));
}

/**
 * Re-points VDI `vdi` from volume `from` to volume `to` (objects are named by id, so this
 * is a property rewrite). First `from` is marked `flatsnap:swap-to=<to>`; bind: `to` gets
 * the VDI's metadata, then `flatsnap:vdi`; then unbind: `from` loses `flatsnap:vdi` (one
 * `zfs inherit`). A crash in between leaves both claiming the VDI; the lineage loader gives
 * it to the later-created one (`to`, the revert clone) and gcPlan retires the other. The
 * mark lets a reader that found `from` by name alone (family) know not to trust its claim.
 */
export async function swapVdi(ctx: ZfsCtx, vdi: string, from: Located, to: Located): Promise<void> {
  const f = await ctx.cli.features();
  if (to.obj.vdi !== vdi) {
    if (from.obj.vdi === vdi && from.ds.user[PROP.swapTo] !== to.obj.id) await setUserProps(ctx, from, { [PROP.swapTo]: to.obj.id });
    const meta = from.obj.meta;
    if (meta === undefined) throw new SmError('InvalidArg', `swap of VDI ${vdi}: ${from.obj.id} has no VDI metadata`);
    await setUserProps(ctx, to, { ...changed(to, metaProps(meta, f.maxUserValueBytes)), [PROP.vdi]: vdi });
  }
  if (from.obj.vdi === vdi) {
    try {
      await ctx.cli.inherit(from.name, PROP.vdi);
    } catch (e) {
      ctx.known.forget(from.name);
      throw e;
    }
    ctx.known.dropUser(from.name, PROP.vdi);
  }
}

/** Plain `zfs rollback <snapshot>`: ZFS itself refuses unless it is the newest snapshot. */
export async function rollback(ctx: ZfsCtx, snap: Located): Promise<void> {
  ctx.known.forget(snap.name.slice(0, snap.name.indexOf('@')));
  await zfsRollback(ctx.run, snap.name);
}

/** Grows a zvol (volsize, rounded to its volblocksize) or a raw file (+ flatsnap:size). Never shrinks. */
export async function resize(ctx: ZfsCtx, l: Located, size: number): Promise<number> {
  const cur = l.obj.virtual_size;
  if (size < cur) {
    throw new SmError('VDISize', `cannot shrink ${l.obj.id} from ${cur} to ${size} bytes: shrinking would cut off guest data`);
  }
  if (isZvol(l)) {
    const n = roundUp(size, l.ds.volblocksize ?? BLOCK_SIZE);
    if (n <= cur) return cur;
    ctx.known.forget(l.name);
    await ctx.cli.setVolsize(l.name, n);
    return n;
  }
  const n = roundUp(size, SECTOR);
  if (n <= cur) return cur;
  const path = rawFilePath(await mountedPath(ctx, l.name, l.ds));
  await growSparseFile(path, n);
  try {
    await setUserProps(ctx, l, { [PROP.size]: String(n) });
  } catch (e) {
    // The new tail was never seen by anybody: cut it off again so file and record agree.
    await truncate(path, cur).catch((te: unknown) => ctx.log.warn(`flatsnap: could not shrink ${path} back: ${String(te)}`));
    throw e;
  }
  return n;
}

export async function destroy(ctx: ZfsCtx, l: Located): Promise<void> {
  if (l.obj.kind !== 'volume' && !isZvol(l)) {
    // A raw snapshot may have a read view (zfs-fuse datapath): it goes first, with the
    // snapshot; unless the listing this call read showed there is none.
    const view = viewName(ctx.root, l.obj.id);
    if (ctx.known.viewExists(view) !== false) {
      ctx.known.forget(view);
      await ctx.cli.destroy(view, { missingOk: true });
      ctx.known.removeView(view);
    }
  }
  ctx.known.forget(l.name);
  await ctx.cli.destroy(l.name);
}

// ---- reaching the bytes ----------------------------------------------------------------------

/**
 * A dom0 path to the object's bytes:
 *  - zvol: /dev/zvol/<root>/<id> (waits for udev);
 *  - snapshot of a zvol: /dev/zvol/<root>/<id>@<snap>, after `snapdev=visible` on its zvol
 *    (set on first use, so device nodes exist only for snapshots someone reads);
 *  - raw file: <mountpoint>/disk.raw;
 *  - raw snapshot: <volume mountpoint>/.zfs/snapshot/<snap>/disk.raw where ZFS has a
 *    snapdir; zfs-fuse has none, so a clone `<root>/<snapshot id>.view` is made on first
 *    use, mounted read-only (`zfs mount -o ro`: zfs-fuse's readonly=on does not stop
 *    writes to existing files), and kept until the snapshot is destroyed. It costs no
 *    space and never diverges from its origin; inventory does not list it.
 */
export async function datapath(ctx: ZfsCtx, l: Located): Promise<string> {
  if (l.obj.kind === 'volume') {
    if (isZvol(l)) return ctx.cli.waitForZvol(l.name, ctx.zvolTimeoutMs);
    return rawFilePath(await mountedPath(ctx, l.name, l.ds));
  }
  const at = l.name.indexOf('@');
  const volume = l.name.slice(0, at);
  if (isZvol(l)) {
    const dev = `/dev/zvol/${l.name}`;
    const v = (await ctx.cli.get([volume], ['snapdev'])).datasets.get(volume);
    if (v?.props.get('snapdev')?.value !== 'visible') {
      ctx.known.forget(volume);
      await ctx.cli.set(volume, { props: { snapdev: 'visible' } });
      return waitForPath(ctx, dev);
    }
    // Already visible, so the device exists or is on its way, unless a `zfs destroy` of the
    // snapshot was refused: OpenZFS 2.x removes a snapshot's device before it finds the
    // snapshot busy, and does not bring it back (seen in test/kernel). Setting snapdev
    // again makes ZFS create the devices its snapshots lack.
    if (ctx.fileExists(dev)) return dev;
    try {
      return await waitForPath(ctx, dev, Math.min(SNAPDEV_GRACE_MS, ctx.zvolTimeoutMs));
    } catch {
      ctx.log.warn(`flatsnap: ${dev} is missing although ${volume} has snapdev=visible; asking ZFS for the snapshot devices again`);
      ctx.known.forget(volume);
      await ctx.cli.set(volume, { props: { snapdev: 'visible' } });
      return waitForPath(ctx, dev);
    }
  }
  if ((await ctx.cli.features()).snapdir) {
    return rawFilePath(`${await mountedPath(ctx, volume)}/.zfs/snapshot/${l.name.slice(at + 1)}`);
  }
  return rawFilePath(await ensureView(ctx, l));
}

async function ensureView(ctx: ZfsCtx, l: Located): Promise<string> {
  const v = viewName(ctx.root, l.obj.id);
  let d = await ctx.cli.getDataset(v, [PROP.kind, PROP.id]);
  if (d === undefined) {
    try {
      // canmount=noauto: attachSr's mountAll leaves it alone (it must only ever be mounted read-only).
      await ctx.cli.clone(l.name, v, {
        props: { readonly: 'on', atime: 'off', canmount: 'noauto' },
        user: { [PROP.kind]: 'view', [PROP.id]: l.obj.id },
      });
    } catch (e) {
      if (!isZfsError(e, 'Exists')) throw e; // made meanwhile by another reader
    }
    ctx.known.addView(v);
    d = await ctx.cli.getDataset(v, [PROP.kind, PROP.id]);
  }
  if (d?.user[PROP.kind] !== 'view' || d.origin !== l.name) throw new SmError('SMGeneral', `${v} exists and is not the read view of ${l.name}`);
  const mp = d.mountpoint;
  if (mp === undefined || !mp.startsWith('/')) throw new SmError('SRUnavailable', `${v} has no mountpoint (mountpoint=${String(mp)})`);
  // zfs-fuse mounts a new clone read-write whatever canmount says, and honours readonly=on
  // only for creating files: remount it with a read-only FUSE mount.
  const opts = mountOptions(ctx.readMounts(), v);
  if (opts !== undefined && !opts.includes('ro')) await ctx.cli.unmount(v);
  if (opts === undefined || !opts.includes('ro')) await zfsMountReadOnly(ctx.run, v);
  return mp;
}

/** The options of the mount of `source` in /proc/self/mounts text, undefined if not mounted. */
export function mountOptions(mounts: string, source: string): string[] | undefined {
  for (const line of mounts.split('\n')) {
    const f = line.split(' ');
    if (f[0] === source && f[3] !== undefined) return f[3].split(',');
  }
  return undefined;
}

export async function health(_ctx: ZfsCtx, l: Located): Promise<Record<string, number | string>> {
  const h: Record<string, number | string> = { dataset: l.name, type: l.ds.type, used: l.ds.used ?? 0, referenced: l.ds.referenced ?? 0 };
  if (l.ds.origin !== undefined) h.origin = l.ds.origin;
  if (l.ds.volblocksize !== undefined) h.volblocksize = l.ds.volblocksize;
  return h;
}
