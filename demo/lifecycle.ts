// `make demo`: the whole XenCenter snapshot lifecycle of a VM on a flatsnap SR, played
// through the XAPI simulator (test/xapi-sim) on real storage, with a readable report.
//
//   tsx demo/lifecycle.ts [--backend zfs|reflink] [--dataset POOL/PATH] [--path DIR]
//   (make demo [BACKEND=reflink] [DATASET=tank/flatsnap-demo] [SRPATH=/dir])
//
// zfs (default): the SR is DATASET, or a dataset on a new zfs-fuse pool made on a
// sparse image file. reflink: the SR is SRPATH, or a directory on a new XFS
// (reflink=1) loop filesystem. Root is needed (pools, loop devices, mounts, and the
// driver's locks in /var/lock/sm).
//
// The built plugin is installed with plugin/install.sh into the simulator's
// /opt/xensource/sm; XenCenter's calls are made with Xen Orchestra's xen-api client
// (Async.* + task events, as XenCenter does); dom0 reads and writes the disks through
// the plugin's vdi_attach. Every step verifies every disk's known data by sha256.
// Everything is destroyed at the end, also after a failure or a signal.
//
// Exit status: 0 every check passed; 1 a check or step failed; 2 cannot run here
// (not root, nothing built, bad arguments); 128+N killed by signal N (after cleanup).
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile } from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { createClient, type Xapi } from 'xen-api';
import { Client, ROOT, readSmLog, removeDir, startSim, type SimProc } from '../test/e2e/sim-helpers.js';
import { DISK_SIZE, KNOWN_BYTES, SLOTS, change, describeState, emptyState, expectedSha, initialState, type DiskState } from './data.js';
import { Dom0, type SrTarget, type VdiRef } from './dom0.js';
import { Model, type ModelVdi } from './model.js';
import { profileReport, timed } from './profile.js';
import { Report, fmtBytes, fmtSecs, table } from './report.js';
import { type DemoStorage, type Entry, rmdirIfEmpty, setupStorage } from './storage.js';

type Rec = Record<string, any>;

/** What both xen-api's client and the simulator helpers' Client can do. */
interface Api {
  call<T = any>(method: string, ...args: any[]): Promise<T>;
  callAsync<T = any>(method: string, ...args: any[]): Promise<T>;
}

interface Options {
  backend: 'zfs' | 'reflink';
  dataset?: string;
  srPath?: string;
}

const USAGE = `usage: tsx demo/lifecycle.ts [--backend zfs|reflink] [--dataset POOL/PATH] [--path DIR]
       make demo [BACKEND=zfs|reflink] [DATASET=POOL/PATH] [SRPATH=DIR]`;

class UsageError extends Error {}

class AbortedError extends Error {
  constructor(readonly signal: string) {
    super(`stopped by ${signal}`);
    this.name = 'AbortedError';
  }
}

function parseOptions(argv: readonly string[]): Options {
  const o: Options = { backend: 'zfs' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const m = /^--(backend|dataset|path)(?:=(.*))?$/.exec(a);
    if (a === '--help' || a === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    }
    if (!m) throw new UsageError(`unknown argument ${a}`);
    const v = m[2] ?? argv[++i];
    if (v === undefined) throw new UsageError(`--${m[1]} needs a value`);
    if (v === '') continue; // make passes empty variables through
    if (m[1] === 'backend') {
      if (v !== 'zfs' && v !== 'reflink') throw new UsageError(`--backend must be zfs or reflink, not ${v}`);
      o.backend = v;
    } else if (m[1] === 'dataset') o.dataset = v;
    else o.srPath = v;
  }
  if (o.dataset !== undefined && o.backend !== 'zfs') throw new UsageError('DATASET is for BACKEND=zfs');
  if (o.srPath !== undefined) {
    if (o.backend !== 'reflink') throw new UsageError('SRPATH is for BACKEND=reflink');
    if (!path.isAbsolute(o.srPath)) throw new UsageError('SRPATH must be an absolute path');
  }
  if (o.dataset !== undefined && !/^[A-Za-z0-9][A-Za-z0-9_.:-]*(\/[A-Za-z0-9_.:-]+)+$/.test(o.dataset)) throw new UsageError(`DATASET=${o.dataset} is not POOL/PATH`);
  return o;
}

const shortUuids = (s: string): string => s.replace(/([0-9a-f]{8})-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, '$1');
const hhmmss = (ms: number): string => new Date(ms).toISOString().slice(11, 23) + 'Z';
const iso = (ms: number): string => new Date(ms).toISOString();
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One snapshot-type operation (VM.snapshot, VM.revert, VM.clone) and what it cost storage. */
interface CopyStat {
  what: string;
  objects: number;
  unique: number;
  growth: number;
  /** Of the growth: the new objects' records (reflink .json sidecars). */
  records: number;
  sourceData: number;
}

class Demo {
  readonly report = new Report();
  readonly model: Model;
  storage?: DemoStorage;
  sim?: SimProc;
  simDir?: string;
  smDir?: string;
  xapi?: Xapi;
  api!: Api;
  host = '';
  sr = '';
  srUuid = '';
  dom0!: Dom0;
  cli = '';
  readonly tags = new Set<string>();
  readonly copies: CopyStat[] = [];
  readonly chains: Array<{ label: string; ok: boolean }> = [];
  private srDestroyed = false;
  private torn = false;
  /** Set by a signal: the lifecycle stops at the next call it would make. */
  aborted: string | undefined;

  checkAbort(): void {
    if (this.aborted) throw new AbortedError(this.aborted);
  }

  constructor(readonly opts: Options) {
    this.model = new Model(opts.backend === 'zfs');
  }

  get r(): Report {
    return this.report;
  }

  // ---- plumbing ------------------------------------------------------------------------

  smCount(): number {
    return this.sim ? readSmLog(this.sim.smLog).length : 0;
  }

  smSince(n: number): string[] {
    return this.sim ? readSmLog(this.sim.smLog).slice(n).map((e) => e.cmd) : [];
  }

  /** xapi calls, then the SM commands they made and the storage objects they added/removed. */
  async traced<T>(fn: () => Promise<T>): Promise<{ value: T; ms: number; sm: string[]; added: Entry[]; removed: Entry[]; before: Entry[]; after: Entry[] }> {
    this.checkAbort();
    const before = await this.storage!.list();
    const n = this.smCount();
    const t0 = Date.now();
    const value = await timed('xapi ops', fn);
    const ms = Date.now() - t0;
    const after = await this.storage!.list();
    const names = (l: Entry[]) => new Set(l.map((e) => e.name));
    const b = names(before);
    const a = names(after);
    return { value, ms, sm: this.smSince(n), added: after.filter((e) => !b.has(e.name)), removed: before.filter((e) => !a.has(e.name)), before, after };
  }

  smLine(cmds: string[]): void {
    const runs: string[] = [];
    for (let i = 0; i < cmds.length; ) {
      let j = i;
      while (j < cmds.length && cmds[j] === cmds[i]) j++;
      runs.push(j - i > 1 ? `${cmds[i]} x${j - i}` : cmds[i]!);
      i = j;
    }
    this.r.line(`SM calls xapi made: ${runs.length ? runs.join(', ') : '(none)'}`);
  }

  what(e: Entry): string {
    if (e.role === 'root') return 'the SR root';
    if (e.role === 'marker') return 'the SR marker';
    const v = e.id === undefined ? undefined : this.model.vdis.get(e.id);
    const label = v ? `${v.label}${v.deleted ? ' [deleted]' : ''}` : e.id ? `object ${e.id.slice(0, 8)}` : '';
    switch (e.role) {
      case 'view':
        return `read view of ${label} (zfs-fuse has no .zfs/snapshot)`;
      case 'sidecar':
        return `record of ${label}`;
      case 'internal':
        return `internal snapshot ${label}`;
      case 'hidden':
        return `hidden object ${label}`;
      default:
        return label;
    }
  }

  storageLines(entries: Entry[], prefix = ''): string[] {
    const zfs = this.storage!.kind === 'zfs';
    const shown = entries.filter((e) => e.role !== 'sidecar' && e.role !== 'marker' && e.role !== 'view');
    const rows: string[][] = [zfs ? ['NAME', 'USED', 'REFER', 'ORIGIN', 'WHAT'] : ['NAME', 'ALLOCATED', 'SIZE', 'WHAT']];
    for (const e of shown) {
      const name = `${prefix}${e.name === '' ? '.' : shortUuids(e.name)}`;
      rows.push(zfs ? [name, fmtBytes(e.used), fmtBytes(e.size), e.origin ? shortUuids(e.origin) : '-', this.what(e)] : [name, fmtBytes(e.used), fmtBytes(e.size), this.what(e)]);
    }
    const out = table(rows, new Set([1, 2]));
    const views = entries.filter((e) => e.role === 'view');
    if (views.length) out.push(`(+ ${views.length} read view${views.length === 1 ? '' : 's'} <snapshot>.view, ${fmtBytes(views.reduce((s, e) => s + e.used, 0))} used: zfs-fuse has no .zfs/snapshot, so dom0 reads a snapshot through a read-only clone of it)`);
    const records = entries.filter((e) => e.role === 'sidecar').length;
    if (!zfs) out.push(`(+ ${records} .json record${records === 1 ? '' : 's'} and the SR marker .flatsnap-sr.json)`);
    return out;
  }

  async showStorage(title: string): Promise<void> {
    const entries = await this.storage!.list();
    this.r.line(`storage, ${title}: ${this.storage!.listCommand}  (uuids cut to 8 characters)`);
    this.r.lines(entries.length ? this.storageLines(entries) : ['(nothing)'], '  ');
  }

  diffLines(added: Entry[], removed: Entry[]): void {
    const visible = (e: Entry) => e.role !== 'sidecar' && e.role !== 'view';
    for (const e of added.filter(visible)) this.r.line(`storage: + ${shortUuids(e.name)}  ${this.what(e)}  (${this.storage!.kind === 'zfs' ? `used ${fmtBytes(e.used)}, refer ${fmtBytes(e.size)}` : `${fmtBytes(e.used)} allocated`})`);
    for (const e of removed.filter(visible)) this.r.line(`storage: - ${shortUuids(e.name)}  ${this.what(e)}`);
    if (!added.some(visible) && !removed.some(visible)) this.r.line('storage: no object added or removed');
  }

  /** For VDIs just deleted: storage keeps those others still need, hidden from xapi. */
  async tombstoneLines(deleted: ModelVdi[]): Promise<void> {
    const entries = await this.storage!.list();
    for (const v of deleted) {
      if (!this.model.kept(v)) continue;
      const e = entries.find((x) => x.id === v.uuid && x.role !== 'view' && x.role !== 'sidecar');
      const needs = this.model.children(v.uuid).filter((c) => this.model.kept(c)).map((c) => c.label);
      this.r.line(`storage: = ${e ? shortUuids(e.name) : v.uuid.slice(0, 8)}  ${v.label} stays as a tombstone, gone for xapi: ${needs.join(', ')} ${needs.length === 1 ? 'depends' : 'depend'} on it`);
    }
  }

  async vdiRef(ref: string): Promise<VdiRef & { rec: Rec }> {
    const rec = await this.api.call<Rec>('VDI.get_record', ref);
    return { ref, uuid: rec.uuid, location: rec.location, rec };
  }

  async diskOf(vm: string): Promise<string> {
    const vbds = await this.api.call<string[]>('VM.get_VBDs', vm);
    for (const vbd of vbds) {
      const r = await this.api.call<Rec>('VBD.get_record', vbd);
      if (r.type === 'Disk' && !r.empty) return r.VDI;
    }
    throw new Error(`VM ${vm} has no disk`);
  }

  async addVdi(ref: string, label: string, kind: ModelVdi['kind'], t0: number, t1: number, state: DiskState, parent?: string): Promise<ModelVdi> {
    const v = await this.vdiRef(ref);
    return this.model.add({ uuid: v.uuid, ref, location: v.location, label, kind, t0, t1, state, deleted: false, ...(parent ? { parent } : {}) });
  }

  // ---- data ----------------------------------------------------------------------------

  async write(v: ModelVdi, to: DiskState, why: string): Promise<void> {
    this.checkAbort();
    for (const t of [to.hdr, to.base, ...to.slots]) if (t) this.tags.add(t);
    const t0 = Date.now();
    const w = await this.dom0.write(v, v.state, to);
    v.state = to;
    this.r.line(`dom0 wrote ${fmtBytes(w.bytes)} to ${v.label} (${why}) in ${fmtSecs(Date.now() - t0)}: now ${describeState(to)}`);
  }

  async verify(v: ModelVdi): Promise<boolean> {
    this.checkAbort();
    const want = expectedSha(v.state);
    const got = await timed('verify', () => this.dom0.read(v, v.kind === 'disk', v.state, [...this.tags]));
    const ok = got.sha256 === want && got.wrong.length === 0;
    const text = `${v.label.padEnd(18)} ${describeState(v.state).padEnd(38)} ${got.sha256.slice(0, 16)}`;
    return this.r.checksum(ok, text, ok ? [] : [`expected ${want}`, `found    ${got.sha256}`, ...got.wrong]);
  }

  async verifyAll(why: string): Promise<void> {
    const live = this.model.live().sort((a, b) => (a.kind === b.kind ? a.t0 - b.t0 : a.kind === 'disk' ? -1 : 1));
    this.r.line(`verify every VDI xapi still has (${live.length}; ${why}): sha256 over its ${fmtBytes(KNOWN_BYTES)} of known regions`);
    for (const v of live) await this.verify(v);
  }

  /** Storage keeps exactly the objects the model says (live VDIs and needed tombstones). */
  async checkObjects(): Promise<void> {
    const entries = await this.storage!.list();
    const ids = new Set(entries.filter((e) => ['volume', 'snapshot', 'image', 'hidden', 'internal'].includes(e.role)).map((e) => e.id));
    const want = [...this.model.vdis.values()].filter((v) => this.model.kept(v));
    const missing = want.filter((v) => !ids.has(v.uuid)).map((v) => v.label);
    const gone = [...this.model.vdis.values()].filter((v) => !this.model.kept(v) && ids.has(v.uuid)).map((v) => v.label);
    const tomb = this.model.tombstones().map((v) => v.label);
    this.r.check(
      missing.length === 0 && gone.length === 0,
      `storage holds the ${want.length - tomb.length} VDIs xapi has${tomb.length ? ` and ${tomb.length} tombstone${tomb.length === 1 ? '' : 's'} (${tomb.join(', ')})` : ''}; every deleted object nothing needs is gone`,
      [...(missing.length ? [`missing: ${missing.join(', ')}`] : []), ...(gone.length ? [`should be gone: ${gone.join(', ')}`] : [])],
    );
  }

  /**
   * A snapshot-type operation: what it added to storage, the bytes those new objects do not
   * share with anything (what a copy would have written), and the SR's space growth.
   * `register` puts what it made into the model before the storage changes are described.
   */
  async snapshotOp<T>(what: string, source: ModelVdi, fn: () => Promise<T>, register: (value: T, t0: number, t1: number) => Promise<void>): Promise<{ value: T; ms: number; sm: string[] }> {
    const st = this.storage!;
    const u0 = await st.usage();
    const t0 = Date.now();
    const t = await this.traced(fn);
    const t1 = Date.now();
    const u1 = await st.usage();
    await register(t.value, t0, t1);
    const fresh = t.added.filter((e) => ['volume', 'snapshot', 'image', 'hidden', 'internal'].includes(e.role));
    let unique = 0;
    for (const e of fresh) unique += await st.uniqueBytes(e);
    const records = t.added.filter((e) => e.role === 'sidecar').reduce((sum, e) => sum + e.used, 0);
    const srcEntry = t.before.find((e) => e.id === source.uuid && (e.role === 'volume' || e.role === 'image' || e.role === 'snapshot'));
    const sourceData = srcEntry ? (st.kind === 'zfs' ? srcEntry.size : srcEntry.used) : 0;
    this.copies.push({ what, objects: fresh.length, unique, growth: u1 - u0, records, sourceData });
    this.smLine(t.sm);
    this.diffLines(t.added, t.removed);
    const growth = `${u1 - u0 >= 0 ? '+' : ''}${fmtBytes(u1 - u0)}${records ? `, of it ${fmtBytes(records)} the new .json record${fresh.length === 1 ? '' : 's'}` : ''}`;
    this.r.check(unique === 0, `bytes copied: ${fmtBytes(unique)} (unshared bytes of the new object${fresh.length === 1 ? '' : 's'}; ${source.label} holds ${fmtBytes(sourceData)}); SR space ${growth}; xapi call ${fmtSecs(t.ms)}`);
    return { value: t.value, ms: t.ms, sm: t.sm };
  }

  async flatsnap(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    const r = await timed(`flatsnap ${args[0]}`, () => execa(this.cli, args, { reject: false, stdin: 'ignore', timeout: 120_000, env: { FLATSNAP_XAPI_PASSWORD: 'demo' } }));
    return { code: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr };
  }

  /** Chain depth of a live disk as the datapath sees it: images behind the one attach gives. */
  async chainDepth(v: ModelVdi): Promise<void> {
    const rec = await this.api.call<Rec>('VDI.get_record', v.ref);
    const s = await this.dom0.sniff(v, v.kind === 'disk');
    const magic = (b: Buffer, m: string) => b.subarray(0, m.length).toString('latin1') === m;
    const vhd = magic(s.head, 'conectix') || magic(s.tail, 'conectix') || magic(s.head, 'vhdxfile');
    const qcow = magic(s.head, 'QFI\xfb');
    const parentKeys = Object.keys(rec.sm_config ?? {}).filter((k) => /parent/i.test(k));
    const depth = vhd || qcow || parentKeys.length ? 1 : 0;
    const entry = (await this.storage!.list()).find((e) => e.id === v.uuid && (e.role === 'volume' || e.role === 'image'));
    const origin = entry?.origin ? `; ZFS origin ${shortUuids(entry.origin)}: blocks shared inside ZFS, read straight from the one dataset` : '';
    const ok = depth === 0;
    this.chains.push({ label: v.label, ok });
    this.r.check(
      ok,
      `chain depth of ${v.label}: ${depth}${ok ? ' (no chain)' : ''}: vdi_attach gives one raw image, ${shortUuids(s.path)} (${fmtBytes(s.size)}), no VHD/qcow2 header or footer, no parent key in sm-config${origin}; its checksum above was read from that image alone`,
      [vhd ? 'a VHD header/footer' : qcow ? 'a qcow2 header' : `sm-config keys ${parentKeys.join(', ')}`],
    );
  }

  // ---- the lifecycle -------------------------------------------------------------------

  async run(): Promise<void> {
    const r = this.r;
    const o = this.opts;
    r.out(`flatsnap demo: the XenCenter snapshot lifecycle of a VM, on the XAPI simulator and real ${o.backend === 'zfs' ? 'ZFS' : 'reflink (XFS)'} storage`);
    r.out(`  disks: ${fmtBytes(DISK_SIZE)} thin; known data per disk: a 64 KiB header, a 4 MiB base and ${SLOTS} slots of 256 KiB (one per change), checked by sha256`);
    r.out("  dom0 reads and writes a VDI through the plugin's vdi_attach (direct datapath: no blktap here) and keeps it attached, like a running VM's VBD, until it is deleted (vdi_detach)");
    r.out(`  started ${new Date(r.started).toISOString()} on ${os.hostname()}, node ${process.version}`);

    await r.step('Prepare the storage', 'the storage an administrator hands to XCP-ng (a ZFS dataset, or an XFS/OCFS2 reflink directory)', async () => {
      this.storage = await setupStorage({ backend: o.backend, ...(o.dataset ? { dataset: o.dataset } : {}), ...(o.srPath ? { srPath: o.srPath } : {}) });
      r.lines(this.storage.description);
    });

    await r.step('Install the plugin and start xapi (the simulator)', 'plugin/install.sh in dom0, then xe-toolstack-restart: xapi registers the SR type', async () => {
      this.simDir = await mkdtemp(path.join(os.tmpdir(), 'flatsnap-demo-'));
      const dom0Root = path.join(this.simDir, 'dom0');
      const inst = await execa(path.join(ROOT, 'plugin/install.sh'), ['--root', dom0Root, '--node', process.execPath], { reject: false, stdin: 'ignore' });
      if (inst.exitCode !== 0) throw new Error(`plugin/install.sh failed: ${inst.stderr || inst.stdout}`);
      this.smDir = path.join(dom0Root, 'opt/xensource/sm');
      r.line(`$ plugin/install.sh --root ${dom0Root}: ${inst.stdout.trim()}`);
      const conf = await readFile(path.join(dom0Root, 'etc/xapi.conf.d/flatsnap.conf'), 'utf8').catch(() => '');
      const plugins = /^\s*sm-plugins\s*=\s*(.*)$/m.exec(conf)?.[1]?.trim() || 'flatsnap';
      this.sim = await startSim({ smDir: this.smDir, dir: this.simDir, extraArgs: ['--sm-plugins', plugins], detached: true });
      r.line(`xapi simulator: ${this.sim.url} (sm-dir ${this.smDir}, sm-plugins=${plugins})`);
      // the operator command as install.sh put it in dom0
      this.cli = path.join(this.smDir, 'flatsnap');
      // XenCenter's side: Xen Orchestra's xen-api client, JSON-RPC, tasks followed by events.
      this.xapi = createClient({ url: this.sim.url, auth: { user: 'root', password: 'demo' }, allowUnauthorized: true, transport: 'json-rpc', eventPollDelay: 50, debounce: 20 });
      await this.xapi.connect();
      await this.xapi.objectsFetched;
      this.api = this.xapi;
      this.host = (await this.api.call<string[]>('host.get_all'))[0]!;
      // xapi's periodic scan of dirty SRs must not run in the middle of the measurements.
      await this.api.call('host.add_to_other_config', this.host, 'auto-scan-interval', '3600');
      r.line('client: xen-api (Xen Orchestra), JSON-RPC, Async.* calls followed through task events; periodic SR scan set to 1 h');
      const sm = Object.values(await this.api.call<Record<string, Rec>>('SM.get_all_records')).find((x) => x.type === 'flatsnap');
      const feats = Object.keys((sm?.features as Rec) ?? {});
      r.check(sm !== undefined && ['VDI_SNAPSHOT', 'VDI_CLONE', 'VDI_DELETE'].every((f) => feats.includes(f)), `SM type "flatsnap" registered: ${feats.join(' ')}`);
    });

    await r.step('Create the SR', 'XenCenter New Storage wizard: Async.SR.create(host, device-config, type=flatsnap), which plugs its PBD', async () => {
      const t = await this.traced(() => this.api.callAsync<string>('SR.create', this.host, this.storage!.dc, '0', 'flatsnap demo', 'made by make demo', 'flatsnap', 'user', false, {}));
      this.sr = t.value;
      this.srUuid = await this.api.call<string>('SR.get_uuid', this.sr);
      const pbd = (await this.api.call<string[]>('SR.get_PBDs', this.sr))[0]!;
      this.dom0 = new Dom0(path.join(this.smDir!, 'FlatSnapSR'), { host: this.host, sr: this.sr, srUuid: this.srUuid, dc: this.storage!.dc } satisfies SrTarget);
      r.line(`SR ${this.srUuid}: Async.SR.create took ${fmtSecs(t.ms)}`);
      this.smLine(t.sm);
      await this.showStorage('after sr-create');
      const rec = await this.api.call<Rec>('SR.get_record', this.sr);
      r.check((await this.api.call<boolean>('PBD.get_currently_attached', pbd)) && (await this.storage!.rootExists()), `SR type ${rec.type}, PBD attached, physical size ${fmtBytes(Number(rec.physical_size))}, SR root exists on storage`);
    });

    let vm = '';
    let disk!: ModelVdi;
    await r.step(`Create a VM with one ${fmtBytes(DISK_SIZE)} disk`, 'XenCenter New VM wizard: Async.VDI.create, VM.create, VBD.create (the simulator has no templates to clone)', async () => {
      const t0 = Date.now();
      const t = await this.traced(() =>
        this.api.callAsync<string>('VDI.create', {
          name_label: 'demo-vm disk',
          name_description: 'disk 0 of demo-vm',
          SR: this.sr,
          virtual_size: String(DISK_SIZE),
          type: 'user',
          sharable: false,
          read_only: false,
          other_config: {},
          xenstore_data: {},
          sm_config: {},
          tags: [],
        }),
      );
      const mem = String(256 * 1024 * 1024);
      vm = await this.api.call<string>('VM.create', { name_label: 'demo-vm', name_description: 'the demo VM', memory_static_max: mem, memory_dynamic_max: mem, memory_dynamic_min: mem, memory_static_min: mem });
      await this.api.call('VBD.create', { VM: vm, VDI: t.value, userdevice: '0', bootable: true, mode: 'RW', type: 'Disk', empty: false, other_config: {} });
      disk = await this.addVdi(t.value, 'demo-vm disk', 'disk', t0, Date.now(), emptyState());
      this.smLine(t.sm);
      this.diffLines(t.added, t.removed);
      const rec = await this.api.call<Rec>('VDI.get_record', t.value);
      r.check(Number(rec.virtual_size) >= DISK_SIZE && Number(rec.physical_utilisation) < 1024 * 1024, `VDI ${rec.uuid}: virtual size ${fmtBytes(Number(rec.virtual_size))}, ${fmtBytes(Number(rec.physical_utilisation))} allocated (thin)`);
      await this.verify(disk);
    });

    await r.step('Write known data to the disk', "the guest installs its system (here dom0 writes through the attach path, then fsync)", async () => {
      await this.write(disk, initialState(), 'header and base');
      await this.verify(disk);
    });

    const snaps: ModelVdi[] = [];
    const snapVms: string[] = [];
    await r.step('Take 8 snapshots, changing the disk before each', 'XenCenter Snapshots tab > Take Snapshot: Async.VM.snapshot(vm, name), 8 times', async () => {
      for (let k = 1; k <= 8; k++) {
        await this.write(disk, change(disk.state, k - 1, `v${k}`), `change ${k}`);
        const name = `snap-${k}`;
        r.line(`-- ${name}: Async.VM.snapshot(demo-vm, "${name}")`);
        await this.snapshotOp(`VM.snapshot ${name}`, disk, () => this.api.callAsync<string>('VM.snapshot', vm, name), async (ref, t0, t1) => {
          snapVms.push(ref);
          snaps.push(await this.addVdi(await this.diskOf(ref), name, 'snapshot', t0, t1, disk.state, disk.uuid));
        });
        await this.verify(snaps[k - 1]!);
      }
      await this.write(disk, change(disk.state, 0, 'v9'), 'change 9, after the last snapshot: the revert will drop it');
      await this.showStorage('after 8 snapshots');
      await this.verifyAll('after 8 snapshots');
      const depth = await this.api.call<Rec>('VM.get_record', vm);
      r.check((depth.snapshots as string[]).length === 8, `xapi: demo-vm has ${(depth.snapshots as string[]).length} snapshots`);
    });

    await r.step('Seek by time: which snapshot holds the disk as it was at T?', 'an operator question XenCenter has no view for: flatsnap seek --vdi (binary search in the timestamp index)', async () => {
      await this.seekQueries(disk, 'vdi', [
        { label: 'before snap-1', t: (disk.t1 + snaps[0]!.t0) / 2 },
        { label: 'between snap-2 and snap-3', t: (snaps[1]!.t1 + snaps[2]!.t0) / 2 },
        { label: 'between snap-7 and snap-8', t: (snaps[6]!.t1 + snaps[7]!.t0) / 2 },
        { label: 'now', t: Date.now() },
      ]);
    });

    await r.step('Revert to snap-3 (the 5 newer snapshots must survive)', 'XenCenter Snapshots tab > Revert To: Async.VM.revert(snap-3), classic flow: vdi_delete of the disk, vdi_clone of the snapshot', async () => {
      const snap3 = snaps[2]!;
      const old = disk;
      await this.dom0.release(old); // VM.revert shuts the VM down: its disk is unplugged first
      const op = await this.snapshotOp('VM.revert to snap-3', snap3, () => this.api.callAsync('VM.revert', snapVms[2]!), async (_v, t0, t1) => {
        old.deleted = true;
        old.label = 'demo-vm disk (before revert)';
        disk = await this.addVdi(await this.diskOf(vm), 'demo-vm disk (after revert)', 'disk', t0, t1, snap3.state, snap3.uuid);
      });
      await this.tombstoneLines([old]);
      const clean = op.sm.filter((c) => c !== 'sr_scan' && c !== 'sr_update');
      r.check(clean.indexOf('vdi_delete') >= 0 && clean.indexOf('vdi_delete') < clean.indexOf('vdi_clone'), `classic revert: ${clean.join(', ')}`);
      r.check(disk.ref !== old.ref, `demo-vm now has disk ${disk.uuid}, a clone of snap-3; the old disk ${old.uuid} is gone from xapi`);
      const left = (await this.api.call<string[]>('VM.get_snapshots', vm)).length;
      r.check(left === 8, `xapi: demo-vm still has ${left} snapshots (snap-4 .. snap-8 newer than snap-3, all kept)`);
      await this.showStorage('after the revert');
      await this.checkObjects();
      await this.verifyAll('change 9 and snap-4..8 content must be absent from the disk, present in their snapshots');
      await this.chainDepth(disk);
    });

    await r.step('Keep working after the revert, take another snapshot', 'the guest writes; XenCenter Take Snapshot: Async.VM.snapshot(vm, "after-revert")', async () => {
      await this.write(disk, change(disk.state, 3, 'r1'), 'a change after the revert');
      await this.snapshotOp('VM.snapshot after-revert', disk, () => this.api.callAsync<string>('VM.snapshot', vm, 'after-revert'), async (ref, t0, t1) => {
        await this.addVdi(await this.diskOf(ref), 'after-revert', 'snapshot', t0, t1, disk.state, disk.uuid);
      });
      await this.verify(this.model.byLabel('after-revert'));
      await this.verify(disk);
    });

    let cloneVm = '';
    let cloneDisk!: ModelVdi;
    await r.step('New VM from snap-5', 'XenCenter right-click snap-5 > New VM from Snapshot: Async.VM.clone(snap-5, name), then VM.set_is_a_template false', async () => {
      const snap5 = snaps[4]!;
      await this.snapshotOp('VM.clone of snap-5', snap5, () => this.api.callAsync<string>('VM.clone', snapVms[4]!, 'from-snap-5'), async (ref, t0, t1) => {
        cloneVm = ref;
        cloneDisk = await this.addVdi(await this.diskOf(ref), 'from-snap-5 disk', 'disk', t0, t1, snap5.state, snap5.uuid);
      });
      await this.api.call('VM.set_is_a_template', cloneVm, false);
      const rec = await this.api.call<Rec>('VM.get_record', cloneVm);
      r.check(rec.is_a_snapshot === false && rec.is_a_template === false, `VM from-snap-5 (${rec.uuid}) is a normal VM with disk ${cloneDisk.uuid}`);
      await this.verify(cloneDisk);
      await this.write(cloneDisk, change(cloneDisk.state, 7, 'c1'), 'the new VM writes');
      r.line('-- Async.VM.snapshot(from-snap-5, "clone-snap-1")');
      await this.snapshotOp('VM.snapshot clone-snap-1', cloneDisk, () => this.api.callAsync<string>('VM.snapshot', cloneVm, 'clone-snap-1'), async (ref, t0, t1) => {
        await this.addVdi(await this.diskOf(ref), 'clone-snap-1', 'snapshot', t0, t1, cloneDisk.state, cloneDisk.uuid);
      });
      await this.verifyAll('the clone wrote; snap-5 must not have changed');
      await this.chainDepth(cloneDisk);
    });

    await r.step('Delete the snapshots that have clones: snap-3 and snap-5', 'XenCenter Snapshots tab > Delete: Async.VM.destroy(snapshot), then Async.VDI.destroy of its disk', async () => {
      for (const k of [3, 5]) {
        const s = snaps[k - 1]!;
        const clone = this.model.children(s.uuid).filter((c) => c.kind === 'disk').map((c) => c.label);
        r.line(`-- snap-${k} (cloned into: ${clone.join(', ')})`);
        await this.dom0.release(s);
        const t = await this.traced(async () => {
          await this.api.callAsync('VM.destroy', snapVms[k - 1]!);
          await this.api.callAsync('VDI.destroy', s.ref);
        });
        s.deleted = true;
        this.smLine(t.sm);
        this.diffLines(t.added, t.removed);
        await this.tombstoneLines([s]);
        r.line(`xapi calls ${fmtSecs(t.ms)}`);
      }
      const gone = await Promise.all([2, 4].map((i) => this.api.call('VDI.get_record', snaps[i]!.ref).then(() => false, () => true)));
      r.check(gone.every(Boolean), 'xapi no longer has snap-3 and snap-5');
      await this.showStorage('after deleting snap-3 and snap-5');
      await this.checkObjects();
      await this.verifyAll('the clones of deleted snapshots keep their data');
    });

    await r.step('Delete demo-vm, keeping its snapshots', 'XenCenter Delete VM with its snapshots left unticked: Async.VM.destroy(vm), then Async.VDI.destroy of its disk', async () => {
      await this.dom0.release(disk);
      const t = await this.traced(async () => {
        await this.api.callAsync('VM.destroy', vm);
        await this.api.callAsync('VDI.destroy', disk.ref);
      });
      disk.deleted = true;
      this.smLine(t.sm);
      this.diffLines(t.added, t.removed);
      await this.tombstoneLines([disk]);
      const orphans = Object.values(await this.api.call<Record<string, Rec>>('VM.get_all_records')).filter((x) => x.is_a_snapshot && x.name_label !== 'clone-snap-1');
      r.check(orphans.length === 7, `xapi: demo-vm is gone, its ${orphans.length} snapshots remain (${orphans.map((x) => x.name_label).join(', ')})`);
      await this.showStorage('after deleting demo-vm');
      await this.checkObjects();
      await this.verifyAll('the deleted VM\'s snapshots and the other VM are intact');
    });

    await r.step('Seek by time through the lineage of from-snap-5', 'flatsnap seek --vm (asks xapi for the VM\'s disks): the state at T, following a clone back to what it was cloned from', async () => {
      r.line(
        this.storage!.dependent
          ? 'ZFS keeps deleted objects that others need (tombstones): from-snap-5 reaches back through snap-5 and demo-vm\'s first disk, both deleted; deleted snapshots are never answers'
          : 'reflink copies are independent and deleted ones are gone at once: the lineage of from-snap-5 ends where snap-5 (deleted) was',
      );
      const cs1 = this.model.byLabel('clone-snap-1');
      await this.seekQueries(cloneDisk, 'vm', [
        { label: 'before snap-1', t: (this.model.byLabel('demo-vm disk (before revert)').t1 + snaps[0]!.t0) / 2 },
        { label: 'between snap-2 and snap-3', t: (snaps[1]!.t1 + snaps[2]!.t0) / 2 },
        { label: 'between the clone and clone-snap-1', t: (cloneDisk.t1 + cs1.t0) / 2 },
        { label: 'now', t: Date.now() },
      ], cloneVm);
    });

    await r.step('Show the tree', 'the operator\'s view of the SR: flatsnap tree, and flatsnap check against xapi', async () => {
      const tree = await this.flatsnap(['tree', ...this.storage!.target]);
      r.line(`$ flatsnap tree ${this.storage!.target.join(' ')}`);
      r.lines(tree.stdout.split('\n'), '  ');
      const names = [...this.model.vdis.values()].map((v) => `${v.uuid.slice(0, 8)} ${v.label}${v.deleted ? ' [deleted]' : ''}`);
      r.line('(xapi names a snapshot VDI after its disk; the demo\'s names for them:)');
      for (let i = 0; i < names.length; i += 4) r.line(`  ${names.slice(i, i + 4).join(' | ')}`);
      r.check(tree.code === 0, `flatsnap tree exit ${tree.code}`, [tree.stderr]);
      const j = await this.flatsnap(['tree', ...this.storage!.target, '--json']);
      const sum = (JSON.parse(j.stdout) as { summary: Rec }).summary;
      const xapiVdis = Object.keys(await this.api.call<Record<string, Rec>>('VDI.get_all_records_where', `field "SR" = "${this.sr}"`)).length;
      const tombs = this.model.tombstones().length;
      r.check(sum.visible_vdis === xapiVdis && sum.visible_vdis === this.model.live().length && sum.tombstones === tombs, `tree: ${sum.visible_vdis} VDIs visible (xapi has ${xapiVdis}), ${sum.tombstones} tombstones (expected ${tombs})`);
      // FIEMAP extent counts only mean something for reflink images
      const health = this.storage!.kind === 'zfs' ? ['--no-health'] : [];
      const chk = await this.flatsnap(['check', ...this.storage!.target, '--xapi', this.sim!.url, ...health]);
      r.line(`$ flatsnap check ${[...this.storage!.target, '--xapi', this.sim!.url, ...health].join(' ')}`);
      r.lines(chk.stdout.split('\n').filter(Boolean), '  ');
      r.check(chk.code === 0, `flatsnap check: exit ${chk.code} (storage follows the lineage rules and agrees with xapi)`, [chk.stderr]);
    });

    await r.step('Clean up', 'XenCenter: delete the VM with its disks and snapshots, the remaining snapshots, then Detach + Destroy the SR; then the storage itself', async () => {
      await this.xapiCleanup(this.api, true);
      await this.teardown(true);
    });
  }

  async seekQueries(target: ModelVdi, by: 'vdi' | 'vm', queries: Array<{ label: string; t: number }>, vmRef?: string): Promise<void> {
    const r = this.r;
    const vmUuid = vmRef ? await this.api.call<string>('VM.get_uuid', vmRef) : '';
    const sel = by === 'vdi' ? ['--vdi', target.uuid] : ['--vm', vmUuid, '--xapi', this.sim!.url];
    r.line(`$ flatsnap seek ${this.storage!.target.join(' ')} ${sel.join(' ')} --at TIME --json   (${target.label})`);
    for (const q of queries) {
      const t = Math.round(q.t);
      const res = await this.flatsnap(['seek', ...this.storage!.target, ...sel, '--at', iso(t), '--json']);
      let got: Rec | null = null;
      let err = '';
      try {
        const j = JSON.parse(res.stdout) as Rec;
        got = by === 'vdi' ? j.snapshot : (j.disks as Rec[]).find((d) => d.vdi === target.uuid)?.snapshot ?? null;
      } catch {
        err = `exit ${res.code}: ${res.stderr.trim()}`;
      }
      const want = this.model.seek(target.uuid, t);
      const gotV = got ? this.model.vdis.get(got.vdi ?? got.id) : undefined;
      const gotText = got ? `${gotV?.label ?? got.id} (taken ${String(got.created_iso).slice(11)})` : 'none';
      const ok = res.code === 0 && err === '' && (want === undefined ? got === null : gotV?.uuid === want.uuid);
      r.check(ok, `at ${hhmmss(t)} (${q.label}) -> ${gotText}; expected ${want?.label ?? 'none'}`, err ? [err] : []);
      if (ok && want) await this.verify(want);
    }
  }

  /** Every VM but dom0 with its disks and snapshots, every VDI of the SR, then the SR. */
  async xapiCleanup(api: Api, verbose: boolean): Promise<void> {
    const r = this.r;
    const say = (s: string) => verbose && r.line(s);
    if (!this.sr || this.srDestroyed) return;
    await this.dom0?.releaseAll().catch(() => undefined);
    const n = this.smCount();
    const t0 = Date.now();
    const disksOf = async (vm: string): Promise<string[]> => {
      const out: string[] = [];
      for (const vbd of await api.call<string[]>('VM.get_VBDs', vm)) {
        const b = await api.call<Rec>('VBD.get_record', vbd);
        if (b.type === 'Disk' && !b.empty && b.VDI !== 'OpaqueRef:NULL') out.push(b.VDI);
      }
      return out;
    };
    const destroyVm = async (vm: string, rec: Rec) => {
      const disks = await disksOf(vm);
      await api.callAsync('VM.destroy', vm);
      for (const d of disks) await api.callAsync('VDI.destroy', d).catch(() => undefined);
      for (const v of this.model.vdis.values()) if (disks.includes(v.ref)) v.deleted = true;
      say(`${rec.is_a_snapshot ? 'snapshot' : 'VM'} ${rec.name_label}: VM.destroy, VDI.destroy of ${disks.length} disk${disks.length === 1 ? '' : 's'}`);
    };
    const vms = Object.entries(await api.call<Record<string, Rec>>('VM.get_all_records')).filter(([, x]) => !x.is_control_domain);
    for (const [ref, x] of vms.filter(([, x]) => !x.is_a_snapshot)) {
      for (const s of (x.snapshots as string[]) ?? []) await destroyVm(s, await api.call<Rec>('VM.get_record', s));
      await destroyVm(ref, x);
    }
    for (const [ref, x] of vms.filter(([, x]) => x.is_a_snapshot)) if (await api.call('VM.get_record', ref).then(() => true, () => false)) await destroyVm(ref, x);
    const rest = async () => Object.keys(await api.call<Record<string, Rec>>('VDI.get_all_records_where', `field "SR" = "${this.sr}"`));
    for (let round = 0; round < 3; round++) {
      const left = await rest();
      if (left.length === 0) break;
      say(`${left.length} VDI(s) left on the SR: VDI.destroy`);
      for (const v of left) await api.callAsync('VDI.destroy', v).catch(() => undefined);
      await api.callAsync('SR.scan', this.sr).catch(() => undefined);
    }
    const vdisLeft = (await rest()).length;
    const objects = (await this.storage!.list()).filter((e) => e.role !== 'root' && e.role !== 'marker');
    if (verbose) {
      r.check(vdisLeft === 0, `xapi: no VDI left on the SR`);
      r.check(objects.length === 0, `storage: the SR holds no object any more (no tombstone left behind)`, objects.map((e) => e.name));
    }
    await this.storage!.beforeSrDestroy();
    for (const pbd of await api.call<string[]>('SR.get_PBDs', this.sr)) await api.callAsync('PBD.unplug', pbd);
    await api.callAsync('SR.destroy', this.sr);
    this.srDestroyed = true;
    const rootLeft = await this.storage!.rootExists();
    if (verbose) {
      this.smLine(this.smSince(n));
      r.line(`xapi calls ${fmtSecs(Date.now() - t0)}`);
      r.check(!rootLeft, `PBD.unplug + SR.destroy: the SR root is gone from storage (${this.storage!.dc.dataset ?? this.storage!.dc.path})`);
    } else if (rootLeft) {
      r.out(`  cleanup: the SR root ${this.storage!.dc.dataset ?? this.storage!.dc.path} is still there`);
    }
  }

  /** Stops xapi and removes the storage setup made; idempotent. */
  async teardown(verbose: boolean): Promise<void> {
    if (this.torn) return;
    this.torn = true;
    const r = this.r;
    if (this.xapi) {
      await this.xapi.disconnect().catch(() => undefined);
      this.xapi = undefined;
    }
    if (this.sim) {
      await this.sim.stop();
      const stopped = this.sim.child.exitCode !== null || this.sim.child.signalCode !== null;
      if (verbose) r.check(stopped, `xapi simulator stopped (pid ${this.sim.child.pid})`);
      this.sim = undefined;
    }
    if (this.simDir) {
      removeDir(this.simDir);
      if (verbose) r.line(`removed ${this.simDir} (xapi state, installed plugin)`);
      this.simDir = undefined;
    }
    if (this.storage) {
      try {
        const done = await this.storage.teardown();
        if (verbose) r.check(true, `storage removed: ${done.join('; ')}`);
        else r.out(`  cleanup: ${done.join('; ')}`);
      } catch (e) {
        if (verbose) r.check(false, 'storage removed', [String(e)]);
        else r.out(`  cleanup: storage teardown failed: ${String(e)}`);
      }
    }
    // The raw-file layout's default SR mountpoint (zfs-fuse): empty once the datasets are gone.
    if (this.srUuid && existsSync(`/var/run/sr-mount/${this.srUuid}`)) {
      const gone = await rmdirIfEmpty(`/var/run/sr-mount/${this.srUuid}`);
      if (verbose) r.check(gone, `removed the empty SR mountpoint /var/run/sr-mount/${this.srUuid}`);
    }
  }

  /** After a failure or a signal: whatever the run left, destroyed as far as possible. */
  async emergencyCleanup(): Promise<void> {
    const r = this.r;
    if (this.sr && !this.srDestroyed && this.storage) {
      try {
        let url = this.sim?.url;
        const alive = url !== undefined && (await new Client(url).login().then(() => true, () => false));
        if (!alive && this.simDir && this.smDir) {
          await this.sim?.stop().catch(() => undefined);
          // A terminal's ^C reaches the simulator too: bring it back on the same state.
          r.out('  cleanup: restarting the xapi simulator on its saved state to delete what the demo made');
          await sleep(200);
          this.sim = await startSim({ smDir: this.smDir, dir: this.simDir, extraArgs: ['--sm-plugins', 'flatsnap'], detached: true });
          url = this.sim.url;
        }
        if (url) {
          const c = await new Client(url).login();
          await this.xapiCleanup(c, false);
          r.out('  cleanup: VMs, VDIs and the SR destroyed through xapi');
        }
      } catch (e) {
        r.out(`  cleanup: through xapi failed (${String(e)}); removing the storage directly`);
      }
    }
    await this.teardown(false);
    if (this.storage && (this.opts.dataset || this.opts.srPath) && !this.srDestroyed && (await this.storage.rootExists().catch(() => false))) {
      r.out(`  cleanup: LEFT BEHIND: the SR on ${this.opts.dataset ?? this.opts.srPath}; remove it by hand (it holds only what the demo made)`);
    }
  }

  summary(error?: unknown, signal?: string): number {
    const r = this.r;
    const ok = r.allPassed && error === undefined && signal === undefined;
    r.heading('Summary');
    if (signal) r.out(`  INTERRUPTED by ${signal}; everything made was cleaned up as far as possible (see above)`);
    if (error !== undefined) r.out(`  ERROR: ${error instanceof Error ? error.message : String(error)}`);
    const unfinished = error !== undefined || signal !== undefined;
    const result = ok
      ? `ALL ${r.checks} CHECKS PASSED`
      : r.failed.length > 0
        ? `FAILED: ${r.failed.length} of ${r.checks} checks failed${unfinished ? ', and the run did not finish' : ''}`
        : `FAILED: the run did not finish (${r.checks} checks passed before it stopped)`;
    r.out(`  result: ${result}`);
    for (const f of r.failed) r.out(`    - ${f}`);
    r.out(`  checksums: ${r.sums.ok} OK, ${r.sums.mismatch} MISMATCH`);
    if (this.dom0) r.out(`  dom0 datapath: ${this.dom0.calls} plugin calls (vdi_attach/vdi_detach)`);
    if (this.copies.length) {
      const unique = this.copies.reduce((sum, c) => sum + c.unique, 0);
      const data = this.copies.reduce((sum, c) => sum + c.sourceData, 0);
      r.out(`  total bytes copied by snapshot operations: ${fmtBytes(unique)}${unique === 0 ? '' : ' (NOT ZERO)'}  (${this.copies.length} operations; full copies would have written ${fmtBytes(data)})`);
      for (const kind of ['VM.snapshot', 'VM.revert', 'VM.clone']) {
        const cs = this.copies.filter((c) => c.what.startsWith(kind));
        if (cs.length === 0) continue;
        const sum = (f: (c: CopyStat) => number) => cs.reduce((acc, c) => acc + f(c), 0);
        const g = sum((c) => c.growth);
        const rec = sum((c) => c.records);
        const note = kind === 'VM.revert' && g < 0 ? ' (the deleted disk gave back what no snapshot kept: change 9)' : rec > 0 ? `, of it ${fmtBytes(rec)} .json records` : '';
        r.out(`    ${`${kind} x ${cs.length}:`.padEnd(17)} ${String(sum((c) => c.objects)).padStart(2)} new objects, ${fmtBytes(sum((c) => c.unique))} copied; SR space ${g >= 0 ? '+' : ''}${fmtBytes(g)}${note}`);
      }
      r.out(`    copied = ${this.storage?.uniqueMeasure}`);
      r.out(`    SR space = ${this.storage?.usageMeasure}, before and after each call`);
    }
    if (this.chains.length) {
      const all = this.chains.every((c) => c.ok);
      r.out(`  chain depth of the live disks: ${all ? '0 (no chain)' : 'NOT 0'}: ${this.chains.map((c) => c.label).join(', ')}`);
    }
    r.out('  timings:');
    r.lines(
      table(
        [['STEP', 'SECONDS', 'TITLE'], ...r.steps.map((s) => [String(s.n), (s.ms / 1000).toFixed(2), `${s.title}${s.ok ? '' : '  [FAILED]'}`])],
        new Set([0, 1]),
      ),
      '  ',
    );
    r.out(`  total: ${fmtSecs(Date.now() - r.started)}`);
    return ok ? 0 : 1;
  }
}

async function main(): Promise<number> {
  let opts: Options;
  try {
    opts = parseOptions(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`demo: ${(e as Error).message}\n${USAGE}\n`);
    return 2;
  }
  if (process.getuid?.() !== 0) {
    const what =
      opts.backend === 'zfs'
        ? `${opts.dataset ? `ZFS commands on ${opts.dataset}` : 'a zfs-fuse pool on an image file (and its daemon)'}`
        : `${opts.srPath ? `reflink copies in ${opts.srPath}` : 'an XFS (reflink=1) loop filesystem (losetup, mkfs.xfs, mount)'}`;
    process.stderr.write(
      `demo: needs root: it makes ${what}, and the driver takes its locks in /var/lock/sm${opts.backend === 'zfs' ? ' and mounts datasets' : ''}.\n` +
        `      run it as root, e.g. sudo make demo${opts.backend === 'reflink' ? ' BACKEND=reflink' : ''}\n`,
    );
    return 2;
  }
  for (const f of ['plugin/FlatSnapSR', 'plugin/flatsnap-lib/driver.cjs', 'plugin/flatsnap', 'plugin/flatsnap-lib/cli.cjs', 'plugin/install.sh']) {
    if (!existsSync(path.join(ROOT, f))) {
      process.stderr.write(`demo: ${f} is missing: run make build first (make demo does)\n`);
      return 2;
    }
  }

  const demo = new Demo(opts);
  // A reader that goes away (make demo | head) must not stop the cleanup: drop the output.
  process.stdout.on('error', () => undefined);
  // Last resort: never leave the simulator running (the pool/loop harnesses reap theirs).
  process.once('exit', () => {
    const c = demo.sim?.child;
    if (c && c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  });
  let finishing: Promise<number> | undefined;
  const finish = (error?: unknown, signal?: string): Promise<number> =>
    (finishing ??= (async () => {
      if (error !== undefined || signal !== undefined) {
        demo.report.out('');
        if (error !== undefined) {
          demo.report.out(`*** the demo stopped: ${error instanceof Error ? error.message : String(error)}`);
          if (error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
        }
        if (demo.xapi) await demo.xapi.disconnect().catch(() => undefined);
        demo.report.out('*** cleaning up');
        await demo.emergencyCleanup().catch((e: unknown) => demo.report.out(`  cleanup failed: ${String(e)}`));
      }
      return demo.summary(error, signal);
    })());

  const signals: Record<string, number> = { SIGINT: 130, SIGTERM: 143, SIGHUP: 129 };
  let hits = 0;
  let last = 0;
  for (const [sig, code] of Object.entries(signals)) {
    process.on(sig, () => {
      // One ^C reaches us from the terminal and again from make (which forwards it): count once.
      if (Date.now() - last < 1000) return;
      last = Date.now();
      hits++;
      if (hits === 1) {
        // Stop at the next call, then clean up (main below); the call in flight finishes first.
        demo.aborted = sig;
        demo.report.out(`\n*** ${sig}: stopping after the call in flight, then cleaning up (again: clean up at once)`);
      } else if (hits === 2 && !finishing) {
        demo.report.out(`\n*** ${sig}: cleaning up now (again: exit without cleaning up)`);
        void finish(undefined, sig).then(() => process.exit(code));
      } else if (hits >= 3 || finishing) {
        if (hits >= 3) process.exit(code);
        demo.report.out(`*** ${sig}: cleaning up, please wait (again: exit without cleaning up)`);
      }
    });
  }

  let error: unknown;
  try {
    await demo.run();
  } catch (e) {
    error = e;
  }
  if (demo.aborted) {
    const code = signals[demo.aborted] ?? 130;
    await finish(undefined, demo.aborted);
    return code;
  }
  return finish(error);
}

process.exitCode = await main();
profileReport();
// Nothing of ours may keep the process alive (xen-api's event loop is disconnected).
setTimeout(() => process.exit(process.exitCode ?? 0), 500).unref();
