// A shared flatsnap SR (shared=true) on two simulated hosts over ONE real XFS
// (reflink) loop filesystem: the built plugin under the XAPI simulator with
// --hosts 2, each host with its own SM lock directory, so only flatsnap's
// cross-host lock (flock on the SR marker, src/sr/cluster-lock.ts) keeps them apart.
//
// - SR.create: one PBD per host, sr_attach on each with its own SRmaster.
// - The driver refuses every master-only command on the slave and changes nothing.
// - A VM started on the slave attaches there; a snapshot taken on the master then
//   attaches on the slave and reads the snapshot's bytes.
// - The lock really is taken: a held exclusive lock delays the slave's attach, a held
//   shared lock delays the master's snapshot.
// - Concurrency: the master snapshots, clones, reverts (swap) and deletes in a loop
//   while the slave attaches and hashes; every hash is what it must be.
// Needs root, losetup and mkfs.xfs: skipped locally without them, failing under CI=true.
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir, open, readFile } from 'node:fs/promises';
import * as path from 'node:path';
import { ReflinkBackend } from '../../src/backends/reflink/backend.js';
import { decodeMethodResponse, encodeMethodCall, isStruct, type XmlRpcValue } from '../../src/smapi/xmlrpc.js';
import { withSrDirLock } from '../../src/sr/shared-sr.js';
import { createLoopFs, describeLoopFs, type LoopFs } from '../integration/harness/loopfs.js';
import { Client, readSmLog, removeDir, ROOT, startSim, type SimProc, type SmLogEntry } from './sim-helpers.js';

type Rec = Record<string, unknown>;
const PLUGIN_DIR = path.join(ROOT, 'plugin');
const PLUGIN = path.join(PLUGIN_DIR, 'FlatSnapSR');
const MiB = 1 << 20;
const SIZE = 8 * MiB;
const MARKER = '.flatsnap-sr.json';

function pattern(tag: string): Buffer {
  const b = Buffer.alloc(64 * 1024);
  for (let i = 0; i < b.length; i++) b[i] = (tag.charCodeAt(i % tag.length) * 7 + i) & 0xff;
  return b;
}

const sha = async (file: string): Promise<string> => createHash('sha256').update(await readFile(file)).digest('hex');

function member(e: SmLogEntry, name: string): string | undefined {
  return new RegExp(`<member><name>${name}</name><value>([^<]*)</value>`).exec(e.argv1)?.[1];
}

type SmResult = { ok: true; value: XmlRpcValue } | { ok: false; faultCode: number; faultString: string };

describeLoopFs('a shared flatsnap SR on two simulated hosts over one XFS filesystem', ['xfs'], () => {
  let fs: LoopFs | undefined;
  let dir = '';
  let sim: SimProc | undefined;
  let c: Client;
  let master = '';
  let slave = '';
  const uuids = new Map<string, string>(); // host ref -> uuid
  let sr = '';
  let srUuid = '';
  let base = '';
  let snap0 = '';
  let snap1 = '';
  let h0 = '';
  let h1 = '';
  let baseHash = '';

  beforeAll(async () => {
    fs = await createLoopFs('xfs', { sizeMiB: 512 });
    dir = path.join(fs.mountpoint, 'shared');
    await mkdir(dir);
    sim = await startSim({ smDir: PLUGIN_DIR, extraArgs: ['--hosts', '2', '--revert-flow', 'vdi-revert'] });
    c = await new Client(sim.url).login();
    master = await c.call<string>('pool.get_master', (await c.call<string[]>('pool.get_all'))[0]!);
    slave = (await c.call<string[]>('host.get_all')).find((h) => h !== master)!;
    for (const h of [master, slave]) uuids.set(h, await c.call<string>('host.get_uuid', h));
  }, 120_000);

  afterAll(async () => {
    if (sim) {
      await sim.stop();
      removeDir(sim.dir);
    }
    await fs?.teardown();
  });

  const lockDir = (host: string) => path.join(sim!.dir, 'locks', uuids.get(host)!);

  /** Runs the plugin as xapi would on `host` (its SRmaster, its lock directory). */
  async function smAs(host: string, command: string, o: { vdi?: string; args?: string[] } = {}): Promise<SmResult> {
    const req: Rec = {
      host_ref: host,
      command,
      args: o.args ?? [],
      device_config: { SRmaster: String(host === master), path: dir },
      session_ref: c.session,
      sr_ref: sr,
      sr_uuid: srUuid,
    };
    if (o.vdi !== undefined) {
      const rec = await c.call<Rec>('VDI.get_record', o.vdi);
      Object.assign(req, { vdi_ref: o.vdi, vdi_location: rec.location, vdi_uuid: rec.uuid });
    }
    const xml = encodeMethodCall(command, [req as XmlRpcValue]);
    const env = { PATH: '/sbin:/usr/sbin:/bin:/usr/bin', ORIGINATOR: 'SM', FLATSNAP_XAPI_URL: sim!.url, FLATSNAP_LOCK_DIR: lockDir(host) };
    const r = await execa(PLUGIN, [xml], { env, extendEnv: false, reject: false });
    expect(r.exitCode).toBe(0);
    return decodeMethodResponse(r.stdout);
  }

  /** vdi_attach on `host`: the image path (direct datapath). */
  async function attachAs(host: string, vdi: string, writable = false): Promise<string> {
    const r = await smAs(host, 'vdi_attach', { vdi, args: [String(writable)] });
    if (!r.ok) throw new Error(`vdi_attach on ${uuids.get(host)} failed: ${r.faultCode} ${r.faultString}`);
    expect(isStruct(r.value)).toBe(true);
    return (r.value as Rec).params as string;
  }

  async function write(vdi: string, tag: string): Promise<string> {
    const p = await attachAs(master, vdi, true);
    const fh = await open(p, 'r+');
    try {
      await fh.write(pattern(tag), 0, 64 * 1024, 0);
      await fh.sync();
    } finally {
      await fh.close();
    }
    return sha(p);
  }

  const newDisk = (name: string) =>
    c.callAsync<string>('VDI.create', {
      name_label: name, name_description: '', SR: sr, virtual_size: String(SIZE), type: 'user',
      sharable: false, read_only: false, other_config: {}, xenstore_data: {}, sm_config: {}, tags: [],
    });

  async function vmWith(name: string, vdi: string, mode: 'RW' | 'RO'): Promise<string> {
    const vm = await c.call<string>('VM.create', { name_label: name });
    await c.call('VBD.create', { VM: vm, VDI: vdi, userdevice: '0', bootable: true, mode, type: 'Disk', empty: false, other_config: {} });
    return vm;
  }

  /** [cmd, host uuid, SRmaster, exit code] of the plugin runs since `from`. */
  const smSince = (from: number) =>
    readSmLog(sim!.smLog)
      .slice(from)
      .map((e) => [e.cmd, uuids.get(member(e, 'host_ref') ?? ''), member(e, 'SRmaster'), e.code] as const);

  it('SR.create shared=true: a PBD per host, sr_attach on each with its own SRmaster and its own SM lock', async () => {
    const n = readSmLog(sim!.smLog).length;
    sr = await c.callAsync<string>('SR.create', master, { path: dir }, '0', 'shared flatsnap', '', 'flatsnap', 'user', true, {});
    srUuid = await c.call<string>('SR.get_uuid', sr);
    const pbds = await Promise.all((await c.call<string[]>('SR.get_PBDs', sr)).map((p) => c.call<Rec>('PBD.get_record', p)));
    expect(pbds.map((p) => [p.host === master ? 'master' : 'slave', p.currently_attached, p.device_config]).sort()).toEqual([
      ['master', true, { path: dir }],
      ['slave', true, { path: dir }],
    ]);
    const attaches = smSince(n).filter(([cmd]) => cmd === 'sr_attach');
    expect(attaches).toEqual([
      ['sr_attach', uuids.get(master), 'true', 0],
      ['sr_attach', uuids.get(slave), 'false', 0],
    ]);
    // Each simulated host took the SM SR lock in its own /var/lock/sm.
    expect(existsSync(path.join(lockDir(master), srUuid, 'sr'))).toBe(true);
    expect(existsSync(path.join(lockDir(slave), srUuid, 'sr'))).toBe(true);
  });

  it('the driver refuses every master-only command on the slave, and storage is unchanged', async () => {
    base = await newDisk('base');
    h0 = await write(base, 'P0');
    const before = readdirSync(dir).sort();
    const refused: Array<[string, number, boolean]> = [];
    const tries: Array<[string, { vdi?: string; args?: string[] }]> = [
      ['vdi_create', { args: [String(SIZE), 'x', '', '', 'false', '', '', 'false'] }],
      ['vdi_snapshot', { vdi: base }],
      ['vdi_clone', { vdi: base }],
      ['vdi_delete', { vdi: base }],
      ['vdi_resize', { vdi: base, args: [String(2 * SIZE)] }],
      ['vdi_revert', { vdi: base, args: [base] }],
      ['sr_scan', {}],
    ];
    for (const [cmd, o] of tries) {
      const r = await smAs(slave, cmd, o);
      refused.push([cmd, r.ok ? 0 : r.faultCode, !r.ok && /runs on the SR master only/.test(r.faultString)]);
    }
    expect(refused).toEqual(tries.map(([cmd]) => [cmd, 202, true]));
    expect(readdirSync(dir).sort()).toEqual(before);
    expect(await sha(await attachAs(slave, base))).toBe(h0);
  });

  it('a VM started on the slave attaches there; a snapshot taken on the master then attaches on the slave', async () => {
    const vm1 = await vmWith('on-slave', base, 'RW');
    let n = readSmLog(sim!.smLog).length;
    await c.callAsync('VM.start_on', vm1, slave, false, false);
    expect(await c.call('VM.get_resident_on', vm1)).toBe(slave);
    expect(smSince(n).filter(([cmd]) => cmd === 'vdi_attach' || cmd === 'vdi_activate')).toEqual([
      ['vdi_attach', uuids.get(slave), 'false', 0],
      ['vdi_activate', uuids.get(slave), 'false', 0],
    ]);

    n = readSmLog(sim!.smLog).length;
    snap0 = await c.callAsync<string>('VDI.snapshot', base, {});
    expect(smSince(n).filter(([cmd]) => cmd === 'vdi_snapshot')).toEqual([['vdi_snapshot', uuids.get(master), 'true', 0]]);

    // The slave learns of the snapshot from the database and the files only.
    const vm2 = await vmWith('snapshot-reader', snap0, 'RO');
    n = readSmLog(sim!.smLog).length;
    await c.callAsync('VM.start_on', vm2, slave, false, false);
    const snapUuid = await c.call<string>('VDI.get_uuid', snap0);
    const attach = readSmLog(sim!.smLog)
      .slice(n)
      .find((e) => e.cmd === 'vdi_attach');
    expect(attach && [member(attach, 'vdi_uuid'), uuids.get(member(attach, 'host_ref')!), attach.code]).toEqual([snapUuid, uuids.get(slave), 0]);
    expect(await sha(await attachAs(slave, snap0))).toBe(h0);
    await c.callAsync('VM.hard_shutdown', vm2);
    await c.callAsync('VM.hard_shutdown', vm1);
  });

  it('the cross-host lock is really taken: an exclusive holder delays the slave’s attach, a shared one the master’s snapshot', async () => {
    const marker = path.join(dir, MARKER);
    // Returned wrapped: an execa process is a thenable, which an async function would await.
    const hold = async (flag: '-x' | '-s') => {
      const proc = execa('/usr/bin/flock', [flag, marker, '/bin/sh', '-c', 'echo held; cat >/dev/null'], { stdin: 'pipe' });
      await new Promise<void>((resolve, reject) => {
        proc.stdout!.once('data', () => resolve());
        proc.catch(reject);
      });
      return { proc };
    };
    let { proc: holder } = await hold('-x');
    let t0 = Date.now();
    setTimeout(() => holder.stdin!.end(), 800);
    expect(await sha(await attachAs(slave, snap0))).toBe(h0);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(700);
    await holder;

    ({ proc: holder } = await hold('-s'));
    t0 = Date.now();
    setTimeout(() => holder.stdin!.end(), 800);
    const s = await c.callAsync<string>('VDI.snapshot', base, {});
    expect(Date.now() - t0).toBeGreaterThanOrEqual(700);
    await holder;
    await c.callAsync('VDI.destroy', s);
  });

  it('master snapshots, clones, reverts and deletes in a loop while the slave attaches and reads: every hash matches', async () => {
    h1 = await write(base, 'P1');
    snap1 = await c.callAsync<string>('VDI.snapshot', base, {});
    const expected = new Map<string, string>([
      [snap0, h0],
      [snap1, h1],
    ]);
    const reader = await vmWith('loop-reader', snap1, 'RO');
    let state = h1;
    let done = false;
    const masterLog: string[] = [];

    const masterLoop = async () => {
      try {
        const clones: string[] = [];
        for (let i = 0; i < 5; i++) {
          const s = await c.callAsync<string>('VDI.snapshot', base, {});
          expected.set(s, state);
          const cl = await c.callAsync<string>('VDI.clone', s, {});
          clones.push(cl);
          // revert: clone of the snapshot + swap of the VDI onto it (swap.ts)
          const to = state === h1 ? snap0 : snap1;
          await c.callAsync('VDI.revert', to);
          state = expected.get(to)!;
          if (clones.length > 1) await c.callAsync('VDI.destroy', clones.shift()!);
          masterLog.push(`round ${i} done`);
        }
        for (const cl of clones) await c.callAsync('VDI.destroy', cl);
      } finally {
        done = true;
      }
    };

    const reads: Array<[string, boolean]> = [];
    const slaveLoop = async () => {
      while (!done) {
        for (const v of [base, ...expected.keys()]) {
          const h = await sha(await attachAs(slave, v));
          const ok = v === base ? h === h0 || h === h1 : h === expected.get(v);
          reads.push([v === base ? 'base' : v, ok]);
        }
        await c.callAsync('VM.start_on', reader, slave, false, false);
        await c.callAsync('VM.hard_shutdown', reader);
      }
    };

    await Promise.all([masterLoop(), slaveLoop()]);
    expect(masterLog).toHaveLength(5);
    expect(reads.filter(([, ok]) => !ok)).toEqual([]);
    expect(reads.length).toBeGreaterThanOrEqual(10);
    expect(await sha(await attachAs(slave, base))).toBe(state);
    baseHash = state;
    // Nothing half-done left behind: no swap intent, no temp file.
    expect(readdirSync(dir).filter((n) => n.startsWith('.flatsnap-swap.') || n.startsWith('.flatsnap-tmp.'))).toEqual([]);

    // After a scan on the master, the slave attaches every VDI in the database, with the right bytes.
    await c.callAsync('SR.scan', sr);
    const vdis = await c.call<Record<string, Rec>>('VDI.get_all_records_where', `field "SR" = "${sr}"`);
    for (const ref of Object.keys(vdis)) {
      const h = await sha(await attachAs(slave, ref));
      if (expected.has(ref)) expect([ref, h]).toEqual([ref, expected.get(ref)]);
    }
    await c.call('VM.destroy', reader).catch(() => undefined);
  }, 300_000);

  it('a slave never reads a half-done swap: its attach waits for the master’s, and changes nothing meanwhile', async () => {
    // The master's side, in this process: a revert's swap-vdi (swap.ts) under the
    // exclusive cross-host lock, paused right after the new image took the VDI's name
    // while its sidecar still describes the old one.
    const baseUuid = await c.call<string>('VDI.get_uuid', base);
    const target = baseHash === h0 ? snap1 : snap0;
    const targetUuid = await c.call<string>('VDI.get_uuid', target);
    const want = baseHash === h0 ? h1 : h0;
    let paused!: () => void;
    const isPaused = new Promise<void>((r) => (paused = r));
    let resume!: () => void;
    const resumed = new Promise<void>((r) => (resume = r));
    const backend = new ReflinkBackend(dir, {
      afterSwapStep: async (step) => {
        if (step !== 'rename-new') return;
        paused();
        await resumed;
      },
    });
    const swap = withSrDirLock(dir, 'exclusive', 'test revert', async () => {
      const inv = await backend.inventory();
      const from = inv.find((o) => o.vdi === baseUuid && o.kind === 'volume')!;
      const snap = inv.find((o) => o.vdi === targetUuid)!;
      const to = await backend.clone('99999999-9999-4999-8999-999999999999', snap);
      await backend.swapVdi(baseUuid, from, to);
      // The old volume is unbound now: gone, as a revert's plan would do.
      const old = (await backend.inventory()).find((o) => o.id === from.id)!;
      await backend.destroy(old);
    });
    await isPaused;
    expect(readdirSync(dir).filter((n) => n.startsWith('.flatsnap-swap.'))).toEqual([`.flatsnap-swap.${baseUuid}.json`]);

    let attached = false;
    const slaveAttach = attachAs(slave, base).then((p) => {
      attached = true;
      return p;
    });
    await new Promise((r) => setTimeout(r, 1000));
    expect(attached).toBe(false); // waiting for the lock, not reading the middle of the swap
    expect(readdirSync(dir).filter((n) => n.startsWith('.flatsnap-swap.'))).toEqual([`.flatsnap-swap.${baseUuid}.json`]);
    resume();
    await swap; // completes: nobody else touched the swap
    expect(await sha(await slaveAttach)).toBe(want);
    expect(readdirSync(dir).filter((n) => n.startsWith('.flatsnap-swap.'))).toEqual([]);
    baseHash = want;
  });

  it('the SR goes away cleanly: every VDI destroyed, both PBDs unplugged, SR.destroy', async () => {
    const vdis = await c.call<Record<string, Rec>>('VDI.get_all_records_where', `field "SR" = "${sr}"`);
    for (const ref of Object.keys(vdis)) await c.callAsync('VDI.destroy', ref);
    for (const pbd of await c.call<string[]>('SR.get_PBDs', sr)) await c.callAsync('PBD.unplug', pbd);
    await c.callAsync('SR.destroy', sr);
    expect(existsSync(path.join(dir, MARKER))).toBe(false);
    expect(readdirSync(dir)).toEqual([]);
  });
});
