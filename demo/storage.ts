// The real storage under the demo's SR: a ZFS dataset (zfs-fuse pool on an image file,
// or the user's DATASET) or a directory on an XFS reflink=1 filesystem (a loop
// filesystem, or the user's SRPATH). Setup, a listing of the SR's objects, space
// accounting, the bytes a new object does not share with anything, and teardown.
import { execa } from 'execa';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { mkdir, readdir, rmdir, statfs } from 'node:fs/promises';
import * as path from 'node:path';
import { createLoopFs, type LoopFs } from '../test/integration/harness/loopfs.js';
import { findTool, searchPath } from '../test/integration/harness/real-storage.js';
import { timed } from './profile.js';
import { createTestPool, ensureZfsReady, type TestPool } from '../test/integration/harness/zfs-pool.js';

const ENV = { PATH: searchPath().join(':'), LC_ALL: 'C', LANG: 'C' };
const UUID = /[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/;
const MARKER = '.flatsnap-sr.json';

async function run(cmd: string, args: string[]): Promise<string> {
  const r = await execa(cmd, args, { env: ENV, reject: false, stdin: 'ignore', timeout: 120_000 });
  if (r.exitCode !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${String(r.stderr || r.stdout).trim()}`);
  return r.stdout;
}

/** One object of the SR as storage shows it. */
export interface Entry {
  /** Name relative to the SR root ("" for the root itself). */
  readonly name: string;
  /** The flatsnap object id (a VDI uuid) it belongs to, if its name carries one. */
  readonly id?: string;
  /** A zfs-fuse read view of a snapshot, a reflink sidecar, the SR marker... */
  readonly role: 'root' | 'volume' | 'snapshot' | 'internal' | 'view' | 'image' | 'hidden' | 'sidecar' | 'marker' | 'other';
  /** Bytes allocated to it (zfs `used`: unique to it; files: allocated blocks). */
  readonly used: number;
  /** zfs `referenced`; files: their size. */
  readonly size: number;
  readonly origin?: string;
}

export interface DemoStorage {
  readonly kind: 'zfs' | 'reflink';
  /** What it is, for the report's header. */
  readonly description: string[];
  /** The SR's device-config. */
  readonly dc: Record<string, string>;
  /** flatsnap's --dataset D / --path P. */
  readonly target: string[];
  /** ZFS-like: snapshots and clones depend on what they came from (tombstones keep them). */
  readonly dependent: boolean;
  /** The tool-level listing this mimics, for the report. */
  readonly listCommand: string;
  /** The SR's objects (empty when the root does not exist). */
  list(): Promise<Entry[]>;
  rootExists(): Promise<boolean>;
  /** Space the SR takes, after making the backend's accounting current. */
  usage(): Promise<number>;
  /** How `usage` is measured, for the report. */
  readonly usageMeasure: string;
  /** Bytes of `e` (a new image or snapshot) not shared with anything else, and how that was measured. */
  uniqueBytes(e: Entry): Promise<number>;
  readonly uniqueMeasure: string;
  /** Undoes what usage() left on the SR root (before SR.destroy). */
  beforeSrDestroy(): Promise<void>;
  /** Removes what setup made (pool and image, loop filesystem); lines saying what was done. */
  teardown(): Promise<string[]>;
}

export interface StorageOptions {
  backend: 'zfs' | 'reflink';
  dataset?: string;
  srPath?: string;
}

// ---- ZFS -----------------------------------------------------------------------------

let zpoolSync: boolean | undefined;
let syncSeq = 0;
/** The user property the demo sets on the SR root to make zfs-fuse commit its open txg. */
export const SYNC_PROP = 'flatsnap-demo:txg-sync';

/**
 * Makes the space accounting current: written data is only counted once its txg has
 * synced. OpenZFS: `zpool sync`. zfs-fuse has no such command and its fsync only
 * commits the intent log, so the demo sets a user property of its own on the SR root:
 * a property change is a sync task, which waits for the open txg (with the data
 * written before it) to sync. It is removed again before the SR is destroyed.
 */
async function syncPool(pool: string, root: string): Promise<void> {
  if (zpoolSync !== false) {
    const r = await execa('zpool', ['sync', pool], { env: ENV, reject: false, stdin: 'ignore' });
    zpoolSync = r.exitCode === 0;
    if (zpoolSync) return;
  }
  await run('zfs', ['set', `${SYNC_PROP}=${++syncSeq}`, root]);
}

async function zfsEntries(root: string): Promise<Entry[]> {
  const r = await execa('zfs', ['get', '-Hp', '-r', '-o', 'name,property,value', 'type,used,referenced,origin', root], { env: ENV, reject: false, stdin: 'ignore' });
  if (r.exitCode !== 0) {
    if (/does not exist/.test(r.stderr)) return [];
    throw new Error(`zfs get -r ${root}: ${r.stderr.trim()}`);
  }
  const props = new Map<string, Map<string, string>>();
  for (const line of r.stdout.split('\n')) {
    const [name, prop, value] = line.split('\t');
    if (!name || !prop || value === undefined) continue;
    let m = props.get(name);
    if (!m) props.set(name, (m = new Map()));
    m.set(prop, value);
  }
  const out: Entry[] = [];
  for (const [name, p] of props) {
    const rel = name === root ? '' : name.slice(root.length + 1);
    const num = (k: string) => Number(p.get(k) ?? 0) || 0;
    const origin = p.get('origin');
    let role: Entry['role'];
    let id: string | undefined;
    if (rel === '') role = 'root';
    else if (rel.includes('@')) {
      const snap = rel.slice(rel.indexOf('@') + 1);
      role = /-int-/.test(snap) ? 'internal' : 'snapshot';
      id = UUID.exec(snap)?.[0];
    } else if (rel.endsWith('.view')) {
      role = 'view';
      id = UUID.exec(rel)?.[0];
    } else {
      role = UUID.test(rel) ? 'volume' : 'other';
      id = UUID.exec(rel)?.[0];
    }
    out.push({ name: rel, role, used: num('used'), size: num('referenced'), ...(id ? { id } : {}), ...(origin && origin !== '-' ? { origin: origin.startsWith(`${root}/`) ? origin.slice(root.length + 1) : origin } : {}) });
  }
  return out.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}

async function zfsStorage(opts: StorageOptions): Promise<DemoStorage> {
  const flavor = await ensureZfsReady();
  let pool: TestPool | undefined;
  let root: string;
  const description: string[] = [];
  // Ancestors of a given DATASET that do not exist yet: sr-create makes them, teardown removes them again.
  const madeParents: string[] = [];
  if (opts.dataset) {
    root = opts.dataset;
    const poolName = root.split('/')[0]!;
    const p = await execa('zpool', ['list', '-H', '-o', 'name', poolName], { env: ENV, reject: false, stdin: 'ignore' });
    if (p.exitCode !== 0) throw new Error(`DATASET=${root}: there is no pool ${poolName} (${p.stderr.trim()})`);
    const parts = root.split('/');
    for (let i = parts.length - 1; i > 1; i--) {
      const anc = parts.slice(0, i).join('/');
      if ((await zfsEntries(anc)).length > 0) break;
      madeParents.push(anc); // deepest first
    }
    const exists = (await zfsEntries(root)).length > 0;
    description.push(`backend: zfs (${flavor}), the given dataset ${root} (pool ${poolName}; ${exists ? 'it exists: flatsnap adopts it if it is an empty filesystem' : 'flatsnap makes it'})`);
  } else {
    pool = await createTestPool({ tag: 'demo', sizeMiB: 512 });
    root = `${pool.name}/flatsnap-demo`;
    description.push(`backend: zfs (${flavor}), a new pool ${pool.name} on ${pool.image} (512 MiB sparse image)`);
  }
  description.push(`SR device-config: dataset=${root}  (one dataset per disk; snapshots and clones are ZFS snapshots and clones)`);
  const poolName = root.split('/')[0]!;
  return {
    kind: 'zfs',
    description,
    dc: { dataset: root },
    target: ['--dataset', root],
    dependent: true,
    listCommand: `zfs list -t all -r -o name,used,refer,origin ${root}`,
    list: () => timed('list', () => zfsEntries(root)),
    rootExists: async () => (await zfsEntries(root)).length > 0,
    usageMeasure: `zfs get used ${root}, after a txg sync`,
    usage: async () => {
      await timed('txg sync', () => syncPool(poolName, root));
      const r = await execa('zfs', ['get', '-Hp', '-o', 'value', 'used', root], { env: ENV, reject: false, stdin: 'ignore' });
      return r.exitCode === 0 ? Number(r.stdout.trim()) : 0;
    },
    beforeSrDestroy: async () => {
      if (syncSeq > 0) await execa('zfs', ['inherit', SYNC_PROP, root], { env: ENV, reject: false, stdin: 'ignore' });
    },
    uniqueMeasure: 'zfs get used: the space only this snapshot or clone holds',
    uniqueBytes: async (e) => e.used,
    teardown: async () => {
      if (pool === undefined) {
        // Only datasets the demo's SR made (missing parents), only when empty: plain destroy.
        const removed: string[] = [];
        for (const d of madeParents) {
          const r = await execa('zfs', ['destroy', d], { env: ENV, reject: false, stdin: 'ignore' });
          if (r.exitCode === 0) removed.push(d);
        }
        const left = await zfsEntries(root);
        if (left.length > 0) throw new Error(`${root} is still there (${left.length} datasets)`);
        return [`${root} is gone${removed.length ? `, and the parents sr-create made for it (${removed.join(', ')})` : ''}; the pool ${poolName} is otherwise as it was`];
      }
      await pool.destroy();
      const gone = !existsSync(pool.image);
      const listed = (await execa('zpool', ['list', '-H', '-o', 'name', pool.name], { env: ENV, reject: false, stdin: 'ignore' })).exitCode === 0;
      if (listed || !gone) throw new Error(`pool ${pool.name} or its image ${pool.image} is still there`);
      return [`zpool destroy ${pool.name}; removed ${pool.image}`];
    },
  };
}

// ---- reflink --------------------------------------------------------------------------

const FIEMAP_SHARED = 0x2000;
const FIEMAP_UNWRITTEN = 0x800;

/** Bytes of `file` in extents that are neither shared (reflinked) nor unwritten, by FIEMAP. */
async function unsharedBytes(file: string): Promise<number> {
  const out = await run('xfs_io', ['-r', '-c', 'fiemap -v', file]);
  let bytes = 0;
  // "   0: [0..16383]:      192..16575       16384 0x2001"
  for (const line of out.split('\n')) {
    const m = /^\s*\d+:\s+\[\d+\.\.\d+\]:\s+\d+\.\.\d+\s+(\d+)\s+0x([0-9a-f]+)/.exec(line);
    if (!m) continue;
    const flags = parseInt(m[2]!, 16);
    if (!(flags & FIEMAP_SHARED) && !(flags & FIEMAP_UNWRITTEN)) bytes += Number(m[1]) * 512;
  }
  return bytes;
}

function dirEntries(dir: string): Entry[] {
  if (!existsSync(dir)) return [];
  const out: Entry[] = [];
  for (const name of readdirSync(dir).sort()) {
    let st;
    try {
      st = statSync(path.join(dir, name));
    } catch {
      continue; // removed meanwhile
    }
    if (!st.isFile()) continue;
    const id = UUID.exec(name)?.[0];
    let role: Entry['role'] = 'other';
    if (name === MARKER) role = 'marker';
    else if (name.endsWith('.json')) role = 'sidecar';
    else if (id !== undefined && name === id) role = 'image';
    else if (id !== undefined && name === `${id}.hidden`) role = 'hidden';
    out.push({ name, role, used: st.blocks * 512, size: st.size, ...(id ? { id } : {}) });
  }
  return out;
}

async function reflinkStorage(opts: StorageOptions): Promise<DemoStorage> {
  if (!findTool('xfs_io')) throw new Error('the reflink demo needs xfs_io (apt-get install xfsprogs)');
  let fs: LoopFs | undefined;
  let dir: string;
  const description: string[] = [];
  if (opts.srPath) {
    dir = path.resolve(opts.srPath);
    if (!existsSync(dir) || !statSync(dir).isDirectory()) throw new Error(`SRPATH=${opts.srPath} is not a directory`);
    description.push(`backend: reflink, the given directory ${dir}`);
  } else {
    fs = await createLoopFs('xfs', { sizeMiB: 512 });
    dir = path.join(fs.mountpoint, 'flatsnap-demo');
    await mkdir(dir);
    description.push(`backend: reflink, a new XFS (reflink=1) on ${fs.device} (${fs.image}, 512 MiB sparse) mounted at ${fs.mountpoint}`);
  }
  description.push(`SR device-config: path=${dir} unshare=off  (one raw image file per disk, snapshots and clones are FICLONE copies)`);
  // The default (unshare=auto) would, after each snapshot, copy in the background what the
  // live disk shares, so that the guest writes in place: the demo counts what the snapshot
  // operations themselves copy, which that background copy would blur.
  description.push('unshare=off: this demo counts what each snapshot copies; the default (auto) then also gives the live disk blocks of its own in the background (docs/fragmentation.md, "Unshare")');
  return {
    kind: 'reflink',
    description,
    dc: { path: dir, unshare: 'off' },
    target: ['--path', dir],
    dependent: false,
    listCommand: `ls -ls ${dir}`,
    list: async () => dirEntries(dir),
    rootExists: async () => existsSync(path.join(dir, MARKER)),
    usageMeasure: `statfs of ${dir} (blocks in use), after sync -f`,
    usage: async () => {
      await run('sync', ['-f', dir]);
      const s = await statfs(dir);
      return (s.blocks - s.bfree) * s.bsize;
    },
    beforeSrDestroy: async () => undefined,
    uniqueMeasure: 'FIEMAP (xfs_io fiemap -v): bytes in extents not flagged SHARED',
    uniqueBytes: (e) => unsharedBytes(path.join(dir, e.name)),
    teardown: async () => {
      if (fs === undefined) {
        const left = existsSync(dir) ? readdirSync(dir) : [];
        return [left.length === 0 ? `left the given directory ${dir} (empty)` : `left the given directory ${dir}: ${left.length} entries remain`];
      }
      const what = `umount ${fs.mountpoint}; losetup -d ${fs.device}; removed ${fs.image}`;
      await fs.teardown();
      return [what];
    },
  };
}

export function setupStorage(opts: StorageOptions): Promise<DemoStorage> {
  return opts.backend === 'zfs' ? zfsStorage(opts) : reflinkStorage(opts);
}

/**
 * Removes `dir` and the directories below it if they are all empty (mountpoints the
 * raw-file layout left): rmdir only, never a file, never a mounted filesystem.
 */
export async function rmdirIfEmpty(dir: string): Promise<boolean> {
  try {
    for (const d of await readdir(dir, { withFileTypes: true })) if (d.isDirectory()) await rmdirIfEmpty(path.join(dir, d.name));
    await rmdir(dir);
    return true;
  } catch {
    return false;
  }
}
