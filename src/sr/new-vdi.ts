// vdi_snapshot and vdi_clone: a new VDI from an existing one, as one lineage plan
// (a storage snapshot, a clone, or a reflink copy, by backend) followed by the
// db_introduce of the new VDI; a failure anywhere destroys what was made.
//
// What xapi does around the call (xapi-flows.md 1.3, 2.4): it finds the new VDI by
// location, sets name/description, snapshot_time, is_a_snapshot and content_id, calls
// vdi_update on it, then overwrites its other_config with the source's and (snapshot)
// sets is_a_snapshot and snapshot_of. We introduce a snapshot read-only with
// is_a_snapshot/snapshot_of/snapshot_time already set, a clone writable and plain.
import type { VdiMeta } from '../backends/backend.js';
import { SmError } from '../errors.js';
import { LineageError } from '../lineage/index.js';
import { log } from '../log.js';
import type { XmlRpcStruct } from '../smapi/xmlrpc.js';
import { NULL_REF } from '../xapi/wire.js';
import type { SrContext } from './context.js';
import { withVdiPaused } from './live-pause.js';
import { runPlan } from './run-plan.js';
import { withUndo } from './undo.js';
import { metaOf, vdiInfo, visibleVdi } from './vdi-common.js';
import { markSrDirty, updateSrSizesQuietly } from './xapi-apply.js';
import { EPOCH, SM_PASS_THROUGH, introduceRecord, xapiTime } from './xapi-sync.js';

export async function newVdiFrom(ctx: SrContext, kind: 'snapshot' | 'clone'): Promise<XmlRpcStruct> {
  ctx.requireMaster();
  const fail = kind === 'snapshot' ? 'VDISnapshot' : 'VDIClone';
  const source = ctx.vdi;
  const backend = await ctx.backend();
  const l = await ctx.lineageFor([{ vdi: source, ref: ctx.vdiRef }]);
  const src = visibleVdi(l, source);
  const vdi = ctx.newUuid();
  const time = ctx.now();
  const srcMeta = metaOf(src);
  const meta: VdiMeta =
    kind === 'snapshot'
      ? { ...srcMeta, is_a_snapshot: true, snapshot_time: xapiTime(time), snapshot_of: source, read_only: true }
      : { ...srcMeta, is_a_snapshot: false, snapshot_time: EPOCH, snapshot_of: '', read_only: false };
  let plan;
  try {
    const n = { vdi, time, newId: ctx.newUuid };
    plan = kind === 'snapshot' ? l.tree.planSnapshot(source, n) : l.tree.planClone(source, n);
  } catch (e) {
    throw new SmError(fail, `${kind} of VDI ${source}: ${e instanceof LineageError ? e.message : String(e)}`);
  }
  const what = `vdi_${kind} of ${source} as ${vdi}`;
  // base_mirror from driver_params survives on the new VDI (storage migration).
  const smExtra: Record<string, string> = {};
  for (const k of SM_PASS_THROUGH) if (ctx.req.driver_params?.[k] !== undefined) smExtra[k] = ctx.req.driver_params[k]!;

  // A live source: its tapdisks (this host's, and on a shared SR every host's) are
  // paused while storage copies it.
  const result = await withUndo(async (undo) => {
    await withVdiPaused(ctx, { vdi: source, ref: ctx.vdiRef }, fail, () =>
      runPlan({ backend, tree: l.tree, objects: l.objects }, plan, { fail, undo, what, meta: () => meta }),
    );
    const o = l.objects.get(l.tree.byVdi(vdi)?.id ?? vdi);
    if (o === undefined) throw new SmError(fail, `${what}: the new VDI is not on storage after the plan`);
    await ctx.xapi.VDI.db_introduce({
      ...introduceRecord(l.tree, o, meta, ctx.srRef, smExtra),
      snapshot_of: kind === 'snapshot' ? ctx.vdiRef : NULL_REF,
    });
    log().info(`${what}: done (${plan.map((a) => a.op).join(', ')}) on ${backend.describe()}`);
    return vdiInfo(vdi);
  });
  await updateSrSizesQuietly(ctx, l);
  // xapi replaces the new VDI's other_config with the source's after this call (and after
  // the vdi_update it makes): a rescan soon puts the new VDI's own lineage keys back.
  await markSrDirty(ctx);
  return result;
}
