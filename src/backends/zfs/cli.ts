// The ZFS command layer ("CLI helpers" in Incus's terms): typed functions over
// zfs(8) and zpool(8). Everything that reaches storage goes through here.
//
// Rules this file keeps:
//   - execa with argument arrays only; names are checked (names.ts) before
//     they reach argv, user-property values are encoded (codec.ts);
//   - never `destroy -R`, never `destroy -f`/`unmount -f`; `-r` only when the
//     caller asks for it; a pool's root dataset is never destroyed here;
//   - a scan is ONE `zfs get -r` for the whole subtree, never one per VDI;
//   - "dataset is busy" is retried with bounded exponential backoff
//     (5 runs, 100+200+400+800 ms of sleep), then surfaces as Busy (-> VDIInUse);
//   - every failure is a ZfsError whose kind comes from errors.ts's one table.
import { existsSync } from 'node:fs';
import { log } from '../../log.js';
import { SmError } from '../../errors.js';
import { MAX_USER_VALUE_BYTES, encodeUserValue } from './codec.js';
import { ZfsError, classifyStderr, isRetryable, isZfsError, type ZfsErrorKind } from './errors.js';
import { execaExec, resolveBinary, type Exec, type ExecResult } from './exec.js';
import { featuresFromVersionResult, type ZfsFeatures } from './features.js';
import {
  isSnapshotName,
  requireDataset,
  requireDatasetOrSnapshot,
  requireNativeProp,
  requirePool,
  requirePropName,
  requireSnapshot,
  requireUserProp,
  splitSnapshot,
  zvolDevicePath,
} from './names.js';
import { parseGet, parseNames, parseZpoolList, type GetResult, type PoolHealth, type PoolStats, type ZfsDataset } from './parse.js';

export type { ZfsFeatures } from './features.js';
export type { GetResult, PoolStats, ZfsDataset } from './parse.js';

export interface ZfsLogger {
  debug(msg: string): void;
  info(msg: string): void;
  warn(msg: string): void;
}

const defaultLogger: ZfsLogger = {
  debug: (m) => log().debug(m),
  info: (m) => log().info(m),
  warn: (m) => log().warn(m),
};

export interface RetryPolicy {
  /** Total runs of a command that keeps answering "busy". */
  attempts: number;
  initialDelayMs: number;
  maxDelayMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = { attempts: 5, initialDelayMs: 100, maxDelayMs: 800 };

export interface ZfsCliOptions {
  exec?: Exec;
  zfsBin?: string;
  zpoolBin?: string;
  /** Per command. zfs-fuse destroys synchronously, so a big destroy can take a while. */
  timeoutMs?: number;
  retry?: RetryPolicy;
  sleep?: (ms: number) => Promise<void>;
  logger?: ZfsLogger;
  /** Skip detection (tests, or a caller that already knows). */
  features?: ZfsFeatures;
  fileExists?: (p: string) => boolean;
}

/** Properties for create/clone: native ones raw (`props`), user ones encoded (`user`). */
export interface PropOptions {
  /** Native properties, e.g. { mountpoint: '/x', refquota: '1073741824' }. */
  props?: Readonly<Record<string, string>>;
  /** User properties ("flatsnap:uuid"), any text: encoded on the way in, decoded by the parsers. */
  user?: Readonly<Record<string, string>>;
}

export interface CreateFsOptions extends PropOptions {
  /** zfs create -p: also create missing parents (they get no properties). */
  parents?: boolean;
}

export interface CreateVolumeOptions extends PropOptions {
  /** Thin (zfs create -s): no refreservation. Default true. */
  sparse?: boolean;
  /** Bytes, a power of two 512..128K (OpenZFS default 16K since 2.2). */
  volblocksize?: number;
}

export interface DestroyOptions {
  /** -r: also destroy snapshots and children. Only when the caller means it. */
  recursive?: boolean;
  /** -d (snapshots only): destroy now, or as soon as the last clone/hold is gone. */
  defer?: boolean;
  /** Treat "does not exist" as done. */
  missingOk?: boolean;
}

export interface GetOptions {
  recursive?: boolean;
  /** -d N (implies recursion to depth N). */
  depth?: number;
  /** Dataset types to include (filesystem, volume, snapshot); filtered client-side where zfs lacks `get -t`. */
  types?: ReadonlyArray<'filesystem' | 'volume' | 'snapshot'>;
}

/**
 * Native properties a scan reads, all understood by OpenZFS 2.x and zfs-fuse
 * (asking either for a property it lacks is a usage error).
 */
export const SCAN_PROPS = [
  'type',
  'origin',
  'used',
  'referenced',
  'available',
  'volsize',
  'volblocksize',
  'refreservation',
  'refquota',
  'creation',
  'createtxg',
  'guid',
  'mounted',
  'mountpoint',
  'canmount',
  'defer_destroy',
  'userrefs',
] as const;

export interface SpaceInfo {
  used: number;
  available: number;
  referenced: number;
}

/** Rounds `n` up to a multiple of `m`. */
export function roundUp(n: number, m: number): number {
  return Math.ceil(n / m) * m;
}

const sleepReal = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

export class ZfsCli {
  private readonly exec: Exec;
  private readonly zfsBin: string;
  private readonly zpoolBin: string;
  private readonly timeoutMs: number;
  private readonly retry: RetryPolicy;
  private readonly sleep: (ms: number) => Promise<void>;
  private readonly logger: ZfsLogger;
  private readonly fileExists: (p: string) => boolean;
  private featuresP: Promise<ZfsFeatures> | undefined;

  constructor(opts: ZfsCliOptions = {}) {
    this.exec = opts.exec ?? execaExec;
    this.zfsBin = opts.zfsBin ?? resolveBinary('zfs');
    this.zpoolBin = opts.zpoolBin ?? resolveBinary('zpool');
    this.timeoutMs = opts.timeoutMs ?? 120_000;
    this.retry = opts.retry ?? DEFAULT_RETRY;
    this.sleep = opts.sleep ?? sleepReal;
    this.logger = opts.logger ?? defaultLogger;
    this.fileExists = opts.fileExists ?? existsSync;
    if (opts.features) this.featuresP = Promise.resolve(opts.features);
  }

  // ---- running ------------------------------------------------------------------

  /** What this ZFS can do; detected on first use, then cached. */
  features(): Promise<ZfsFeatures> {
    if (!this.featuresP) {
      const p = (async () => {
        const argv = [this.zfsBin, 'version'];
        const r = await this.exec(this.zfsBin, ['version'], { timeoutMs: this.timeoutMs });
        const f = featuresFromVersionResult(r, argv, this.fileExists);
        this.logger.debug(`zfs: flavor ${f.flavor}${f.version ? ` ${f.version.userland}` : ''}`);
        return f;
      })();
      // A failed detection (zfs missing) is not cached: the next call tries again.
      p.catch(() => {
        if (this.featuresP === p) this.featuresP = undefined;
      });
      this.featuresP = p;
    }
    return this.featuresP;
  }

  private errorOf(argv: readonly string[], r: ExecResult, attempts: number): ZfsError {
    const base = { argv, stderr: r.stderr, attempts, ...(r.exitCode !== undefined ? { exitCode: r.exitCode } : {}), ...(r.signal ? { signal: r.signal } : {}) };
    if (r.spawnError) {
      const prog = argv[0]?.split('/').pop() ?? 'zfs';
      return new ZfsError({ ...base, kind: 'NotInstalled', detail: `${prog} is not installed (${r.spawnError})` });
    }
    if (r.timedOut) {
      return new ZfsError({ ...base, kind: 'Timeout', detail: `no answer within ${Math.round(this.timeoutMs / 1000)} s` });
    }
    const kind: ZfsErrorKind = classifyStderr(r.stderr);
    return new ZfsError({ ...base, kind });
  }

  /**
   * Runs one command, retrying while it says "busy". Returns stdout.
   * `mutating` only decides the log level.
   */
  private async run(bin: string, args: readonly string[], mutating: boolean): Promise<string> {
    const argv = [bin, ...args];
    const shown = JSON.stringify(argv);
    let delay = this.retry.initialDelayMs;
    for (let attempt = 1; ; attempt++) {
      if (mutating) this.logger.info(`zfs: ${shown}`);
      else this.logger.debug(`zfs: ${shown}`);
      const r = await this.exec(bin, args, { timeoutMs: this.timeoutMs });
      if (r.exitCode === 0 && !r.spawnError && !r.timedOut) return r.stdout;
      const err = this.errorOf(argv, r, attempt);
      if (isRetryable(err.kind) && attempt < this.retry.attempts) {
        this.logger.warn(`zfs: ${err.summary}; retry ${attempt}/${this.retry.attempts - 1} in ${delay} ms`);
        await this.sleep(delay);
        delay = Math.min(delay * 2, this.retry.maxDelayMs);
        continue;
      }
      if (err.kind !== 'NotFound' && err.kind !== 'NotMounted' && err.kind !== 'AlreadyMounted') {
        this.logger.warn(`zfs: ${shown} failed (${err.kind}): ${r.stderr.trim().replace(/\n/g, ' | ')}`);
      }
      throw err;
    }
  }

  private zfs(args: readonly string[], mutating = true): Promise<string> {
    return this.run(this.zfsBin, args, mutating);
  }

  private zpool(args: readonly string[], mutating = false): Promise<string> {
    return this.run(this.zpoolBin, args, mutating);
  }

  // ---- property arguments ---------------------------------------------------------

  private invalid(argv: readonly string[], detail: string): ZfsError {
    return new ZfsError({ kind: 'InvalidArgument', argv, detail });
  }

  /** ["k=v", ...] for native and user properties, validated and encoded. */
  private async assignments(o: PropOptions, what: readonly string[]): Promise<string[]> {
    const f = await this.features();
    const out: string[] = [];
    for (const [k, v] of Object.entries(o.props ?? {})) {
      requireNativeProp(k);
      if (CONTROL.test(v) || v === '') throw this.invalid(what, `bad value for ${k}: ${JSON.stringify(v)}`);
      out.push(`${k}=${v}`);
    }
    for (const [k, v] of Object.entries(o.user ?? {})) {
      requireUserProp(k);
      const enc = encodeUserValue(v);
      const max = Math.min(f.maxUserValueBytes, MAX_USER_VALUE_BYTES);
      if (enc.length > max) throw this.invalid(what, `value of ${k} is ${enc.length} bytes encoded, more than ${max}`);
      out.push(`${k}=${enc}`);
    }
    return out;
  }

  private static dashO(assignments: readonly string[]): string[] {
    return assignments.flatMap((a) => ['-o', a]);
  }

  // ---- datasets ------------------------------------------------------------------------

  /** zfs create [-p] -o ... NAME: a filesystem with its properties set atomically. */
  async createFilesystem(name: string, opts: CreateFsOptions = {}): Promise<void> {
    requireDataset(name);
    const a = await this.assignments(opts, ['zfs', 'create', name]);
    await this.zfs(['create', ...(opts.parents ? ['-p'] : []), ...ZfsCli.dashO(a), name]);
  }

  /**
   * zfs create [-s] [-b VBS] -V SIZE -o ... NAME. SIZE is rounded up to a
   * multiple of the volblocksize (ZFS refuses others); returns the size used.
   * Unsupported on zfs-fuse.
   */
  async createVolume(name: string, size: number, opts: CreateVolumeOptions = {}): Promise<number> {
    requireDataset(name);
    const f = await this.features();
    const what = ['zfs', 'create', '-V', String(size), name];
    if (!f.volumes) throw new ZfsError({ kind: 'Unsupported', argv: what, detail: `${f.flavor} has no volumes (zvols)` });
    if (!Number.isSafeInteger(size) || size <= 0) throw this.invalid(what, `bad volume size ${size}`);
    const vbs = opts.volblocksize;
    if (vbs !== undefined && (!Number.isInteger(vbs) || vbs < 512 || vbs > 131072 || (vbs & (vbs - 1)) !== 0)) {
      throw this.invalid(what, `bad volblocksize ${vbs}`);
    }
    // Without -b the pool's default applies (8K before OpenZFS 2.2, 16K since); round to 16K then, a multiple of both.
    const volsize = roundUp(size, vbs ?? 16384);
    const a = await this.assignments(opts, what);
    await this.zfs([
      'create',
      ...(opts.sparse === false ? [] : ['-s']),
      ...(vbs !== undefined ? ['-b', String(vbs)] : []),
      '-V',
      String(volsize),
      ...ZfsCli.dashO(a),
      name,
    ]);
    return volsize;
  }

  /** zfs snapshot [-o ...] DS@SNAP; user properties atomically where supported, else set right after. */
  async snapshot(snap: string, opts: { user?: Readonly<Record<string, string>> } = {}): Promise<void> {
    requireSnapshot(snap);
    const f = await this.features();
    const a = await this.assignments({ user: opts.user ?? {} }, ['zfs', 'snapshot', snap]);
    if (f.snapshotProps || a.length === 0) {
      await this.zfs(['snapshot', ...ZfsCli.dashO(a), snap]);
      return;
    }
    await this.zfs(['snapshot', snap]);
    await this.setAssignments(snap, a);
  }

  /** zfs clone -o ... SNAP TARGET. */
  async clone(snap: string, target: string, opts: PropOptions = {}): Promise<void> {
    requireSnapshot(snap);
    requireDataset(target);
    const a = await this.assignments(opts, ['zfs', 'clone', snap, target]);
    await this.zfs(['clone', ...ZfsCli.dashO(a), snap, target]);
  }

  /** zfs promote CLONE: the clone takes over its origin's snapshots up to the origin. */
  async promote(clone: string): Promise<void> {
    requireDataset(clone);
    await this.zfs(['promote', clone]);
  }

  /**
   * zfs destroy [-r] [-d] NAME. Never -R (clones elsewhere are never collateral)
   * and never -f. Refuses a pool's root dataset.
   */
  async destroy(name: string, opts: DestroyOptions = {}): Promise<void> {
    requireDatasetOrSnapshot(name);
    const snap = isSnapshotName(name);
    if (!snap && !name.includes('/')) {
      throw this.invalid(['zfs', 'destroy', name], `refusing to destroy the root dataset of pool ${name}`);
    }
    if (opts.defer && !snap) throw this.invalid(['zfs', 'destroy', '-d', name], 'destroy -d applies to snapshots only');
    const args = ['destroy', ...(opts.recursive ? ['-r'] : []), ...(opts.defer ? ['-d'] : []), name];
    try {
      const f = await this.features();
      if (snap || f.destroyMounted) {
        await this.zfs(args);
        return;
      }
      // zfs-fuse: unmount first (what -r would take along too), mount back if the destroy is refused.
      const unmounted = await this.unmountTree(name, opts.recursive === true);
      try {
        await this.zfs(args);
      } catch (e) {
        await this.remount(unmounted);
        throw e;
      }
    } catch (e) {
      if (opts.missingOk && isZfsError(e, 'NotFound')) return;
      throw e;
    }
  }

  /**
   * Unmounts `name` (and with `recursive` its mounted descendants, deepest
   * first). Returns what was unmounted, parents first, for remount(). One get.
   */
  private async unmountTree(name: string, recursive: boolean): Promise<string[]> {
    const tree = await this.get([name], ['type', 'mounted'], recursive ? { recursive: true } : {});
    const mounted = [...tree.datasets.values()].filter((d) => d.type === 'filesystem' && d.mounted).map((d) => d.name);
    const deepestFirst = [...mounted].sort((a, b) => b.split('/').length - a.split('/').length);
    const done: string[] = [];
    try {
      for (const m of deepestFirst) {
        await this.unmount(m);
        done.push(m);
      }
    } catch (e) {
      await this.remount(done.reverse());
      throw e;
    }
    return done.reverse();
  }

  /** Mounts again (parents first) what unmountTree took down; failures are logged, not thrown. */
  private async remount(names: readonly string[]): Promise<void> {
    for (const m of names) {
      await this.mount(m).catch((me: unknown) => this.logger.warn(`zfs: could not mount ${m} again: ${String(me)}`));
    }
  }

  /**
   * zfs rename FROM TO (a dataset, or a snapshot within its dataset). Where zfs
   * cannot rename mounted filesystems (zfs-fuse) the subtree is unmounted first
   * and what was mounted is mounted again under the new name.
   */
  async rename(from: string, to: string): Promise<void> {
    if (isSnapshotName(from)) {
      requireSnapshot(to);
      if (splitSnapshot(from).dataset !== splitSnapshot(to).dataset) {
        throw this.invalid(['zfs', 'rename', from, to], 'a snapshot can only be renamed within its dataset');
      }
      await this.zfs(['rename', from, to]);
      return;
    }
    requireDataset(from);
    requireDataset(to);
    const f = await this.features();
    if (f.renameMounted) {
      await this.zfs(['rename', from, to]);
      return;
    }
    // zfs-fuse: unmount the subtree, rename, mount again under the new name.
    const unmounted = await this.unmountTree(from, true);
    try {
      await this.zfs(['rename', from, to]);
    } catch (e) {
      await this.remount(unmounted);
      throw e;
    }
    for (const m of unmounted) {
      const renamed = to + m.slice(from.length);
      try {
        await this.mount(renamed);
      } catch (e) {
        if (e instanceof ZfsError) {
          throw new ZfsError({ kind: e.kind, argv: e.argv, stderr: e.stderr, detail: `renamed ${from} to ${to} but could not mount ${renamed}: ${e.summary}` });
        }
        throw e;
      }
    }
  }

  /** zfs set k=v ... NAME; one command where zfs allows several assignments (atomic), else one per property. */
  async set(name: string, o: PropOptions): Promise<void> {
    requireDatasetOrSnapshot(name);
    const a = await this.assignments(o, ['zfs', 'set', name]);
    await this.setAssignments(name, a);
  }

  private async setAssignments(name: string, a: readonly string[]): Promise<void> {
    if (a.length === 0) return;
    const f = await this.features();
    if (f.multiSet) {
      await this.zfs(['set', ...a, name]);
      return;
    }
    for (const one of a) await this.zfs(['set', one, name]);
  }

  /** zfs inherit PROP NAME: removes a user property, or returns a native one to its inherited/default value. */
  async inherit(name: string, prop: string): Promise<void> {
    requireDatasetOrSnapshot(name);
    requirePropName(prop);
    await this.zfs(['inherit', prop, name]);
  }

  /** Sets the volume's size (bytes). The caller checks growth and volblocksize alignment. */
  async setVolsize(volume: string, bytes: number): Promise<void> {
    requireDataset(volume);
    if (!Number.isSafeInteger(bytes) || bytes <= 0) throw this.invalid(['zfs', 'set', 'volsize', volume], `bad size ${bytes}`);
    await this.zfs(['set', `volsize=${bytes}`, volume]);
  }

  /** Sets refquota (bytes), or removes it with null. */
  async setRefquota(name: string, bytes: number | null): Promise<void> {
    requireDataset(name);
    if (bytes !== null && (!Number.isSafeInteger(bytes) || bytes <= 0)) {
      throw this.invalid(['zfs', 'set', 'refquota', name], `bad size ${bytes}`);
    }
    await this.zfs(['set', `refquota=${bytes === null ? 'none' : bytes}`, name]);
  }

  // ---- reading ----------------------------------------------------------------------------

  /**
   * ONE `zfs get -H -p -o name,property,value,source PROPS NAMES...`. With
   * `recursive`/`depth` it covers whole subtrees (snapshots included). Throws
   * NotFound if any of `names` does not exist.
   */
  async get(names: readonly string[], props: readonly string[] | 'all', opts: GetOptions = {}): Promise<GetResult> {
    if (names.length === 0) return { datasets: new Map(), warnings: [] };
    for (const n of names) requireDatasetOrSnapshot(n);
    if (props !== 'all') {
      if (props.length === 0) throw this.invalid(['zfs', 'get'], 'no properties asked for');
      for (const p of props) requirePropName(p);
    }
    const f = await this.features();
    const types = opts.types;
    const args = ['get', '-H', '-p'];
    if (opts.depth !== undefined) {
      if (!Number.isInteger(opts.depth) || opts.depth < 0) throw this.invalid(['zfs', 'get'], `bad depth ${opts.depth}`);
      args.push('-d', String(opts.depth));
    } else if (opts.recursive) args.push('-r');
    // Without -t OpenZFS also prints bookmarks (parseGet drops them); zfs-fuse has no -t at all.
    if (f.getTypeFilter) args.push('-t', (types ?? ['filesystem', 'volume', 'snapshot']).join(','));
    // 'type' is needed to filter client-side.
    const list = props === 'all' ? 'all' : [...new Set(types && !f.getTypeFilter ? ['type', ...props] : props)].join(',');
    args.push('-o', 'name,property,value,source', list, ...names);
    const out = await this.zfs(args, false);
    const res = parseGet(out);
    for (const w of res.warnings) this.logger.warn(`zfs: ${w}`);
    if (types && !f.getTypeFilter) {
      const keep = new Set<string>(types);
      for (const [n, d] of res.datasets) if (!keep.has(d.type)) res.datasets.delete(n);
    }
    return res;
  }

  /**
   * The bulk scan: every dataset and snapshot under (and including) `root`
   * with SCAN_PROPS and the given user properties, in one command.
   */
  async scan(root: string, user: readonly string[] = [], opts: { all?: boolean } = {}): Promise<GetResult> {
    requireDataset(root);
    for (const u of user) requireUserProp(u);
    return this.get([root], opts.all ? 'all' : [...SCAN_PROPS, ...user], { recursive: true });
  }

  /** One dataset or snapshot with SCAN_PROPS (+ user props); undefined if it does not exist. */
  async getDataset(name: string, user: readonly string[] = [], extra: readonly string[] = []): Promise<ZfsDataset | undefined> {
    try {
      const r = await this.get([name], [...SCAN_PROPS, ...extra, ...user]);
      return r.datasets.get(name);
    } catch (e) {
      if (isZfsError(e, 'NotFound')) return undefined;
      throw e;
    }
  }

  async exists(name: string): Promise<boolean> {
    try {
      await this.get([name], ['type']);
      return true;
    } catch (e) {
      if (isZfsError(e, 'NotFound')) return false;
      throw e;
    }
  }

  /** zfs list -H -o name [-r|-d N] [-t ...] ROOT: names only. */
  async listNames(root: string, opts: GetOptions = {}): Promise<string[]> {
    requireDatasetOrSnapshot(root);
    const args = ['list', '-H', '-o', 'name'];
    if (opts.depth !== undefined) args.push('-d', String(opts.depth));
    else if (opts.recursive) args.push('-r');
    args.push('-t', (opts.types ?? ['filesystem', 'volume', 'snapshot']).join(','), root);
    return parseNames(await this.zfs(args, false));
  }

  /**
   * zfs list -H -o COLS [-r|-d N] -t TYPES ROOT: one row per dataset, each column as
   * printed ('-' when unset; no -p, which zfs-fuse's list lacks: ask for no sizes here).
   * With types that leave snapshots out it does not visit them, which on zfs-fuse makes
   * it several times cheaper than any `zfs get -r` of the same tree.
   */
  async listColumns(root: string, cols: readonly string[], opts: GetOptions = {}): Promise<Array<Record<string, string>>> {
    requireDatasetOrSnapshot(root);
    if (cols.length === 0) throw this.invalid(['zfs', 'list'], 'no columns asked for');
    for (const c of cols) if (c !== 'name') requirePropName(c);
    const args = ['list', '-H', '-o', cols.join(',')];
    if (opts.depth !== undefined) {
      if (!Number.isInteger(opts.depth) || opts.depth < 0) throw this.invalid(['zfs', 'list'], `bad depth ${opts.depth}`);
      args.push('-d', String(opts.depth));
    } else if (opts.recursive) args.push('-r');
    args.push('-t', (opts.types ?? ['filesystem', 'volume', 'snapshot']).join(','), root);
    const out: Array<Record<string, string>> = [];
    for (const line of parseNames(await this.zfs(args, false))) {
      const f = line.split('\t');
      if (f.length !== cols.length) {
        this.logger.warn(`zfs: list line with ${f.length} columns, ${cols.length} asked for: ${JSON.stringify(line).slice(0, 200)}`);
        continue;
      }
      out.push(Object.fromEntries(cols.map((c, i) => [c, f[i]!])));
    }
    return out;
  }

  /** Exact used/available/referenced of a dataset (SR stats: size = used + available). */
  async space(name: string): Promise<SpaceInfo> {
    const d = (await this.get([name], ['used', 'available', 'referenced'])).datasets.get(name);
    if (!d || d.used === undefined || d.available === undefined || d.referenced === undefined) {
      throw new ZfsError({ kind: 'Unknown', argv: ['zfs', 'get', 'used,available,referenced', name], detail: 'no sizes in zfs get output' });
    }
    return { used: d.used, available: d.available, referenced: d.referenced };
  }

  // ---- mounting -------------------------------------------------------------------------------

  /** zfs mount NAME; already mounted is fine. */
  async mount(name: string): Promise<void> {
    requireDataset(name);
    try {
      await this.zfs(['mount', name]);
    } catch (e) {
      if (isZfsError(e, 'AlreadyMounted')) return;
      throw e;
    }
  }

  /** zfs unmount NAME (never -f); not mounted is fine; busy is retried, then Busy. */
  async unmount(name: string): Promise<void> {
    requireDataset(name);
    try {
      await this.zfs(['unmount', name]);
    } catch (e) {
      if (isZfsError(e, 'NotMounted')) return;
      throw e;
    }
  }

  /**
   * Mounts every filesystem under `root` that should be and is not
   * (canmount=on, a real mountpoint): after a zfs-fuse daemon restart nothing
   * is mounted. One get, then one mount per unmounted filesystem, parents first.
   */
  async mountAll(root: string): Promise<string[]> {
    const tree = await this.get([root], ['type', 'mounted', 'mountpoint', 'canmount'], { recursive: true, types: ['filesystem'] });
    const todo = [...tree.datasets.values()]
      .filter((d) => d.type === 'filesystem' && d.mounted === false && d.canmount === 'on')
      .filter((d) => d.mountpoint !== undefined && d.mountpoint.startsWith('/'))
      .map((d) => d.name)
      .sort((a, b) => a.split('/').length - b.split('/').length);
    for (const n of todo) await this.mount(n);
    return todo;
  }

  /** The mountpoint of a mounted filesystem; undefined when it is not mounted. */
  async mountpointOf(name: string): Promise<string | undefined> {
    const d = (await this.get([name], ['mounted', 'mountpoint'])).datasets.get(name);
    return d?.mounted && d.mountpoint?.startsWith('/') ? d.mountpoint : undefined;
  }

  // ---- pools ----------------------------------------------------------------------------------

  /** zpool list: size/allocated/free/health; exact on OpenZFS (-p), rounded on zfs-fuse. */
  async poolStats(pool: string): Promise<PoolStats> {
    requirePool(pool);
    const f = await this.features();
    const out = await this.zpool(['list', '-H', ...(f.parsableList ? ['-p'] : []), '-o', 'name,size,allocated,free,health', pool]);
    const s = parseZpoolList(out, f.parsableList).find((p) => p.name === pool);
    if (!s) throw new ZfsError({ kind: 'NoPool', argv: ['zpool', 'list', pool], detail: `zpool list printed no line for ${pool}` });
    return s;
  }

  async poolHealth(pool: string): Promise<PoolHealth> {
    requirePool(pool);
    const out = await this.zpool(['list', '-H', '-o', 'health', pool]);
    return out.trim();
  }

  /** SRUnavailable unless the pool is ONLINE or DEGRADED (still serving data). */
  async requireHealthyPool(pool: string): Promise<PoolHealth> {
    let h: PoolHealth;
    try {
      h = await this.poolHealth(pool);
    } catch (e) {
      if (e instanceof ZfsError) throw e.toSmError();
      throw e;
    }
    if (h !== 'ONLINE' && h !== 'DEGRADED') throw new SmError('SRUnavailable', `zpool ${pool} is ${h}`);
    return h;
  }

  // ---- paths ------------------------------------------------------------------------------------

  /** /dev/zvol/POOL/PATH (OpenZFS on Linux). */
  zvolPath(volume: string): string {
    return zvolDevicePath(volume);
  }

  /** Waits for udev to make /dev/zvol/POOL/PATH after a create/clone/rename; returns the path. */
  async waitForZvol(volume: string, timeoutMs = 10_000): Promise<string> {
    const path = zvolDevicePath(volume);
    const deadline = Date.now() + timeoutMs;
    while (!this.fileExists(path)) {
      if (Date.now() >= deadline) {
        throw new ZfsError({ kind: 'Timeout', argv: ['wait', path], detail: `${path} did not appear within ${timeoutMs} ms` });
      }
      await this.sleep(50);
    }
    return path;
  }
}

let shared: ZfsCli | undefined;

/** The process-wide instance: features are detected once per process. */
export function zfsCli(): ZfsCli {
  shared ??= new ZfsCli();
  return shared;
}
