// VDI flows (xapi_vdi.ml, storage_smapiv1.ml): create, destroy, snapshot, clone
// (with the fault-38 fallback), copy, resize, introduce, forget, update,
// set_on_boot, the plugin callbacks (db_introduce, db_forget, hidden setters)
// and, in vdi-revert mode, VDI.revert.
import { randomUUID } from 'node:crypto';
import { coerceField, rawSetter, type Ctx, type Registry } from '../api.js';
import { SCHEMA } from '../schema.js';
import { NotImplemented, smUnit, smVdiInfo } from '../sm-exec.js';
import { checkCancel } from '../tasks.js';
import { ApiError, EPOCH, NULL_REF, xapiDate } from '../wire.js';
import { assertCap, assertPlugged, unimplemented, valid, vdiSr } from './common.js';
import { sparseCopy, withDom0Attached } from './datapath.js';

const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
type Map_ = Record<string, string>;

function findByLocation(ctx: Ctx, sr: string, location: string): string {
  const r = ctx.db.where('VDI', (v) => v.SR === sr && v.location === location)[0];
  if (r === undefined) throw new ApiError('VDI_MISSING', [sr, location]);
  return r;
}

function assertManaged(ctx: Ctx, vdi: string): void {
  if (ctx.db.field('VDI', vdi, 'managed') !== true) throw new ApiError('VDI_NOT_MANAGED', [vdi]);
}

export interface VdiCreateArgs {
  name_label: string;
  name_description: string;
  SR: string;
  virtual_size: number;
  type: string;
  sharable: boolean;
  read_only: boolean;
  other_config: Map_;
  xenstore_data: Map_;
  sm_config: Map_;
  tags: string[];
}

export async function vdiCreate(ctx: Ctx, a: VdiCreateArgs): Promise<string> {
  ctx.db.get('SR', a.SR);
  assertCap(ctx, a.SR, 'VDI_CREATE');
  assertPlugged(ctx, a.SR);
  let info;
  try {
    info = await smVdiInfo(ctx, {
      cmd: 'vdi_create',
      sr: a.SR,
      vdiType: a.type,
      vdiSmConfig: a.sm_config,
      args: [String(a.virtual_size), a.name_label, a.name_description, '', 'false', EPOCH, '', String(a.read_only)],
    });
  } catch (e) {
    throw unimplemented(e, a.SR);
  }
  const vdi = ctx.db.byUuid('VDI', info.uuid);
  const actual = ctx.db.field<number>('VDI', vdi, 'virtual_size');
  if (actual < a.virtual_size) throw new ApiError('SR_BACKEND_FAILURE', ['Disk too small', String(a.virtual_size), String(actual)]);
  ctx.db.update('VDI', vdi, { other_config: a.other_config, sharable: a.sharable, tags: a.tags, xenstore_data: a.xenstore_data });
  return vdi;
}

export async function vdiDestroy(ctx: Ctx, vdi: string): Promise<void> {
  const sr = vdiSr(ctx, vdi);
  assertPlugged(ctx, sr);
  assertManaged(ctx, vdi);
  const inUse = ctx.db.where('VBD', (v) => v.VDI === vdi && v.currently_attached === true);
  if (inUse.length > 0) throw new ApiError('VDI_IN_USE', [vdi, 'destroy']);
  assertCap(ctx, sr, 'VDI_DELETE');
  try {
    await smUnit(ctx, { cmd: 'vdi_delete', sr, vdi });
  } catch (e) {
    throw unimplemented(e, sr);
  }
  if (ctx.db.has('VDI', vdi)) ctx.db.destroy('VDI', vdi);
  for (const vbd of ctx.db.where('VBD', (v) => v.VDI === vdi)) ctx.db.destroy('VBD', vbd);
  for (const vm of ctx.db.where('VM', (v) => v.suspend_VDI === vdi)) ctx.db.set('VM', vm, 'suspend_VDI', NULL_REF);
}

function checkSnapshotLike(ctx: Ctx, vdi: string, sr: string): void {
  if (ctx.db.field('VDI', vdi, 'sharable') === true) throw new ApiError('VDI_IS_SHARABLE', [vdi]);
  if (ctx.db.field('VDI', vdi, 'on_boot') === 'reset') throw new ApiError('VDI_ON_BOOT_MODE_INCOMPATIBLE_WITH_OPERATION', []);
  if (ctx.db.field('VDI', vdi, 'type') === 'cbt_metadata') throw new ApiError('VDI_INCOMPATIBLE_TYPE', [vdi, 'cbt_metadata']);
  assertPlugged(ctx, sr);
  assertManaged(ctx, vdi);
}

/** storage_smapiv1.ml snapshot_and_clone + xapi_vdi.ml snapshot_and_clone, after the plugin returned. */
async function afterSnapshotOrClone(ctx: Ctx, src: Record<string, unknown>, sr: string, location: string, isSnapshot: boolean, dp: Map_): Promise<string> {
  const vdi = findByLocation(ctx, sr, location);
  // storage layer
  const oc = { ...(ctx.db.field<Map_>('VDI', vdi, 'other_config') ?? {}) };
  oc.content_id = (src.other_config as Map_).content_id ?? randomUUID();
  const smc = { ...ctx.db.field<Map_>('VDI', vdi, 'sm_config') };
  if (dp.base_mirror !== undefined) smc.base_mirror = dp.base_mirror;
  ctx.db.update('VDI', vdi, {
    name_label: src.name_label,
    name_description: src.name_description,
    snapshot_time: xapiDate(),
    is_a_snapshot: isSnapshot,
    other_config: oc,
    sm_config: smc,
  });
  await smUnit(ctx, { cmd: 'vdi_update', sr, vdi });
  // API layer: the source's fields as captured before the call
  ctx.db.update('VDI', vdi, {
    name_label: src.name_label,
    name_description: src.name_description,
    type: src.type,
    sharable: src.sharable,
    other_config: { ...(src.other_config as Map_) },
    xenstore_data: { ...(src.xenstore_data as Map_) },
    on_boot: src.on_boot,
    allow_caching: src.allow_caching,
    tags: [...(src.tags as string[])],
  });
  return vdi;
}

export async function vdiSnapshot(ctx: Ctx, vdi: string, dp: Map_): Promise<string> {
  const sr = vdiSr(ctx, vdi);
  assertCap(ctx, sr, 'VDI_SNAPSHOT');
  checkSnapshotLike(ctx, vdi, sr);
  const src = ctx.db.record('VDI', vdi);
  try {
    const info = await smVdiInfo(ctx, { cmd: 'vdi_snapshot', sr, vdi, driverParams: dp });
    const snap = await afterSnapshotOrClone(ctx, src, sr, info.location, true, dp);
    ctx.db.update('VDI', snap, { is_a_snapshot: true, snapshot_of: vdi });
    return snap;
  } catch (e) {
    throw unimplemented(e, sr);
  }
}

export async function vdiClone(ctx: Ctx, vdi: string, dp: Map_): Promise<string> {
  const sr = vdiSr(ctx, vdi);
  assertCap(ctx, sr, 'VDI_CLONE');
  checkSnapshotLike(ctx, vdi, sr);
  const src = ctx.db.record('VDI', vdi);
  try {
    const info = await smVdiInfo(ctx, { cmd: 'vdi_clone', sr, vdi, driverParams: dp });
    return await afterSnapshotOrClone(ctx, src, sr, info.location, false, dp);
  } catch (e) {
    if (!(e instanceof NotImplemented)) throw e;
    // "doing it ourselves": VDI.create + a full copy through dom0
    const copy = await vdiCopy(ctx, vdi, sr, NULL_REF);
    ctx.db.update('VDI', copy, { name_label: src.name_label, name_description: src.name_description });
    return copy;
  }
}

export async function vdiCopy(ctx: Ctx, vdi: string, sr: string, into: string): Promise<string> {
  const src = ctx.db.record('VDI', vdi);
  const size = src.virtual_size as number;
  let dst = into;
  const fresh = !valid(ctx, 'VDI', into);
  if (fresh) {
    dst = await vdiCreate(ctx, {
      name_label: src.name_label as string,
      name_description: src.name_description as string,
      SR: sr,
      virtual_size: size,
      type: src.type as string,
      sharable: src.sharable as boolean,
      read_only: false,
      other_config: { ...(src.other_config as Map_) },
      xenstore_data: { ...(src.xenstore_data as Map_) },
      sm_config: {},
      tags: [...(src.tags as string[])],
    });
    if (src.on_boot === 'reset') ctx.db.set('VDI', dst, 'on_boot', 'reset');
    ctx.db.set('VDI', dst, 'allow_caching', src.allow_caching);
  }
  try {
    if (ctx.db.field('VDI', dst, 'read_only') === true) throw new ApiError('VDI_READONLY', [dst]);
    if (ctx.db.field<number>('VDI', dst, 'virtual_size') < size) throw new ApiError('VDI_TOO_SMALL', [dst, String(size)]);
    checkCancel(ctx);
    await withDom0Attached(ctx, vdi, false, (from) =>
      withDom0Attached(ctx, dst, true, (to) => sparseCopy(from, to, size, fresh)),
    );
  } catch (e) {
    if (fresh && ctx.db.has('VDI', dst)) await vdiDestroy(ctx, dst).catch(() => undefined);
    throw e;
  }
  return dst;
}

async function vdiResize(ctx: Ctx, vdi: string, size: number): Promise<void> {
  const sr = vdiSr(ctx, vdi);
  assertCap(ctx, sr, 'VDI_RESIZE');
  assertPlugged(ctx, sr);
  if (ctx.db.where('VBD', (v) => v.VDI === vdi && v.currently_attached === true).length > 0) throw new ApiError('VDI_IN_USE', [vdi, 'resize']);
  try {
    await smVdiInfo(ctx, { cmd: 'vdi_resize', sr, vdi, args: [String(size)] });
  } catch (e) {
    throw unimplemented(e, sr);
  }
}

export async function vdiUpdate(ctx: Ctx, vdi: string): Promise<void> {
  const sr = vdiSr(ctx, vdi);
  assertPlugged(ctx, sr);
  try {
    await smUnit(ctx, { cmd: 'vdi_update', sr, vdi });
  } catch (e) {
    throw unimplemented(e, sr);
  }
}

/** VDI.revert (xen-api >= 26.16): the snapshot is the SM call's target. */
export async function vdiRevert(ctx: Ctx, snapshot: string): Promise<string> {
  if (ctx.db.field('VDI', snapshot, 'is_a_snapshot') !== true) throw new ApiError('ONLY_REVERT_SNAPSHOT', []);
  const sr = vdiSr(ctx, snapshot);
  assertCap(ctx, sr, 'VDI_REVERT');
  assertCap(ctx, sr, 'VDI_CLONE');
  const target = ctx.db.field<string>('VDI', snapshot, 'snapshot_of');
  if (!valid(ctx, 'VDI', target)) throw new ApiError('HANDLE_INVALID', ['VDI', target]);
  assertPlugged(ctx, sr);
  if (ctx.db.where('VBD', (v) => v.VDI === target && v.currently_attached === true).length > 0) throw new ApiError('VDI_IN_USE', [target, 'revert']);
  try {
    await smUnit(ctx, { cmd: 'vdi_revert', sr, vdi: snapshot, args: [target] });
  } catch (e) {
    throw unimplemented(e, sr);
  }
  return target;
}

function vdiRecordArgs(r: Record<string, unknown>): VdiCreateArgs {
  const f = (n: string) => SCHEMA.VDI!.byName.get(n)!;
  const get = <T>(n: string, d: T): T => (r[n] === undefined ? d : (coerceField(f(n), r[n]) as T));
  return {
    name_label: get('name_label', ''),
    name_description: get('name_description', ''),
    SR: get('SR', NULL_REF),
    virtual_size: get('virtual_size', 0),
    type: get('type', 'user'),
    sharable: get('sharable', false),
    read_only: get('read_only', false),
    other_config: get('other_config', {}),
    xenstore_data: get('xenstore_data', {}),
    sm_config: get('sm_config', {}),
    tags: get('tags', []),
  };
}

const INTRODUCE_PARAMS: Array<[string, 'string' | 'ref' | 'bool' | 'map' | 'int' | 'datetime']> = [
  ['uuid', 'string'],
  ['name_label', 'string'],
  ['name_description', 'string'],
  ['SR', 'ref'],
  ['type', 'string'],
  ['sharable', 'bool'],
  ['read_only', 'bool'],
  ['other_config', 'map'],
  ['location', 'string'],
  ['xenstore_data', 'map'],
  ['sm_config', 'map'],
  ['managed', 'bool'],
  ['virtual_size', 'int'],
  ['physical_utilisation', 'int'],
  ['metadata_of_pool', 'ref'],
  ['is_a_snapshot', 'bool'],
  ['snapshot_time', 'datetime'],
  ['snapshot_of', 'ref'],
];

/** xapi_vdi.ml introduce_dbonly */
function introduceDbOnly(ctx: Ctx, a: unknown[]): string {
  const [uuid, nl, nd, sr, type, sharable, ro, oc, location, xsd, smc, managed, vsize, phys, mop, isSnap, stime, sof, cbt] = a as [
    string, string, string, string, string, boolean, boolean, Map_, string, Map_, Map_, boolean, number, number, string, boolean, string, string, boolean | undefined,
  ];
  if (!UUID_RE.test(uuid)) throw new ApiError('UUID_INVALID', ['VDI', uuid]);
  ctx.db.get('SR', sr);
  const typeSpec = SCHEMA.VDI!.byName.get('type')!;
  coerceField(typeSpec, type);
  if (ctx.db.where('VDI', (v) => v.SR === sr && v.location === location).length > 0) throw new ApiError('LOCATION_NOT_UNIQUE', [sr, location]);
  return ctx.db.create('VDI', {
    uuid,
    name_label: nl,
    name_description: nd,
    SR: sr,
    type,
    sharable,
    read_only: ro,
    other_config: oc,
    location,
    xenstore_data: xsd,
    sm_config: smc,
    managed,
    virtual_size: vsize,
    physical_utilisation: phys,
    metadata_of_pool: mop === '' ? NULL_REF : mop,
    is_a_snapshot: isSnap,
    snapshot_time: stime,
    snapshot_of: sof === '' ? NULL_REF : sof,
    cbt_enabled: cbt ?? false,
    missing: false,
    on_boot: 'persist',
    allow_caching: false,
    tags: [],
    parent: NULL_REF,
  });
}

export function registerVdi(reg: Registry): void {
  reg.add('VDI.create', { params: [['args', 'struct']], async: true, fn: (ctx, r: Record<string, unknown>) => vdiCreate(ctx, vdiRecordArgs(r)) });
  reg.add('VDI.destroy', { params: [['self', 'ref']], async: true, fn: (ctx, self: string) => vdiDestroy(ctx, self) });
  reg.add('VDI.snapshot', {
    params: [
      ['vdi', 'ref'],
      ['driver_params', 'map'],
    ],
    optional: 1,
    async: true,
    fn: (ctx, vdi: string, dp?: Map_) => vdiSnapshot(ctx, vdi, dp ?? {}),
  });
  reg.add('VDI.clone', {
    params: [
      ['vdi', 'ref'],
      ['driver_params', 'map'],
    ],
    optional: 1,
    async: true,
    fn: (ctx, vdi: string, dp?: Map_) => vdiClone(ctx, vdi, dp ?? {}),
  });
  reg.add('VDI.copy', {
    params: [
      ['vdi', 'ref'],
      ['sr', 'ref'],
      ['base_vdi', 'ref'],
      ['into_vdi', 'ref'],
    ],
    optional: 2,
    async: true,
    fn: async (ctx, vdi: string, sr: string, _base?: string, into?: string) => {
      ctx.db.get('VDI', vdi);
      const intoValid = valid(ctx, 'VDI', into);
      if (!intoValid) ctx.db.get('SR', sr);
      return vdiCopy(ctx, vdi, intoValid ? vdiSr(ctx, into!) : sr, into ?? NULL_REF);
    },
  });
  reg.add('VDI.resize', {
    params: [
      ['vdi', 'ref'],
      ['size', 'int'],
    ],
    async: true,
    fn: (ctx, vdi: string, size: number) => vdiResize(ctx, vdi, size),
  });
  reg.add('VDI.update', {
    params: [['vdi', 'ref']],
    async: true,
    fn: (ctx, vdi: string) => {
      assertCap(ctx, vdiSr(ctx, vdi), 'VDI_UPDATE');
      return vdiUpdate(ctx, vdi);
    },
  });
  reg.add('VDI.forget', {
    params: [['vdi', 'ref']],
    async: true,
    fn: (ctx, vdi: string) => {
      ctx.db.destroy('VDI', vdi);
    },
  });
  reg.add('VDI.introduce', {
    params: INTRODUCE_PARAMS,
    optional: 6,
    async: true,
    fn: async (ctx, ...a: unknown[]) => {
      const [uuid, nl, nd, sr, type, sharable, , oc, location, xsd, smc] = a as [string, string, string, string, string, boolean, boolean, Map_, string, Map_, Map_];
      ctx.db.get('SR', sr);
      assertCap(ctx, sr, 'VDI_INTRODUCE');
      assertPlugged(ctx, sr);
      if (ctx.db.where('VDI', (v) => v.SR === sr && v.location === location).length > 0) throw new ApiError('LOCATION_NOT_UNIQUE', [sr, location]);
      let info;
      try {
        info = await smVdiInfo(ctx, { cmd: 'vdi_introduce', sr, newUuid: uuid, vdiLocation: location, vdiSmConfig: smc });
      } catch (e) {
        throw unimplemented(e, sr);
      }
      const vdi = findByLocation(ctx, sr, info.location);
      // CA-13140 (xapi_vdi.ml introduce): the SR filled in name and description; only non-empty overrides apply
      ctx.db.update('VDI', vdi, { other_config: oc, xenstore_data: xsd, sharable, type, ...(nl !== '' ? { name_label: nl } : {}), ...(nd !== '' ? { name_description: nd } : {}) });
      return vdi;
    },
  });
  reg.add('VDI.db_introduce', { params: [...INTRODUCE_PARAMS, ['cbt_enabled', 'bool']], optional: 1, localRoot: true, fn: (ctx, ...a: unknown[]) => introduceDbOnly(ctx, a) });
  reg.add('VDI.db_forget', {
    params: [['vdi', 'ref']],
    localRoot: true,
    fn: (ctx, vdi: string) => {
      ctx.db.get('VDI', vdi);
      for (const vbd of ctx.db.where('VBD', (v) => v.VDI === vdi && v.type === 'CD')) ctx.db.update('VBD', vbd, { VDI: NULL_REF, empty: true });
      ctx.db.destroy('VDI', vdi);
    },
  });
  for (const f of ['name_label', 'name_description']) {
    reg.add(`VDI.set_${f}`, {
      params: [
        ['self', 'ref'],
        ['value', 'string'],
      ],
      fn: async (ctx, self: string, value: string) => {
        ctx.db.set('VDI', self, f, value);
        await vdiUpdate(ctx, self);
      },
    });
  }
  reg.add('VDI.set_on_boot', {
    params: [
      ['self', 'ref'],
      ['value', 'string'],
    ],
    fn: async (ctx, self: string, value: string) => {
      const sr = vdiSr(ctx, self);
      assertCap(ctx, sr, 'VDI_RESET_ON_BOOT');
      coerceField(SCHEMA.VDI!.byName.get('on_boot')!, value);
      if (value === 'reset') {
        // set_persistent false: clone, then delete the clone, to force a fresh leaf
        try {
          const info = await smVdiInfo(ctx, { cmd: 'vdi_clone', sr, vdi: self, driverParams: {} });
          const clone = findByLocation(ctx, sr, info.location);
          await smUnit(ctx, { cmd: 'vdi_delete', sr, vdi: clone });
          if (ctx.db.has('VDI', clone)) ctx.db.destroy('VDI', clone);
        } catch (e) {
          throw unimplemented(e, sr);
        }
      }
      ctx.db.set('VDI', self, 'on_boot', value);
    },
  });
  for (const f of ['virtual_size', 'physical_utilisation', 'is_a_snapshot', 'snapshot_of', 'snapshot_time', 'managed', 'missing', 'cbt_enabled', 'metadata_of_pool']) {
    rawSetter(reg, 'VDI', f, { localRoot: true });
  }
  for (const f of ['read_only', 'sharable', 'allow_caching']) rawSetter(reg, 'VDI', f);
}

export function registerVdiRevert(reg: Registry): void {
  reg.add('VDI.revert', { params: [['snapshot', 'ref']], async: true, fn: (ctx, s: string) => vdiRevert(ctx, s) });
}
