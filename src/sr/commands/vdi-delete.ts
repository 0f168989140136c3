// vdi_delete (SR master only): idempotent (a VDI that is already gone is a success).
// The lineage plan tombstones the object first (the VDI is gone from then on), forgets
// the row in xapi, then destroys whatever nothing needs any more; an object that
// snapshots or clones still need stays as a hidden tombstone (classic VM.revert deletes
// the disk before cloning its snapshot).
import { log } from '../../log.js';
import { SrContext } from '../context.js';
import { register } from '../registry.js';
import { forgetByUuid, forgetRef, runPlan } from '../run-plan.js';
import { withUndo } from '../undo.js';
import { updateSrSizesQuietly } from '../xapi-apply.js';

register('vdi_delete', {
  run: async (c) => {
    const ctx = SrContext.of(c);
    ctx.requireMaster();
    const vdi = ctx.vdi;
    const backend = await ctx.backend();
    const l = await ctx.lineageFor([{ vdi, ref: ctx.vdiRef }], { retires: true });
    const obj = l.tree.byVdi(vdi);
    if (obj === undefined) {
      log().info(`vdi_delete: VDI ${vdi} is not (or no longer) in SR ${ctx.srUuid}: nothing to do`);
      return null;
    }
    const plan = l.tree.planDelete(vdi);
    const what = `vdi_delete of ${vdi}`;
    const r = await withUndo((undo) =>
      runPlan({ backend, tree: l.tree, objects: l.objects }, plan, {
        fail: 'VDIDelete',
        undo,
        what,
        forget: (v) => (v === vdi ? forgetRef(ctx.xapi, ctx.vdiRef) : forgetByUuid(ctx.xapi, v)),
      }),
    );
    const kept = l.tree.has(obj.id);
    log().info(`${what}: ${plan.length} step(s)${kept ? '; kept on storage as a tombstone (other VDIs need it)' : ''}${r.incomplete ? '; reclaim left for garbage collection' : ''}`);
    await updateSrSizesQuietly(ctx, l);
    return null;
  },
});
