// Carrying out what xapi-sync.ts computed: XenAPI writes through the request's
// session, metadata writes through the backend, and the SR's sizes.
import type { Backend, StoredObject } from '../backends/backend.js';
import { log } from '../log.js';
import { XapiError } from '../xapi/errors.js';
import { NULL_REF } from '../xapi/wire.js';
import type { Lineage, SrContext, XapiPort } from './context.js';
import { forgetRef } from './run-plan.js';
import { diffSrSizes, virtualAllocation, type MetaWrite, type XapiWrite } from './xapi-sync.js';

/**
 * Applies `writes` in order. `refByUuid` maps VDI uuids to refs for resolving an
 * introduce's snapshot_of; every introduced VDI is added to it. Returns the new refs.
 */
export async function applyXapiWrites(xapi: XapiPort, writes: readonly XapiWrite[], refByUuid: Map<string, string>): Promise<Map<string, string>> {
  const introduced = new Map<string, string>();
  for (const w of writes) {
    switch (w.op) {
      case 'introduce': {
        const snapshotOf = w.snapshot_of === '' ? NULL_REF : (refByUuid.get(w.snapshot_of) ?? NULL_REF);
        const ref = await xapi.VDI.db_introduce({ ...w.record, snapshot_of: snapshotOf });
        refByUuid.set(w.vdi, ref);
        introduced.set(w.vdi, ref);
        break;
      }
      case 'forget':
        await forgetRef(xapi, w.ref);
        break;
      case 'set_virtual_size':
        await xapi.VDI.set_virtual_size(w.ref, w.value);
        break;
      case 'set_physical_utilisation':
        await xapi.VDI.set_physical_utilisation(w.ref, w.value);
        break;
      case 'set_read_only':
        await xapi.VDI.set_read_only(w.ref, w.value);
        break;
      case 'set_key':
        await setKey(xapi, w.ref, w.map, w.key, w.value, w.replace);
        break;
      case 'remove_key':
        await (w.map === 'sm_config' ? xapi.VDI.remove_from_sm_config(w.ref, w.key) : xapi.VDI.remove_from_other_config(w.ref, w.key));
        break;
    }
  }
  return introduced;
}

/** remove_from + add_to, as XO and xe do; a key that appeared meanwhile is replaced once more. */
async function setKey(xapi: XapiPort, ref: string, map: 'sm_config' | 'other_config', key: string, value: string, replace: boolean): Promise<void> {
  const remove = (): Promise<void> => (map === 'sm_config' ? xapi.VDI.remove_from_sm_config(ref, key) : xapi.VDI.remove_from_other_config(ref, key));
  const add = (): Promise<void> => (map === 'sm_config' ? xapi.VDI.add_to_sm_config(ref, key, value) : xapi.VDI.add_to_other_config(ref, key, value));
  if (replace) await remove();
  try {
    await add();
  } catch (e) {
    if (!(e instanceof XapiError && e.code === 'MAP_DUPLICATE_KEY')) throw e;
    await remove();
    await add();
  }
}

/** Writes xapi's fields into storage records; keeps `objects` in step. */
export async function applyMetaWrites(backend: Backend, objects: Map<string, StoredObject>, writes: readonly MetaWrite[]): Promise<void> {
  for (const w of writes) {
    const o = objects.get(w.id);
    if (o === undefined) continue;
    await backend.setMeta(o, w.meta);
    objects.set(w.id, { ...o, meta: { ...w.meta } });
  }
}

/**
 * Reports the SR's sizes (the Python SR._db_update trio): physical size and utilisation
 * from the backend; virtual allocation = Σ virtual sizes of the visible VDIs when the
 * whole SR was read, else the row's value moved by what the command changed in its
 * family (Python's SR._update(sr_uuid, virt_alloc_delta)), and left as it is without a
 * lineage (sr_update, like FileSR.update; xapi sums the rows itself after every scan).
 * Reads the SR row first and writes only what changed.
 */
export async function updateSrSizes(ctx: SrContext, lineage?: Lineage): Promise<void> {
  const stats = await (await ctx.backend()).stats();
  const rec = await ctx.srRecord();
  let allocation = rec.virtual_allocation;
  if (lineage !== undefined) {
    const now = virtualAllocation(lineage.tree, lineage.objects);
    allocation = lineage.complete !== false ? now : Math.max(0, rec.virtual_allocation + now - (lineage.loadedAllocation ?? now));
  }
  const want = { physical_size: stats.physical_size, physical_utilisation: stats.physical_utilisation, virtual_allocation: allocation };
  for (const w of diffSrSizes(rec, want)) await ctx.xapi.SR[w.op](ctx.srRef, w.value);
}

/** updateSrSizes after a command's real work is done: a failure is logged, not reported. */
export async function updateSrSizesQuietly(ctx: SrContext, lineage?: Lineage): Promise<void> {
  try {
    await updateSrSizes(ctx, lineage);
  } catch (e) {
    log().warn(`${ctx.req.command}: could not update the SR's sizes in xapi (the next scan will): ${e instanceof Error ? e.message : String(e)}`);
  }
}

/**
 * SR.other_config "dirty": xapi's scanning thread rescans the SR within 30 s (what the
 * Python stack sets on attach). Best effort; an existing key is fine.
 */
export async function markSrDirty(ctx: SrContext): Promise<void> {
  try {
    await ctx.xapi.SR.add_to_other_config(ctx.srRef, 'dirty', '');
  } catch (e) {
    if (e instanceof XapiError && e.code === 'MAP_DUPLICATE_KEY') return;
    log().warn(`${ctx.req.command}: could not mark SR ${ctx.srUuid} dirty: ${e instanceof Error ? e.message : String(e)}`);
  }
}
