// Checks shared by the storage and VM flows, with xapi's error codes.
import type { Ctx } from '../api.js';
import { hasCap, myPbd, NotImplemented } from '../sm-exec.js';
import { ApiError, NULL_REF } from '../wire.js';

export const valid = (ctx: Ctx, cls: string, ref: string | undefined): ref is string =>
  ref !== undefined && ref !== NULL_REF && ref !== '' && ctx.db.has(cls, ref);

/** Sm.assert_pbd_is_plugged */
export function assertPlugged(ctx: Ctx, sr: string): void {
  const pbd = myPbd(ctx, sr);
  if (pbd === undefined || ctx.db.field('PBD', pbd, 'currently_attached') !== true) throw new ApiError('SR_NO_PBDS', [sr]);
}

export function assertCap(ctx: Ctx, sr: string, cap: string): void {
  if (!hasCap(ctx, sr, cap)) throw new ApiError('SR_OPERATION_NOT_SUPPORTED', [sr]);
}

/** Not_implemented_in_backend as the storage layer reports it for VDI operations. */
export function unimplemented(e: unknown, sr: string): unknown {
  return e instanceof NotImplemented ? new ApiError('UNIMPLEMENTED_IN_SM_BACKEND', [sr]) : e;
}

/** ... and for SR operations (create, delete, scan, stat). */
export function srUnsupported(e: unknown, sr: string): unknown {
  return e instanceof NotImplemented ? new ApiError('SR_OPERATION_NOT_SUPPORTED', [sr]) : e;
}

export function vdiSr(ctx: Ctx, vdi: string): string {
  return ctx.db.field<string>('VDI', vdi, 'SR');
}

/** SR.allowed_operations from the SM's features (xapi_sr_operations.ml sm_cap_table). */
export function srAllowedOps(features: Record<string, number>): string[] {
  const ops = ['forget', 'plug', 'unplug', 'destroy', 'scan', 'vdi_clone', 'vdi_data_destroy', 'pbd_create', 'pbd_destroy'];
  const table: Array<[string, string]> = [
    ['vdi_create', 'VDI_CREATE'],
    ['vdi_destroy', 'VDI_DELETE'],
    ['vdi_resize', 'VDI_RESIZE'],
    ['vdi_introduce', 'VDI_INTRODUCE'],
    ['vdi_snapshot', 'VDI_SNAPSHOT'],
    ['vdi_revert', 'VDI_REVERT'],
    ['vdi_mirror', 'VDI_MIRROR'],
    ['update', 'SR_UPDATE'],
    ['vdi_set_on_boot', 'VDI_RESET_ON_BOOT'],
    ['vdi_enable_cbt', 'VDI_CONFIG_CBT'],
    ['vdi_disable_cbt', 'VDI_CONFIG_CBT'],
    ['vdi_list_changed_blocks', 'VDI_CONFIG_CBT'],
  ];
  for (const [op, cap] of table) if (Object.hasOwn(features, cap)) ops.push(op);
  return ops.sort();
}
