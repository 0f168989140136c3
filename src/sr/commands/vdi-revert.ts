// vdi_revert (VDI_REVERT, xapi >= 26.16): vdi_ref is the SNAPSHOT, args[0] the ref of
// the VDI to overwrite; the target keeps its uuid and ref and takes the snapshot's
// content. Every snapshot of the target, newer ones included, is kept
// (lineage planRevert: a plain rollback when the snapshot is the newest one on ZFS,
// else clone + swap-vdi + retire the old volume). Not in FileSR's exclusive list, so
// the SR lock is taken here.
import { SmError } from '../../errors.js';
import { LineageError } from '../../lineage/index.js';
import { log } from '../../log.js';
import type { Plan } from '../../lineage/index.js';
import { SrContext } from '../context.js';
import { withVdiPaused } from '../live-pause.js';
import { register } from '../registry.js';
import { runPlan } from '../run-plan.js';
import { withUndo } from '../undo.js';
import { visibleVdi, withSrLock } from '../vdi-common.js';
import { applyXapiWrites, updateSrSizesQuietly } from '../xapi-apply.js';
import { diffVdi } from '../xapi-sync.js';

register('vdi_revert', {
  run: async (c) => {
    const ctx = SrContext.of(c);
    ctx.requireMaster();
    const { req } = ctx;
    if (req.args.kind !== 'ref') throw new SmError('BadRequest', 'vdi_revert needs the ref of the VDI to revert');
    const targetRef = req.args.ref;
    const snapshot = ctx.vdi;
    const rec = await ctx.vdiRecord(targetRef);
    if (rec.SR !== ctx.srRef) throw new SmError('InvalidArg', `VDI ${rec.uuid} is not in SR ${ctx.srUuid}`);
    const target = rec.location.toLowerCase();
    return withSrLock(ctx, async () => {
      const backend = await ctx.backend();
      const l = await ctx.lineageFor(
        [
          { vdi: snapshot, ref: ctx.vdiRef },
          { vdi: target, ref: targetRef },
        ],
        { retires: true },
      );
      visibleVdi(l, snapshot);
      visibleVdi(l, target);
      const what = `vdi_revert of ${target} to snapshot ${snapshot}`;
      const planFor = (rollback: boolean): Plan => {
        try {
          return l.tree.planRevert(snapshot, target, { time: ctx.now(), newId: ctx.newUuid, rollback });
        } catch (e) {
          throw new SmError('InvalidArg', `${what}: ${e instanceof LineageError ? e.message : String(e)}`);
        }
      };
      const run = (plan: Plan) =>
        withUndo((undo) => runPlan({ backend, tree: l.tree, objects: l.objects }, plan, { fail: 'VDIClone', undo, what }));
      let plan = planFor(true);
      // The target's tapdisks (here, and on a shared SR on every host) are held while its
      // image is replaced; their unpause reopens the image by name, so they serve the new one.
      await withVdiPaused(ctx, { vdi: target, ref: targetRef }, 'VDIClone', async () => {
        try {
          await run(plan);
        } catch (e) {
          // ZFS may know a newer snapshot than the model (a clock step): nothing was
          // changed, so revert the long way instead.
          if (plan[0]?.op !== 'rollback') throw e;
          log().warn(`${what}: rollback refused (${e instanceof Error ? e.message : String(e)}); cloning instead`);
          plan = planFor(false);
          await run(plan);
        }
      });
      log().info(`${what}: done (${plan.map((a) => a.op).join(', ')})`);
      // The target's row now describes another object: sizes and our keys.
      try {
        const o = visibleVdi(l, target);
        const d = diffVdi(l.tree, o, targetRef, rec, () => undefined);
        await applyXapiWrites(ctx.xapi, d.xapi, new Map());
      } catch (e) {
        log().warn(`${what}: could not refresh the VDI's row (the next scan will): ${e instanceof Error ? e.message : String(e)}`);
      }
      await updateSrSizesQuietly(ctx, l);
      return null;
    });
  },
});
