// An xe-compatible command line for the simulator (the real xe speaks the
// ThinCLI protocol on /cli, which the simulator does not serve). It maps xe's
// syntax onto XenAPI calls as cli_operations.ml does:
//   xe -s HOST -p PORT -u root -pw PASS vm-snapshot vm=NAME new-name-label=S
import * as readline from 'node:readline';
import { DateTimeValue, decodeMethodResponse, encodeMethodCall, isStruct, PYTHON_STYLE, type XmlRpcValue } from '../../../src/smapi/xmlrpc.js';

class XeError extends Error {
  constructor(readonly description: string[]) {
    super(description.join(' '));
  }
}
class Usage extends Error {}

type Rec = Record<string, XmlRpcValue>;
const NULL = 'OpaqueRef:NULL';
const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

class Api {
  session = '';
  constructor(readonly url: string) {}
  async raw(method: string, params: XmlRpcValue[]): Promise<XmlRpcValue> {
    const res = await fetch(this.url, { method: 'POST', headers: { 'Content-Type': 'text/xml' }, body: encodeMethodCall(method, params, PYTHON_STYLE) });
    const r = decodeMethodResponse(await res.text());
    if (!r.ok) throw new XeError(['XMLRPC_FAULT', String(r.faultCode), r.faultString]);
    const v = r.value;
    if (!isStruct(v)) return v;
    if (v.Status === 'Success') return v.Value ?? '';
    throw new XeError((v.ErrorDescription as string[]) ?? ['UNKNOWN']);
  }
  call<T = XmlRpcValue>(method: string, ...params: XmlRpcValue[]): Promise<T> {
    return this.raw(method, [this.session, ...params]) as Promise<T>;
  }
}

interface Args {
  cmd: string;
  kv: Map<string, string>;
  maps: Map<string, Record<string, string>>; // device-config:k=v
  minimal: boolean;
  force: boolean;
}

function parse(argv: string[]): { conn: { host: string; port: string; user: string; pw: string }; args: Args } {
  const conn = { host: '127.0.0.1', port: '443', user: 'root', pw: '' };
  const args: Args = { cmd: '', kv: new Map(), maps: new Map(), minimal: false, force: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = () => {
      const v = argv[++i];
      if (v === undefined) throw new Usage(`${a} needs a value`);
      return v;
    };
    if (a === '-s') conn.host = next();
    else if (a === '-p') conn.port = next();
    else if (a === '-u') conn.user = next();
    else if (a === '-pw') conn.pw = next();
    else if (a === '--minimal') args.minimal = true;
    else if (a === '--force') args.force = true;
    else if (!args.cmd && !a.includes('=')) args.cmd = a;
    else {
      const eq = a.indexOf('=');
      if (eq < 0) throw new Usage(`unexpected argument ${a}`);
      const key = a.slice(0, eq);
      const value = a.slice(eq + 1);
      const colon = key.indexOf(':');
      if (colon > 0) {
        const m = args.maps.get(key.slice(0, colon)) ?? {};
        m[key.slice(colon + 1)] = value;
        args.maps.set(key.slice(0, colon), m);
      } else args.kv.set(key, value);
    }
  }
  if (args.kv.get('force') === 'true') args.force = true;
  return { conn, args };
}

function need(a: Args, ...keys: string[]): string {
  for (const k of keys) {
    const v = a.kv.get(k);
    if (v !== undefined) return v;
  }
  throw new Usage(`missing parameter: ${keys[0]}`);
}

function parseSize(s: string): string {
  const m = /^(\d+)\s*(|B|KiB|MiB|GiB|TiB|K|M|G|T)$/i.exec(s.trim());
  if (!m) throw new Usage(`bad size ${s}`);
  const mult: Record<string, number> = { '': 1, b: 1, kib: 2 ** 10, k: 2 ** 10, mib: 2 ** 20, m: 2 ** 20, gib: 2 ** 30, g: 2 ** 30, tib: 2 ** 40, t: 2 ** 40 };
  return String(Number(m[1]) * mult[m[2]!.toLowerCase()]!);
}

// ---------------------------------------------------------------------------
// Records as xe shows them

/** An xe field: its name, how it is shown, whether it is settable, and the API field behind it (for param-get/set). */
type Field = [name: string, get: (r: Rec, x: Ctx) => Promise<string> | string, rw?: boolean, key?: string];
interface Ctx {
  api: Api;
  uuidOf(cls: string, ref: string): Promise<string>;
}

const str = (v: XmlRpcValue | undefined): string => {
  if (v === undefined || v === null) return '';
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (Array.isArray(v)) return v.map((x) => str(x)).join('; ');
  if (isStruct(v)) return Object.entries(v).map(([k, x]) => `${k}: ${str(x)}`).join('; ');
  if (typeof v === 'object' && 'iso' in v) return (v as { iso: string }).iso;
  return String(v);
};
const f = (name: string, key: string, rw = false): Field => [name, (r) => str(r[key]), rw, key];
const refUuid = (name: string, cls: string, key: string): Field => [name, (r, x) => x.uuidOf(cls, String(r[key] ?? NULL))];
const refUuids = (name: string, cls: string, key: string): Field => [
  name,
  async (r, x) => (await Promise.all(((r[key] as string[]) ?? []).map((ref) => x.uuidOf(cls, ref)))).join('; '),
];

const FIELDS: Record<string, Field[]> = {
  SR: [
    f('uuid', 'uuid'),
    f('name-label', 'name_label', true),
    f('name-description', 'name_description', true),
    refUuids('PBDs', 'PBD', 'PBDs'),
    refUuids('VDIs', 'VDI', 'VDIs'),
    f('content-type', 'content_type'),
    f('type', 'type'),
    f('shared', 'shared', true),
    f('other-config', 'other_config', true),
    f('physical-size', 'physical_size'),
    f('physical-utilisation', 'physical_utilisation'),
    f('virtual-allocation', 'virtual_allocation'),
    f('sm-config', 'sm_config'),
    f('allowed-operations', 'allowed_operations'),
    f('tags', 'tags', true),
  ],
  PBD: [f('uuid', 'uuid'), refUuid('host-uuid', 'host', 'host'), refUuid('sr-uuid', 'SR', 'SR'), f('device-config', 'device_config'), f('currently-attached', 'currently_attached'), f('other-config', 'other_config', true)],
  VDI: [
    f('uuid', 'uuid'),
    f('name-label', 'name_label', true),
    f('name-description', 'name_description', true),
    f('is-a-snapshot', 'is_a_snapshot'),
    refUuid('snapshot-of', 'VDI', 'snapshot_of'),
    refUuids('snapshots', 'VDI', 'snapshots'),
    f('snapshot-time', 'snapshot_time'),
    f('allowed-operations', 'allowed_operations'),
    f('current-operations', 'current_operations'),
    refUuid('sr-uuid', 'SR', 'SR'),
    [
      'sr-name-label',
      async (r, x) => {
        try {
          return String(await x.api.call('SR.get_name_label', String(r.SR)));
        } catch {
          return '<not in database>';
        }
      },
    ],
    refUuids('vbd-uuids', 'VBD', 'VBDs'),
    f('virtual-size', 'virtual_size'),
    f('physical-utilisation', 'physical_utilisation'),
    f('location', 'location'),
    f('type', 'type'),
    f('sharable', 'sharable'),
    f('read-only', 'read_only'),
    f('storage-lock', 'storage_lock'),
    f('managed', 'managed'),
    f('missing', 'missing'),
    f('other-config', 'other_config', true),
    f('xenstore-data', 'xenstore_data'),
    f('sm-config', 'sm_config'),
    f('on-boot', 'on_boot', true),
    f('allow-caching', 'allow_caching', true),
    f('cbt-enabled', 'cbt_enabled'),
    f('tags', 'tags', true),
  ],
  VM: [
    f('uuid', 'uuid'),
    f('name-label', 'name_label', true),
    f('name-description', 'name_description', true),
    f('power-state', 'power_state'),
    f('is-a-template', 'is_a_template', true),
    f('is-a-snapshot', 'is_a_snapshot'),
    refUuid('snapshot-of', 'VM', 'snapshot_of'),
    refUuids('snapshots', 'VM', 'snapshots'),
    f('snapshot-time', 'snapshot_time'),
    f('snapshot-info', 'snapshot_info'),
    refUuid('parent', 'VM', 'parent'),
    refUuids('children', 'VM', 'children'),
    refUuid('suspend-VDI-uuid', 'VDI', 'suspend_VDI'),
    f('other-config', 'other_config', true),
    f('tags', 'tags', true),
  ],
  VBD: [
    f('uuid', 'uuid'),
    refUuid('vm-uuid', 'VM', 'VM'),
    refUuid('vdi-uuid', 'VDI', 'VDI'),
    f('userdevice', 'userdevice', true),
    f('bootable', 'bootable', true),
    f('mode', 'mode', true),
    f('type', 'type', true),
    f('empty', 'empty'),
    f('currently-attached', 'currently_attached'),
    f('other-config', 'other_config', true),
  ],
  host: [
    f('uuid', 'uuid'),
    f('name-label', 'name_label', true),
    f('name-description', 'name_description', true),
    f('address', 'address'),
    f('hostname', 'hostname'),
    f('enabled', 'enabled'),
    f('other-config', 'other_config', true),
  ],
  SM: [
    f('uuid', 'uuid'),
    f('name-label', 'name_label'),
    f('name-description', 'name_description'),
    f('type', 'type'),
    f('vendor', 'vendor'),
    f('copyright', 'copyright'),
    f('required-api-version', 'required_api_version'),
    f('capabilities', 'capabilities'),
    f('features', 'features'),
    f('configuration', 'configuration'),
    f('driver-filename', 'driver_filename'),
    f('required-cluster-stack', 'required_cluster_stack'),
    f('supported-image-formats', 'supported_image_formats'),
  ],
};
const DEFAULT_COLUMNS: Record<string, string[]> = {
  SM: ['uuid', 'type', 'vendor', 'name-label'],
  host: ['uuid', 'name-label', 'name-description'],
  SR: ['uuid', 'name-label', 'name-description', 'host', 'type', 'content-type'],
  VDI: ['uuid', 'name-label', 'name-description', 'virtual-size', 'read-only', 'sharable', 'sr-uuid'],
  VM: ['uuid', 'name-label', 'power-state'],
  snapshot: ['uuid', 'name-label', 'name-description'],
  PBD: ['uuid', 'host-uuid', 'sr-uuid', 'device-config', 'currently-attached'],
  VBD: ['uuid', 'vm-uuid', 'vdi-uuid', 'userdevice', 'empty'],
};

async function render(x: Ctx, cls: string, rec: Rec, columns: string[] | 'all'): Promise<Array<[string, string, boolean]>> {
  const fields = FIELDS[cls]!;
  const out: Array<[string, string, boolean]> = [];
  const want = columns === 'all' ? fields.map((q) => q[0]) : columns;
  for (const name of want) {
    const fd = fields.find((q) => q[0] === name);
    if (fd) out.push([name, await fd[1](rec, x), fd[2] === true]);
  }
  return out;
}

function printRecords(rows: Array<Array<[string, string, boolean]>>): void {
  for (const row of rows) {
    const w = Math.max(0, ...row.map(([n]) => n.length));
    for (const [i, [n, v, rw]] of row.entries()) {
      const label = `${n} ( ${rw ? 'RW' : 'RO'})`;
      const pad = i === 0 ? label.padEnd(w + 6) : label.padStart(w + 6);
      process.stdout.write(`${pad}: ${v}\n`);
    }
    process.stdout.write('\n\n');
  }
}

async function list(api: Api, x: Ctx, a: Args, cls: string, view: string, filter: (r: Rec) => boolean = () => true): Promise<void> {
  const recs = (await api.call<Record<string, Rec>>(`${cls}.get_all_records_where`, 'true')) as Record<string, Rec>;
  const params = a.kv.get('params');
  const rows: Array<{ rec: Rec; rendered: Array<[string, string, boolean]> }> = [];
  for (const rec of Object.values(recs)) {
    if (!filter(rec)) continue;
    const all = await render(x, cls, rec, 'all');
    let ok = true;
    for (const [k, v] of a.kv) {
      if (k === 'params') continue;
      const hit = all.find(([n]) => n === k);
      if (hit && hit[1] !== v) ok = false;
    }
    if (ok) rows.push({ rec, rendered: all });
  }
  const cols = params === 'all' ? 'all' : params ? params.split(',') : (DEFAULT_COLUMNS[view] ?? ['uuid']);
  if (a.minimal) {
    const col = params && params !== 'all' ? params.split(',')[0]! : 'uuid';
    process.stdout.write(`${rows.map((r) => r.rendered.find(([n]) => n === col)?.[1] ?? '').join(',')}\n`);
    return;
  }
  printRecords(rows.map((r) => (cols === 'all' ? r.rendered : cols.map((c) => r.rendered.find(([n]) => n === c)).filter((q): q is [string, string, boolean] => q !== undefined))));
}

async function paramList(api: Api, x: Ctx, cls: string, uuid: string): Promise<void> {
  const ref = await api.call<string>(`${cls}.get_by_uuid`, uuid);
  printRecords([await render(x, cls, await api.call<Rec>(`${cls}.get_record`, ref), 'all')]);
}

const PARAM_CLASS: Record<string, string> = { vdi: 'VDI', sr: 'SR', vm: 'VM', snapshot: 'VM', template: 'VM', pbd: 'PBD', vbd: 'VBD', sm: 'SM', host: 'host' };
type ParamOp = 'get' | 'set' | 'remove' | 'clear' | 'list';

function fieldOf(cls: string, name: string): Field {
  const fd = FIELDS[cls]!.find((q) => q[0] === name);
  if (fd === undefined) throw new Usage(`Unknown field '${name}'`);
  return fd;
}

/** The API field behind a settable xe field, or a usage error as xe gives for a read-only one. */
function settable(cls: string, name: string): string {
  const fd = fieldOf(cls, name);
  if (fd[2] !== true || fd[3] === undefined) throw new Usage(`Parameter '${name}' is read-only`);
  return fd[3];
}

/**
 * <class>-param-get/set/remove/clear/list (records.ml + cli_operations.ml param_*):
 * set takes field=value and map-field:key=value (a map key is removed, then added, as
 * xe's set_in_map does); remove and get take param-name [param-key].
 */
async function paramOp(api: Api, x: Ctx, a: Args, cls: string, op: ParamOp): Promise<void> {
  const uuid = need(a, 'uuid');
  if (op === 'list') return paramList(api, x, cls, uuid);
  const ref = await byUuid(api, cls, uuid);
  switch (op) {
    case 'get': {
      const name = need(a, 'param-name');
      const fd = fieldOf(cls, name);
      const key = a.kv.get('param-key');
      if (key === undefined) return out(await fd[1](await api.call<Rec>(`${cls}.get_record`, ref), x));
      const m = fd[3] === undefined ? undefined : (await api.call<Rec>(`${cls}.get_record`, ref))[fd[3]];
      if (!isStruct(m ?? null)) throw new Usage(`Parameter '${name}' is not a map`);
      const v = (m as Record<string, XmlRpcValue>)[key];
      if (v === undefined) throw new Usage(`Key ${key} not found in map`);
      return out(str(v));
    }
    case 'set': {
      for (const [k, v] of a.kv) if (k !== 'uuid') await api.call(`${cls}.set_${settable(cls, k)}`, ref, v);
      for (const [mapName, entries] of a.maps) {
        const field = settable(cls, mapName);
        for (const [k, v] of Object.entries(entries)) {
          await api.call(`${cls}.remove_from_${field}`, ref, k);
          await api.call(`${cls}.add_to_${field}`, ref, k, v);
        }
      }
      return;
    }
    case 'remove': {
      const field = settable(cls, need(a, 'param-name'));
      return void (await api.call(`${cls}.remove_from_${field}`, ref, need(a, 'param-key')));
    }
    case 'clear': {
      const field = settable(cls, need(a, 'param-name'));
      const cur = (await api.call<Rec>(`${cls}.get_record`, ref))[field];
      return void (await api.call(`${cls}.set_${field}`, ref, Array.isArray(cur) ? [] : isStruct(cur ?? null) ? {} : ''));
    }
  }
}

async function vmRef(api: Api, a: Args, ...keys: string[]): Promise<string> {
  const sel = need(a, ...keys);
  if (UUID_RE.test(sel)) {
    try {
      return await api.call<string>('VM.get_by_uuid', sel);
    } catch {
      /* fall back to the name */
    }
  }
  const refs = await api.call<string[]>('VM.get_by_name_label', sel);
  if (refs.length === 0) throw new XeError(['No matching VMs found']);
  if (refs.length > 1) throw new XeError(['Multiple VMs match', sel]);
  return refs[0]!;
}

const byUuid = (api: Api, cls: string, uuid: string) => api.call<string>(`${cls}.get_by_uuid`, uuid);
const out = (s: string): void => {
  process.stdout.write(`${s}\n`);
};
const uuidOfRef = (api: Api, cls: string, ref: string) => api.call<string>(`${cls}.get_uuid`, ref);

async function confirm(what: string): Promise<boolean> {
  process.stdout.write(`${what}\nType 'yes' to continue\n`);
  const rl = readline.createInterface({ input: process.stdin });
  const line = await new Promise<string>((r) => {
    rl.once('line', r);
    rl.once('close', () => r(''));
  });
  rl.close();
  return line.trim() === 'yes';
}

async function run(api: Api, a: Args): Promise<void> {
  const x: Ctx = {
    api,
    uuidOf: async (cls, ref) => {
      if (ref === NULL || ref === '') return '<not in database>';
      try {
        return await uuidOfRef(api, cls, ref);
      } catch {
        return '<not in database>';
      }
    },
  };
  // xe's default host is the one it talks to: the pool master.
  const master = async () => api.call<string>('pool.get_master', (await api.call<string[]>('pool.get_all'))[0]!);
  const host = async () => (a.kv.has('host-uuid') ? byUuid(api, 'host', a.kv.get('host-uuid')!) : master());
  switch (a.cmd) {
    case 'sr-create': {
      const sr = await api.call<string>(
        'SR.create',
        await host(),
        a.maps.get('device-config') ?? {},
        a.kv.has('physical-size') ? parseSize(a.kv.get('physical-size')!) : '0',
        need(a, 'name-label'),
        a.kv.get('name-description') ?? '',
        need(a, 'type'),
        a.kv.get('content-type') ?? '',
        a.kv.get('shared') === 'true',
        a.maps.get('sm-config') ?? {},
      );
      return out(await uuidOfRef(api, 'SR', sr));
    }
    case 'sr-introduce': {
      const sr = await api.call<string>('SR.introduce', need(a, 'uuid'), need(a, 'name-label'), a.kv.get('name-description') ?? '', need(a, 'type'), a.kv.get('content-type') ?? '', a.kv.get('shared') === 'true', a.maps.get('sm-config') ?? {});
      return out(await uuidOfRef(api, 'SR', sr));
    }
    case 'sr-scan':
      return void (await api.call('SR.scan', await byUuid(api, 'SR', need(a, 'uuid'))));
    case 'sr-update':
      return void (await api.call('SR.update', await byUuid(api, 'SR', need(a, 'uuid'))));
    case 'sr-forget':
      return void (await api.call('SR.forget', await byUuid(api, 'SR', need(a, 'uuid'))));
    case 'sr-destroy':
      return void (await api.call('SR.destroy', await byUuid(api, 'SR', need(a, 'uuid'))));
    case 'sr-probe':
      return out(await api.call<string>('SR.probe', await host(), a.maps.get('device-config') ?? {}, need(a, 'type'), a.maps.get('sm-config') ?? {}));
    case 'sr-list':
      return list(api, x, a, 'SR', 'SR');
    case 'sr-param-list':
      return paramList(api, x, 'SR', need(a, 'uuid'));
    case 'pbd-create': {
      const pbd = await api.call<string>('PBD.create', {
        host: await host(),
        SR: await byUuid(api, 'SR', need(a, 'sr-uuid')),
        device_config: a.maps.get('device-config') ?? {},
        other_config: {},
      });
      return out(await uuidOfRef(api, 'PBD', pbd));
    }
    case 'pbd-plug':
      return void (await api.call('PBD.plug', await byUuid(api, 'PBD', need(a, 'uuid'))));
    case 'pbd-unplug':
      return void (await api.call('PBD.unplug', await byUuid(api, 'PBD', need(a, 'uuid'))));
    case 'pbd-list':
      return list(api, x, a, 'PBD', 'PBD');
    case 'vdi-create': {
      const vdi = await api.call<string>('VDI.create', {
        name_label: need(a, 'name-label'),
        name_description: a.kv.get('name-description') ?? '',
        SR: await byUuid(api, 'SR', need(a, 'sr-uuid')),
        virtual_size: parseSize(need(a, 'virtual-size')),
        type: a.kv.get('type') ?? 'user',
        sharable: a.kv.get('sharable') === 'true',
        read_only: a.kv.get('read-only') === 'true',
        other_config: a.maps.get('other-config') ?? {},
        xenstore_data: {},
        sm_config: a.maps.get('sm-config') ?? {},
        tags: [],
      });
      return out(await uuidOfRef(api, 'VDI', vdi));
    }
    case 'vdi-list':
      return list(api, x, a, 'VDI', 'VDI');
    case 'vdi-param-list':
      return paramList(api, x, 'VDI', need(a, 'uuid'));
    case 'vdi-snapshot': {
      const v = await api.call<string>('VDI.snapshot', await byUuid(api, 'VDI', need(a, 'uuid')), a.maps.get('driver-params') ?? {});
      return out(await uuidOfRef(api, 'VDI', v));
    }
    case 'vdi-clone': {
      const v = await api.call<string>('VDI.clone', await byUuid(api, 'VDI', need(a, 'uuid')), a.maps.get('driver-params') ?? {});
      if (a.kv.has('new-name-label')) await api.call('VDI.set_name_label', v, a.kv.get('new-name-label')!);
      if (a.kv.has('new-name-description')) await api.call('VDI.set_name_description', v, a.kv.get('new-name-description')!);
      return out(await uuidOfRef(api, 'VDI', v));
    }
    case 'vdi-copy': {
      const src = await byUuid(api, 'VDI', need(a, 'uuid'));
      const sr = a.kv.has('sr-uuid') ? await byUuid(api, 'SR', a.kv.get('sr-uuid')!) : NULL;
      const into = a.kv.has('into-vdi-uuid') ? await byUuid(api, 'VDI', a.kv.get('into-vdi-uuid')!) : NULL;
      if ((sr === NULL) === (into === NULL)) throw new Usage('exactly one of sr-uuid and into-vdi-uuid is needed');
      const base = a.kv.has('base-vdi-uuid') ? await byUuid(api, 'VDI', a.kv.get('base-vdi-uuid')!) : NULL;
      const v = await api.call<string>('VDI.copy', src, sr, base, into);
      return out(await uuidOfRef(api, 'VDI', v));
    }
    case 'vdi-resize':
      return void (await api.call('VDI.resize', await byUuid(api, 'VDI', need(a, 'uuid')), parseSize(need(a, 'disk-size'))));
    case 'vdi-destroy':
      return void (await api.call('VDI.destroy', await byUuid(api, 'VDI', need(a, 'uuid'))));
    case 'vdi-forget':
      return void (await api.call('VDI.forget', await byUuid(api, 'VDI', need(a, 'uuid'))));
    case 'vdi-update':
      return void (await api.call('VDI.update', await byUuid(api, 'VDI', need(a, 'uuid'))));
    case 'vdi-introduce': {
      const v = await api.call<string>(
        'VDI.introduce',
        need(a, 'uuid'),
        a.kv.get('name-label') ?? '',
        a.kv.get('name-description') ?? '',
        await byUuid(api, 'SR', need(a, 'sr-uuid')),
        need(a, 'type'),
        a.kv.get('sharable') === 'true',
        a.kv.get('read-only') === 'true',
        a.maps.get('other-config') ?? {},
        need(a, 'location'),
        a.maps.get('xenstore-data') ?? {},
        a.maps.get('sm-config') ?? {},
        // cli_operations.ml vdi_introduce passes every parameter, with these fixed values
        a.kv.get('managed') === 'true',
        '0',
        '0',
        NULL,
        false,
        new DateTimeValue('19700101T00:00:00Z'),
        NULL,
      );
      return out(await uuidOfRef(api, 'VDI', v));
    }
    case 'vm-create': {
      const vm = await api.call<string>('VM.create', { name_label: need(a, 'name-label'), name_description: a.kv.get('name-description') ?? '' });
      return out(await uuidOfRef(api, 'VM', vm));
    }
    case 'vm-list':
      return list(api, x, a, 'VM', 'VM', (r) => r.is_a_snapshot !== true && r.is_control_domain !== true);
    case 'vm-param-list':
      return paramList(api, x, 'VM', need(a, 'uuid'));
    case 'vbd-create': {
      const vbd = await api.call<string>('VBD.create', {
        VM: await byUuid(api, 'VM', need(a, 'vm-uuid')),
        VDI: a.kv.has('vdi-uuid') ? await byUuid(api, 'VDI', a.kv.get('vdi-uuid')!) : NULL,
        userdevice: need(a, 'device'),
        bootable: a.kv.get('bootable') === 'true',
        mode: a.kv.get('mode') ?? 'RW',
        type: a.kv.get('type') ?? 'Disk',
        empty: !a.kv.has('vdi-uuid'),
        unpluggable: a.kv.get('unpluggable') !== 'false',
        other_config: {},
        qos_algorithm_type: '',
        qos_algorithm_params: {},
      });
      return out(await uuidOfRef(api, 'VBD', vbd));
    }
    case 'vbd-list':
      return list(api, x, a, 'VBD', 'VBD');
    case 'vm-start': {
      const vm = await vmRef(api, a, 'vm', 'uuid');
      const on = a.kv.get('on');
      if (on === undefined) return void (await api.call('VM.start', vm, false, false));
      // on=<host name or uuid>: VM.start_on
      const all = await api.call<Record<string, Record<string, unknown>>>('host.get_all_records');
      const target = Object.entries(all).find(([, r]) => r.uuid === on || r.name_label === on)?.[0];
      if (target === undefined) throw new Usage(`on=${on}: no host with that name or uuid`);
      return void (await api.call('VM.start_on', vm, target, false, false));
    }
    case 'vm-shutdown': {
      const vm = await vmRef(api, a, 'vm', 'uuid');
      return void (await api.call(a.force ? 'VM.hard_shutdown' : 'VM.clean_shutdown', vm));
    }
    case 'vm-snapshot':
    case 'vm-checkpoint': {
      const vm = await vmRef(api, a, 'vm', 'uuid');
      const ignore = a.kv.has('ignore-vdi-uuids') ? await Promise.all(a.kv.get('ignore-vdi-uuids')!.split(',').map((u) => byUuid(api, 'VDI', u))) : [];
      const snap =
        a.cmd === 'vm-snapshot'
          ? await api.call<string>('VM.snapshot', vm, need(a, 'new-name-label'), ignore)
          : await api.call<string>('VM.checkpoint', vm, need(a, 'new-name-label'));
      if (a.kv.has('new-name-description')) await api.call('VM.set_name_description', snap, a.kv.get('new-name-description')!);
      return out(await uuidOfRef(api, 'VM', snap));
    }
    case 'snapshot-list':
      return list(api, x, a, 'VM', 'snapshot', (r) => r.is_a_snapshot === true);
    case 'snapshot-param-list':
      return paramList(api, x, 'VM', need(a, 'uuid', 'snapshot-uuid'));
    case 'snapshot-revert': {
      const s = await byUuid(api, 'VM', need(a, 'snapshot-uuid', 'uuid'));
      if ((await api.call('VM.get_is_a_snapshot', s)) !== true) throw new XeError(['VM_NOT_A_SNAPSHOT', s]);
      return void (await api.call('VM.revert', s));
    }
    case 'snapshot-destroy': {
      const s = await byUuid(api, 'VM', need(a, 'snapshot-uuid', 'uuid'));
      if ((await api.call('VM.get_power_state', s)) !== 'Halted') await api.call('VM.hard_shutdown', s);
      return void (await api.call('VM.destroy', s));
    }
    case 'snapshot-uninstall':
    case 'vm-uninstall': {
      const vms = a.cmd === 'snapshot-uninstall' ? [await byUuid(api, 'VM', need(a, 'snapshot-uuid', 'uuid'))] : [await vmRef(api, a, 'vm', 'uuid')];
      if (a.cmd === 'vm-uninstall') vms.push(...(await api.call<string[]>('VM.get_snapshots', vms[0]!)));
      const vdis: string[] = [];
      for (const vm of vms) {
        for (const vbd of await api.call<string[]>('VM.get_VBDs', vm)) {
          const oc = await api.call<Record<string, string>>('VBD.get_other_config', vbd);
          const vdi = await api.call<string>('VBD.get_VDI', vbd);
          if (Object.hasOwn(oc, 'owner') && vdi !== NULL) vdis.push(vdi);
        }
        const sv = await api.call<string>('VM.get_suspend_VDI', vm);
        if (sv !== NULL) vdis.push(sv);
      }
      if (!a.force) {
        const names = await Promise.all(vdis.map(async (v) => `VDI: ${await uuidOfRef(api, 'VDI', v)}`));
        if (!(await confirm(`The following items are about to be destroyed\n${names.join('\n')}`))) throw new XeError(['Aborted']);
      }
      for (const vm of vms) {
        if ((await api.call('VM.get_power_state', vm)) !== 'Halted') await api.call('VM.hard_shutdown', vm);
        await api.call('VM.destroy', vm);
      }
      for (const v of vdis) {
        try {
          await api.call('VDI.destroy', v);
        } catch (e) {
          if (!(e instanceof XeError && e.description[0] === 'HANDLE_INVALID')) throw e;
        }
      }
      return;
    }
    case 'vm-clone':
    case 'vm-copy':
    case 'snapshot-clone':
    case 'snapshot-copy': {
      const vm = a.cmd.startsWith('snapshot') ? await byUuid(api, 'VM', need(a, 'uuid', 'snapshot-uuid')) : await vmRef(api, a, 'vm', 'uuid');
      const name = need(a, 'new-name-label');
      const nv = a.cmd.endsWith('clone')
        ? await api.call<string>('VM.clone', vm, name)
        : await api.call<string>('VM.copy', vm, name, a.kv.has('sr-uuid') ? await byUuid(api, 'SR', a.kv.get('sr-uuid')!) : NULL);
      if (a.kv.has('new-name-description')) await api.call('VM.set_name_description', nv, a.kv.get('new-name-description')!);
      return out(await uuidOfRef(api, 'VM', nv));
    }
    case 'vm-destroy':
      return void (await api.call('VM.destroy', await byUuid(api, 'VM', need(a, 'uuid'))));
    case 'host-list':
      return list(api, x, a, 'host', 'host');
    case 'sm-list':
      return list(api, x, a, 'SM', 'SM');
    default: {
      const m = /^(vdi|sr|vm|snapshot|template|pbd|vbd|sm|host)-param-(get|set|remove|clear|list)$/.exec(a.cmd);
      if (m) return paramOp(api, x, a, PARAM_CLASS[m[1]!]!, m[2] as ParamOp);
      throw new Usage(`Unknown command: ${a.cmd}`);
    }
  }
}

async function main(): Promise<number> {
  let parsed;
  try {
    parsed = parse(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`${(e as Error).message}\n`);
    return 1;
  }
  const { conn, args } = parsed;
  if (!args.cmd) {
    process.stderr.write('Usage: xe -s HOST -p PORT -u USER -pw PASSWORD <command> [key=value ...] [--minimal]\n');
    return 1;
  }
  const h = conn.host.includes(':') ? `[${conn.host}]` : conn.host;
  const api = new Api(`http://${h}:${conn.port}/`);
  try {
    api.session = (await api.raw('session.login_with_password', [conn.user, conn.pw, '1.0', 'xe-sim'])) as string;
    try {
      await run(api, args);
    } finally {
      await api.call('session.logout').catch(() => undefined);
    }
    return 0;
  } catch (e) {
    if (e instanceof Usage) {
      process.stderr.write(`${e.message}\n`);
      return 1;
    }
    if (e instanceof XeError) {
      process.stderr.write(`Error code: ${e.description[0]}\nError parameters: ${e.description.slice(1).join(', ')}\n`);
      return 1;
    }
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n`);
    return 1;
  }
}

main().then((rc) => {
  process.exitCode = rc;
});
