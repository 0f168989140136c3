// The flatsnap end-to-end flow, shared by the backends' e2e files: the built plugin
// (plugin/FlatSnapSR, `make build`) driven by the XAPI simulator exactly as xapi
// drives it, on real storage. Data goes through the attach result's `params` path
// (the direct datapath: no blktap here), like a dom0 user of the VDI.
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { execa } from 'execa';
import { existsSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import * as path from 'node:path';
import { decodeMethodResponse, encodeMethodCall, isStruct, type XmlRpcStruct } from '../../src/smapi/xmlrpc.js';
import { ApiFailure, Client, readSmLog, removeDir, ROOT, startSim, type SimProc } from './sim-helpers.js';

type Rec = Record<string, unknown>;
export const PLUGIN_DIR = path.join(ROOT, 'plugin');
export const PLUGIN = path.join(PLUGIN_DIR, 'FlatSnapSR');
export const MiB = 1 << 20;

/** The storage one flow runs on. */
export interface FlowStorage {
  /** device-config of the SR. */
  dc: Record<string, string>;
  /** ZFS-like (snapshots depend on their volume) or reflink-like (independent files). */
  dependent: boolean;
  /** Names of the storage objects of the SR (images, datasets, snapshots), marker/root excluded. */
  objects(): Promise<string[]>;
  /** Whether the SR's root (directory marker, root dataset) exists. */
  rootExists(): Promise<boolean>;
}

/** 64 KiB of a byte pattern derived from `tag`. */
export function pattern(tag: string): Buffer {
  const b = Buffer.alloc(64 * 1024);
  for (let i = 0; i < b.length; i++) b[i] = (tag.charCodeAt(i % tag.length) + i) & 0xff;
  return b;
}

class Session {
  sim: SimProc | undefined;
  c!: Client;
  host!: string;
  sr!: string;
  srUuid!: string;

  constructor(readonly storage: () => FlowStorage) {}

  async start(extraArgs: string[] = []): Promise<void> {
    this.sim = await startSim({ smDir: PLUGIN_DIR, extraArgs });
    this.c = await new Client(this.sim.url).login();
    this.host = (await this.c.call<string[]>('host.get_all'))[0]!;
  }

  async stop(): Promise<void> {
    if (!this.sim) return;
    await this.sim.stop();
    removeDir(this.sim.dir);
    this.sim = undefined;
  }

  smCmds(from: number): string[] {
    return readSmLog(this.sim!.smLog)
      .slice(from)
      .map((e) => e.cmd);
  }

  smCount(): number {
    return readSmLog(this.sim!.smLog).length;
  }

  /** The plugin's own vdi_attach (what xapi's dom0 attach runs): the params path. */
  async attachPath(vdi: string): Promise<string> {
    const rec = await this.c.call<Rec>('VDI.get_record', vdi);
    const req = encodeMethodCall('vdi_attach', [
      {
        host_ref: this.host,
        command: 'vdi_attach',
        args: ['true'],
        device_config: { SRmaster: 'true', ...this.storage().dc },
        session_ref: 'OpaqueRef:unused-by-attach',
        sr_ref: this.sr,
        sr_uuid: this.srUuid,
        vdi_ref: vdi,
        vdi_location: rec.location as string,
        vdi_uuid: rec.uuid as string,
      },
    ]);
    const r = await execa(PLUGIN, [req], { env: { PATH: '/sbin:/usr/sbin:/bin:/usr/bin', ORIGINATOR: 'SM' }, extendEnv: false, reject: false });
    expect(r.exitCode).toBe(0);
    const res = decodeMethodResponse(r.stdout);
    if (!res.ok) throw new Error(`vdi_attach fault ${res.faultCode}: ${res.faultString}`);
    const v = res.value as XmlRpcStruct;
    expect(isStruct(v)).toBe(true);
    expect(v.params_nbd).toBe('');
    return v.params as string;
  }

  async writeAt(vdi: string, offset: number, data: Buffer): Promise<void> {
    const fh = await open(await this.attachPath(vdi), 'r+');
    try {
      await fh.write(data, 0, data.length, offset);
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  async readAt(vdi: string, offset: number, length = 64 * 1024): Promise<Buffer> {
    const fh = await open(await this.attachPath(vdi), 'r');
    try {
      const b = Buffer.alloc(length);
      await fh.read(b, 0, length, offset);
      return b;
    } finally {
      await fh.close();
    }
  }

  async vdisOfSr(): Promise<Map<string, Rec>> {
    const all = await this.c.call<Record<string, Rec>>('VDI.get_all_records_where', `field "SR" = "${this.sr}"`);
    return new Map(Object.values(all).map((r) => [r.uuid as string, r]));
  }

  uuidOf(ref: string): Promise<string> {
    return this.c.call<string>('VDI.get_uuid', ref);
  }

  async diskOf(vm: string): Promise<string> {
    const vbd = (await this.c.call<string[]>('VM.get_VBDs', vm))[0]!;
    return this.c.call<string>('VBD.get_VDI', vbd);
  }

  async createSr(): Promise<void> {
    this.sr = await this.c.callAsync<string>('SR.create', this.host, this.storage().dc, '0', 'flatsnap-e2e', '', 'flatsnap', 'user', false, {});
    this.srUuid = await this.c.call<string>('SR.get_uuid', this.sr);
  }

  async createVdi(name: string, size: number, otherConfig: Record<string, string> = {}): Promise<string> {
    return this.c.callAsync<string>('VDI.create', {
      name_label: name,
      name_description: `the ${name}`,
      SR: this.sr,
      virtual_size: String(size),
      type: 'user',
      sharable: false,
      read_only: false,
      other_config: otherConfig,
      xenstore_data: {},
      sm_config: {},
      tags: [],
    });
  }

  async createVm(disk: string): Promise<string> {
    const mem = String(4 * MiB);
    const vm = await this.c.call<string>('VM.create', { name_label: 'vm', memory_static_max: mem, memory_dynamic_max: mem, memory_dynamic_min: mem, memory_static_min: mem });
    await this.c.call('VBD.create', { VM: vm, VDI: disk, userdevice: '0', bootable: true, mode: 'RW', type: 'Disk', empty: false, other_config: {} });
    return vm;
  }
}

/**
 * The whole lifecycle on one SR: create, write, snapshot, clone, VM.snapshot + classic
 * VM.revert, resize, scan fixed point, SR introduced into a fresh xapi, delete everything,
 * destroy. `storage()` is called after the caller's beforeAll has set storage up.
 */
export function lifecycleFlow(storage: () => FlowStorage): void {
  const s = new Session(storage);
  const same = (a: Buffer, b: Buffer) => expect(a.equals(b)).toBe(true);
  let disk: string;
  let snap: string;
  let clone: string;

  beforeAll(async () => {
    if (!existsSync(PLUGIN)) throw new Error(`${PLUGIN} is missing: run make build first`);
    await s.start();
    // Keep xapi's background scan out of the way of the assertions on scans.
    await s.c.call('host.add_to_other_config', s.host, 'auto-scan-interval', '3600');
  }, 120_000);

  afterAll(async () => {
    await s.stop();
  });

  it('sr-create makes and plugs a flatsnap SR', async () => {
    await s.createSr();
    const rec = await s.c.call<Rec>('SR.get_record', s.sr);
    expect(rec.type).toBe('flatsnap');
    expect(Number(rec.physical_size)).toBeGreaterThan(100 * MiB);
    const pbd = (await s.c.call<string[]>('SR.get_PBDs', s.sr))[0]!;
    expect(await s.c.call('PBD.get_currently_attached', pbd)).toBe(true);
    expect(await s.c.call('PBD.get_device_config', pbd)).toEqual(storage().dc);
    expect(await storage().rootExists()).toBe(true);
    const sm = Object.values(await s.c.call<Record<string, Rec>>('SM.get_all_records')).find((x) => x.type === 'flatsnap')!;
    expect(Object.keys(sm.features as Rec)).toEqual(expect.arrayContaining(['VDI_SNAPSHOT', 'VDI_CLONE', 'VDI_REVERT', 'SR_PROBE', 'THIN_PROVISIONING']));
    expect(Object.keys(sm.features as Rec)).not.toContain('VDI_ATTACH_OFFLINE');
  });

  it('vdi-create makes a thin VDI; a pattern written through the attach path reads back', async () => {
    disk = await s.createVdi('disk0', 8 * MiB, { owner: 'me' });
    const rec = await s.c.call<Rec>('VDI.get_record', disk);
    expect(rec.location).toBe(rec.uuid);
    expect(Number(rec.virtual_size)).toBeGreaterThanOrEqual(8 * MiB);
    expect(Number(rec.physical_utilisation)).toBeLessThan(MiB); // thin
    expect((rec.sm_config as Rec)['flatsnap-object']).toBe(rec.uuid);
    await s.writeAt(disk, 0, pattern('A'));
    await s.writeAt(disk, 5 * MiB, pattern('A2'));
    same(await s.readAt(disk, 0), pattern('A'));
  });

  it('vdi-snapshot keeps the old content while the disk is overwritten', async () => {
    snap = await s.c.callAsync<string>('VDI.snapshot', disk, {});
    const rec = await s.c.call<Rec>('VDI.get_record', snap);
    expect(rec).toMatchObject({ is_a_snapshot: true, snapshot_of: disk, read_only: true, name_label: 'disk0' });
    expect(rec.other_config).toEqual({ owner: 'me' }); // xapi copies the source's map
    await s.writeAt(disk, 0, pattern('B'));
    same(await s.readAt(disk, 0), pattern('B'));
    same(await s.readAt(snap, 0), pattern('A'));
    same(await s.readAt(snap, 5 * MiB), pattern('A2'));
  });

  it('vdi-clone of the snapshot is writable and has the old pattern', async () => {
    clone = await s.c.callAsync<string>('VDI.clone', snap, {});
    expect(await s.c.call<Rec>('VDI.get_record', clone)).toMatchObject({ is_a_snapshot: false, read_only: false });
    same(await s.readAt(clone, 0), pattern('A'));
    await s.writeAt(clone, 0, pattern('C'));
    same(await s.readAt(snap, 0), pattern('A'));
    // a scan publishes each VDI's own lineage keys (xapi copied the source's map over them)
    await s.c.callAsync('SR.scan', s.sr);
    const oc = (await s.c.call<Rec>('VDI.get_record', clone)).other_config as Rec;
    expect(oc).toMatchObject({ owner: 'me', 'flatsnap-vdi': await s.uuidOf(clone), 'flatsnap-parent': await s.uuidOf(snap) });
  });

  it('VM.snapshot then the classic VM.revert (delete, then clone) brings the data back', async () => {
    const vm = await s.createVm(disk);
    const vmSnap = await s.c.callAsync<string>('VM.snapshot', vm, 'before');
    const snapDisk = await s.diskOf(vmSnap);
    await s.writeAt(disk, 0, pattern('D'));
    const oldDiskUuid = await s.uuidOf(disk);
    const n = s.smCount();
    await s.c.callAsync('VM.revert', vmSnap);
    // (xapi's background scan may run in between: the SR is dirty after a snapshot)
    const cmds = s.smCmds(n).filter((cmd) => cmd !== 'sr_scan' && cmd !== 'sr_update');
    expect(cmds.slice(0, 3)).toEqual(['vdi_delete', 'vdi_clone', 'vdi_update']);
    const newDisk = await s.diskOf(vm);
    expect(newDisk).not.toBe(disk);
    await expect(s.c.call('VDI.get_record', disk)).rejects.toBeInstanceOf(ApiFailure);
    same(await s.readAt(newDisk, 0), pattern('B'));
    // every snapshot of the deleted disk still reads, and is re-pointed to the new disk
    same(await s.readAt(snap, 0), pattern('A'));
    same(await s.readAt(snapDisk, 0), pattern('B'));
    expect(await s.c.call('VDI.get_snapshot_of', snapDisk)).toBe(newDisk);
    const left = await storage().objects();
    // reflink: the deleted disk's file is gone; ZFS: its dataset stays (hidden) while its snapshots need it
    expect(left.some((n) => n.includes(oldDiskUuid))).toBe(storage().dependent);
    disk = newDisk;
  });

  it('vdi-resize grows (and refuses to shrink)', async () => {
    await s.c.callAsync('VDI.resize', clone, String(16 * MiB));
    expect(Number(await s.c.call('VDI.get_virtual_size', clone))).toBeGreaterThanOrEqual(16 * MiB);
    const p = await s.attachPath(clone);
    if (statSync(p).isFile()) expect(statSync(p).size).toBeGreaterThanOrEqual(16 * MiB);
    same(await s.readAt(clone, 0), pattern('C'));
    const e = (await s.c.callAsync('VDI.resize', clone, String(4 * MiB)).catch((x: unknown) => x)) as ApiFailure;
    expect(e).toBeInstanceOf(ApiFailure);
    expect(e.code).toBe('SR_BACKEND_FAILURE_79');
    expect(Number(await s.c.call('VDI.get_virtual_size', clone))).toBeGreaterThanOrEqual(16 * MiB);
  });

  it('sr-scan twice: the second changes nothing (no retry, no writes)', async () => {
    await s.c.callAsync('SR.scan', s.sr);
    const before = await s.vdisOfSr();
    const n = s.smCount();
    await s.c.callAsync('SR.scan', s.sr);
    expect(s.smCmds(n)).toEqual(['sr_scan', 'sr_update']);
    const after = await s.vdisOfSr();
    expect(after).toEqual(before);
    expect(Number(await s.c.call('SR.get_virtual_allocation', s.sr))).toBe([...after.values()].reduce((sum, r) => sum + Number(r.virtual_size), 0));
  });

  it('sr-introduce + scan into a fresh xapi brings every VDI back with names and lineage', async () => {
    await s.c.call('VDI.set_name_label', clone, 'renamed clone'); // -> vdi_update stores it
    await s.c.callAsync('SR.scan', s.sr);
    const want = await s.vdisOfSr();
    const uuidByRef = new Map<string, string>();
    for (const r of want.values()) uuidByRef.set(await s.c.call<string>('VDI.get_by_uuid', r.uuid as string), r.uuid as string);
    const pbd = (await s.c.call<string[]>('SR.get_PBDs', s.sr))[0]!;
    await s.c.callAsync('PBD.unplug', pbd);
    await s.stop();

    await s.start();
    await s.c.call('host.add_to_other_config', s.host, 'auto-scan-interval', '3600');
    s.sr = await s.c.call<string>('SR.introduce', s.srUuid, 'restored', '', 'flatsnap', 'user', false, {});
    const pbd2 = await s.c.call<string>('PBD.create', { host: s.host, SR: s.sr, device_config: storage().dc, other_config: {} });
    await s.c.callAsync('PBD.plug', pbd2);
    await s.c.callAsync('SR.scan', s.sr);
    const got = await s.vdisOfSr();
    expect([...got.keys()].sort()).toEqual([...want.keys()].sort());
    const refToUuid = new Map<string, string>();
    for (const r of got.values()) refToUuid.set(await s.c.call<string>('VDI.get_by_uuid', r.uuid as string), r.uuid as string);
    const lineage = (m: unknown) => Object.fromEntries(Object.entries(m as Record<string, string>).filter(([k]) => k.startsWith('flatsnap-')));
    for (const [uuid, w] of want) {
      const g = got.get(uuid)!;
      expect({ uuid, name: g.name_label, description: g.name_description, snapshot: g.is_a_snapshot, ro: g.read_only, size: g.virtual_size }).toEqual({
        uuid,
        name: w.name_label,
        description: w.name_description,
        snapshot: w.is_a_snapshot,
        ro: w.read_only,
        size: w.virtual_size,
      });
      expect(g.location).toBe(uuid);
      expect(refToUuid.get(g.snapshot_of as string) ?? '').toBe(uuidByRef.get(w.snapshot_of as string) ?? '');
      expect(lineage(g.other_config)).toEqual(lineage(w.other_config));
    }
    // data survived too
    const renamed = [...got.values()].find((r) => r.name_label === 'renamed clone')!;
    same(await s.readAt(await s.c.call<string>('VDI.get_by_uuid', renamed.uuid as string), 0), pattern('C'));
    // and a second scan is still a fixed point
    const n = s.smCount();
    await s.c.callAsync('SR.scan', s.sr);
    expect(s.smCmds(n)).toEqual(['sr_scan', 'sr_update']);
  });

  it('deleting everything leaves the SR empty; sr-destroy then removes it', async () => {
    const all = await s.vdisOfSr();
    const pbd = (await s.c.call<string[]>('SR.get_PBDs', s.sr))[0]!;
    await s.c.callAsync('PBD.unplug', pbd);
    const e = (await s.c.callAsync('SR.destroy', s.sr).catch((x: unknown) => x)) as ApiFailure;
    expect(e).toBeInstanceOf(ApiFailure);
    expect(e.code).toBe('SR_NOT_EMPTY');
    expect((await s.vdisOfSr()).size).toBe(all.size);
    await s.c.callAsync('PBD.plug', pbd);
    for (const r of all.values()) await s.c.callAsync('VDI.destroy', await s.c.call<string>('VDI.get_by_uuid', r.uuid as string));
    expect((await s.vdisOfSr()).size).toBe(0);
    expect(await storage().objects()).toEqual([]);
    await s.c.callAsync('SR.scan', s.sr);
    expect((await s.vdisOfSr()).size).toBe(0);
    expect(Number(await s.c.call('SR.get_virtual_allocation', s.sr))).toBe(0);
    await s.c.callAsync('PBD.unplug', pbd);
    await s.c.callAsync('SR.destroy', s.sr);
    expect(await storage().rootExists()).toBe(false);
  });
}

/**
 * xapi >= 26.16: VM.revert tries VDI.revert first; flatsnap advertises VDI_REVERT, so the
 * VM keeps its disk (same ref and uuid) and every snapshot, older and newer, survives.
 */
export function vdiRevertFlow(storage: () => FlowStorage): void {
  const s = new Session(storage);
  const same = (a: Buffer, b: Buffer) => expect(a.equals(b)).toBe(true);

  beforeAll(async () => {
    if (!existsSync(PLUGIN)) throw new Error(`${PLUGIN} is missing: run make build first`);
    await s.start(['--revert-flow', 'vdi-revert']);
  }, 120_000);

  afterAll(async () => {
    await s.stop();
  });

  it('reverts in place to an older snapshot, keeping the newer one; then to the newest', async () => {
    await s.createSr();
    const disk = await s.createVdi('d', 4 * MiB);
    const vm = await s.createVm(disk);
    await s.writeAt(disk, 0, pattern('old'));
    const s1 = await s.c.callAsync<string>('VM.snapshot', vm, 's1');
    await s.writeAt(disk, 0, pattern('new'));
    const s2 = await s.c.callAsync<string>('VM.snapshot', vm, 's2');
    await s.writeAt(disk, 0, pattern('newest'));
    let n = s.smCount();
    await s.c.callAsync('VM.revert', s1);
    expect(s.smCmds(n)).toContain('vdi_revert');
    expect(s.smCmds(n)).not.toContain('vdi_delete');
    expect(await s.diskOf(vm)).toBe(disk);
    same(await s.readAt(disk, 0), pattern('old'));
    const s2disk = await s.diskOf(s2);
    same(await s.readAt(s2disk, 0), pattern('new'));
    same(await s.readAt(await s.diskOf(s1), 0), pattern('old'));

    await s.writeAt(disk, 0, pattern('again'));
    n = s.smCount();
    await s.c.callAsync('VM.revert', s2);
    expect(s.smCmds(n)).toContain('vdi_revert');
    same(await s.readAt(disk, 0), pattern('new'));

    // the row follows the object behind the VDI; a scan agrees at once
    const n2 = s.smCount();
    await s.c.callAsync('SR.scan', s.sr);
    const once = await s.c.call<Rec>('VDI.get_record', disk);
    await s.c.callAsync('SR.scan', s.sr);
    expect(s.smCmds(n2)).toEqual(['sr_scan', 'sr_update', 'sr_scan', 'sr_update']);
    expect(await s.c.call<Rec>('VDI.get_record', disk)).toEqual(once);
    expect((once.other_config as Rec)['flatsnap-object']).toBe((once.sm_config as Rec)['flatsnap-object']);
  });
}

