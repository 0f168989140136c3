// The two ways the flatsnap e2e flows drive the XAPI simulator: XenAPI calls (the
// Async.* + task polling a client such as XenCenter makes) and the `xe` command line
// (test/xapi-sim/xe, one process per command, argument arrays only). The flows speak
// uuids; each driver maps them onto its own interface, and failures of either come
// back as a DriverError carrying xapi's error code and parameters.
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { DateTimeValue } from '../../src/smapi/xmlrpc.js';
import { ApiFailure, type Client, XE } from './sim-helpers.js';

export type DriverKind = 'xen-api' | 'xe';

/** A VDI row as both drivers see it; refs are uuids, '' for NULL or a dangling ref. */
export interface VdiRow {
  uuid: string;
  name_label: string;
  name_description: string;
  is_a_snapshot: boolean;
  snapshot_of: string;
  read_only: boolean;
  virtual_size: number;
  physical_utilisation: number;
  location: string;
  sr: string;
  sm_config: Record<string, string>;
  other_config: Record<string, string>;
}

export interface SrRow {
  uuid: string;
  name_label: string;
  type: string;
  physical_size: number;
  virtual_allocation: number;
}

export interface PbdRow {
  uuid: string;
  attached: boolean;
  device_config: Record<string, string>;
}

/** xapi's error, from either driver: code, parameters, and the text a user would see. */
export class DriverError extends Error {
  constructor(
    readonly code: string,
    readonly params: string[],
    text: string,
  ) {
    super(text);
  }
}

export interface Driver {
  readonly kind: DriverKind;
  // SR, PBD, SM
  srCreate(dc: Record<string, string>, name: string): Promise<string>;
  srRecord(sr: string): Promise<SrRow>;
  srProbe(type: string, dc: Record<string, string>): Promise<string>;
  srScan(sr: string): Promise<void>;
  srUpdate(sr: string): Promise<void>;
  srDestroy(sr: string): Promise<void>;
  srForget(sr: string): Promise<void>;
  srIntroduce(uuid: string, name: string, type: string): Promise<string>;
  pbds(sr: string): Promise<PbdRow[]>;
  pbdCreate(sr: string, dc: Record<string, string>): Promise<string>;
  pbdPlug(pbd: string): Promise<void>;
  pbdUnplug(pbd: string): Promise<void>;
  smFeatures(type: string): Promise<string[]>;
  // VDI
  vdiCreate(sr: string, name: string, size: number, otherConfig?: Record<string, string>): Promise<string>;
  vdiRecord(vdi: string): Promise<VdiRow>;
  vdisOfSr(sr: string): Promise<Map<string, VdiRow>>;
  vdiSnapshot(vdi: string): Promise<string>;
  vdiClone(vdi: string, newName?: string): Promise<string>;
  vdiResize(vdi: string, size: number): Promise<void>;
  vdiDestroy(vdi: string): Promise<void>;
  vdiForget(vdi: string): Promise<void>;
  vdiIntroduce(sr: string, uuid: string, location: string, otherConfig?: Record<string, string>): Promise<string>;
  vdiUpdate(vdi: string): Promise<void>;
  vdiSetName(vdi: string, name: string): Promise<void>;
  vdiSetOtherConfig(vdi: string, key: string, value: string): Promise<void>;
  vdiRemoveOtherConfig(vdi: string, key: string): Promise<void>;
  // VM
  vmCreate(name: string, disk: string): Promise<string>;
  /** The VDI of the VM's (or snapshot's) first disk. */
  vmDisk(vm: string): Promise<string>;
  vmSnapshot(vm: string, name: string): Promise<string>;
  snapshotRevert(snapshot: string): Promise<void>;
  /** A new VM (template) from a snapshot: VM.clone of the snapshot. */
  snapshotClone(snapshot: string, name: string): Promise<string>;
  /** The snapshot and the disks it owns. */
  snapshotUninstall(snapshot: string): Promise<void>;
  /** The VM, its snapshots and the disks they own. */
  vmUninstall(vm: string): Promise<void>;
  /** The VM record only; storage stays. */
  vmDestroy(vm: string): Promise<void>;
  vmExists(vm: string): Promise<boolean>;
}

/** Runs `fn`, expecting it to fail; returns the DriverError. */
export async function failure(fn: () => Promise<unknown>): Promise<DriverError> {
  try {
    await fn();
  } catch (e) {
    if (e instanceof DriverError) return e;
    throw e;
  }
  throw new Error('expected the call to fail');
}

// ---------------------------------------------------------------------------
// XenAPI

type Rec = Record<string, unknown>;
const NULL = 'OpaqueRef:NULL';
const MiB = 1 << 20;

export class ApiDriver implements Driver {
  readonly kind = 'xen-api';
  constructor(private readonly c: Client) {}

  private async wrap<T>(p: Promise<T>): Promise<T> {
    try {
      return await p;
    } catch (e) {
      if (e instanceof ApiFailure) throw new DriverError(e.code, e.description.slice(1), e.description.join(' '));
      throw e;
    }
  }
  private call<T>(method: string, ...params: unknown[]): Promise<T> {
    return this.wrap(this.c.call<T>(method, ...(params as never[])));
  }
  private callAsync<T>(method: string, ...params: unknown[]): Promise<T> {
    return this.wrap(this.c.callAsync<T>(method, ...(params as never[])));
  }
  private ref(cls: string, uuid: string): Promise<string> {
    return this.call<string>(`${cls}.get_by_uuid`, uuid);
  }
  private async uuid(cls: string, ref: string): Promise<string> {
    if (ref === NULL || ref === '') return '';
    return this.c.call<string>(`${cls}.get_uuid`, ref).catch(() => '');
  }
  private async host(): Promise<string> {
    return (await this.call<string[]>('host.get_all'))[0]!;
  }
  private async vdiRow(r: Rec): Promise<VdiRow> {
    return {
      uuid: r.uuid as string,
      name_label: r.name_label as string,
      name_description: r.name_description as string,
      is_a_snapshot: r.is_a_snapshot === true,
      snapshot_of: await this.uuid('VDI', r.snapshot_of as string),
      read_only: r.read_only === true,
      virtual_size: Number(r.virtual_size),
      physical_utilisation: Number(r.physical_utilisation),
      location: r.location as string,
      sr: await this.uuid('SR', r.SR as string),
      sm_config: r.sm_config as Record<string, string>,
      other_config: r.other_config as Record<string, string>,
    };
  }

  async srCreate(dc: Record<string, string>, name: string): Promise<string> {
    const sr = await this.callAsync<string>('SR.create', await this.host(), dc, '0', name, '', 'flatsnap', 'user', false, {});
    return this.uuid('SR', sr);
  }
  async srRecord(sr: string): Promise<SrRow> {
    const r = await this.call<Rec>('SR.get_record', await this.ref('SR', sr));
    return { uuid: sr, name_label: r.name_label as string, type: r.type as string, physical_size: Number(r.physical_size), virtual_allocation: Number(r.virtual_allocation) };
  }
  async srProbe(type: string, dc: Record<string, string>): Promise<string> {
    return this.call<string>('SR.probe', await this.host(), dc, type, {});
  }
  async srScan(sr: string): Promise<void> {
    await this.callAsync('SR.scan', await this.ref('SR', sr));
  }
  async srUpdate(sr: string): Promise<void> {
    await this.callAsync('SR.update', await this.ref('SR', sr));
  }
  async srDestroy(sr: string): Promise<void> {
    await this.callAsync('SR.destroy', await this.ref('SR', sr));
  }
  async srForget(sr: string): Promise<void> {
    await this.callAsync('SR.forget', await this.ref('SR', sr));
  }
  async srIntroduce(uuid: string, name: string, type: string): Promise<string> {
    return this.uuid('SR', await this.call<string>('SR.introduce', uuid, name, '', type, 'user', false, {}));
  }
  async pbds(sr: string): Promise<PbdRow[]> {
    const out: PbdRow[] = [];
    for (const pbd of await this.call<string[]>('SR.get_PBDs', await this.ref('SR', sr))) {
      const r = await this.call<Rec>('PBD.get_record', pbd);
      out.push({ uuid: r.uuid as string, attached: r.currently_attached === true, device_config: r.device_config as Record<string, string> });
    }
    return out;
  }
  async pbdCreate(sr: string, dc: Record<string, string>): Promise<string> {
    const pbd = await this.call<string>('PBD.create', { host: await this.host(), SR: await this.ref('SR', sr), device_config: dc, other_config: {} });
    return this.uuid('PBD', pbd);
  }
  async pbdPlug(pbd: string): Promise<void> {
    await this.callAsync('PBD.plug', await this.ref('PBD', pbd));
  }
  async pbdUnplug(pbd: string): Promise<void> {
    await this.callAsync('PBD.unplug', await this.ref('PBD', pbd));
  }
  async smFeatures(type: string): Promise<string[]> {
    const sm = Object.values(await this.call<Record<string, Rec>>('SM.get_all_records')).find((x) => x.type === type);
    return Object.keys((sm?.features as Rec | undefined) ?? {});
  }

  async vdiCreate(sr: string, name: string, size: number, otherConfig: Record<string, string> = {}): Promise<string> {
    const vdi = await this.callAsync<string>('VDI.create', {
      name_label: name,
      name_description: `the ${name}`,
      SR: await this.ref('SR', sr),
      virtual_size: String(size),
      type: 'user',
      sharable: false,
      read_only: false,
      other_config: otherConfig,
      xenstore_data: {},
      sm_config: {},
      tags: [],
    });
    return this.uuid('VDI', vdi);
  }
  async vdiRecord(vdi: string): Promise<VdiRow> {
    return this.vdiRow(await this.call<Rec>('VDI.get_record', await this.ref('VDI', vdi)));
  }
  async vdisOfSr(sr: string): Promise<Map<string, VdiRow>> {
    const all = await this.call<Record<string, Rec>>('VDI.get_all_records_where', `field "SR" = "${await this.ref('SR', sr)}"`);
    const out = new Map<string, VdiRow>();
    for (const r of Object.values(all)) out.set(r.uuid as string, await this.vdiRow(r));
    return out;
  }
  async vdiSnapshot(vdi: string): Promise<string> {
    return this.uuid('VDI', await this.callAsync<string>('VDI.snapshot', await this.ref('VDI', vdi), {}));
  }
  async vdiClone(vdi: string, newName?: string): Promise<string> {
    const ref = await this.callAsync<string>('VDI.clone', await this.ref('VDI', vdi), {});
    if (newName !== undefined) await this.call('VDI.set_name_label', ref, newName);
    return this.uuid('VDI', ref);
  }
  async vdiResize(vdi: string, size: number): Promise<void> {
    await this.callAsync('VDI.resize', await this.ref('VDI', vdi), String(size));
  }
  async vdiDestroy(vdi: string): Promise<void> {
    await this.callAsync('VDI.destroy', await this.ref('VDI', vdi));
  }
  async vdiForget(vdi: string): Promise<void> {
    await this.callAsync('VDI.forget', await this.ref('VDI', vdi));
  }
  async vdiIntroduce(sr: string, uuid: string, location: string, otherConfig: Record<string, string> = {}): Promise<string> {
    // every parameter, as xapi's own clients (and xe) send them: uuid, name_label,
    // name_description, SR, type, sharable, read_only, other_config, location,
    // xenstore_data, sm_config, managed, virtual_size, physical_utilisation,
    // metadata_of_pool, is_a_snapshot, snapshot_time, snapshot_of
    const args = [uuid, '', '', await this.ref('SR', sr), 'user', false, false, otherConfig, location, {}, {}, true, '0', '0', NULL, false, new DateTimeValue('19700101T00:00:00Z'), NULL];
    const ref = await this.callAsync<string>('VDI.introduce', ...args);
    return this.uuid('VDI', ref);
  }
  async vdiUpdate(vdi: string): Promise<void> {
    await this.callAsync('VDI.update', await this.ref('VDI', vdi));
  }
  async vdiSetName(vdi: string, name: string): Promise<void> {
    await this.call('VDI.set_name_label', await this.ref('VDI', vdi), name);
  }
  /** remove_from + add_to, as XO's setFieldEntry does. */
  async vdiSetOtherConfig(vdi: string, key: string, value: string): Promise<void> {
    const ref = await this.ref('VDI', vdi);
    await this.call('VDI.remove_from_other_config', ref, key);
    await this.call('VDI.add_to_other_config', ref, key, value);
  }
  async vdiRemoveOtherConfig(vdi: string, key: string): Promise<void> {
    await this.call('VDI.remove_from_other_config', await this.ref('VDI', vdi), key);
  }

  async vmCreate(name: string, disk: string): Promise<string> {
    const mem = String(4 * MiB);
    const vm = await this.call<string>('VM.create', { name_label: name, memory_static_max: mem, memory_dynamic_max: mem, memory_dynamic_min: mem, memory_static_min: mem });
    await this.call('VBD.create', { VM: vm, VDI: await this.ref('VDI', disk), userdevice: '0', bootable: true, mode: 'RW', type: 'Disk', empty: false, other_config: {} });
    return this.uuid('VM', vm);
  }
  async vmDisk(vm: string): Promise<string> {
    const vbd = (await this.call<string[]>('VM.get_VBDs', await this.ref('VM', vm)))[0]!;
    return this.uuid('VDI', await this.call<string>('VBD.get_VDI', vbd));
  }
  async vmSnapshot(vm: string, name: string): Promise<string> {
    return this.uuid('VM', await this.callAsync<string>('VM.snapshot', await this.ref('VM', vm), name));
  }
  async snapshotRevert(snapshot: string): Promise<void> {
    await this.callAsync('VM.revert', await this.ref('VM', snapshot));
  }
  async snapshotClone(snapshot: string, name: string): Promise<string> {
    return this.uuid('VM', await this.callAsync<string>('VM.clone', await this.ref('VM', snapshot), name));
  }
  /** XenCenter's VMDestroyAction: VM.destroy, then the VDIs its VBDs own (other_config "owner"). */
  private async uninstall(vms: string[]): Promise<void> {
    const vdis: string[] = [];
    for (const vm of vms) {
      for (const vbd of await this.call<string[]>('VM.get_VBDs', vm)) {
        const r = await this.call<Rec>('VBD.get_record', vbd);
        if (Object.hasOwn(r.other_config as Rec, 'owner') && r.VDI !== NULL) vdis.push(r.VDI as string);
      }
    }
    for (const vm of vms) await this.callAsync('VM.destroy', vm);
    for (const v of vdis) {
      await this.callAsync('VDI.destroy', v).catch((e: unknown) => {
        if (!(e instanceof DriverError && e.code === 'HANDLE_INVALID')) throw e;
      });
    }
  }
  async snapshotUninstall(snapshot: string): Promise<void> {
    await this.uninstall([await this.ref('VM', snapshot)]);
  }
  async vmUninstall(vm: string): Promise<void> {
    const ref = await this.ref('VM', vm);
    await this.uninstall([ref, ...(await this.call<string[]>('VM.get_snapshots', ref))]);
  }
  async vmDestroy(vm: string): Promise<void> {
    await this.callAsync('VM.destroy', await this.ref('VM', vm));
  }
  async vmExists(vm: string): Promise<boolean> {
    return this.c.call('VM.get_by_uuid', vm).then(
      () => true,
      () => false,
    );
  }
}

// ---------------------------------------------------------------------------
// xe

const run = promisify(execFile);

/** `k: v; k2: v2` as xe prints a map. */
function parseMap(s: string): Record<string, string> {
  const out: Record<string, string> = {};
  if (s.trim() === '') return out;
  for (const part of s.split('; ')) {
    const i = part.indexOf(': ');
    if (i < 0) out[part] = '';
    else out[part.slice(0, i)] = part.slice(i + 2);
  }
  return out;
}

/** xe's record listing (`name ( RO): value` lines, records apart) as one map per record. */
export function parseRecords(text: string): Array<Map<string, string>> {
  const recs: Array<Map<string, string>> = [];
  let cur: Map<string, string> | undefined;
  for (const line of text.split('\n')) {
    const m = /^\s*(\S+) \( ?R[OW]\)\s*: ?(.*)$/.exec(line);
    if (!m) continue;
    if (cur === undefined || cur.has(m[1]!)) {
      cur = new Map();
      recs.push(cur);
    }
    cur.set(m[1]!, m[2]!);
  }
  return recs;
}

const dangling = (u: string | undefined): string => (u === undefined || u.startsWith('<') ? '' : u);

export class XeDriver implements Driver {
  readonly kind = 'xe';
  constructor(private readonly port: number) {}

  /** One xe command; its trimmed stdout, or a DriverError from `Error code:` / `Error parameters:`. */
  async xe(...args: string[]): Promise<string> {
    try {
      const { stdout } = await run(XE, ['-s', '127.0.0.1', '-p', String(this.port), '-u', 'root', '-pw', 'x', ...args], { cwd: '/', maxBuffer: 64 << 20 });
      return stdout.trim();
    } catch (e) {
      const stderr = String((e as { stderr?: string }).stderr ?? '');
      const code = /^Error code: (.*)$/m.exec(stderr);
      if (code === null) throw new Error(`xe ${args.join(' ')} failed: ${stderr || String(e)}`);
      const params = /^Error parameters: (.*)$/m.exec(stderr)?.[1] ?? '';
      throw new DriverError(code[1]!, params === '' ? [] : params.split(', '), stderr.trim());
    }
  }
  private async one(...args: string[]): Promise<Map<string, string>> {
    const r = parseRecords(await this.xe(...args));
    if (r.length !== 1) throw new Error(`xe ${args.join(' ')}: ${r.length} records`);
    return r[0]!;
  }
  private static vdiRow(r: Map<string, string>): VdiRow {
    return {
      uuid: r.get('uuid')!,
      name_label: r.get('name-label')!,
      name_description: r.get('name-description')!,
      is_a_snapshot: r.get('is-a-snapshot') === 'true',
      snapshot_of: dangling(r.get('snapshot-of')),
      read_only: r.get('read-only') === 'true',
      virtual_size: Number(r.get('virtual-size')),
      physical_utilisation: Number(r.get('physical-utilisation')),
      location: r.get('location')!,
      sr: dangling(r.get('sr-uuid')),
      sm_config: parseMap(r.get('sm-config') ?? ''),
      other_config: parseMap(r.get('other-config') ?? ''),
    };
  }
  private static dc(dc: Record<string, string>, prefix = 'device-config'): string[] {
    return Object.entries(dc).map(([k, v]) => `${prefix}:${k}=${v}`);
  }
  private async host(): Promise<string> {
    return (await this.xe('host-list', '--minimal')).split(',')[0]!;
  }

  srCreate(dc: Record<string, string>, name: string): Promise<string> {
    return this.xe('sr-create', `name-label=${name}`, 'type=flatsnap', 'content-type=user', ...XeDriver.dc(dc));
  }
  async srRecord(sr: string): Promise<SrRow> {
    const r = await this.one('sr-param-list', `uuid=${sr}`);
    return { uuid: sr, name_label: r.get('name-label')!, type: r.get('type')!, physical_size: Number(r.get('physical-size')), virtual_allocation: Number(r.get('virtual-allocation')) };
  }
  srProbe(type: string, dc: Record<string, string>): Promise<string> {
    return this.xe('sr-probe', `type=${type}`, ...XeDriver.dc(dc));
  }
  async srScan(sr: string): Promise<void> {
    await this.xe('sr-scan', `uuid=${sr}`);
  }
  async srUpdate(sr: string): Promise<void> {
    await this.xe('sr-update', `uuid=${sr}`);
  }
  async srDestroy(sr: string): Promise<void> {
    await this.xe('sr-destroy', `uuid=${sr}`);
  }
  async srForget(sr: string): Promise<void> {
    await this.xe('sr-forget', `uuid=${sr}`);
  }
  srIntroduce(uuid: string, name: string, type: string): Promise<string> {
    return this.xe('sr-introduce', `uuid=${uuid}`, `name-label=${name}`, `type=${type}`, 'content-type=user');
  }
  async pbds(sr: string): Promise<PbdRow[]> {
    return parseRecords(await this.xe('pbd-list', `sr-uuid=${sr}`, 'params=all')).map((r) => ({
      uuid: r.get('uuid')!,
      attached: r.get('currently-attached') === 'true',
      device_config: parseMap(r.get('device-config') ?? ''),
    }));
  }
  async pbdCreate(sr: string, dc: Record<string, string>): Promise<string> {
    return this.xe('pbd-create', `sr-uuid=${sr}`, `host-uuid=${await this.host()}`, ...XeDriver.dc(dc));
  }
  async pbdPlug(pbd: string): Promise<void> {
    await this.xe('pbd-plug', `uuid=${pbd}`);
  }
  async pbdUnplug(pbd: string): Promise<void> {
    await this.xe('pbd-unplug', `uuid=${pbd}`);
  }
  async smFeatures(type: string): Promise<string[]> {
    return Object.keys(parseMap(await this.xe('sm-list', `type=${type}`, 'params=features', '--minimal')));
  }

  vdiCreate(sr: string, name: string, size: number, otherConfig: Record<string, string> = {}): Promise<string> {
    // xe's vdi-create takes no other-config or description: set them afterwards, as a script would
    return this.xe('vdi-create', `sr-uuid=${sr}`, `name-label=${name}`, `virtual-size=${size}`, 'type=user').then(async (vdi) => {
      await this.xe('vdi-param-set', `uuid=${vdi}`, `name-description=the ${name}`, ...XeDriver.dc(otherConfig, 'other-config'));
      return vdi;
    });
  }
  async vdiRecord(vdi: string): Promise<VdiRow> {
    return XeDriver.vdiRow(await this.one('vdi-param-list', `uuid=${vdi}`));
  }
  async vdisOfSr(sr: string): Promise<Map<string, VdiRow>> {
    const rows = parseRecords(await this.xe('vdi-list', `sr-uuid=${sr}`, 'params=all')).map((r) => XeDriver.vdiRow(r));
    return new Map(rows.map((r) => [r.uuid, r]));
  }
  vdiSnapshot(vdi: string): Promise<string> {
    return this.xe('vdi-snapshot', `uuid=${vdi}`);
  }
  vdiClone(vdi: string, newName?: string): Promise<string> {
    return this.xe('vdi-clone', `uuid=${vdi}`, ...(newName === undefined ? [] : [`new-name-label=${newName}`]));
  }
  async vdiResize(vdi: string, size: number): Promise<void> {
    await this.xe('vdi-resize', `uuid=${vdi}`, `disk-size=${size}`);
  }
  async vdiDestroy(vdi: string): Promise<void> {
    await this.xe('vdi-destroy', `uuid=${vdi}`);
  }
  async vdiForget(vdi: string): Promise<void> {
    await this.xe('vdi-forget', `uuid=${vdi}`);
  }
  vdiIntroduce(sr: string, uuid: string, location: string, otherConfig: Record<string, string> = {}): Promise<string> {
    return this.xe('vdi-introduce', `uuid=${uuid}`, `sr-uuid=${sr}`, 'type=user', `location=${location}`, ...XeDriver.dc(otherConfig, 'other-config'));
  }
  async vdiUpdate(vdi: string): Promise<void> {
    await this.xe('vdi-update', `uuid=${vdi}`);
  }
  async vdiSetName(vdi: string, name: string): Promise<void> {
    await this.xe('vdi-param-set', `uuid=${vdi}`, `name-label=${name}`);
  }
  async vdiSetOtherConfig(vdi: string, key: string, value: string): Promise<void> {
    await this.xe('vdi-param-set', `uuid=${vdi}`, `other-config:${key}=${value}`);
  }
  async vdiRemoveOtherConfig(vdi: string, key: string): Promise<void> {
    await this.xe('vdi-param-remove', `uuid=${vdi}`, 'param-name=other-config', `param-key=${key}`);
  }

  async vmCreate(name: string, disk: string): Promise<string> {
    const vm = await this.xe('vm-create', `name-label=${name}`);
    await this.xe('vbd-create', `vm-uuid=${vm}`, `vdi-uuid=${disk}`, 'device=0', 'bootable=true', 'mode=RW', 'type=Disk');
    return vm;
  }
  async vmDisk(vm: string): Promise<string> {
    return (await this.xe('vbd-list', `vm-uuid=${vm}`, 'type=Disk', 'params=vdi-uuid', '--minimal')).split(',')[0]!;
  }
  vmSnapshot(vm: string, name: string): Promise<string> {
    return this.xe('vm-snapshot', `uuid=${vm}`, `new-name-label=${name}`);
  }
  async snapshotRevert(snapshot: string): Promise<void> {
    await this.xe('snapshot-revert', `snapshot-uuid=${snapshot}`);
  }
  snapshotClone(snapshot: string, name: string): Promise<string> {
    return this.xe('snapshot-clone', `uuid=${snapshot}`, `new-name-label=${name}`);
  }
  async snapshotUninstall(snapshot: string): Promise<void> {
    await this.xe('snapshot-uninstall', `snapshot-uuid=${snapshot}`, 'force=true');
  }
  async vmUninstall(vm: string): Promise<void> {
    await this.xe('vm-uninstall', `uuid=${vm}`, 'force=true');
  }
  async vmDestroy(vm: string): Promise<void> {
    await this.xe('vm-destroy', `uuid=${vm}`);
  }
  async vmExists(vm: string): Promise<boolean> {
    return (await this.xe('vm-list', `uuid=${vm}`, '--minimal')) === vm;
  }
}
