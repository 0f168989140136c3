// The built operator command (plugin/flatsnap, `make build`) on a real reflink SR: an
// XFS (reflink=1) loop filesystem whose objects are made with the ReflinkBackend itself
// (a disk, five snapshots an hour apart with writes in between, a clone of the second,
// a tombstone, an internal snapshot). tree, seek, check and gc are run as an operator
// runs them, human and --json; then the same SR is compared with xapi (the simulator)
// for seek --vm and check --xapi.
//
// Needs root, losetup and mkfs.xfs: skipped locally without them, failing under CI=true.
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { execa } from 'execa';
import { randomUUID } from 'node:crypto';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { mkdir, open, readFile, readdir, rm, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { StoredObject, VdiMeta } from '../../src/backends/backend.js';
import { ReflinkBackend } from '../../src/backends/reflink/backend.js';
import { toXapiTime } from '../../src/backends/reflink/sidecar.js';
import { formatInternalSnapshotName, formatSnapshotName } from '../../src/lineage/names.js';
import { Client, removeDir, startSim, type SimProc } from '../e2e/sim-helpers.js';
import { createLoopFs, describeLoopFs, type LoopFs } from './harness/loopfs.js';

const CLI = join(process.cwd(), 'plugin', 'flatsnap');
const HOUR = 3600_000;
const T0 = Date.UTC(2026, 10, 20, 0, 0, 0); // the disk is created at 2026-11-20T00:00:00Z
const iso = (t: number): string => new Date(t).toISOString();
type Json = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

function meta(label: string, snapshotOf?: string, time?: number): VdiMeta {
  return {
    name_label: label,
    name_description: '',
    vdi_type: 'user',
    is_a_snapshot: snapshotOf !== undefined,
    snapshot_time: time === undefined ? '19700101T00:00:00Z' : toXapiTime(new Date(time)),
    snapshot_of: snapshotOf ?? '',
    read_only: snapshotOf !== undefined,
  };
}

async function writeAt(path: string, offset: number, tag: string): Promise<void> {
  const b = Buffer.alloc(64 * 1024, tag);
  const fh = await open(path, 'r+');
  try {
    await fh.write(b, 0, b.length, offset);
    await fh.sync();
  } finally {
    await fh.close();
  }
}

describeLoopFs('flatsnap command on a reflink SR (real XFS)', ['xfs'], () => {
  let fs: LoopFs;
  let work: string;
  let dir: string;
  let env: Record<string, string>;
  let backend: ReflinkBackend;
  const srUuid = randomUUID();
  // The objects, in creation order.
  let disk: StoredObject;
  const snaps: StoredObject[] = [];
  let clone: StoredObject;
  let tomb: StoredObject;
  let internal: StoredObject;

  const cli = async (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> => {
    const r = await execa(CLI, args, { env, extendEnv: false, reject: false, stdin: 'ignore' });
    return { code: r.exitCode ?? -1, stdout: r.stdout, stderr: r.stderr };
  };
  const cliJson = async (...args: string[]): Promise<{ code: number; doc: Json; stderr: string }> => {
    const r = await cli(...args, '--json');
    let doc: Json;
    try {
      doc = JSON.parse(r.stdout) as Json;
    } catch {
      throw new Error(`not JSON (exit ${r.code}): ${r.stdout}\n${r.stderr}`);
    }
    return { code: r.code, doc, stderr: r.stderr };
  };
  /** The line of human output naming `id`. */
  const lineOf = (out: string, id: string): string => out.split('\n').filter((l) => l.includes(id)).pop() ?? '';

  beforeAll(async () => {
    if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run make build first`);
    work = mkdtempSync(join(tmpdir(), 'flatsnap-cli-'));
    env = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', FLATSNAP_LOCK_DIR: join(work, 'lock'), FLATSNAP_SMLOG: join(work, 'SMlog') };
    fs = await createLoopFs('xfs');
    dir = join(fs.mountpoint, 'sr');
    await mkdir(dir);
    backend = new ReflinkBackend(dir);
    await backend.createSr(srUuid);

    disk = await backend.create(randomUUID(), meta('disk0'), 16 << 20, T0);
    for (let i = 1; i <= 5; i++) {
      await writeAt(disk.handle, i * 1024 * 1024, `write ${i}`);
      const id = randomUUID();
      const t = T0 + i * HOUR;
      snaps.push(await backend.snapshot(id, disk, formatSnapshotName(t, id), 'snapshot', meta(`snap ${i}`, disk.id, t)));
    }
    clone = await backend.clone(randomUUID(), snaps[1]!, meta('clone of snap 2'), T0 + 6 * HOUR);
    await writeAt(clone.handle, 0, 'clone');
    const tid = randomUUID();
    tomb = await backend.snapshot(tid, disk, formatSnapshotName(T0 + 7 * HOUR, tid), 'snapshot', meta('doomed', disk.id, T0 + 7 * HOUR));
    await backend.markTombstone(tomb);
    const iid = randomUUID();
    internal = await backend.snapshot(iid, disk, formatInternalSnapshotName(T0 + 8 * HOUR, iid), 'internal-snapshot');
  }, 120_000);

  afterAll(async () => {
    await fs?.teardown();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  describe('tree', () => {
    test('every object once, snapshots in time order under their disk, the clone under its snapshot, markers', async () => {
      const r = await cli('tree', '--path', dir);
      expect(r.code).toBe(0);
      expect(r.stderr).toBe('');
      const out = r.stdout;
      expect(out).toContain(`SR ${srUuid}  reflink: xfs at ${dir}`);
      expect(out).toContain('9 objects: 2 volumes, 6 snapshots, 1 internal snapshot, 1 tombstone; 7 VDIs visible to xapi');
      const lines = out.split('\n');
      const header = lines.findIndex((l) => l.startsWith('OBJECT'));
      expect(lines[header]).toMatch(/^OBJECT +KIND +CREATED \(UTC\) +SIZE +ALLOCATED +NAME$/);
      const body = lines.slice(header + 1);
      // Pre-order: the disk, then its children by time, the clone right after snap 2.
      const order = [disk, snaps[0], snaps[1], clone, snaps[2], snaps[3], snaps[4], tomb, internal].map((o) => o!.id);
      expect(body.map((l) => order.find((id) => l.includes(id)))).toEqual(order);
      expect(body[0]).toMatch(new RegExp(`^${disk.id} +volume +${iso(T0)} +16\\.0 MiB +\\S+ \\S+ +"disk0"$`));
      expect(lineOf(out, snaps[1]!.id)).toMatch(/^├── \S+ +snapshot +2026-11-20T02:00:00\.000Z .*"snap 2"$/);
      expect(lineOf(out, clone.id)).toMatch(/^│   └── \S+ +volume +2026-11-20T06:00:00\.000Z .*"clone of snap 2"$/);
      expect(lineOf(out, tomb.id)).toMatch(new RegExp(`^├── ${tomb.id} \\[deleted\\] +snapshot .*"doomed"$`));
      expect(lineOf(out, internal.id)).toMatch(new RegExp(`^└── ${internal.id} \\[internal\\] +snapshot +${iso(T0 + 8 * HOUR).replace(/\./g, '\\.')}`));
      // Aligned: every row's KIND column starts where the header's does.
      const col = lines[header]!.indexOf('KIND');
      for (const l of body) expect([...l].slice(col, col + 8).join('')).toMatch(/^(volume|snapshot)/);
    });

    test('--json: the same forest, flat in pre-order, every key present', async () => {
      const { code, doc } = await cliJson('tree', '--path', dir);
      expect(code).toBe(0);
      expect(doc.sr).toEqual({ uuid: srUuid, backend: 'reflink', location: `xfs at ${dir}` });
      expect(doc.vdi).toBeNull();
      expect(doc.summary).toEqual({
        objects: 9,
        volumes: 2,
        snapshots: 6,
        internal_snapshots: 1,
        tombstones: 1,
        physical_utilisation: expect.any(Number),
        visible_vdis: 7,
      });
      expect(doc.roots).toEqual([disk.id]);
      const objs = doc.objects as Json[];
      expect(objs.map((o) => o.id)).toEqual([disk, snaps[0], snaps[1], clone, snaps[2], snaps[3], snaps[4], tomb, internal].map((o) => o!.id));
      for (const o of objs) {
        expect(Object.keys(o).sort()).toEqual(
          [
            'children', 'created', 'created_iso', 'deleted', 'depth', 'handle', 'id', 'is_a_snapshot', 'kind', 'markers', 'name_label',
            'parent', 'parent_gone', 'physical_utilisation', 'vdi', 'virtual_size', 'visible',
          ].sort(),
        );
      }
      const byId = new Map(objs.map((o) => [o.id as string, o]));
      expect(byId.get(disk.id)).toMatchObject({ kind: 'volume', depth: 0, parent: null, visible: true, markers: [], name_label: 'disk0', virtual_size: 16 << 20 });
      expect(byId.get(disk.id)!.children).toEqual([...snaps.map((s) => s.id), tomb.id, internal.id]);
      expect(byId.get(snaps[1]!.id)).toMatchObject({ depth: 1, children: [clone.id], created: T0 + 2 * HOUR, created_iso: iso(T0 + 2 * HOUR) });
      expect(byId.get(clone.id)).toMatchObject({ depth: 2, parent: snaps[1]!.id, vdi: clone.id, handle: join(dir, clone.id) });
      expect(byId.get(tomb.id)).toMatchObject({ deleted: true, visible: false, markers: ['deleted'] });
      expect(byId.get(internal.id)).toMatchObject({ kind: 'internal-snapshot', vdi: null, visible: false, markers: ['internal'], name_label: null });
      expect(byId.get(disk.id)!.physical_utilisation).toBeGreaterThan(0);
    });

    test('--vdi: the VDI, its ancestors and what is below it', async () => {
      const r = await cli('tree', '--path', dir, '--vdi', clone.id.toUpperCase());
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`lineage of VDI ${clone.id}`);
      const ids = [disk, ...snaps, clone, tomb, internal].map((o) => o.id).filter((id) => r.stdout.includes(id));
      expect(ids).toEqual([disk.id, snaps[1]!.id, clone.id]);
      expect(lineOf(r.stdout, clone.id)).toMatch(/"clone of snap 2" <==$/);
      const { doc } = await cliJson('tree', '--path', dir, '--vdi', disk.id);
      expect(doc.vdi).toEqual({ requested: disk.id, object: disk.id });
      expect((doc.objects as Json[]).length).toBe(9);
    });

    test('--vdi of a VDI the SR does not have: exit 3', async () => {
      const r = await cli('tree', '--path', dir, '--vdi', randomUUID());
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(/^flatsnap tree: no VDI or object [0-9a-f-]+ on SR /);
      expect(r.stdout).toBe('');
    });
  });

  describe('seek', () => {
    const seek = (vdi: string, at: string) => cliJson('seek', '--path', dir, '--vdi', vdi, '--at', at);

    test.each([
      ['before the first snapshot', '2026-11-20T00:59:59.999Z', null],
      ['exactly at the first', '2026-11-20T01:00:00Z', 0],
      ['between the second and third', '2026-11-20T02:30:00Z', 1],
      ['between, in xapi form', '20261120T03:59:59Z', 2],
      ['between, with an offset', '2026-11-20T05:30:00+01:00', 3],
      ['after the last (the tombstone and the internal snapshot do not count)', '2026-12-01T00:00:00Z', 4],
      ['now', 'now', 4],
    ])('the disk, %s', async (_what, at, index) => {
      const { code, doc } = await seek(disk.id, at);
      expect(code).toBe(0);
      expect(Object.keys(doc).sort()).toEqual(['at', 'at_ms', 'snapshot', 'sr', 'vdi']);
      expect(doc.vdi).toBe(disk.id);
      if (index === null) {
        expect(doc.snapshot).toBeNull();
        return;
      }
      const s = snaps[index]!;
      expect(doc.snapshot).toMatchObject({ id: s.id, vdi: s.id, kind: 'snapshot', volume: disk.id, own: true, created: T0 + (index + 1) * HOUR, name_label: `snap ${index + 1}` });
    });

    test('human output: the snapshot, or none with the oldest one', async () => {
      const hit = await cli('seek', '--path', dir, '--vdi', disk.id, '--at', '2026-11-20T02:30:00Z');
      expect(hit.code).toBe(0);
      expect(hit.stdout).toBe(`VDI ${disk.id} at 2026-11-20T02:30:00.000Z: snapshot ${snaps[1]!.id} "snap 2", taken 2026-11-20T02:00:00.000Z`);
      const none = await cli('seek', '--path', dir, '--vdi', disk.id, '--at', '2026-11-19T23:00:00Z');
      expect(none.code).toBe(0);
      expect(none.stdout).toBe(`VDI ${disk.id} at 2026-11-19T23:00:00.000Z: none (no snapshot that old; the oldest is ${snaps[0]!.id}, taken 2026-11-20T01:00:00.000Z)`);
    });

    test('the clone: before it existed, the lineage it was cloned from', async () => {
      // The clone has no snapshots of its own: its state is its origin snapshot's (snap 2) from
      // then on, and the disk's before that.
      expect((await seek(clone.id, '2026-11-21T00:00:00Z')).doc.snapshot).toMatchObject({ id: snaps[1]!.id, own: false, volume: disk.id });
      expect((await seek(clone.id, '2026-11-20T01:30:00Z')).doc.snapshot).toMatchObject({ id: snaps[0]!.id, own: false });
      expect((await seek(clone.id, '2026-11-20T00:30:00Z')).doc.snapshot).toBeNull();
      const r = await cli('seek', '--path', dir, '--vdi', clone.id, '--at', '2026-11-21T00:00:00Z');
      expect(r.stdout).toMatch(/\(of [0-9a-f-]+, from before the disk was cloned\)$/);
    });

    test('a snapshot VDI is its own state from its creation on', async () => {
      expect((await seek(snaps[2]!.id, '2026-11-22T00:00:00Z')).doc.snapshot).toMatchObject({ id: snaps[2]!.id, own: true });
    });

    test('a tombstone or an unknown VDI: exit 3, with --json an error document', async () => {
      const t = await seek(tomb.id, 'now');
      expect(t.code).toBe(3);
      expect(t.doc).toEqual({ error: { message: expect.stringMatching(/is deleted \(a tombstone/), kind: 'CommandError' } });
      const u = await cli('seek', '--path', dir, '--vdi', randomUUID(), '--at', 'now');
      expect(u.code).toBe(3);
      expect(u.stderr).toMatch(/^flatsnap seek: no VDI [0-9a-f-]+ on SR /);
    });

    test('usage errors: exit 2, nothing on stdout', async () => {
      for (const args of [
        ['--vdi', disk.id, '--at', '2026-11-20T01:00:00'],
        ['--vdi', disk.id],
        ['--vdi', 'disk0', '--at', 'now'],
      ]) {
        const r = await cli('seek', '--path', dir, ...args);
        expect(r.code).toBe(2);
        expect(r.stdout).toBe('');
        expect(r.stderr).toMatch(/^flatsnap: /);
      }
      expect((await cli('seek', '--path', 'relative/dir', '--vdi', disk.id, '--at', 'now')).code).toBe(2);
    });
  });

  describe('check, then gc', () => {
    const stray = randomUUID();
    const ring = [randomUUID(), randomUUID()];

    test('a consistent SR with leftovers: only the reclaimable objects are reported; extent counts', async () => {
      const { code, doc } = await cliJson('check', '--path', dir);
      expect(code).toBe(1);
      expect(Object.keys(doc).sort()).toEqual(['findings', 'health', 'ok', 'reclaimable', 'sr', 'summary', 'xapi']);
      expect(doc.ok).toBe(false);
      expect(doc.findings).toEqual([]);
      expect(doc.xapi).toBeNull();
      expect(doc.reclaimable).toEqual([
        { op: 'destroy', object: tomb.id, kind: 'snapshot', markers: ['deleted'], physical_utilisation: expect.any(Number) },
        { op: 'destroy', object: internal.id, kind: 'internal-snapshot', markers: ['internal'], physical_utilisation: expect.any(Number) },
      ]);
      const health = new Map((doc.health as Json[]).map((h) => [h.id as string, h]));
      expect(health.size).toBe(9);
      // The disk was written between snapshots: data in 5 places, shared with its snapshots.
      expect(health.get(disk.id)).toMatchObject({ vdi: disk.id, kind: 'volume', extents: expect.any(Number), fragments: expect.any(Number) });
      expect(health.get(disk.id)!.extents).toBeGreaterThanOrEqual(5);
      expect(health.get(snaps[4]!.id)!.shared_extents).toBeGreaterThan(0);
    });

    test('planted damage: an image without a record, a parent cycle', async () => {
      await writeFile(join(dir, stray), Buffer.alloc(4096, 1));
      for (const [i, id] of ring.entries()) {
        await writeFile(join(dir, `${id}.hidden`), '');
        const rec = { format: 'flatsnap-vdi', version: 2, id, kind: 'volume', parent: ring[1 - i], created: T0, deleted: false };
        await writeFile(join(dir, `${id}.hidden.json`), JSON.stringify(rec));
      }
      const r = await cli('check', '--path', dir);
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(new RegExp(`^  ERROR +unreadable-object +${stray} +image ${stray} has no valid record \\(no sidecar\\)`, 'm'));
      expect(r.stdout).toMatch(/^ {2}ERROR +cycle +\S+ +parent cycle: /m);
      expect(r.stdout).toMatch(/^reclaimable: 4 actions, .* \(run flatsnap gc\):$/m);
      expect(r.stdout).toMatch(/^extents \(FIEMAP/m);
      expect(r.stdout).toMatch(/^result: 2 errors, 0 warnings, reclaimable objects$/m);

      const { doc } = await cliJson('check', '--path', dir, '--no-health');
      expect(doc.health).toBeNull();
      expect(doc.findings).toEqual(
        expect.arrayContaining([
          { severity: 'error', code: 'unreadable-object', object: stray, vdi: stray, message: expect.stringContaining('no sidecar') },
          { severity: 'error', code: 'cycle', object: [...ring].sort()[0], vdi: null, message: expect.stringContaining('parent cycle') },
        ]),
      );
      expect(doc.summary).toMatchObject({ errors: 2, warnings: 0 });

      const tree = await cli('tree', '--path', dir);
      expect(tree.stdout).toMatch(/\[hidden\] \[cycle\]/);
    });

    test('gc --dry-run shows the plan and changes nothing', async () => {
      const before = (await readdir(dir)).sort();
      const r = await cli('gc', '--path', dir, '--dry-run');
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^4 actions planned \(dry run: nothing done\):$/m);
      expect(lineOf(r.stdout, tomb.id)).toMatch(/^ {2}destroy +\S+ +snapshot \[deleted\] +\S+ \S+ +"doomed" +planned$/);
      expect(lineOf(r.stdout, internal.id)).toMatch(/snapshot \[internal\] .* planned$/);
      expect((await readdir(dir)).sort()).toEqual(before);
    });

    test('gc reclaims the tombstone, the internal snapshot and the cycle; a second gc finds nothing', async () => {
      const { code, doc } = await cliJson('gc', '--path', dir);
      expect(code).toBe(0);
      expect(doc).toMatchObject({ dry_run: false, complete: true, reclaimed: { objects: 4 } });
      expect((doc.actions as Json[]).map((a) => [a.op, a.object, a.status])).toEqual(
        expect.arrayContaining([
          ['destroy', tomb.id, 'done'],
          ['destroy', internal.id, 'done'],
          ['destroy', ring[0], 'done'],
          ['destroy', ring[1], 'done'],
        ]),
      );
      const names = await readdir(dir);
      for (const gone of [tomb.id, internal.id, `${internal.id}.hidden`, `${ring[0]}.hidden`]) expect(names).not.toContain(gone);
      for (const kept of [disk.id, clone.id, ...snaps.map((s) => s.id)]) expect(names).toContain(kept);
      const again = await cli('gc', '--path', dir);
      expect(again.code).toBe(0);
      expect(again.stdout).toMatch(/nothing to reclaim/);
    });

    test('what gc cannot fix stays a problem until it is repaired; then check is clean', async () => {
      expect((await cli('check', '--path', dir)).code).toBe(1);
      await unlink(join(dir, stray));
      const r = await cli('check', '--path', dir, '--no-health');
      expect(r.code).toBe(0);
      expect(r.stdout).toMatch(/^findings: none$/m);
      expect(r.stdout).toMatch(/^result: OK$/m);
    });

    test('--timings reports the phases on stderr', async () => {
      const r = await cli('seek', '--path', dir, '--vdi', disk.id, '--at', 'now', '--timings');
      expect(r.code).toBe(0);
      expect(r.stderr).toMatch(/^timings: probe \S+ \S+, inventory \S+ \S+, index \S+ \S+, seek \S+ \S+, total /);
    });

    test('the SR lock: gc waits for a running SR operation', async () => {
      // Hold the SR lock from another process, as a running SM command would.
      const { Lock } = await import('../../src/sr/locks.js');
      process.env.FLATSNAP_LOCK_DIR = env.FLATSNAP_LOCK_DIR;
      const holder = Lock.sr(srUuid);
      holder.acquire();
      try {
        const run = execa(CLI, ['gc', '--path', dir], { env, extendEnv: false, reject: false, stdin: 'ignore' });
        // It says it waits, and keeps waiting while the lock is held.
        await new Promise<void>((resolve, reject) => {
          let err = '';
          const timer = setTimeout(() => reject(new Error(`gc never said it waits: ${err}`)), 30_000);
          run.stderr!.on('data', (d: Buffer) => {
            err += d.toString();
            if (err.includes('waiting for the SR lock')) {
              clearTimeout(timer);
              resolve();
            }
          });
        });
        await new Promise((r) => setTimeout(r, 300));
        expect(run.exitCode).toBeNull();
        holder.release();
        const r = await run;
        expect(r.exitCode).toBe(0);
        expect(r.stdout).toMatch(new RegExp(`^SR ${srUuid} `));
      } finally {
        holder.release();
        delete process.env.FLATSNAP_LOCK_DIR;
      }
    });
  });

  describe('with xapi (the simulator)', () => {
    let sim: SimProc | undefined;
    let c: Client;
    let smDir: string;
    let vm: string;
    const ghost = randomUUID();
    const elsewhere = randomUUID();
    const xapiArgs = (): string[] => ['--xapi', sim!.url, '--user', 'root', '--password', 'anything'];

    beforeAll(async () => {
      smDir = mkdtempSync(join(tmpdir(), 'flatsnap-cli-sm-'));
      sim = await startSim({ smDir });
      c = await new Client(sim.url).login();
      const sr = await c.call<string>('SR.introduce', srUuid, 'flatsnap-cli', '', 'flatsnap', 'user', false, {});
      const other = await c.call<string>('SR.introduce', randomUUID(), 'other', '', 'ext', 'user', false, {});
      const introduce = (srRef: string, uuid: string, label: string, size: number, snapOf?: string, time?: number) =>
        c.call<string>(
          'VDI.db_introduce', uuid, label, '', srRef, 'user', false, false, {}, uuid, {}, {}, true, String(size), '0', 'OpaqueRef:NULL',
          snapOf !== undefined, time === undefined ? '19700101T00:00:00Z' : toXapiTime(new Date(time)), snapOf ?? 'OpaqueRef:NULL',
        );
      // xapi knows the disk, the clone and the first four snapshots; not the fifth; and a ghost.
      const diskRef = await introduce(sr, disk.id, 'disk0', disk.virtual_size);
      for (const [i, s] of snaps.slice(0, 4).entries()) await introduce(sr, s.id, `snap ${i + 1}`, s.virtual_size, diskRef, s.created);
      const cloneRef = await introduce(sr, clone.id, 'clone of snap 2', clone.virtual_size);
      await introduce(sr, ghost, 'ghost', 1 << 20);
      const otherRef = await introduce(other, elsewhere, 'on another SR', 1 << 20);
      vm = await c.call<string>('VM.create', { name_label: 'web' });
      const vbd = (vdi: string, userdevice: string, type = 'Disk') =>
        c.call('VBD.create', { VM: vm, VDI: vdi, userdevice, bootable: false, mode: 'RW', type, empty: vdi === 'OpaqueRef:NULL', other_config: {} });
      await vbd(cloneRef, '1');
      await vbd(diskRef, '0');
      await vbd('OpaqueRef:NULL', '3', 'CD');
      await vbd(otherRef, '2');
      vm = await c.call<string>('VM.get_uuid', vm);
    }, 60_000);

    afterAll(async () => {
      if (sim) {
        await sim.stop();
        removeDir(sim.dir);
      }
      if (smDir) await rm(smDir, { recursive: true, force: true });
    });

    test('seek --vm: every disk of the VM on this SR, in device order; the others skipped', async () => {
      const { code, doc } = await cliJson('seek', '--path', dir, '--vm', vm, '--at', '2026-11-20T03:30:00Z', ...xapiArgs());
      expect(code).toBe(0);
      expect(doc.vm).toEqual({ uuid: vm, name_label: 'web', is_a_snapshot: false });
      const disks = doc.disks as Json[];
      expect(disks.map((d) => [d.userdevice, d.vdi, d.snapshot?.id ?? null, d.skipped])).toEqual([
        ['0', disk.id, snaps[2]!.id, null],
        ['1', clone.id, snaps[1]!.id, null],
        ['2', elsewhere, null, expect.stringMatching(/^on SR [0-9a-f-]+, not this one$/)],
        ['3', null, null, 'empty CD drive'],
      ]);
      const human = await cli('seek', '--path', dir, '--vm', vm, '--at', '2026-11-20T03:30:00Z', ...xapiArgs());
      expect(human.code).toBe(0);
      expect(human.stdout.split('\n')[0]).toBe(`VM ${vm} "web" at 2026-11-20T03:30:00.000Z`);
      expect(lineOf(human.stdout, clone.id)).toMatch(/"snap 2" \(before the disk was cloned\)$/);
    });

    test('seek --vm: a VM xapi does not know, a wrong password', async () => {
      const r = await cli('seek', '--path', dir, '--vm', randomUUID(), '--at', 'now', ...xapiArgs());
      expect(r.code).toBe(3);
      expect(r.stderr).toMatch(/xapi knows no VM/);
      const bad = await cli('seek', '--path', dir, '--vm', vm, '--at', 'now', '--xapi', sim!.url, '--user', 'nobody');
      expect(bad.code).toBe(3);
      expect(bad.stderr).toMatch(/xapi refused the login/);
    });

    test('check --xapi: VDIs missing on either side', async () => {
      const { code, doc } = await cliJson('check', '--path', dir, '--no-health', ...xapiArgs());
      expect(code).toBe(1);
      expect(doc.xapi).toEqual({
        where: sim!.url,
        sr_known: true,
        vdis_in_xapi: 7,
        visible_on_storage: 7,
        missing_on_storage: [ghost],
        unknown_to_xapi: [snaps[4]!.id],
      });
      expect(doc.findings).toEqual([
        { severity: 'error', code: 'missing-on-storage', object: null, vdi: ghost, message: expect.stringMatching(/xapi has VDI .* "ghost", but storage has no object for it/) },
        { severity: 'warning', code: 'unknown-to-xapi', object: snaps[4]!.id, vdi: snaps[4]!.id, message: expect.stringMatching(/an sr-scan introduces it/) },
      ]);
      const human = await cli('check', '--path', dir, '--no-health', ...xapiArgs());
      expect(human.stdout).toMatch(/^xapi \(http:\/\/127\.0\.0\.1:\d+\/\): 7 VDIs in xapi, 7 visible on storage; missing on storage: 1, unknown to xapi: 1$/m);
      expect(human.stdout).toMatch(/^result: 1 error, 1 warning$/m);
    });

    test('the CLI logs its session out', async () => {
      // The simulator writes its whole database to its state file before every answer.
      const sessions = async (): Promise<number> => {
        await c.call('VM.get_uuid', await c.call<string>('VM.get_by_uuid', vm));
        const state = JSON.parse(await readFile(sim!.state, 'utf8')) as { tables: { session: Record<string, unknown> } };
        return Object.keys(state.tables.session).length;
      };
      const before = await sessions();
      // The probe sees a session left behind...
      const s = await c.raw('session.login_with_password', ['root', 'x', '1.0', 'probe']);
      expect(await sessions()).toBe(before + 1);
      await c.raw('session.logout', [s]);
      expect(await sessions()).toBe(before);
      // ...and the CLI leaves none, whether it succeeds or fails after logging in.
      expect((await cli('check', '--path', dir, '--no-health', ...xapiArgs())).code).toBe(1);
      expect((await cli('seek', '--path', dir, '--vm', randomUUID(), '--at', 'now', ...xapiArgs())).code).toBe(3);
      expect(await sessions()).toBe(before);
    });
  });
});
