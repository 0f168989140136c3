// The flatsnap end-to-end flows, shared by the backends' e2e files: the built plugin
// (plugin/FlatSnapSR, `make build`) driven by the XAPI simulator exactly as xapi
// drives it, on real storage, once through XenAPI calls and once through the `xe`
// command line (flatsnap-driver.ts). Data goes through the attach result's `params`
// path (the direct datapath: no blktap here), like a dom0 user of the VDI, and is
// checked by the SHA-256 of known patterns written into the disks.
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { execa } from 'execa';
import { createHash } from 'node:crypto';
import { existsSync, statSync } from 'node:fs';
import { open } from 'node:fs/promises';
import * as path from 'node:path';
import { decodeMethodResponse, encodeMethodCall, isStruct, type XmlRpcStruct } from '../../src/smapi/xmlrpc.js';
import { ApiDriver, type Driver, type DriverKind, failure, type VdiRow, XeDriver } from './flatsnap-driver.js';
import { Client, readSmLog, removeDir, ROOT, startSim, type SimProc } from './sim-helpers.js';

type Rec = Record<string, unknown>;
export const PLUGIN_DIR = path.join(ROOT, 'plugin');
export const PLUGIN = path.join(PLUGIN_DIR, 'FlatSnapSR');
export const MiB = 1 << 20;
export const DRIVERS: readonly DriverKind[] = ['xen-api', 'xe'];

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

const sha256 = (b: Buffer): string => createHash('sha256').update(b).digest('hex');

/** The flatsnap lineage keys of an other_config. */
const lineageKeys = (m: Record<string, string>): Record<string, string> => Object.fromEntries(Object.entries(m).filter(([k]) => k.startsWith('flatsnap-')));

class Session {
  sim: SimProc | undefined;
  /** Test plumbing (the data path, the simulator's settings); the flows go through `d`. */
  api!: Client;
  d!: Driver;
  sr = '';

  constructor(
    readonly storage: () => FlowStorage,
    readonly kind: DriverKind,
  ) {}

  async start(extraArgs: string[] = []): Promise<void> {
    this.sim = await startSim({ smDir: PLUGIN_DIR, extraArgs });
    this.api = await new Client(this.sim.url).login();
    this.d = this.kind === 'xe' ? new XeDriver(this.sim.port) : new ApiDriver(this.api);
    // Keep xapi's background scan out of the way of the assertions on scans.
    const host = (await this.api.call<string[]>('host.get_all'))[0]!;
    await this.api.call('host.add_to_other_config', host, 'auto-scan-interval', '3600');
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
    const ref = await this.api.call<string>('VDI.get_by_uuid', vdi);
    const rec = await this.api.call<Rec>('VDI.get_record', ref);
    const req = encodeMethodCall('vdi_attach', [
      {
        host_ref: (await this.api.call<string[]>('host.get_all'))[0]!,
        command: 'vdi_attach',
        args: ['true'],
        device_config: { SRmaster: 'true', ...this.storage().dc },
        session_ref: 'OpaqueRef:unused-by-attach',
        sr_ref: rec.SR as string,
        sr_uuid: await this.api.call<string>('SR.get_uuid', rec.SR as string),
        vdi_ref: ref,
        vdi_location: rec.location as string,
        vdi_uuid: vdi,
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

  async write(vdi: string, offset: number, tag: string): Promise<void> {
    const data = pattern(tag);
    const fh = await open(await this.attachPath(vdi), 'r+');
    try {
      await fh.write(data, 0, data.length, offset);
      await fh.sync();
    } finally {
      await fh.close();
    }
  }

  /** SHA-256 of the 64 KiB at `offset`. */
  async hashAt(vdi: string, offset = 0): Promise<string> {
    const fh = await open(await this.attachPath(vdi), 'r');
    try {
      const b = Buffer.alloc(64 * 1024);
      await fh.read(b, 0, b.length, offset);
      return sha256(b);
    } finally {
      await fh.close();
    }
  }

  /** The VDI holds pattern `tag` at `offset`. */
  async holds(vdi: string, tag: string, offset = 0): Promise<void> {
    expect({ vdi, offset, sha256: await this.hashAt(vdi, offset) }).toEqual({ vdi, offset, sha256: sha256(pattern(tag)) });
  }

  async pbd(): Promise<string> {
    return (await this.d.pbds(this.sr))[0]!.uuid;
  }

  async probeFinds(): Promise<boolean> {
    const xml = await this.d.srProbe('flatsnap', this.storage().dc);
    expect(xml).toMatch(/<SRlist>/);
    return this.sr !== '' && xml.includes(`<UUID>${this.sr}</UUID>`);
  }

  /** What a fresh introduce must give back: every VDI with its fields and lineage keys. */
  static shape(rows: Map<string, VdiRow>): Array<Record<string, unknown>> {
    return [...rows.values()]
      .map((r) => ({
        uuid: r.uuid,
        location: r.location,
        name: r.name_label,
        description: r.name_description,
        snapshot: r.is_a_snapshot,
        snapshotOf: r.snapshot_of,
        ro: r.read_only,
        size: r.virtual_size,
        lineage: lineageKeys(r.other_config),
      }))
      .sort((a, b) => a.uuid.localeCompare(b.uuid));
  }
}

function checkPlugin(): void {
  if (!existsSync(PLUGIN)) throw new Error(`${PLUGIN} is missing: run make build first`);
}

/**
 * The whole lifecycle on one SR through one driver: probe, create, write, snapshot,
 * clone, vdi-update's restamp, VM.snapshot + classic VM.revert, resize, forget +
 * introduce of a VDI, a new VM from a snapshot, snapshots with clones (tombstones), a
 * deleted VM whose snapshots remain, detach/attach, scan fixed point, sr-update,
 * sr-forget + sr-introduce (same xapi and a fresh one), delete everything, destroy.
 * `storage()` is called after the caller's beforeAll has set storage up.
 */
export function lifecycleFlow(storage: () => FlowStorage, kind: DriverKind): void {
  const s = new Session(storage, kind);
  let disk: string; // the VM's disk (replaced by the classic revert)
  let snap: string; // a snapshot of it
  let clone: string; // a clone of the snapshot
  let vm: string;
  let forClone: string; // a VM snapshot with a new VM made from it
  let fromSnapshot: string; // that new VM

  beforeAll(async () => {
    checkPlugin();
    await s.start();
  }, 120_000);

  afterAll(async () => {
    await s.stop();
  });

  it('sr-probe finds nothing; sr-create makes and plugs a flatsnap SR; sr-probe then finds it', async () => {
    expect(await s.probeFinds()).toBe(false);
    s.sr = await s.d.srCreate(storage().dc, 'flatsnap-e2e');
    const rec = await s.d.srRecord(s.sr);
    expect(rec.type).toBe('flatsnap');
    expect(rec.physical_size).toBeGreaterThan(100 * MiB);
    const pbds = await s.d.pbds(s.sr);
    expect(pbds).toEqual([{ uuid: expect.any(String), attached: true, device_config: storage().dc }]);
    expect(await storage().rootExists()).toBe(true);
    const features = await s.d.smFeatures('flatsnap');
    expect(features).toEqual(expect.arrayContaining(['VDI_SNAPSHOT', 'VDI_CLONE', 'VDI_REVERT', 'VDI_INTRODUCE', 'SR_PROBE', 'THIN_PROVISIONING']));
    expect(features).not.toContain('VDI_ATTACH_OFFLINE');
    expect(await s.probeFinds()).toBe(true);
  });

  it('vdi-create makes a thin VDI; a pattern written through the attach path reads back', async () => {
    disk = await s.d.vdiCreate(s.sr, 'disk0', 8 * MiB, { owner: 'me' });
    const rec = await s.d.vdiRecord(disk);
    expect(rec.location).toBe(disk);
    expect(rec.virtual_size).toBeGreaterThanOrEqual(8 * MiB);
    expect(rec.physical_utilisation).toBeLessThan(MiB); // thin
    expect(rec.sm_config['flatsnap-object']).toBe(disk);
    expect(rec.other_config).toMatchObject({ owner: 'me' });
    await s.write(disk, 0, 'A');
    await s.write(disk, 5 * MiB, 'A2');
    await s.holds(disk, 'A');
    await s.holds(disk, 'A2', 5 * MiB);
  });

  it('vdi-snapshot keeps the old content while the disk is overwritten', async () => {
    const src = await s.d.vdiRecord(disk);
    snap = await s.d.vdiSnapshot(disk);
    const rec = await s.d.vdiRecord(snap);
    expect(rec).toMatchObject({ is_a_snapshot: true, snapshot_of: disk, read_only: true, name_label: 'disk0' });
    expect(rec.other_config).toEqual(src.other_config); // xapi copies the source's map
    await s.write(disk, 0, 'B');
    await s.holds(disk, 'B');
    await s.holds(snap, 'A');
    await s.holds(snap, 'A2', 5 * MiB);
  });

  it('vdi-clone of the snapshot is writable and has the old pattern; a scan stamps its own lineage', async () => {
    clone = await s.d.vdiClone(snap, 'clone0');
    expect(await s.d.vdiRecord(clone)).toMatchObject({ is_a_snapshot: false, read_only: false, name_label: 'clone0' });
    await s.holds(clone, 'A');
    await s.write(clone, 0, 'C');
    await s.holds(snap, 'A');
    // a scan publishes each VDI's own lineage keys (xapi copied the source's map over them)
    await s.d.srScan(s.sr);
    expect((await s.d.vdiRecord(clone)).other_config).toMatchObject({ owner: 'me', 'flatsnap-vdi': clone, 'flatsnap-parent': snap });
  });

  it('vdi-update restamps the lineage keys in other-config, leaves the user keys, stores a rename', async () => {
    const want = (await s.d.vdiRecord(clone)).other_config;
    await s.d.vdiSetOtherConfig(clone, 'flatsnap-parent', 'bogus');
    await s.d.vdiRemoveOtherConfig(clone, 'flatsnap-vdi');
    await s.d.vdiSetOtherConfig(clone, 'note', 'mine');
    expect((await s.d.vdiRecord(clone)).other_config['flatsnap-parent']).toBe('bogus');
    let n = s.smCount();
    await s.d.vdiUpdate(clone);
    expect(s.smCmds(n)).toEqual(['vdi_update']);
    expect((await s.d.vdiRecord(clone)).other_config).toEqual({ ...want, note: 'mine' });
    // a rename goes through vdi_update, which stores the name with the object
    n = s.smCount();
    await s.d.vdiSetName(clone, 'renamed clone');
    expect(s.smCmds(n)).toEqual(['vdi_update']);
    expect((await s.d.vdiRecord(clone)).name_label).toBe('renamed clone');
  });

  it('VM snapshot, then the classic revert (delete, then clone) brings the data back and keeps every snapshot', async () => {
    vm = await s.d.vmCreate('vm', disk);
    const vmSnap = await s.d.vmSnapshot(vm, 'before');
    const snapDisk = await s.d.vmDisk(vmSnap);
    await s.holds(snapDisk, 'B');
    await s.write(disk, 0, 'D');
    const n = s.smCount();
    await s.d.snapshotRevert(vmSnap);
    // (xapi's background scan may run in between: the SR is dirty after a snapshot)
    const cmds = s.smCmds(n).filter((cmd) => cmd !== 'sr_scan' && cmd !== 'sr_update');
    expect(cmds.slice(0, 3)).toEqual(['vdi_delete', 'vdi_clone', 'vdi_update']);
    const newDisk = await s.d.vmDisk(vm);
    expect(newDisk).not.toBe(disk);
    expect((await failure(() => s.d.vdiRecord(disk))).code).toBe('UUID_INVALID');
    await s.holds(newDisk, 'B');
    // every snapshot of the deleted disk still reads, and is re-pointed to the new disk
    await s.holds(snap, 'A');
    await s.holds(snapDisk, 'B');
    expect((await s.d.vdiRecord(snapDisk)).snapshot_of).toBe(newDisk);
    expect((await s.d.vdiRecord(snap)).snapshot_of).toBe(newDisk);
    // reflink: the deleted disk's file is gone; ZFS: its dataset stays (hidden) while its snapshots need it
    expect((await storage().objects()).some((o) => o.includes(disk))).toBe(storage().dependent);
    disk = newDisk;
  });

  it('vdi-resize grows; shrinking is refused with a clear message and changes nothing', async () => {
    await s.d.vdiResize(clone, 16 * MiB);
    expect((await s.d.vdiRecord(clone)).virtual_size).toBeGreaterThanOrEqual(16 * MiB);
    const p = await s.attachPath(clone);
    if (statSync(p).isFile()) expect(statSync(p).size).toBeGreaterThanOrEqual(16 * MiB);
    await s.holds(clone, 'C');
    const e = await failure(() => s.d.vdiResize(clone, 4 * MiB));
    expect(e.code).toBe('SR_BACKEND_FAILURE_79');
    expect(e.message).toMatch(/shrinking VDI \S+ from \d+ to \d+ bytes is not supported/);
    expect((await s.d.vdiRecord(clone)).virtual_size).toBeGreaterThanOrEqual(16 * MiB);
    await s.holds(clone, 'C');
  });

  it('vdi-forget + vdi-introduce bring a row back from storage; vdi-update restamps its lineage', async () => {
    await s.d.srScan(s.sr); // storage takes xapi's snapshot_of (re-pointed by the revert)
    const before = await s.d.vdiRecord(snap);
    await s.d.vdiForget(snap);
    expect((await s.d.vdisOfSr(s.sr)).has(snap)).toBe(false);
    const n = s.smCount();
    expect(await s.d.vdiIntroduce(s.sr, snap, snap, { owner: 'me' })).toBe(snap);
    expect(s.smCmds(n)).toEqual(['vdi_introduce']);
    const back = await s.d.vdiRecord(snap);
    expect(back).toMatchObject({
      name_label: before.name_label,
      name_description: before.name_description,
      is_a_snapshot: true,
      snapshot_of: disk,
      read_only: true,
      virtual_size: before.virtual_size,
      location: snap,
      sm_config: before.sm_config,
    });
    // xapi's introduce replaces other_config with the caller's; vdi-update puts our keys back
    expect(back.other_config).toEqual({ owner: 'me' });
    await s.d.vdiUpdate(snap);
    expect((await s.d.vdiRecord(snap)).other_config).toEqual(before.other_config);
    await s.holds(snap, 'A');
    // a VDI that is already known is refused
    expect((await failure(() => s.d.vdiIntroduce(s.sr, snap, snap))).code).toBe('LOCATION_NOT_UNIQUE');
  });

  it('a new VM from a VM snapshot (snapshot-clone) has the snapshot\'s data', async () => {
    await s.write(disk, 0, 'E');
    forClone = await s.d.vmSnapshot(vm, 'for-clone');
    await s.write(disk, 0, 'F');
    fromSnapshot = await s.d.snapshotClone(forClone, 'from-snapshot');
    const newDisk = await s.d.vmDisk(fromSnapshot);
    expect(newDisk).not.toBe(await s.d.vmDisk(forClone));
    expect(await s.d.vdiRecord(newDisk)).toMatchObject({ is_a_snapshot: false, read_only: false });
    await s.holds(newDisk, 'E');
    await s.holds(disk, 'F');
    await s.write(newDisk, 0, 'G');
    await s.holds(await s.d.vmDisk(forClone), 'E');
  });

  it('a snapshot whose disk has a clone is deleted at once; storage keeps it hidden until the clone goes', async () => {
    const snapDisk = await s.d.vmDisk(forClone);
    const cloneDisk = await s.d.vmDisk(fromSnapshot);
    const object = (await s.d.vdiRecord(snapDisk)).sm_config['flatsnap-object']!;
    await s.d.snapshotUninstall(forClone);
    expect((await s.d.vdisOfSr(s.sr)).has(snapDisk)).toBe(false);
    // ZFS: a tombstone (the clone's origin); reflink: the clone is independent, the file is gone
    expect((await storage().objects()).some((o) => o.includes(object))).toBe(storage().dependent);
    await s.holds(cloneDisk, 'G');
    await s.d.vmUninstall(fromSnapshot);
    expect(await s.d.vmExists(fromSnapshot)).toBe(false);
    expect((await s.d.vdisOfSr(s.sr)).has(cloneDisk)).toBe(false);
    // the last dependant is gone: so is the tombstone
    expect((await storage().objects()).some((o) => o.includes(object) || o.includes(cloneDisk))).toBe(false);
    await s.holds(disk, 'F');
  });

  it('a VM and its disk deleted while its snapshots remain: the snapshots read; snapshot-revert brings the VM back', async () => {
    const d2 = await s.d.vdiCreate(s.sr, 'disk2', 4 * MiB);
    const vm2 = await s.d.vmCreate('vm2', d2);
    await s.write(d2, 0, 'H');
    const s1 = await s.d.vmSnapshot(vm2, 's1');
    await s.write(d2, 0, 'I');
    const s2 = await s.d.vmSnapshot(vm2, 's2');
    await s.write(d2, 0, 'J');
    await s.d.vmDestroy(vm2);
    await s.d.vdiDestroy(d2);
    expect(await s.d.vmExists(vm2)).toBe(false);
    expect((await storage().objects()).some((o) => o.includes(d2))).toBe(storage().dependent);
    const [s1disk, s2disk] = [await s.d.vmDisk(s1), await s.d.vmDisk(s2)];
    await s.holds(s1disk, 'H');
    await s.holds(s2disk, 'I');
    // xapi recreates the VM (same uuid) from the snapshot, with a clone of its disk
    await s.d.snapshotRevert(s1);
    expect(await s.d.vmExists(vm2)).toBe(true);
    const back = await s.d.vmDisk(vm2);
    await s.holds(back, 'H');
    await s.holds(s2disk, 'I');
    expect((await s.d.vdiRecord(s2disk)).snapshot_of).toBe(back);
  });

  it('pbd-unplug then pbd-plug (sr_detach, sr_attach) keep every VDI and its data', async () => {
    const before = await s.d.vdisOfSr(s.sr);
    const pbd = await s.pbd();
    let n = s.smCount();
    await s.d.pbdUnplug(pbd);
    expect(s.smCmds(n)).toEqual(['sr_detach']);
    expect((await s.d.pbds(s.sr))[0]!.attached).toBe(false);
    expect((await failure(() => s.d.vdiSnapshot(clone))).code).toBe('SR_NO_PBDS');
    n = s.smCount();
    await s.d.pbdPlug(pbd);
    expect(s.smCmds(n)).toEqual(['sr_attach']);
    expect(Session.shape(await s.d.vdisOfSr(s.sr))).toEqual(Session.shape(before));
    await s.holds(clone, 'C');
    await s.holds(snap, 'A');
  });

  it('sr-scan twice: the second changes nothing (no retry, no writes); sr-update reports the sizes', async () => {
    await s.d.srScan(s.sr);
    const before = await s.d.vdisOfSr(s.sr);
    let n = s.smCount();
    await s.d.srScan(s.sr);
    expect(s.smCmds(n)).toEqual(['sr_scan', 'sr_update']);
    const after = await s.d.vdisOfSr(s.sr);
    expect(after).toEqual(before);
    const total = [...after.values()].reduce((sum, r) => sum + r.virtual_size, 0);
    expect((await s.d.srRecord(s.sr)).virtual_allocation).toBe(total);
    n = s.smCount();
    await s.d.srUpdate(s.sr);
    expect(s.smCmds(n)).toEqual(['sr_update']);
    const rec = await s.d.srRecord(s.sr);
    expect(rec.virtual_allocation).toBe(total);
    expect(rec.physical_size).toBeGreaterThan(100 * MiB);
  });

  it('sr-forget + sr-introduce + pbd-create + pbd-plug + sr-scan bring back every VDI with names and lineage', async () => {
    await s.d.srScan(s.sr);
    const want = Session.shape(await s.d.vdisOfSr(s.sr));
    await s.d.pbdUnplug(await s.pbd());
    await s.d.srForget(s.sr);
    expect(await s.d.srIntroduce(s.sr, 'restored', 'flatsnap')).toBe(s.sr);
    expect((await s.d.vdisOfSr(s.sr)).size).toBe(0);
    await s.d.pbdPlug(await s.d.pbdCreate(s.sr, storage().dc));
    await s.d.srScan(s.sr);
    expect(Session.shape(await s.d.vdisOfSr(s.sr))).toEqual(want);
    await s.holds(clone, 'C');
    expect((await s.d.vdiRecord(clone)).name_label).toBe('renamed clone');
  });

  it('sr-introduce + scan into a fresh xapi brings every VDI back with names, lineage and data', async () => {
    const want = Session.shape(await s.d.vdisOfSr(s.sr));
    await s.d.pbdUnplug(await s.pbd());
    await s.stop();

    await s.start();
    await s.d.srIntroduce(s.sr, 'restored', 'flatsnap');
    await s.d.pbdPlug(await s.d.pbdCreate(s.sr, storage().dc));
    await s.d.srScan(s.sr);
    expect(Session.shape(await s.d.vdisOfSr(s.sr))).toEqual(want);
    await s.holds(clone, 'C');
    await s.holds(snap, 'A');
    await s.holds(disk, 'F');
    // and a second scan is still a fixed point
    const n = s.smCount();
    await s.d.srScan(s.sr);
    expect(s.smCmds(n)).toEqual(['sr_scan', 'sr_update']);
  });

  it('sr-destroy is refused while VDIs exist; deleting everything empties storage; sr-destroy then removes the SR', async () => {
    const all = await s.d.vdisOfSr(s.sr);
    expect(all.size).toBeGreaterThan(0);
    const pbd = await s.pbd();
    await s.d.pbdUnplug(pbd);
    const e = await failure(() => s.d.srDestroy(s.sr));
    expect(e.code).toBe('SR_NOT_EMPTY');
    expect((await s.d.vdisOfSr(s.sr)).size).toBe(all.size);
    await s.d.pbdPlug(pbd);
    await s.holds(clone, 'C');
    for (const v of all.keys()) await s.d.vdiDestroy(v);
    expect((await s.d.vdisOfSr(s.sr)).size).toBe(0);
    expect(await storage().objects()).toEqual([]);
    await s.d.srScan(s.sr);
    expect((await s.d.vdisOfSr(s.sr)).size).toBe(0);
    expect((await s.d.srRecord(s.sr)).virtual_allocation).toBe(0);
    await s.d.pbdUnplug(pbd);
    await s.d.srDestroy(s.sr);
    expect(await storage().rootExists()).toBe(false);
    expect(await s.probeFinds()).toBe(false);
  });
}

/**
 * xapi >= 26.16: VM.revert tries VDI.revert first; flatsnap advertises VDI_REVERT, so the
 * VM keeps its disk (same uuid) and every snapshot, older and newer, survives.
 */
export function vdiRevertFlow(storage: () => FlowStorage, kind: DriverKind): void {
  const s = new Session(storage, kind);

  beforeAll(async () => {
    checkPlugin();
    await s.start(['--revert-flow', 'vdi-revert']);
  }, 120_000);

  afterAll(async () => {
    await s.stop();
  });

  it('reverts in place to an older snapshot, keeping the newer one; then to the newest', async () => {
    s.sr = await s.d.srCreate(storage().dc, 'flatsnap-revert');
    const disk = await s.d.vdiCreate(s.sr, 'd', 4 * MiB);
    const vm = await s.d.vmCreate('vm', disk);
    await s.write(disk, 0, 'old');
    const s1 = await s.d.vmSnapshot(vm, 's1');
    await s.write(disk, 0, 'new');
    const s2 = await s.d.vmSnapshot(vm, 's2');
    await s.write(disk, 0, 'newest');
    let n = s.smCount();
    await s.d.snapshotRevert(s1);
    expect(s.smCmds(n)).toContain('vdi_revert');
    expect(s.smCmds(n)).not.toContain('vdi_delete');
    expect(await s.d.vmDisk(vm)).toBe(disk);
    await s.holds(disk, 'old');
    const s2disk = await s.d.vmDisk(s2);
    await s.holds(s2disk, 'new');
    await s.holds(await s.d.vmDisk(s1), 'old');

    await s.write(disk, 0, 'again');
    n = s.smCount();
    await s.d.snapshotRevert(s2);
    expect(s.smCmds(n)).toContain('vdi_revert');
    await s.holds(disk, 'new');
    await s.holds(s2disk, 'new');
    await s.holds(await s.d.vmDisk(s1), 'old');

    // the row follows the object behind the VDI; a scan agrees at once
    const n2 = s.smCount();
    await s.d.srScan(s.sr);
    const once = await s.d.vdiRecord(disk);
    await s.d.srScan(s.sr);
    expect(s.smCmds(n2)).toEqual(['sr_scan', 'sr_update', 'sr_scan', 'sr_update']);
    expect(await s.d.vdiRecord(disk)).toEqual(once);
    expect(once.other_config['flatsnap-object']).toBe(once.sm_config['flatsnap-object']);
  });
}
