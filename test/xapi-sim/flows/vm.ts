// VM flows: minimal VM.create / VBD.create, start and shutdown through the SM,
// snapshot / checkpoint / clone / copy (xapi_vm_clone.ml), revert in the classic
// order (xapi <= 26.15: destroy VBDs, vdi_delete current disks, vdi_clone the
// snapshot's disks, re-point snapshot_of) or, behind --revert-flow vdi-revert,
// trying VDI.revert first (xapi >= 26.16), and VM.destroy.
import { randomUUID } from 'node:crypto';
import { coerceField, hostOf, onHost, type Ctx, type Registry } from '../api.js';
import { SCHEMA } from '../schema.js';
import { hasCap, smUnit } from '../sm-exec.js';
import { checkCancel, setProgress, withSubtask } from '../tasks.js';
import { ApiError, NULL_REF, xapiDate } from '../wire.js';
import { valid, vdiSr } from './common.js';
import { attachActivate, deactivateDetach } from './datapath.js';
import { vdiClone, vdiCopy, vdiCreate, vdiDestroy, vdiRevert, vdiSnapshot } from './vdi.js';

type Row = Record<string, unknown>;

const lcState = (ctx: Ctx, vm: string) => String(ctx.db.field('VM', vm, 'power_state')).toLowerCase();

function assertState(ctx: Ctx, vm: string, expected: string[]): void {
  const st = lcState(ctx, vm);
  if (!expected.includes(st)) throw new ApiError('VM_BAD_POWER_STATE', [vm, expected[0]!, st]);
}

function assertNotSnapshot(ctx: Ctx, vm: string): void {
  if (ctx.db.field('VM', vm, 'is_a_snapshot') === true) throw new ApiError('VM_IS_SNAPSHOT', [vm]);
}

function assertNotDom0(ctx: Ctx, vm: string): void {
  if (ctx.db.field('VM', vm, 'is_control_domain') === true) throw new ApiError('OPERATION_NOT_ALLOWED', ['The operation is not allowed on the control domain']);
}

function vbdsOf(ctx: Ctx, vm: string): string[] {
  return ctx.db
    .where('VBD', (v) => v.VM === vm)
    .sort((a, b) => Number(ctx.db.field('VBD', a, 'userdevice')) - Number(ctx.db.field('VBD', b, 'userdevice')));
}

const isDisk = (ctx: Ctx, vbd: string) =>
  ctx.db.field('VBD', vbd, 'type') === 'Disk' && ctx.db.field('VBD', vbd, 'empty') !== true && valid(ctx, 'VDI', ctx.db.field<string>('VBD', vbd, 'VDI'));

function assertNoResetOnBoot(ctx: Ctx, vm: string): void {
  for (const vbd of vbdsOf(ctx, vm)) {
    const vdi = ctx.db.field<string>('VBD', vbd, 'VDI');
    if (valid(ctx, 'VDI', vdi) && ctx.db.field('VDI', vdi, 'on_boot') === 'reset') throw new ApiError('VDI_ON_BOOT_MODE_INCOMPATIBLE_WITH_OPERATION', []);
  }
}

// ---------------------------------------------------------------------------
// Power

async function plugDisks(ctx: Ctx, vm: string): Promise<void> {
  const disks = vbdsOf(ctx, vm).filter((v) => isDisk(ctx, v));
  for (const vbd of disks) {
    const vdi = ctx.db.field<string>('VBD', vbd, 'VDI');
    await smUnit(ctx, { cmd: 'vdi_epoch_begin', sr: vdiSr(ctx, vdi), vdi });
  }
  const done: string[] = [];
  try {
    for (const vbd of disks) {
      const vdi = ctx.db.field<string>('VBD', vbd, 'VDI');
      const writable = ctx.db.field('VBD', vbd, 'mode') === 'RW' && ctx.db.field('VDI', vdi, 'read_only') !== true;
      await attachActivate(ctx, vdi, writable);
      done.push(vbd);
      ctx.db.update('VBD', vbd, { currently_attached: true, device: `xvd${String.fromCharCode(97 + Number(ctx.db.field('VBD', vbd, 'userdevice')))}` });
    }
  } catch (e) {
    for (const vbd of done.reverse()) {
      await deactivateDetach(ctx, ctx.db.field<string>('VBD', vbd, 'VDI')).catch(() => undefined);
      ctx.db.set('VBD', vbd, 'currently_attached', false);
    }
    throw e;
  }
}

async function unplugDisks(ctx: Ctx, vm: string): Promise<void> {
  const attached = vbdsOf(ctx, vm).filter((v) => ctx.db.field('VBD', v, 'currently_attached') === true);
  for (const vbd of attached) {
    const vdi = ctx.db.field<string>('VBD', vbd, 'VDI');
    if (valid(ctx, 'VDI', vdi)) await deactivateDetach(ctx, vdi);
    ctx.db.set('VBD', vbd, 'currently_attached', false);
  }
  for (const vbd of attached) {
    const vdi = ctx.db.field<string>('VBD', vbd, 'VDI');
    if (valid(ctx, 'VDI', vdi)) await smUnit(ctx, { cmd: 'vdi_epoch_end', sr: vdiSr(ctx, vdi), vdi });
  }
}

/** VM.start runs on the host `ctx` is on (VM.start_on: the chosen one): its disks attach there. */
export async function vmStart(ctx: Ctx, vm: string): Promise<void> {
  assertNotSnapshot(ctx, vm);
  if (ctx.db.field('VM', vm, 'is_a_template') === true) throw new ApiError('VM_IS_TEMPLATE', [vm]);
  assertState(ctx, vm, ['halted']);
  await plugDisks(ctx, vm);
  ctx.db.update('VM', vm, { power_state: 'Running', resident_on: hostOf(ctx), domid: nextDomid(ctx) });
}

/** `ctx` forwarded to the host the VM runs on (message_forwarding.ml), else unchanged. */
function onResident(ctx: Ctx, vm: string): Ctx {
  const h = ctx.db.field<string>('VM', vm, 'resident_on');
  return ctx.db.has('host', h) ? onHost(ctx, h) : ctx;
}

function nextDomid(ctx: Ctx): number {
  return 1 + Math.max(0, ...ctx.db.all('VM').map((v) => ctx.db.field<number>('VM', v, 'domid')));
}

export async function vmShutdown(ctx0: Ctx, vm: string, hard: boolean): Promise<void> {
  const ctx = onResident(ctx0, vm);
  assertState(ctx, vm, hard ? ['running', 'paused', 'suspended'] : ['running']);
  if (lcState(ctx, vm) === 'suspended') {
    const sv = ctx.db.field<string>('VM', vm, 'suspend_VDI');
    if (valid(ctx, 'VDI', sv)) await vdiDestroy(ctx, sv);
  } else {
    await unplugDisks(ctx, vm);
  }
  for (const vbd of vbdsOf(ctx, vm)) ctx.db.set('VBD', vbd, 'currently_attached', false);
  ctx.db.update('VM', vm, { power_state: 'Halted', resident_on: NULL_REF, domid: -1, suspend_VDI: NULL_REF });
}

/**
 * VM.power_state_reset (xe vm-reset-powerstate), what an administrator runs for the VMs of
 * a host that died: xapi_vm_lifecycle.ml force_state_reset to Halted, in the DB only. No SM
 * call: the dead host's datapaths are not torn down, so the drivers' per-host state (a
 * VDI's sm_config host_<ref> keys) stays until that host's next sr_attach.
 */
function vmPowerStateReset(ctx: Ctx, vm: string): void {
  if (ctx.db.field('VM', vm, 'is_control_domain') === true) throw new ApiError('CANNOT_RESET_CONTROL_DOMAIN', [vm]);
  for (const vbd of vbdsOf(ctx, vm)) ctx.db.set('VBD', vbd, 'currently_attached', false);
  ctx.db.update('VM', vm, { power_state: 'Halted', resident_on: NULL_REF, scheduled_to_be_resident_on: NULL_REF, domid: -1, requires_reboot: false });
}

/** Suspend as checkpoint needs it: disks released, a suspend image created on the SM. */
async function vmSuspend(ctx0: Ctx, vm: string): Promise<void> {
  const ctx = onResident(ctx0, vm);
  const disks = vbdsOf(ctx, vm).filter((v) => isDisk(ctx, v));
  const pool = ctx.db.get('pool', ctx.sim.pool);
  let sr = pool.suspend_image_SR as string;
  if (!valid(ctx, 'SR', sr)) sr = disks.length > 0 ? vdiSr(ctx, ctx.db.field<string>('VBD', disks[0]!, 'VDI')) : NULL_REF;
  if (!valid(ctx, 'SR', sr)) throw new ApiError('VM_NO_SUSPEND_SR', [vm]);
  const size = ctx.db.field<number>('VM', vm, 'memory_static_max');
  const suspend = await vdiCreate(ctx, {
    name_label: 'Suspend image',
    name_description: 'Suspend image',
    SR: sr,
    virtual_size: size,
    type: 'suspend',
    sharable: false,
    read_only: false,
    other_config: {},
    xenstore_data: {},
    sm_config: { vmhint: ctx.db.field<string>('VM', vm, 'uuid'), initial_allocation: String(size) },
    tags: [],
  });
  await unplugDisks(ctx, vm);
  ctx.db.update('VM', vm, { power_state: 'Suspended', suspend_VDI: suspend, domid: -1 });
}

async function vmResume(ctx0: Ctx, vm: string): Promise<void> {
  const ctx = onResident(ctx0, vm);
  await plugDisks(ctx, vm);
  const sv = ctx.db.field<string>('VM', vm, 'suspend_VDI');
  ctx.db.update('VM', vm, { power_state: 'Running', domid: nextDomid(ctx), suspend_VDI: NULL_REF });
  if (valid(ctx, 'VDI', sv)) await vdiDestroy(ctx, sv);
}

// ---------------------------------------------------------------------------
// Snapshot / checkpoint / clone / copy

type DiskOp = 'snapshot' | 'checkpoint' | 'clone' | 'copy';

const NOT_COPIED = new Set(['uuid', 'VBDs', 'snapshots', 'children', 'allowed_operations', 'current_operations', 'resident_on', 'scheduled_to_be_resident_on', 'domid', 'metrics', 'guest_metrics', 'consoles', 'VIFs', 'VUSBs', 'VTPMs', 'VGPUs', 'attached_PCIs', 'crash_dumps', 'blobs']);

function copyVbd(ctx: Ctx, vbd: string, vm: string, vdi: string, keepAttached: boolean, owner: boolean): string {
  const r = ctx.db.get('VBD', vbd);
  const oc = { ...(r.other_config as Record<string, string>) };
  if (owner && r.type === 'Disk' && !Object.hasOwn(oc, 'owner')) oc.owner = '';
  return ctx.db.create('VBD', {
    VM: vm,
    VDI: vdi,
    device: r.device,
    userdevice: r.userdevice,
    bootable: r.bootable,
    mode: r.mode,
    type: r.type,
    unpluggable: r.unpluggable,
    empty: vdi === NULL_REF,
    other_config: oc,
    qos_algorithm_type: r.qos_algorithm_type,
    qos_algorithm_params: { ...(r.qos_algorithm_params as Record<string, string>) },
    currently_attached: keepAttached ? r.currently_attached : false,
    metrics: NULL_REF,
  });
}

/** xapi_vm_clone.ml clone: disks one at a time through Async sub-calls, then the VM record. */
async function cloneVm(ctx: Ctx, vm: string, newName: string, op: DiskOp, ignore: string[], copySr = NULL_REF): Promise<string> {
  const driverParams = { epochhint: randomUUID() };
  const vbds = vbdsOf(ctx, vm).filter((v) => !ignore.includes(ctx.db.field<string>('VBD', v, 'VDI')));
  const made: Array<[string, string]> = []; // [source vbd, new vdi]
  const created: string[] = [];
  const total = vbds.length || 1;
  try {
    for (const [i, vbd] of vbds.entries()) {
      checkCancel(ctx);
      const vdi = ctx.db.field<string>('VBD', vbd, 'VDI');
      if (ctx.db.field('VBD', vbd, 'empty') === true || !valid(ctx, 'VDI', vdi)) made.push([vbd, NULL_REF]);
      else if (ctx.db.field('VBD', vbd, 'type') === 'CD') made.push([vbd, vdi]);
      else {
        let nv: string;
        if (op === 'snapshot' || op === 'checkpoint') nv = await withSubtask(ctx, 'Async.VDI.snapshot', (c) => vdiSnapshot(c, vdi, driverParams));
        else if (op === 'clone') nv = await withSubtask(ctx, 'Async.VDI.clone', (c) => vdiClone(c, vdi, driverParams));
        else nv = await withSubtask(ctx, 'Async.VDI.copy', (c) => vdiCopy(c, vdi, valid(c, 'SR', copySr) ? copySr : vdiSr(c, vdi), NULL_REF));
        created.push(nv);
        made.push([vbd, nv]);
      }
      setProgress(ctx, (i + 1) / (total + 1));
    }
    let suspend = NULL_REF;
    const sv = ctx.db.field<string>('VM', vm, 'suspend_VDI');
    if (op === 'checkpoint' && valid(ctx, 'VDI', sv)) {
      suspend = await withSubtask(ctx, 'Async.VDI.snapshot', (c) => vdiSnapshot(c, sv, driverParams));
      created.push(suspend);
    } else if (op === 'clone' && valid(ctx, 'VDI', sv)) {
      suspend = await withSubtask(ctx, 'Async.VDI.clone', (c) => vdiClone(c, sv, driverParams));
      created.push(suspend);
    }
    const src = ctx.db.record('VM', vm);
    const fields: Row = {};
    for (const [k, v] of Object.entries(src)) if (!NOT_COPIED.has(k)) fields[k] = v;
    const oc = { ...(src.other_config as Record<string, string>) };
    delete oc.default_template;
    delete oc.xensource_internal;
    const isSnap = op === 'snapshot' || op === 'checkpoint';
    if (!isSnap) oc.mac_seed = randomUUID();
    const state = String(src.power_state);
    Object.assign(fields, {
      name_label: newName,
      other_config: oc,
      ha_always_run: false,
      suspend_VDI: suspend,
      resident_on: NULL_REF,
      domid: -1,
      power_state: op === 'checkpoint' || (op === 'clone' && suspend !== NULL_REF) ? 'Suspended' : 'Halted',
      blobs: {},
      is_default_template: false,
    });
    if (isSnap) {
      Object.assign(fields, {
        is_a_snapshot: true,
        is_a_template: true,
        snapshot_of: vm,
        snapshot_time: xapiDate(),
        transportable_snapshot_id: '',
        snapshot_info: { 'disk-snapshot-type': 'crash_consistent', 'power-state-at-snapshot': state },
        snapshot_metadata: JSON.stringify(src),
        parent: src.parent,
      });
    } else {
      Object.assign(fields, { is_a_snapshot: false, snapshot_of: NULL_REF, parent: NULL_REF, snapshot_info: {}, snapshot_metadata: '', snapshot_time: '19700101T00:00:00Z' });
    }
    const nvm = ctx.db.create('VM', fields);
    for (const [vbd, nv] of made) copyVbd(ctx, vbd, nvm, nv, op === 'checkpoint', true);
    if (isSnap) ctx.db.set('VM', vm, 'parent', nvm);
    return nvm;
  } catch (e) {
    for (const v of created) if (ctx.db.has('VDI', v)) await vdiDestroy(ctx, v).catch(() => undefined);
    throw e;
  }
}

async function vmSnapshot(ctx: Ctx, vm: string, name: string, ignore: string[]): Promise<string> {
  assertNotDom0(ctx, vm);
  assertNotSnapshot(ctx, vm);
  assertNoResetOnBoot(ctx, vm);
  return cloneVm(ctx, vm, name, 'snapshot', ignore);
}

async function vmCheckpoint(ctx: Ctx, vm: string, name: string): Promise<string> {
  assertNotDom0(ctx, vm);
  assertNotSnapshot(ctx, vm);
  assertState(ctx, vm, ['running', 'paused', 'suspended']);
  assertNoResetOnBoot(ctx, vm);
  const wasRunning = lcState(ctx, vm) === 'running';
  if (wasRunning) {
    for (const vbd of vbdsOf(ctx, vm).filter((v) => isDisk(ctx, v))) {
      if (!hasCap(ctx, vdiSr(ctx, ctx.db.field<string>('VBD', vbd, 'VDI')), 'VDI_SNAPSHOT')) throw new ApiError('SR_OPERATION_NOT_SUPPORTED', [vm]);
    }
    await vmSuspend(ctx, vm);
  }
  try {
    const snap = await cloneVm(ctx, vm, name, 'checkpoint', []);
    const info = { ...ctx.db.field<Record<string, string>>('VM', snap, 'snapshot_info'), 'power-state-at-snapshot': wasRunning ? 'Running' : 'Suspended' };
    ctx.db.set('VM', snap, 'snapshot_info', info);
    return snap;
  } finally {
    if (wasRunning) await vmResume(ctx, vm);
  }
}

// ---------------------------------------------------------------------------
// Revert

const DO_NOT_COPY = new Set([
  'uuid', 'suspend_VDI', 'power_state', 'parent', 'current_operations', 'allowed_operations', 'metrics', 'guest_metrics', 'resident_on',
  'domid', 'protection_policy', 'snapshot_schedule', 'scheduled_to_be_resident_on', 'snapshots', 'tags', 'affinity', 'consoles', 'VBDs',
  'VIFs', 'VGPUs', 'VUSBs', 'VTPMs', 'attached_PCIs', 'is_snapshot_from_vmpp', 'children',
]);

function metadataOf(ctx: Ctx, snapshot: string): Row {
  try {
    return JSON.parse(ctx.db.field<string>('VM', snapshot, 'snapshot_metadata')) as Row;
  } catch {
    return {};
  }
}

/** message_forwarding.ml: the snapshot's VM, recreated with its old uuid if it was destroyed. */
function vmOfSnapshot(ctx: Ctx, snapshot: string): string {
  const vm = ctx.db.field<string>('VM', snapshot, 'snapshot_of');
  if (valid(ctx, 'VM', vm)) return vm;
  const meta = metadataOf(ctx, snapshot);
  const fields: Row = {};
  for (const [k, v] of Object.entries(meta)) if (SCHEMA.VM!.byName.get(k)?.type.t !== 'rev' && !NOT_COPIED.has(k)) fields[k] = v;
  const nvm = ctx.db.create('VM', { ...fields, uuid: meta.uuid ?? randomUUID(), power_state: 'Halted', parent: NULL_REF, suspend_VDI: NULL_REF, resident_on: NULL_REF, domid: -1, is_a_snapshot: false, snapshot_of: NULL_REF });
  for (const s of ctx.db.where('VM', (r) => r.snapshot_of === vm)) ctx.db.set('VM', s, 'snapshot_of', nvm);
  return nvm;
}

async function vmRevert(ctx: Ctx, snapshot: string): Promise<void> {
  if (ctx.db.field('VM', snapshot, 'is_a_snapshot') !== true) throw new ApiError('VM_NOT_A_SNAPSHOT', [snapshot]);
  const vm = vmOfSnapshot(ctx, snapshot);
  if (lcState(ctx, vm) !== 'halted') await vmShutdown(ctx, vm, true);
  // revert_vm_fields
  const meta = metadataOf(ctx, snapshot);
  const upd: Row = {};
  for (const [k, v] of Object.entries(meta)) {
    const f = SCHEMA.VM!.byName.get(k);
    if (!f || f.type.t === 'rev' || DO_NOT_COPY.has(k)) continue;
    upd[k] = v;
  }
  upd.ha_always_run = false;
  ctx.db.update('VM', vm, upd);
  ctx.db.set('VM', vm, 'generation_id', randomUUID());
  const cloned: string[] = [];
  try {
    await revertDisks(ctx, snapshot, vm, cloned);
  } catch (e) {
    for (const v of cloned) if (ctx.db.has('VDI', v)) await vdiDestroy(ctx, v).catch(() => undefined);
    ctx.db.update('VM', vm, { power_state: 'Halted' });
    if (e instanceof ApiError && ['SR_BACKEND_FAILURE_44', 'SR_BACKEND_FAILURE_109', 'VDI_INCOMPATIBLE_TYPE'].includes(e.code)) throw e;
    throw new ApiError('VM_REVERT_FAILED', [snapshot, vm]);
  }
  ctx.db.update('VM', vm, {
    parent: snapshot,
    power_state: ctx.db.field('VM', snapshot, 'power_state'),
  });
}

async function revertDisks(ctx: Ctx, snapshot: string, vm: string, cloned: string[]): Promise<void> {
  const driverParams = { epochhint: randomUUID() };
  const snapVbds = vbdsOf(ctx, snapshot);
  const snapDiskVbds = snapVbds.filter((v) => isDisk(ctx, v));
  // >= 26.16: try VDI.revert first, per disk
  const reverted = new Map<string, string>(); // snapshot vdi -> reverted target
  if (ctx.sim.settings.revertFlow === 'vdi-revert') {
    for (const vbd of snapDiskVbds) {
      const sv = ctx.db.field<string>('VBD', vbd, 'VDI');
      try {
        reverted.set(sv, await withSubtask(ctx, 'Async.VDI.revert', (c) => vdiRevert(c, sv)));
      } catch (e) {
        if (!(e instanceof ApiError) || !['SR_OPERATION_NOT_SUPPORTED', 'UNIMPLEMENTED_IN_SM_BACKEND'].includes(e.code)) throw e;
      }
    }
  }
  const keptTargets = new Set(reverted.values());
  const snapDisks = snapDiskVbds.map((v) => ctx.db.field<string>('VBD', v, 'VDI')).filter((v) => !reverted.has(v));
  const snapDisksOf = new Set(snapDisks.map((v) => ctx.db.field<string>('VDI', v, 'snapshot_of')));
  const vmDisks = vbdsOf(ctx, vm)
    .filter((v) => isDisk(ctx, v))
    .map((v) => ctx.db.field<string>('VBD', v, 'VDI'))
    .filter((v) => snapDisksOf.has(v) && !keptTargets.has(v));
  // destroy first "to have more free space"
  for (const vbd of vbdsOf(ctx, vm)) {
    if (!keptTargets.has(ctx.db.field<string>('VBD', vbd, 'VDI'))) ctx.db.destroy('VBD', vbd);
  }
  const sv = ctx.db.field<string>('VM', vm, 'suspend_VDI');
  for (const v of [sv, ...vmDisks]) {
    if (!valid(ctx, 'VDI', v)) continue;
    if (ctx.db.field('SR', vdiSr(ctx, v), 'type') === 'iso') continue;
    await vdiDestroy(ctx, v);
  }
  ctx.db.set('VM', vm, 'suspend_VDI', NULL_REF);
  // clone the snapshot's disks
  const newVbds: Array<[string, string]> = [];
  for (const vbd of snapVbds) {
    const v = ctx.db.field<string>('VBD', vbd, 'VDI');
    if (reverted.has(v)) continue;
    if (!isDisk(ctx, vbd)) {
      newVbds.push([vbd, ctx.db.field('VBD', vbd, 'empty') === true || !valid(ctx, 'VDI', v) ? NULL_REF : v]);
      continue;
    }
    const nv = await withSubtask(ctx, 'Async.VDI.clone', (c) => vdiClone(c, v, driverParams));
    cloned.push(nv);
    newVbds.push([vbd, nv]);
    // every VDI whose snapshot_of was the destroyed disk now points at the clone
    const old = ctx.db.field<string>('VDI', v, 'snapshot_of');
    for (const s of ctx.db.where('VDI', (r) => r.snapshot_of === old)) ctx.db.set('VDI', s, 'snapshot_of', nv);
  }
  const ssv = ctx.db.field<string>('VM', snapshot, 'suspend_VDI');
  if (valid(ctx, 'VDI', ssv)) {
    const nsv = await withSubtask(ctx, 'Async.VDI.clone', (c) => vdiClone(c, ssv, driverParams));
    cloned.push(nsv);
    ctx.db.set('VM', vm, 'suspend_VDI', nsv);
  }
  for (const [vbd, nv] of newVbds) copyVbd(ctx, vbd, vm, nv, false, false);
}

// ---------------------------------------------------------------------------

function vmDestroy(ctx: Ctx, vm: string): void {
  assertNotDom0(ctx, vm);
  assertState(ctx, vm, ['halted', 'suspended']);
  if (lcState(ctx, vm) === 'suspended' && ctx.db.field('VM', vm, 'is_a_snapshot') !== true) throw new ApiError('VM_BAD_POWER_STATE', [vm, 'halted', 'suspended']);
  for (const vbd of ctx.db.where('VBD', (v) => v.VM === vm)) ctx.db.destroy('VBD', vbd);
  const parent = ctx.db.field<string>('VM', vm, 'parent');
  for (const child of ctx.db.where('VM', (v) => v.parent === vm)) ctx.db.set('VM', child, 'parent', parent);
  ctx.db.destroy('VM', vm);
}

function recordFields(cls: string, r: Record<string, unknown>, skip: Set<string>): Row {
  const out: Row = {};
  for (const [k, v] of Object.entries(r)) {
    const f = SCHEMA[cls]!.byName.get(k);
    if (!f || f.type.t === 'rev' || skip.has(k)) continue;
    out[k] = coerceField(f, v);
  }
  return out;
}

export function registerVm(reg: Registry): void {
  reg.add('VM.create', {
    params: [['args', 'struct']],
    fn: (ctx, r: Record<string, unknown>) => {
      const f = recordFields('VM', r, new Set(['uuid', 'power_state', 'resident_on', 'domid', 'is_a_snapshot', 'snapshot_of', 'is_control_domain', 'suspend_VDI', 'parent']));
      return ctx.db.create('VM', { ...f, power_state: 'Halted' });
    },
  });
  reg.add('VM.destroy', { params: [['self', 'ref']], fn: (ctx, vm: string) => vmDestroy(ctx, vm), async: true });
  reg.add('VM.start', {
    params: [
      ['vm', 'ref'],
      ['start_paused', 'bool'],
      ['force', 'bool'],
    ],
    async: true,
    fn: (ctx, vm: string) => vmStart(ctx, vm),
  });
  reg.add('VM.start_on', {
    params: [
      ['vm', 'ref'],
      ['host', 'ref'],
      ['start_paused', 'bool'],
      ['force', 'bool'],
    ],
    async: true,
    fn: (ctx, vm: string, host: string) => {
      ctx.db.get('VM', vm);
      ctx.db.get('host', host);
      return vmStart(onHost(ctx, host), vm);
    },
  });
  reg.add('VM.clean_shutdown', { params: [['vm', 'ref']], async: true, fn: (ctx, vm: string) => vmShutdown(ctx, vm, false) });
  reg.add('VM.hard_shutdown', { params: [['vm', 'ref']], async: true, fn: (ctx, vm: string) => vmShutdown(ctx, vm, true) });
  reg.add('VM.power_state_reset', { params: [['vm', 'ref']], async: true, fn: (ctx, vm: string) => vmPowerStateReset(ctx, vm) });
  reg.add('VM.snapshot', {
    params: [
      ['vm', 'ref'],
      ['new_name', 'string'],
      ['ignore_vdis', 'set'],
    ],
    optional: 1,
    async: true,
    fn: (ctx, vm: string, name: string, ignore?: string[]) => {
      ctx.db.get('VM', vm);
      return vmSnapshot(ctx, vm, name, ignore ?? []);
    },
  });
  reg.add('VM.checkpoint', {
    params: [
      ['vm', 'ref'],
      ['new_name', 'string'],
    ],
    async: true,
    fn: (ctx, vm: string, name: string) => {
      ctx.db.get('VM', vm);
      return vmCheckpoint(ctx, vm, name);
    },
  });
  reg.add('VM.snapshot_with_quiesce', {
    params: [
      ['vm', 'ref'],
      ['new_name', 'string'],
    ],
    async: true,
    fn: (_ctx, vm: string) => {
      throw new ApiError('VM_SNAPSHOT_WITH_QUIESCE_NOT_SUPPORTED', [vm]);
    },
  });
  reg.add('VM.revert', {
    params: [['snapshot', 'ref']],
    async: true,
    fn: (ctx, s: string) => {
      ctx.db.get('VM', s);
      return vmRevert(ctx, s);
    },
  });
  reg.add('VM.clone', {
    params: [
      ['vm', 'ref'],
      ['new_name', 'string'],
    ],
    async: true,
    fn: async (ctx, vm: string, name: string) => {
      ctx.db.get('VM', vm);
      assertNotDom0(ctx, vm);
      assertState(ctx, vm, ctx.db.field('VM', vm, 'is_a_snapshot') === true ? ['halted', 'suspended'] : ['halted']);
      return cloneVm(ctx, vm, name, 'clone', []);
    },
  });
  reg.add('VM.copy', {
    params: [
      ['vm', 'ref'],
      ['new_name', 'string'],
      ['sr', 'ref'],
    ],
    async: true,
    fn: async (ctx, vm: string, name: string, sr: string) => {
      ctx.db.get('VM', vm);
      assertNotDom0(ctx, vm);
      assertState(ctx, vm, ctx.db.field('VM', vm, 'is_a_snapshot') === true ? ['halted', 'suspended'] : ['halted']);
      if (valid(ctx, 'SR', sr) && ctx.db.field('SR', sr, 'content_type') === 'iso') throw new ApiError('OPERATION_NOT_ALLOWED', ['Cannot copy a VM\'s disks to an ISO SR']);
      return cloneVm(ctx, vm, name, 'copy', [], sr);
    },
  });
  reg.add('VBD.create', {
    params: [['args', 'struct']],
    fn: (ctx, r: Record<string, unknown>) => {
      const f = recordFields('VBD', r, new Set(['uuid', 'currently_attached', 'device', 'allowed_operations', 'current_operations', 'metrics', 'status_code', 'status_detail', 'runtime_properties']));
      const vm = String(f.VM ?? '');
      ctx.db.get('VM', vm);
      const vdi = String(f.VDI ?? NULL_REF);
      if (f.empty !== true) ctx.db.get('VDI', vdi);
      let ud = String(f.userdevice ?? 'autodetect');
      const used = new Set(ctx.db.where('VBD', (v) => v.VM === vm).map((v) => ctx.db.field<string>('VBD', v, 'userdevice')));
      if (ud === 'autodetect') {
        let n = 0;
        while (used.has(String(n))) n++;
        ud = String(n);
      } else if (used.has(ud)) throw new ApiError('DEVICE_ALREADY_EXISTS', [ud]);
      return ctx.db.create('VBD', { ...f, VM: vm, VDI: vdi, userdevice: ud, currently_attached: false, metrics: NULL_REF });
    },
  });
  reg.add('VBD.destroy', {
    params: [['self', 'ref']],
    fn: (ctx, vbd: string) => {
      if (ctx.db.field('VBD', vbd, 'currently_attached') === true) throw new ApiError('OPERATION_NOT_ALLOWED', ['VBD is currently attached']);
      ctx.db.destroy('VBD', vbd);
    },
  });
}
