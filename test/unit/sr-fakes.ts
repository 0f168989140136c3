// In-memory stand-ins for the SR handlers' two collaborators: a Backend that keeps
// objects in a Map (with ZFS's dependency rules when `dependent`), and the XenAPI
// calls (XapiPort) over an in-memory VDI table with xapi's errors. Both record every
// call and can be told to fail a given call. And the environment the handlers run in.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Backend, ProbeResult, SrStats, StoredObject, VdiMeta } from '../../src/backends/backend.js';
import { SmError } from '../../src/errors.js';
import { parseSnapshotName, type Capabilities } from '../../src/lineage/index.js';
import { parseRequest, type SmRequest } from '../../src/smapi/request.js';
import { encodeMethodCall, type XmlRpcValue } from '../../src/smapi/xmlrpc.js';
import type { XapiPort } from '../../src/sr/context.js';
import { XapiError } from '../../src/xapi/errors.js';
import type { SrRecord, VdiRecord } from '../../src/xapi/records.js';
import type { VdiIntroduce } from '../../src/xapi/vdi.js';
import { NULL_REF, XapiDateTime } from '../../src/xapi/wire.js';

export const SR_UUID = '11111111-2222-4333-8444-555555555555';
export const SR_REF = 'OpaqueRef:sr-1';

/**
 * For a test file of the SR handlers (call it at the top level): no SMlog, a lock
 * directory of its own (`flatsnap-<name>-*`), and the direct datapath, so that this
 * host runs no tapdisk.
 */
export function useHandlerEnv(name: string): void {
  let lockDir: string;
  beforeAll(() => {
    process.env.FLATSNAP_SMLOG = '/dev/null';
    lockDir = mkdtempSync(join(tmpdir(), `flatsnap-${name}-`));
    process.env.FLATSNAP_LOCK_DIR = lockDir;
    process.env.FLATSNAP_DATAPATH = 'direct';
  });
  afterAll(() => {
    rmSync(lockDir, { recursive: true, force: true });
    delete process.env.FLATSNAP_LOCK_DIR;
    delete process.env.FLATSNAP_DATAPATH;
  });
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** An object with its bytes (a string is enough to tell contents apart). */
interface FakeObject extends Mutable<StoredObject> {
  data: string;
}

export class FakeBackend implements Backend {
  readonly kind = 'reflink' as const;
  readonly objects = new Map<string, FakeObject>();
  readonly calls: string[] = [];
  /** Return an error to make that call fail (before it changes anything). */
  failOn: (op: string, id: string) => Error | undefined = () => undefined;
  srCreated = false;
  srDeleted = false;
  attached = false;
  stat: SrStats = { physical_size: 1 << 30, physical_utilisation: 1 << 20 };

  constructor(readonly capabilities: Capabilities = { dependent: false }) {}

  describe(): string {
    return 'fake storage';
  }

  private check(op: string, id: string): void {
    this.calls.push(`${op} ${id}`);
    const e = this.failOn(op, id);
    if (e) throw e;
  }

  private get(o: { id: string }, what = 'object'): FakeObject {
    const x = this.objects.get(o.id);
    if (!x) throw new SmError('VolNotFound', `no ${what} ${o.id}`);
    return x;
  }

  private out(o: FakeObject): StoredObject {
    const { data: _d, ...rest } = o;
    return { ...rest, ...(o.meta ? { meta: { ...o.meta } } : {}) };
  }

  private children(id: string): FakeObject[] {
    return [...this.objects.values()].filter((o) => o.parent === id);
  }

  async createSr(srUuid: string): Promise<void> {
    this.check('createSr', srUuid);
    this.srCreated = true;
  }
  async deleteSr(srUuid: string): Promise<void> {
    this.check('deleteSr', srUuid);
    if (this.objects.size > 0) throw new SmError('SRNotEmpty', `${this.objects.size} objects left`);
    this.srDeleted = true;
  }
  async attachSr(srUuid: string): Promise<void> {
    this.check('attachSr', srUuid);
    this.attached = true;
  }
  async detachSr(srUuid: string): Promise<void> {
    this.check('detachSr', srUuid);
    this.attached = false;
  }
  async stats(): Promise<SrStats> {
    return { ...this.stat };
  }
  async probe(): Promise<ProbeResult[]> {
    return [{ sr_uuid: SR_UUID, handle: '/fake', size: this.stat.physical_size }];
  }

  async inventory(): Promise<StoredObject[]> {
    this.calls.push('inventory');
    return [...this.objects.values()].map((o) => this.out(o));
  }

  /** Puts an object straight into storage (test setup). */
  seed(o: Partial<FakeObject> & { id: string }): StoredObject {
    const full: FakeObject = {
      kind: 'volume',
      created: 1_700_000_000_000,
      deleted: false,
      virtual_size: 1 << 20,
      physical_utilisation: 4096,
      handle: `/fake/${o.id}`,
      data: '',
      ...o,
    };
    this.objects.set(o.id, full);
    return this.out(full);
  }

  async create(id: string, meta: VdiMeta, size: number, time?: number): Promise<StoredObject> {
    this.check('create', id);
    if (this.objects.has(id)) throw new SmError('VDIExists', id);
    const o: FakeObject = {
      id,
      kind: 'volume',
      vdi: id,
      created: time ?? Date.now(),
      deleted: false,
      meta: { ...meta },
      virtual_size: Math.ceil(size / 512) * 512,
      physical_utilisation: 0,
      handle: `/fake/${id}`,
      data: '',
    };
    this.objects.set(id, o);
    return this.out(o);
  }

  async snapshot(id: string, of: StoredObject, name: string, kind: 'snapshot' | 'internal-snapshot', meta?: VdiMeta): Promise<StoredObject> {
    this.check('snapshot', id);
    const src = this.get(of, 'source');
    if (this.capabilities.dependent && src.kind !== 'volume') throw new SmError('SMGeneral', 'cannot snapshot a snapshot');
    const parsed = parseSnapshotName(name);
    if (!parsed) throw new SmError('InvalidArg', `bad snapshot name ${name}`);
    const time = parsed.time;
    const o: FakeObject = {
      id,
      kind,
      ...(kind === 'snapshot' ? { vdi: id, meta: { ...meta! } } : {}),
      parent: src.id,
      created: time,
      deleted: false,
      virtual_size: src.virtual_size,
      physical_utilisation: src.physical_utilisation,
      handle: `/fake/${src.id}@${name}`,
      data: src.data,
    };
    this.objects.set(id, o);
    return this.out(o);
  }

  async clone(id: string, from: StoredObject, meta?: VdiMeta, time?: number): Promise<StoredObject> {
    this.check('clone', id);
    const src = this.get(from, 'source');
    if (this.capabilities.dependent && src.kind === 'volume') throw new SmError('SMGeneral', 'cannot clone a volume');
    const o: FakeObject = {
      id,
      kind: 'volume',
      ...(meta ? { vdi: id, meta: { ...meta } } : {}),
      parent: src.id,
      created: time ?? Date.now(),
      deleted: false,
      virtual_size: src.virtual_size,
      physical_utilisation: src.physical_utilisation,
      handle: `/fake/${id}`,
      data: src.data,
    };
    this.objects.set(id, o);
    return this.out(o);
  }

  async markTombstone(obj: StoredObject): Promise<void> {
    this.check('markTombstone', obj.id);
    this.get(obj).deleted = true;
  }

  async swapVdi(vdi: string, from: StoredObject, to: StoredObject): Promise<void> {
    this.check('swapVdi', `${vdi} ${from.id}->${to.id}`);
    const f = this.get(from);
    const t = this.get(to);
    if (f.vdi !== vdi) throw new SmError('InvalidArg', `${f.id} does not back ${vdi}`);
    if (t.vdi !== undefined) throw new SmError('InvalidArg', `${t.id} already backs ${t.vdi}`);
    t.vdi = vdi;
    t.meta = f.meta;
    delete f.vdi;
  }

  async rollback(obj: StoredObject, snapshot: StoredObject): Promise<void> {
    this.check('rollback', obj.id);
    this.get(obj).data = this.get(snapshot).data;
  }

  async destroy(obj: StoredObject): Promise<void> {
    this.check('destroy', obj.id);
    const o = this.get(obj);
    if (this.capabilities.dependent && this.children(o.id).length > 0) throw new SmError('SMGeneral', `${o.id} has dependants`);
    this.objects.delete(o.id);
  }

  async setMeta(obj: StoredObject, meta: VdiMeta): Promise<void> {
    this.check('setMeta', obj.id);
    this.get(obj).meta = { ...meta };
  }

  async resize(obj: StoredObject, size: number): Promise<number> {
    this.check('resize', obj.id);
    const o = this.get(obj);
    if (size < o.virtual_size) throw new SmError('VDISize', 'shrink');
    o.virtual_size = Math.ceil(size / 512) * 512;
    return o.virtual_size;
  }

  async datapath(obj: StoredObject): Promise<string> {
    return this.get(obj).handle;
  }

  /** Test helpers: the guest writes; what a visible VDI reads. */
  write(vdi: string, data: string): void {
    const o = [...this.objects.values()].find((x) => x.vdi === vdi && !x.deleted);
    if (!o) throw new Error(`no VDI ${vdi}`);
    o.data = data;
  }
  read(vdi: string): string {
    const o = [...this.objects.values()].find((x) => x.vdi === vdi && !x.deleted);
    if (!o) throw new Error(`no VDI ${vdi}`);
    return o.data;
  }
}

// ---- XenAPI ---------------------------------------------------------------------

export function vdiRecord(over: Partial<VdiRecord> & { uuid: string }): VdiRecord {
  return {
    name_label: '',
    name_description: '',
    SR: SR_REF,
    VBDs: [],
    virtual_size: 0,
    physical_utilisation: 0,
    type: 'user',
    sharable: false,
    read_only: false,
    other_config: {},
    location: over.uuid,
    managed: true,
    missing: false,
    xenstore_data: {},
    sm_config: {},
    is_a_snapshot: false,
    snapshot_of: NULL_REF,
    snapshots: [],
    snapshot_time: '19700101T00:00:00Z',
    metadata_of_pool: NULL_REF,
    on_boot: 'persist',
    allow_caching: false,
    cbt_enabled: false,
    ...over,
  };
}

export class FakeXapi implements XapiPort {
  readonly vdis = new Map<string, VdiRecord>();
  sr: SrRecord = {
    uuid: SR_UUID,
    name_label: 'sr',
    name_description: '',
    VDIs: [],
    PBDs: [],
    virtual_allocation: 0,
    physical_utilisation: -1,
    physical_size: -1,
    type: 'flatsnap',
    content_type: '',
    shared: false,
    other_config: {},
    sm_config: {},
  };
  readonly calls: string[] = [];
  /** Return an error to make that call fail. */
  failOn: (method: string, args: unknown[]) => Error | undefined = () => undefined;
  private next = 1;

  private call(method: string, args: unknown[]): void {
    this.calls.push(method);
    const e = this.failOn(method, args);
    if (e) throw e;
  }

  private rec(ref: string, method: string): VdiRecord {
    const r = this.vdis.get(ref);
    if (!r) throw new XapiError(method, 'HANDLE_INVALID', ['VDI', ref]);
    return r;
  }

  /** Writes only (what the fixed-point tests count). */
  get writes(): string[] {
    return this.calls.filter((c) => !/\.get_/.test(c));
  }

  byUuid(uuid: string): [string, VdiRecord] | undefined {
    return [...this.vdis].find(([, r]) => r.uuid === uuid);
  }

  add(r: VdiRecord): string {
    const ref = `OpaqueRef:vdi-${this.next++}`;
    this.vdis.set(ref, r);
    return ref;
  }

  VDI: XapiPort['VDI'] = {
    db_introduce: async (v: VdiIntroduce) => {
      this.call('VDI.db_introduce', [v]);
      if (!/^[0-9a-f-]{36}$/i.test(v.uuid)) throw new XapiError('VDI.db_introduce', 'UUID_INVALID', ['VDI', v.uuid]);
      for (const r of this.vdis.values()) {
        if (r.SR === v.SR && r.location === v.location) throw new XapiError('VDI.db_introduce', 'LOCATION_NOT_UNIQUE', [v.SR, v.location]);
        if (r.uuid === v.uuid) throw new XapiError('VDI.db_introduce', 'INTERNAL_ERROR', ['duplicate uuid']);
      }
      return this.add(
        vdiRecord({
          uuid: v.uuid,
          name_label: v.name_label ?? '',
          name_description: v.name_description ?? '',
          SR: v.SR,
          type: v.type ?? 'user',
          sharable: v.sharable ?? false,
          read_only: v.read_only ?? false,
          other_config: { ...(v.other_config ?? {}) },
          location: v.location,
          xenstore_data: { ...(v.xenstore_data ?? {}) },
          sm_config: { ...(v.sm_config ?? {}) },
          managed: v.managed ?? true,
          virtual_size: v.virtual_size,
          physical_utilisation: v.physical_utilisation,
          is_a_snapshot: v.is_a_snapshot ?? false,
          snapshot_time: XapiDateTime.from(v.snapshot_time ?? XapiDateTime.EPOCH).wire,
          snapshot_of: v.snapshot_of ?? NULL_REF,
        }),
      );
    },
    db_forget: async (ref: string) => {
      this.call('VDI.db_forget', [ref]);
      this.rec(ref, 'VDI.db_forget');
      this.vdis.delete(ref);
    },
    get_by_uuid: async (uuid: string) => {
      this.call('VDI.get_by_uuid', [uuid]);
      const hit = this.byUuid(uuid);
      if (!hit) throw new XapiError('VDI.get_by_uuid', 'UUID_INVALID', ['VDI', uuid]);
      return hit[0];
    },
    get_record: async (ref: string) => {
      this.call('VDI.get_record', [ref]);
      return structuredClone(this.rec(ref, 'VDI.get_record'));
    },
    get_all_records_where: async (expr: string) => {
      this.call('VDI.get_all_records_where', [expr]);
      const m = /field "SR" = "([^"]+)"/.exec(expr);
      return new Map([...this.vdis].filter(([, r]) => m && r.SR === m[1]).map(([k, r]) => [k, structuredClone(r)]));
    },
    set_virtual_size: async (ref: string, v: number) => {
      this.call('VDI.set_virtual_size', [ref, v]);
      this.rec(ref, 'VDI.set_virtual_size').virtual_size = v;
    },
    set_physical_utilisation: async (ref: string, v: number) => {
      this.call('VDI.set_physical_utilisation', [ref, v]);
      this.rec(ref, 'VDI.set_physical_utilisation').physical_utilisation = v;
    },
    set_read_only: async (ref: string, v: boolean) => {
      this.call('VDI.set_read_only', [ref, v]);
      this.rec(ref, 'VDI.set_read_only').read_only = v;
    },
    get_sm_config: async (ref: string) => {
      this.call('VDI.get_sm_config', [ref]);
      return { ...this.rec(ref, 'VDI.get_sm_config').sm_config };
    },
    add_to_sm_config: async (ref: string, k: string, v: string) => this.addTo(ref, 'sm_config', k, v),
    remove_from_sm_config: async (ref: string, k: string) => this.removeFrom(ref, 'sm_config', k),
    add_to_other_config: async (ref: string, k: string, v: string) => this.addTo(ref, 'other_config', k, v),
    remove_from_other_config: async (ref: string, k: string) => this.removeFrom(ref, 'other_config', k),
  };

  private addTo(ref: string, map: 'sm_config' | 'other_config', k: string, v: string): void {
    const m = `VDI.add_to_${map}`;
    this.call(m, [ref, k, v]);
    const r = this.rec(ref, m);
    if (k in r[map]) throw new XapiError(m, 'MAP_DUPLICATE_KEY', ['VDI', map, ref, k]);
    r[map][k] = v;
  }

  private removeFrom(ref: string, map: 'sm_config' | 'other_config', k: string): void {
    const m = `VDI.remove_from_${map}`;
    this.call(m, [ref, k]);
    delete this.rec(ref, m)[map][k];
  }

  /** host.call_plugin runs this (default: the plugin answers "paused"/"unpaused"). */
  plugin: (host: string, plugin: string, fn: string, args: Record<string, string>) => string = (_h, _p, fn) => `${fn}d`;
  readonly pluginCalls: Array<[host: string, plugin: string, fn: string, args: Record<string, string>]> = [];

  host: XapiPort['host'] = {
    call_plugin: async (host: string, plugin: string, fn: string, args: Record<string, string>) => {
      this.call('host.call_plugin', [host, plugin, fn, args]);
      this.pluginCalls.push([host, plugin, fn, { ...args }]);
      return this.plugin(host, plugin, fn, args);
    },
  };

  SR: XapiPort['SR'] = {
    get_record: async (ref: string) => {
      this.call('SR.get_record', [ref]);
      if (ref !== SR_REF) throw new XapiError('SR.get_record', 'HANDLE_INVALID', ['SR', ref]);
      return structuredClone(this.sr);
    },
    set_physical_size: async (_ref: string, v: number) => {
      this.call('SR.set_physical_size', [v]);
      this.sr.physical_size = v;
    },
    set_physical_utilisation: async (_ref: string, v: number) => {
      this.call('SR.set_physical_utilisation', [v]);
      this.sr.physical_utilisation = v;
    },
    set_virtual_allocation: async (_ref: string, v: number) => {
      this.call('SR.set_virtual_allocation', [v]);
      this.sr.virtual_allocation = v;
    },
    add_to_other_config: async (_ref: string, k: string, v: string) => {
      this.call('SR.add_to_other_config', [k, v]);
      if (k in this.sr.other_config) throw new XapiError('SR.add_to_other_config', 'MAP_DUPLICATE_KEY', ['SR', 'other_config', SR_REF, k]);
      this.sr.other_config[k] = v;
    },
  };
}

// ---- requests -------------------------------------------------------------------

export interface ReqOptions {
  args?: string[];
  vdi?: { uuid: string; ref: string };
  master?: boolean;
  dc?: Record<string, string>;
  extra?: Record<string, XmlRpcValue>;
}

/** A request as xapi would send it, through the real parser. */
export function smReq(command: string, o: ReqOptions = {}): SmRequest {
  const p: Record<string, XmlRpcValue> = {
    host_ref: 'OpaqueRef:host-1',
    command,
    args: o.args ?? [],
    device_config: { SRmaster: o.master === false ? 'false' : 'true', path: '/srv/fake', ...(o.dc ?? {}) },
    session_ref: 'OpaqueRef:session-1',
    sr_ref: SR_REF,
    sr_uuid: SR_UUID,
  };
  if (o.vdi) {
    p.vdi_ref = o.vdi.ref;
    p.vdi_location = o.vdi.uuid;
    p.vdi_uuid = o.vdi.uuid;
  }
  Object.assign(p, o.extra ?? {});
  return parseRequest(encodeMethodCall(command, [p]));
}
