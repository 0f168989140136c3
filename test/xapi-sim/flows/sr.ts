// SR and PBD flows: create, introduce, plug/unplug, scan (CA-399757 retry),
// update, probe, forget, destroy (xapi_sr.ml, xapi_pbd.ml, storage_access.ml).
import { onHost, rawSetter, type Ctx, type Registry } from '../api.js';
import { features, hasCap, myPbd, smExec, smOfType, smString, smUnit, srMasterOf } from '../sm-exec.js';
import { withSubtask } from '../tasks.js';
import { ApiError, NULL_REF } from '../wire.js';
import { assertCap, assertPlugged, srAllowedOps, srUnsupported } from './common.js';

export function introduceSr(
  ctx: Ctx,
  f: { uuid?: string; name_label: string; name_description: string; type: string; content_type: string; shared: boolean; sm_config: Record<string, string> },
): string {
  const type = f.type.toLowerCase();
  if (f.uuid && ctx.db.where('SR', (r) => r.uuid === f.uuid).length > 0) throw new ApiError('SR_UUID_EXISTS', [f.uuid]);
  const sr = ctx.db.create('SR', {
    ...(f.uuid ? { uuid: f.uuid } : {}),
    name_label: f.name_label,
    name_description: f.name_description,
    type,
    content_type: f.content_type,
    shared: f.shared,
    sm_config: f.sm_config,
    virtual_allocation: 0,
    physical_utilisation: -1,
    physical_size: -1,
    introduced_by: NULL_REF,
  });
  refreshSrOps(ctx, sr);
  return sr;
}

export function refreshSrOps(ctx: Ctx, sr: string): void {
  ctx.db.set('SR', sr, 'allowed_operations', srAllowedOps(features(ctx, sr)));
}

/** `ctx` on the SR master of `sr` (where xapi forwards SR-wide work), else unchanged. */
function onSrMaster(ctx: Ctx, sr: string): Ctx {
  const m = srMasterOf(ctx, sr);
  return m === undefined ? ctx : onHost(ctx, m);
}

/** PBD.plug runs on the PBD's host: sr_attach there, with that host's SRmaster. */
export async function pbdPlug(ctx0: Ctx, pbd: string): Promise<void> {
  if (ctx0.db.field('PBD', pbd, 'currently_attached') === true) return;
  const ctx = onHost(ctx0, ctx0.db.field<string>('PBD', pbd, 'host'));
  const sr = ctx.db.field<string>('PBD', pbd, 'SR');
  smOfType(ctx, ctx.db.field<string>('SR', sr, 'type'));
  await smUnit(ctx, { cmd: 'sr_attach', sr });
  ctx.db.set('PBD', pbd, 'currently_attached', true);
  refreshSrOps(ctx, sr);
}

export async function pbdUnplug(ctx0: Ctx, pbd: string): Promise<void> {
  if (ctx0.db.field('PBD', pbd, 'currently_attached') !== true) return;
  const host = ctx0.db.field<string>('PBD', pbd, 'host');
  const ctx = onHost(ctx0, host);
  const sr = ctx.db.field<string>('PBD', pbd, 'SR');
  // Only this host's attached disks keep its PBD plugged (a VM with no valid resident_on counts everywhere).
  const onThisHost = (vm: string): boolean => {
    const r = ctx.db.has('VM', vm) ? ctx.db.field<string>('VM', vm, 'resident_on') : NULL_REF;
    return r === host || !ctx.db.has('host', r);
  };
  const busy = ctx.db.where(
    'VBD',
    (v) =>
      v.currently_attached === true &&
      ctx.db.has('VDI', v.VDI as string) &&
      ctx.db.field('VDI', v.VDI as string, 'SR') === sr &&
      onThisHost(v.VM as string),
  );
  if (busy.length > 0) throw new ApiError('VDI_IN_USE', [ctx.db.field<string>('VBD', busy[0]!, 'VDI'), 'unplug']);
  await smUnit(ctx, { cmd: 'sr_detach', sr });
  ctx.db.set('PBD', pbd, 'currently_attached', false);
}

/** SR.scan (on the SR master): sr_scan + sr_update, repeated while the plugin changes the SR's VDI set (max 10 retries). */
export async function srScan(ctx0: Ctx, sr: string): Promise<void> {
  const ctx = onSrMaster(ctx0, sr);
  assertPlugged(ctx, sr);
  const refs = () => ctx.db.where('VDI', (r) => r.SR === sr).sort().join(' ');
  for (let limit = 10; ; limit--) {
    const before = refs();
    await srScan2(ctx, sr);
    const same = before === refs();
    if (limit > 0 && !same) continue;
    if (limit === 0) throw new ApiError('INTERNAL_ERROR', ['SR.scan retry limit exceeded']);
    break;
  }
  const vdis = ctx.db.where('VDI', (r) => r.SR === sr);
  const va = vdis.reduce((a, v) => a + ctx.db.field<number>('VDI', v, 'virtual_size'), 0);
  ctx.db.set('SR', sr, 'virtual_allocation', va);
  await applyStat(ctx, sr);
  const oc = { ...ctx.db.field<Record<string, string>>('SR', sr, 'other_config') };
  if (Object.hasOwn(oc, 'dirty')) {
    delete oc.dirty;
    ctx.db.set('SR', sr, 'other_config', oc);
  }
  ctx.db.set('SR', sr, 'clustered', false);
}

async function srScan2(ctx: Ctx, sr: string): Promise<void> {
  try {
    await smUnit(ctx, { cmd: 'sr_scan', sr });
    await smUnit(ctx, { cmd: 'sr_update', sr });
  } catch (e) {
    throw srUnsupported(e, sr);
  }
}

/** xapi sets physical_size / physical_utilisation from what SR.stat read back from the DB. */
async function applyStat(ctx: Ctx, sr: string): Promise<void> {
  const total = ctx.db.field<number>('SR', sr, 'physical_size');
  const util = ctx.db.field<number>('SR', sr, 'physical_utilisation');
  ctx.db.set('SR', sr, 'physical_size', total);
  ctx.db.set('SR', sr, 'physical_utilisation', util);
}

export async function srUpdate(ctx: Ctx, sr: string): Promise<void> {
  assertPlugged(ctx, sr);
  try {
    await smUnit(ctx, { cmd: 'sr_update', sr });
  } catch (e) {
    throw srUnsupported(e, sr);
  }
  await applyStat(ctx, sr);
}

function assertAllUnplugged(ctx: Ctx, sr: string): void {
  if (ctx.db.where('PBD', (p) => p.SR === sr && p.currently_attached === true).length > 0) throw new ApiError('SR_HAS_PBD', [sr]);
}

function reallyForget(ctx: Ctx, sr: string): void {
  for (const p of ctx.db.where('PBD', (r) => r.SR === sr)) ctx.db.destroy('PBD', p);
  for (const v of ctx.db.where('VDI', (r) => r.SR === sr)) ctx.db.destroy('VDI', v);
  ctx.db.destroy('SR', sr);
}

export function registerSr(reg: Registry): void {
  reg.add('SR.create', {
    params: [
      ['host', 'ref'],
      ['device_config', 'map'],
      ['physical_size', 'int'],
      ['name_label', 'string'],
      ['name_description', 'string'],
      ['type', 'string'],
      ['content_type', 'string'],
      ['shared', 'bool'],
      ['sm_config', 'map'],
    ],
    optional: 1,
    async: true,
    fn: async (ctx, host: string, dc: Record<string, string>, size: number, nl: string, nd: string, type: string, ct: string, shared: boolean, smc?: Record<string, string>) => {
      ctx.db.get('host', host);
      const t = type.toLowerCase();
      if (ctx.db.where('SM', (r) => r.type === t).length === 0) throw new ApiError('SR_UNKNOWN_DRIVER', [t]);
      const sr = introduceSr(ctx, { name_label: nl, name_description: nd, type: t, content_type: ct, shared, sm_config: smc ?? {} });
      // Shared: one PBD per host, the master's first; else one on `host` (xapi_sr.ml create).
      const master = ctx.db.field<string>('pool', ctx.sim.pool, 'master');
      const hosts = shared ? [master, ...ctx.db.all('host').filter((h) => h !== master)] : [host];
      const pbds = hosts.map((h) => ctx.db.create('PBD', { host: h, SR: sr, device_config: dc, currently_attached: false }));
      try {
        // sr_create runs on the host given, with SRmaster forced true.
        await smUnit(onHost(ctx, host), { cmd: 'sr_create', sr, deviceConfig: dc, args: [String(size)] });
      } catch (e) {
        if (ctx.db.has('SR', sr)) ctx.db.destroy('SR', sr);
        for (const pbd of pbds) if (ctx.db.has('PBD', pbd)) ctx.db.destroy('PBD', pbd);
        throw srUnsupported(e, sr);
      }
      const { SRmaster: _m, ...rest } = dc;
      for (const pbd of pbds) ctx.db.set('PBD', pbd, 'device_config', { ...rest });
      for (const pbd of pbds) await withSubtask(ctx, 'Async.PBD.plug', (c) => pbdPlug(c, pbd));
      return sr;
    },
  });
  reg.add('SR.introduce', {
    params: [
      ['uuid', 'string'],
      ['name_label', 'string'],
      ['name_description', 'string'],
      ['type', 'string'],
      ['content_type', 'string'],
      ['shared', 'bool'],
      ['sm_config', 'map'],
    ],
    optional: 1,
    fn: (ctx, uuid: string, nl: string, nd: string, type: string, ct: string, shared: boolean, smc?: Record<string, string>) =>
      introduceSr(ctx, { uuid: uuid || undefined, name_label: nl, name_description: nd, type, content_type: ct, shared, sm_config: smc ?? {} }),
  });
  reg.add('SR.forget', {
    params: [['sr', 'ref']],
    async: true,
    fn: (ctx, sr: string) => {
      ctx.db.get('SR', sr);
      assertAllUnplugged(ctx, sr);
      reallyForget(ctx, sr);
    },
  });
  reg.add('SR.destroy', {
    params: [['sr', 'ref']],
    async: true,
    fn: async (ctx, sr: string) => {
      ctx.db.get('SR', sr);
      assertAllUnplugged(ctx, sr);
      ctx = onSrMaster(ctx, sr);
      const pbd = myPbd(ctx, sr);
      if (pbd === undefined) throw new ApiError('SR_NO_PBDS', [sr]);
      await smUnit(ctx, { cmd: 'sr_attach', sr });
      ctx.db.set('PBD', pbd, 'currently_attached', true);
      try {
        await smUnit(ctx, { cmd: 'sr_delete', sr });
      } catch (e) {
        try {
          await smUnit(ctx, { cmd: 'sr_detach', sr });
        } finally {
          ctx.db.set('PBD', pbd, 'currently_attached', false);
        }
        throw srUnsupported(e, sr);
      }
      ctx.db.set('PBD', pbd, 'currently_attached', false);
      reallyForget(ctx, sr);
    },
  });
  reg.add('SR.scan', { params: [['sr', 'ref']], async: true, fn: (ctx, sr: string) => srScan(ctx, sr) });
  reg.add('SR.update', {
    params: [['sr', 'ref']],
    async: true,
    fn: async (ctx, sr: string) => {
      ctx.db.get('SR', sr);
      assertCap(ctx, sr, 'SR_UPDATE');
      await srUpdate(ctx, sr);
    },
  });
  reg.add('SR.probe', {
    params: [
      ['host', 'ref'],
      ['device_config', 'map'],
      ['type', 'string'],
      ['sm_config', 'map'],
    ],
    async: true,
    fn: async (ctx, host: string, dc: Record<string, string>, type: string, smc: Record<string, string>) => {
      ctx.db.get('host', host);
      const t = type.toLowerCase();
      const sm = ctx.db.where('SM', (r) => r.type === t)[0];
      if (sm === undefined) throw new ApiError('SR_UNKNOWN_DRIVER', [t]);
      if (!Object.hasOwn(ctx.db.field<Record<string, number>>('SM', sm, 'features'), 'SR_PROBE')) {
        throw new ApiError('SR_BACKEND_FAILURE', [`Operation 'sr_probe' not supported by this SR type`, '', '']);
      }
      try {
        return await smString(onHost(ctx, host), { cmd: 'sr_probe', type: t, deviceConfig: dc, srSmConfig: smc });
      } catch (e) {
        throw srUnsupported(e, NULL_REF);
      }
    },
  });
  reg.add('SR.get_supported_types', { params: [], fn: (ctx) => ctx.db.all('SM').map((s) => ctx.db.field<string>('SM', s, 'type')) });
  rawSetter(reg, 'SR', 'virtual_allocation', { localRoot: true });
  rawSetter(reg, 'SR', 'physical_utilisation', { localRoot: true });
  rawSetter(reg, 'SR', 'physical_size');
  rawSetter(reg, 'SR', 'shared');

  reg.add('PBD.create', {
    params: [['args', 'struct']],
    fn: (ctx, args: Record<string, unknown>) => {
      const host = String(args.host ?? '');
      const sr = String(args.SR ?? '');
      ctx.db.get('host', host);
      ctx.db.get('SR', sr);
      if (ctx.db.where('PBD', (p) => p.SR === sr && p.host === host).length > 0) {
        throw new ApiError('PBD_EXISTS', [sr, host, ctx.db.where('PBD', (p) => p.SR === sr && p.host === host)[0]!]);
      }
      return ctx.db.create('PBD', {
        host,
        SR: sr,
        device_config: (args.device_config as Record<string, string>) ?? {},
        other_config: (args.other_config as Record<string, string>) ?? {},
        currently_attached: false,
      });
    },
  });
  reg.add('PBD.destroy', {
    params: [['self', 'ref']],
    fn: (ctx, self: string) => {
      if (ctx.db.field('PBD', self, 'currently_attached') === true) throw new ApiError('OPERATION_NOT_ALLOWED', ['PBD is currently attached']);
      ctx.db.destroy('PBD', self);
    },
  });
  reg.add('PBD.plug', { params: [['self', 'ref']], async: true, fn: (ctx, self: string) => pbdPlug(ctx, self) });
  reg.add('PBD.unplug', { params: [['self', 'ref']], async: true, fn: (ctx, self: string) => pbdUnplug(ctx, self) });
  rawSetter(reg, 'PBD', 'device_config');
  void hasCap;
  void smExec;
}
