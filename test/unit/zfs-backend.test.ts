// The ZFS backend's zvol layout (OpenZFS), which zfs-fuse cannot run, against a scripted
// zfs: a small in-memory model of datasets that answers `zfs get` in OpenZFS 2.x's
// format (test/fixtures/openzfs/: reconstructed from the OpenZFS sources, not recorded)
// and records every command. Exact argv arrays are checked.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { StoredObject } from '../../src/backends/backend.js';
import { ZfsBackend } from '../../src/backends/zfs/backend.js';
import type { ZfsLogger } from '../../src/backends/zfs/cli.js';
import type { Exec, ExecResult } from '../../src/backends/zfs/exec.js';
import { featuresFor, type ZfsFeatures } from '../../src/backends/zfs/features.js';
import { parseZfsVersion } from '../../src/backends/zfs/parse.js';
import { PROP, TRUNCATION_MARK, fitText, metaProps } from '../../src/backends/zfs/records.js';
import { encodedLength } from '../../src/backends/zfs/codec.js';
import { SmError } from '../../src/errors.js';
import { ZFS_CAPABILITIES, formatInternalSnapshotName, formatSnapshotName } from '../../src/lineage/index.js';
import { validateObjects } from '../../src/lineage/validate.js';

const OPENZFS = featuresFor('openzfs', parseZfsVersion('zfs-2.2.2-1\nzfs-kmod-2.2.2-1'));
const FUSE = featuresFor('zfs-fuse');
const ROOT = 'tank/xcp/sr1';
const GiB = 1024 ** 3;
const FIXTURES = join(process.cwd(), 'test/fixtures/openzfs');

type Props = Map<string, [string, string]>;
type Reply = Partial<ExecResult>;
const fail = (stderr: string): Reply => ({ exitCode: 1, stderr });

/** A scripted zfs: datasets with properties, enough of create/snapshot/clone/set/inherit/destroy/get to drive the backend. */
class FakeZfs {
  readonly datasets = new Map<string, Props>();
  readonly calls: string[][] = [];
  /** Consulted first; a reply ends the command. */
  override: (args: readonly string[]) => Reply | undefined = () => undefined;
  private txg = 100;

  readonly exec: Exec = async (bin, args) => {
    const prog = bin.split('/').pop()!;
    this.calls.push([prog, ...args]);
    const r = this.override(args) ?? (prog === 'zpool' ? { stdout: 'ONLINE\n' } : this.run(args));
    return { exitCode: 0, stdout: '', stderr: '', signal: undefined, timedOut: false, spawnError: undefined, ...r };
  };

  zfs(): string[][] {
    return this.calls.filter((c) => c[0] === 'zfs').map((c) => c.slice(1));
  }

  mutations(): string[][] {
    return this.zfs().filter((a) => a[0] !== 'get' && a[0] !== 'list');
  }

  load(text: string): void {
    for (const line of text.split('\n')) {
      if (!line) continue;
      const [name, prop, value, source] = line.split('\t') as [string, string, string, string];
      let p = this.datasets.get(name);
      if (!p) this.datasets.set(name, (p = new Map()));
      if (!(value === '-' && source === '-')) p.set(prop, [value, source]);
    }
  }

  put(name: string, props: Record<string, string>): void {
    this.datasets.set(name, new Map(Object.entries(props).map(([k, v]) => [k, [v, k.includes(':') ? 'local' : '-']])));
  }

  private notFound(name: string): Reply {
    return fail(`cannot open '${name}': dataset does not exist\n`);
  }

  private run(args: readonly string[]): Reply {
    const opts = new Map<string, string>();
    const flags = new Set<string>();
    const pos: string[] = [];
    for (let i = 1; i < args.length; i++) {
      const a = args[i]!;
      if (['-o', '-V', '-b', '-d', '-t'].includes(a)) {
        if (a === '-o' && args[0] !== 'get') opts.set(args[i + 1]!.split('=')[0]!, args[i + 1]!.split('=').slice(1).join('='));
        else if (a === '-o') pos.push(args[i + 1]!);
        else opts.set(a, args[i + 1]!);
        i++;
      } else if (a.startsWith('-')) flags.add(a);
      else pos.push(a);
    }
    const local = (m: Props): Props => {
      for (const [k, v] of opts) if (!k.startsWith('-')) m.set(k, [v, 'local']);
      return m;
    };
    switch (args[0]) {
      case 'get':
        return this.get(pos[1]!, pos.slice(2), flags.has('-r'), opts.get('-d'));
      case 'create': {
        const name = pos[0]!;
        if (this.datasets.has(name)) return fail(`cannot create '${name}': dataset already exists\n`);
        const m: Props = new Map();
        if (opts.has('-V')) {
          m.set('type', ['volume', '-']);
          m.set('volsize', [opts.get('-V')!, 'local']);
          m.set('volblocksize', [opts.get('-b') ?? '16384', '-']);
        } else {
          m.set('type', ['filesystem', '-']);
          m.set('mounted', ['yes', '-']);
          m.set('mountpoint', [`/${name}`, 'default']);
        }
        m.set('used', ['24576', '-']);
        m.set('creation', [String(1764036000 + this.txg++), '-']);
        this.datasets.set(name, local(m));
        return {};
      }
      case 'snapshot': {
        const name = pos[0]!;
        const ds = this.datasets.get(name.split('@')[0]!);
        if (!ds) return this.notFound(name);
        const m: Props = new Map([['type', ['snapshot', '-']], ['used', ['0', '-']]]);
        const vs = ds.get('volsize');
        if (vs) m.set('volsize', [vs[0], '-']);
        this.datasets.set(name, local(m));
        return {};
      }
      case 'clone': {
        const [snap, target] = pos as [string, string];
        const s = this.datasets.get(snap);
        if (!s) return this.notFound(snap);
        const origin = this.datasets.get(snap.split('@')[0]!)!;
        const m: Props = new Map([['type', origin.get('type')!], ['origin', [snap, '-']], ['used', ['8192', '-']]]);
        for (const k of ['volsize', 'volblocksize']) if (origin.has(k)) m.set(k, origin.get(k)!);
        if (!s.has('volsize')) m.set('mountpoint', [`/${target}`, 'default']);
        this.datasets.set(target, local(m));
        return {};
      }
      case 'set': {
        const name = pos.at(-1)!;
        const ds = this.datasets.get(name);
        if (!ds) return this.notFound(name);
        for (const a of pos.slice(0, -1)) ds.set(a.split('=')[0]!, [a.split('=').slice(1).join('='), 'local']);
        return {};
      }
      case 'inherit': {
        const ds = this.datasets.get(pos[1]!);
        if (!ds) return this.notFound(pos[1]!);
        ds.delete(pos[0]!);
        return {};
      }
      case 'destroy': {
        const name = pos[0]!;
        if (!this.datasets.has(name)) return this.notFound(name);
        const deps = [...this.datasets.keys()].filter((n) => n.startsWith(`${name}@`) || n.startsWith(`${name}/`));
        if (deps.length > 0) return fail(`cannot destroy '${name}': volume has children\nuse '-r' to destroy the following datasets:\n${deps.join('\n')}\n`);
        this.datasets.delete(name);
        return {};
      }
      default:
        return {};
    }
  }

  private get(list: string, names: string[], recursive: boolean, depth: string | undefined): Reply {
    const out: string[] = [];
    for (const n of names) {
      if (!this.datasets.has(n)) return this.notFound(n);
      for (const [name, props] of this.datasets) {
        const rel = name === n ? '' : name.startsWith(`${n}/`) || name.startsWith(`${n}@`) ? name.slice(n.length + 1) : undefined;
        if (rel === undefined) continue;
        if (rel !== '' && !recursive && depth === undefined) continue;
        if (rel !== '' && depth === '1' && (rel.includes('/') || (name[n.length] === '/' && rel.includes('@')))) continue;
        const keys = list === 'all' ? [...props.keys()] : list.split(',');
        for (const k of keys) {
          const v = props.get(k) ?? (k === 'snapdev' && props.get('type')?.[0] === 'volume' ? ['hidden', 'default'] : ['-', '-']);
          out.push(`${name}\t${k}\t${v[0]}\t${v[1]}`);
        }
      }
    }
    return { stdout: out.map((l) => `${l}\n`).join('') };
  }
}

function collecting(): ZfsLogger & { warnings: string[] } {
  const warnings: string[] = [];
  return { warnings, debug: () => undefined, info: () => undefined, warn: (m) => warnings.push(m) };
}

function setup(features: ZfsFeatures = OPENZFS, fileExists: (p: string) => boolean = () => true) {
  const fake = new FakeZfs();
  fake.put(ROOT, { type: 'filesystem', [PROP.sr]: '3c0e9f0e-5b7a-4d55-9a7e-0c1f8d1b2a01' });
  const logger = collecting();
  const sleeps: number[] = [];
  const b = new ZfsBackend(ROOT, {
    exec: fake.exec,
    features,
    zfsBin: '/usr/sbin/zfs',
    zpoolBin: '/usr/sbin/zpool',
    logger,
    sleep: async (ms) => {
      sleeps.push(ms);
    },
    fileExists,
    readMounts: () => '',
  });
  return { fake, b, logger, sleeps };
}

const meta = (label: string, over: Partial<StoredObject['meta'] & object> = {}) => ({
  name_label: label,
  name_description: '',
  vdi_type: 'user',
  is_a_snapshot: false,
  snapshot_time: '19700101T00:00:00Z',
  snapshot_of: '',
  read_only: false,
  ...over,
});

async function smError(p: Promise<unknown>): Promise<SmError> {
  try {
    await p;
  } catch (e) {
    if (e instanceof SmError) return e;
    throw e;
  }
  throw new Error('expected an SmError');
}

const V = '0b6c2a44-8f1e-4d2a-9c3b-5e7f10a2b3c4';
const S1 = '1c7d3b55-9a2f-4e3b-8d4c-6f8a21b3c4d5';
const I1 = '2d8e4c66-ab3a-4f4c-9e5d-7a9b32c4d5e6';
const C1 = '3e9f5d77-bc4b-4a5d-8f6e-8bac43d5e6f7';
const T1 = '4fa06e88-cd5c-4b6e-9a7f-9cbd54e6f7a8';
const S2 = '5ab17f99-de6d-4c7f-8b8a-adce65f7a8b9';
const H1 = '6bc28aaa-ef7e-4d8a-9c9b-bedf76a8b9ca';
const N = '7cd39bbb-f08f-4e9b-8dac-cfe087b9cadb';
const T0 = Date.UTC(2025, 10, 25, 2, 0, 0, 0);

describe('zvol layout (OpenZFS)', () => {
  test('create: one `zfs create -s -b 16384 -V` with the whole record as -o (volmode=dev comes from the root), then one read-back', async () => {
    const { fake, b } = setup();
    const m = meta('Debian 12\troot', { name_description: 'two\nlines, 100%' });
    const v = await b.create(V, m, 10 * GiB + 1, T0);
    const size = 10 * GiB + 16384;
    expect(fake.zfs()[0]).toEqual([
      'create', '-s', '-b', '16384', '-V', String(size),
      '-o', `flatsnap:id=${V}`,
      '-o', 'flatsnap:kind=volume',
      '-o', `flatsnap:created=${T0}`,
      '-o', 'flatsnap:deleted=0',
      '-o', 'flatsnap:name-label=Debian 12%09root',
      '-o', 'flatsnap:name-description=two%0Alines, 100%25',
      '-o', 'flatsnap:vdi-type=user',
      '-o', 'flatsnap:is-a-snapshot=false',
      '-o', 'flatsnap:snapshot-time=19700101T00:00:00Z',
      '-o', 'flatsnap:snapshot-of=%',
      '-o', 'flatsnap:read-only=false',
      '-o', `flatsnap:vdi=${V}`,
      `${ROOT}/${V}`,
    ]);
    expect(fake.zfs().map((a) => a[0])).toEqual(['create', 'get']);
    expect(v).toMatchObject({ id: V, kind: 'volume', vdi: V, created: T0, deleted: false, meta: m, virtual_size: size, handle: `${ROOT}/${V}` });
    expect(v.parent).toBeUndefined();
  });

  test('create on a full pool: SRNoSpace (44), nothing made, nothing to undo', async () => {
    const { fake, b } = setup();
    fake.override = (a) => (a[0] === 'create' ? fail(`cannot create '${ROOT}/${V}': out of space\n`) : undefined);
    expect((await smError(b.create(V, meta('x'), GiB, T0))).code).toBe(44);
    expect(fake.mutations()).toEqual([['create', ...fake.zfs()[0]!.slice(1)]]);
  });

  test('create of an id that exists: VDIExists (43), and what exists is not destroyed', async () => {
    const { fake, b } = setup();
    await b.create(V, meta('x'), GiB, T0);
    expect((await smError(b.create(V, meta('y'), GiB, T0))).code).toBe(43);
    expect(fake.mutations().map((a) => a[0])).toEqual(['create', 'create']);
  });

  test('datapath: /dev/zvol/<root>/<id>, waiting for udev', async () => {
    let polls = 0;
    const { b, sleeps } = setup(OPENZFS, () => ++polls > 3);
    const v = await b.create(V, meta('x'), GiB, T0);
    expect(await b.datapath(v)).toBe(`/dev/zvol/${ROOT}/${V}`);
    expect(sleeps).toEqual([50, 50, 50]);
  });

  test('datapath of a zvol snapshot: snapdev=visible on its zvol, once; /dev/zvol/<root>/<id>@<snap>', async () => {
    const { fake, b } = setup();
    const v = await b.create(V, meta('x'), GiB, T0);
    const name = formatSnapshotName(T0 + 1, S1);
    const s = await b.snapshot(S1, v, name, 'snapshot', meta('s', { is_a_snapshot: true, snapshot_of: V, read_only: true }));
    expect(await b.datapath(s)).toBe(`/dev/zvol/${ROOT}/${V}@${name}`);
    expect(await b.datapath(s)).toBe(`/dev/zvol/${ROOT}/${V}@${name}`);
    expect(fake.mutations().filter((a) => a[0] === 'set')).toEqual([['set', 'snapdev=visible', `${ROOT}/${V}`]]);
  });

  test('datapath of a zvol snapshot whose device is gone although snapdev=visible (OpenZFS drops it when a destroy is refused as busy): snapdev is set again', async () => {
    const sets = (): string[][] => fake.mutations().filter((a) => a[0] === 'set');
    let gone = false;
    const { fake, b, sleeps, logger } = setup(OPENZFS, () => !gone || sets().length > 1);
    const v = await b.create(V, meta('x'), GiB, T0);
    const name = formatSnapshotName(T0 + 1, S1);
    const s = await b.snapshot(S1, v, name, 'snapshot', meta('s', { is_a_snapshot: true, snapshot_of: V, read_only: true }));
    expect(await b.datapath(s)).toBe(`/dev/zvol/${ROOT}/${V}@${name}`);
    gone = true;
    expect(await b.datapath(s)).toBe(`/dev/zvol/${ROOT}/${V}@${name}`);
    expect(sets()).toEqual([['set', 'snapdev=visible', `${ROOT}/${V}`], ['set', 'snapdev=visible', `${ROOT}/${V}`]]);
    expect(sleeps.reduce((t, ms) => t + ms, 0)).toBe(2000); // the grace it gets to appear first
    expect(logger.warnings.join('\n')).toMatch(/is missing although .* has snapdev=visible/);
  });

  test('resize: volsize grows in whole volblocks; equal or smaller-than-rounded is a no-op; shrink is refused (79) without a command', async () => {
    const { fake, b } = setup();
    const v = await b.create(V, meta('x'), GiB, T0);
    expect(await b.resize(v, 2 * GiB + 1)).toBe(2 * GiB + 16384);
    expect(fake.mutations().at(-1)).toEqual(['set', `volsize=${2 * GiB + 16384}`, `${ROOT}/${V}`]);
    const n = fake.mutations().length;
    expect(await b.resize(v, 2 * GiB + 16384)).toBe(2 * GiB + 16384);
    const e = await smError(b.resize(v, GiB));
    expect(e.code).toBe(79);
    expect(e.message).toMatch(/cannot shrink/);
    expect(fake.mutations()).toHaveLength(n);
    expect((await b.inventory()).find((o) => o.id === V)?.virtual_size).toBe(2 * GiB + 16384);
  });

  test('snapshot and clone: the record set atomically with -o; a zvol clone inherits volmode=dev from the root; parents from structure', async () => {
    const { fake, b } = setup();
    const v = await b.create(V, meta('x'), GiB, T0);
    const iname = formatInternalSnapshotName(T0 + 5, I1);
    const i = await b.snapshot(I1, v, iname, 'internal-snapshot');
    expect(fake.zfs().at(-2)).toEqual([
      'snapshot',
      '-o', `flatsnap:id=${I1}`,
      '-o', 'flatsnap:kind=internal-snapshot',
      '-o', `flatsnap:parent=${V}`,
      '-o', `flatsnap:created=${T0 + 5}`,
      '-o', 'flatsnap:deleted=0',
      `${ROOT}/${V}@${iname}`,
    ]);
    expect(i).toMatchObject({ id: I1, kind: 'internal-snapshot', parent: V, created: T0 + 5, virtual_size: GiB, handle: `${ROOT}/${V}@${iname}` });
    expect(i.vdi).toBeUndefined();
    const c = await b.clone(C1, i, meta('clone'), T0 + 6);
    expect(fake.zfs().at(-2)?.slice(0, 3)).toEqual(['clone', '-o', `flatsnap:id=${C1}`]);
    expect(fake.zfs().at(-2)?.slice(-3)).toEqual([`flatsnap:vdi=${C1}`, `${ROOT}/${V}@${iname}`, `${ROOT}/${C1}`]);
    expect(c).toMatchObject({ id: C1, kind: 'volume', vdi: C1, parent: I1, created: T0 + 6, virtual_size: GiB });
    const h = await b.clone(H1, i, undefined, T0 + 7);
    expect(h.vdi).toBeUndefined();
    expect(h.meta).toBeUndefined();
    // Refused before any command: a snapshot of a snapshot, a clone of a volume.
    const n = fake.mutations().length;
    expect((await smError(b.snapshot(N, i, formatSnapshotName(T0 + 8, N), 'snapshot', meta('s')))).code).toBe(1);
    expect((await smError(b.clone(N, v, meta('c'), T0 + 8))).code).toBe(1);
    expect(fake.mutations()).toHaveLength(n);
  });

  test('swapVdi: the old volume marked swap-to, one atomic `zfs set` on the new one (meta, vdi last), then `zfs inherit` on the old', async () => {
    const { fake, b } = setup();
    const m = meta('the disk');
    const v = await b.create(V, m, GiB, T0);
    const s = await b.snapshot(S1, v, formatSnapshotName(T0 + 1, S1), 'snapshot', meta('s', { is_a_snapshot: true, snapshot_of: V }));
    const fresh = await b.clone(N, s, undefined, T0 + 2);
    const before = fake.mutations().length;
    await b.swapVdi(V, v, fresh);
    const sets = fake.mutations().slice(before);
    expect(sets).toHaveLength(3);
    expect(sets[0]).toEqual(['set', `${PROP.swapTo}=${N}`, `${ROOT}/${V}`]);
    expect(sets[1]![0]).toBe('set');
    expect(sets[1]!.at(-2)).toBe(`flatsnap:vdi=${V}`);
    expect(sets[1]!.at(-1)).toBe(`${ROOT}/${N}`);
    expect(sets[1]).toContain('flatsnap:name-label=the disk');
    expect(sets[2]).toEqual(['inherit', PROP.vdi, `${ROOT}/${V}`]);
    const inv = await b.inventory();
    expect(inv.find((o) => o.id === N)).toMatchObject({ vdi: V, meta: m, parent: S1 });
    expect(inv.find((o) => o.id === V)?.vdi).toBeUndefined();
  });

  test('rollback: plain `zfs rollback <snapshot>`; a snapshot that is not the newest is refused (202) and nothing else runs', async () => {
    const { fake, b } = setup();
    const v = await b.create(V, meta('x'), GiB, T0);
    const name = formatSnapshotName(T0 + 1, S1);
    const s = await b.snapshot(S1, v, name, 'snapshot', meta('s', { is_a_snapshot: true, snapshot_of: V }));
    await b.rollback(v, s);
    expect(fake.mutations().at(-1)).toEqual(['rollback', `${ROOT}/${V}@${name}`]);
    fake.override = (a) =>
      a[0] === 'rollback'
        ? fail(`cannot rollback to '${ROOT}/${V}@${name}': more recent snapshots or bookmarks exist\nuse '-r' to force deletion of the following snapshots and bookmarks:\n${ROOT}/${V}@later\n`)
        : undefined;
    const n = fake.mutations().length;
    const e = await smError(b.rollback(v, s));
    expect(e.code).toBe(202);
    expect(e.message).toMatch(/newer snapshot/);
    expect(fake.mutations()).toHaveLength(n + 1);
  });

  test('destroy: one plain `zfs destroy` per object (no view for zvol snapshots); never -r/-R/-d; a visible VDI is refused (1)', async () => {
    const { fake, b } = setup();
    const v = await b.create(V, meta('x'), GiB, T0);
    const name = formatSnapshotName(T0 + 1, S1);
    const s = await b.snapshot(S1, v, name, 'snapshot', meta('s', { is_a_snapshot: true, snapshot_of: V }));
    expect((await smError(b.destroy(v))).code).toBe(1);
    await b.markTombstone(v);
    expect((await smError(b.destroy(v))).code).toBe(64); // ZFS: it has a snapshot
    await b.markTombstone(s);
    await b.destroy(s);
    await b.destroy(v);
    const destroys = fake.mutations().filter((a) => a[0] === 'destroy');
    expect(destroys).toEqual([
      ['destroy', `${ROOT}/${V}`],
      ['destroy', `${ROOT}/${V}@${name}`],
      ['destroy', `${ROOT}/${V}`],
    ]);
    expect(fake.zfs().some((a) => a.includes('-R') || a.includes('-d') || (a[0] !== 'get' && a.includes('-r')) || a[0] === 'promote')).toBe(false);
  });
});

describe('inventory from OpenZFS output', () => {
  test('one `zfs get -r`: volumes, snapshot VDIs, internal snapshots, clones, tombstones, hidden helpers; foreign ones logged', async () => {
    const { fake, b, logger } = setup();
    fake.datasets.clear();
    fake.load(readFileSync(join(FIXTURES, 'flatsnap-inventory.txt'), 'utf8'));
    const inv = await b.inventory();
    expect(fake.zfs()).toEqual([readFileSync(join(FIXTURES, 'flatsnap-inventory.cmd'), 'utf8').trim().split(' ').slice(1)]);
    const G = 10 * GiB;
    const sm = (label: string, of: string, time: string) => meta(label, { is_a_snapshot: true, snapshot_of: of, snapshot_time: time, read_only: true });
    expect(inv).toEqual([
      { id: V, kind: 'volume', vdi: V, created: T0, deleted: false, virtual_size: G, physical_utilisation: 2228224, handle: `${ROOT}/${V}`, meta: meta('Debian 12 root', { name_description: 'installed 2025-11-25\nfrom netinst' }) },
      { id: S1, kind: 'snapshot', vdi: S1, parent: V, created: 1764037049500, deleted: false, virtual_size: G, physical_utilisation: 49152, handle: `${ROOT}/${V}@20251125T021729.500Z-${S1}`, meta: sm('before upgrade', V, '20251125T02:17:29Z') },
      { id: I1, kind: 'internal-snapshot', parent: V, created: 1764037080000, deleted: false, virtual_size: G, physical_utilisation: 0, handle: `${ROOT}/${V}@20251125T021800.000Z-int-${I1}` },
      { id: C1, kind: 'volume', vdi: C1, parent: I1, created: 1764037080000, deleted: false, virtual_size: G, physical_utilisation: 65536, handle: `${ROOT}/${C1}`, meta: meta('Debian 12 clone') },
      { id: T1, kind: 'volume', vdi: T1, created: 1764038000000, deleted: true, virtual_size: 2 * G, physical_utilisation: 1048576, handle: `${ROOT}/${T1}`, meta: meta('old disk', { name_description: 'deleted by VM.revert' }) },
      { id: S2, kind: 'snapshot', vdi: S2, parent: T1, created: 1764039600250, deleted: false, virtual_size: G, physical_utilisation: 1015808, handle: `${ROOT}/${T1}@20251125T030000.250Z-${S2}`, meta: sm('nightly', T1, '20251125T03:00:00Z') },
      { id: H1, kind: 'volume', parent: S2, created: 1764043300000, deleted: false, virtual_size: G, physical_utilisation: 16384, handle: `${ROOT}/${H1}` },
    ]);
    expect(validateObjects(inv, ZFS_CAPABILITIES).filter((i) => i.severity === 'error')).toEqual([]);
    expect(logger.warnings).toEqual([
      expect.stringMatching(new RegExp(`${V}@manual is not a flatsnap object \\(no flatsnap:kind\\)`)),
      expect.stringMatching(/sr1\/backup is not a flatsnap object \(no flatsnap:kind\)/),
    ]);
  });

  test('a missing SR root is SRUnavailable (47)', async () => {
    const { fake, b } = setup();
    fake.datasets.clear();
    expect((await smError(b.inventory())).code).toBe(47);
  });
});

describe('SR on OpenZFS', () => {
  test('createSr: pool health, then `zfs create -p` with the SR marks; no mountpoint changes for zvols', async () => {
    const { fake, b } = setup();
    fake.datasets.clear();
    fake.put('tank', { type: 'filesystem' });
    const sr = '3c0e9f0e-5b7a-4d55-9a7e-0c1f8d1b2a01';
    await b.createSr(sr);
    expect(fake.calls[0]).toEqual(['zpool', 'list', '-H', '-o', 'health', 'tank']);
    expect(fake.mutations()).toEqual([['create', '-p', '-o', 'volmode=dev', '-o', `flatsnap:sr=${sr}`, '-o', 'flatsnap:format=1', '-o', 'flatsnap:made-root=1', ROOT]]);
    await b.createSr(sr); // idempotent
    expect(fake.mutations()).toHaveLength(1);
    expect((await smError(b.createSr('8e1f2a3b-4c5d-4e6f-8a9b-0c1d2e3f4a5b'))).code).toBe(42);
  });

  test('createSr refuses a non-empty dataset flatsnap did not make (42), changing nothing', async () => {
    const { fake, b } = setup();
    fake.datasets.clear();
    fake.put(ROOT, { type: 'filesystem' });
    fake.put(`${ROOT}/vm-disk`, { type: 'volume' });
    const e = await smError(b.createSr('3c0e9f0e-5b7a-4d55-9a7e-0c1f8d1b2a01'));
    expect(e.code).toBe(42);
    expect(e.message).toMatch(/not empty/);
    expect(fake.mutations()).toEqual([]);
  });

  test('attachSr gives an SR root made before volmode=dev (or on zfs-fuse) the volmode its zvols inherit, once', async () => {
    const { fake, b } = setup();
    const sr = '3c0e9f0e-5b7a-4d55-9a7e-0c1f8d1b2a01';
    await b.attachSr(sr);
    expect(fake.mutations()).toEqual([['set', 'volmode=dev', ROOT]]);
    await b.attachSr(sr);
    expect(fake.mutations()).toHaveLength(1);
  });
});

describe('raw-file layout (zfs-fuse), scripted', () => {
  test('a disk file that cannot be made: the dataset just created is destroyed again', async () => {
    const { fake, b } = setup(FUSE);
    fake.override = (a) => {
      if (a[0] === 'get' && a.at(-1) === `${ROOT}/${V}` && a.includes('mounted,mountpoint')) {
        return { stdout: `${ROOT}/${V}\tmounted\tyes\t-\n${ROOT}/${V}\tmountpoint\t/nonexistent/flatsnap-unit/${V}\tdefault\n` };
      }
      return undefined;
    };
    const e = await smError(b.create(V, meta('x'), GiB, T0));
    expect(e.message).toMatch(/ENOENT/);
    expect(fake.mutations()[0]?.slice(0, 5)).toEqual(['create', '-o', 'atime=off', '-o', 'recordsize=16384']);
    expect(fake.mutations()[0]).toContain(`flatsnap:size=${GiB}`);
    expect(fake.mutations().filter((a) => a[0] === 'destroy')).toEqual([['destroy', `${ROOT}/${V}`]]);
    expect(fake.datasets.has(`${ROOT}/${V}`)).toBe(false);
  });

  test('setMeta on zfs-fuse (one property per `zfs set`): a failure part-way puts back what was set', async () => {
    const { fake, b } = setup(FUSE);
    const name = `${ROOT}/${V}`;
    fake.put(name, { type: 'filesystem', [PROP.id]: V, [PROP.kind]: 'volume', [PROP.vdi]: V, [PROP.created]: String(T0), [PROP.deleted]: '0', [PROP.size]: '1024', ...metaProps(meta('old'), 4095) });
    const v = (await b.inventory())[0]!;
    let n = 0;
    fake.override = (a) => (a[0] === 'set' && ++n === 2 ? fail(`cannot set property for '${name}': out of space\n`) : undefined);
    const e = await smError(b.setMeta(v, meta('new', { name_description: 'new too' })));
    expect(e.code).toBe(44);
    expect(fake.mutations().filter((a) => a[0] === 'set')).toEqual([
      ['set', 'flatsnap:name-label=new', name],
      ['set', 'flatsnap:name-description=new too', name],
      ['set', 'flatsnap:name-label=old', name],
    ]);
    expect((await b.inventory())[0]!.meta).toEqual(meta('old'));
  });
});

describe('records', () => {
  test('text too long for a property is cut at a character boundary and marked', () => {
    const long = 'é'.repeat(2000); // 6 encoded bytes each
    const cut = fitText(long, 4095);
    expect(encodedLength(cut)).toBeLessThanOrEqual(4095);
    expect(cut.endsWith(TRUNCATION_MARK)).toBe(true);
    expect(long.startsWith(cut.slice(0, -TRUNCATION_MARK.length))).toBe(true);
    expect(fitText('short', 4095)).toBe('short');
    const p = metaProps(meta(long, { name_description: long }), 4095);
    expect(encodedLength(p[PROP.nameLabel]!)).toBeLessThanOrEqual(4095);
    expect(encodedLength(p[PROP.nameDescription]!)).toBeLessThanOrEqual(4095);
  });
});
