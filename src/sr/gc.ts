// Garbage collection: whatever the lineage says nothing needs any more (objects an
// interrupted plan left behind, reclaim steps a failed delete did not finish).
// Runs at sr_scan and sr_delete; normally the plan is empty.
import { log } from '../log.js';
import type { Lineage, SrContext } from './context.js';
import { forgetByUuid, runPlan } from './run-plan.js';
import { withUndo } from './undo.js';

/** Runs gcPlan(); returns how many actions were carried out. Failures are logged, never thrown. */
export async function collectGarbage(ctx: SrContext, l: Lineage): Promise<number> {
  const plan = l.tree.gcPlan();
  if (plan.length === 0) return 0;
  const what = `${ctx.req.command}: garbage collection`;
  const backend = await ctx.backend();
  log().info(`${what}: ${plan.length} action(s): ${plan.map((a) => a.op).join(', ')}`);
  try {
    const r = await withUndo((undo) =>
      runPlan({ backend, tree: l.tree, objects: l.objects }, plan, {
        fail: 'SMGeneral',
        undo,
        what,
        forget: (vdi) => forgetByUuid(ctx.xapi, vdi),
      }),
    );
    return r.incomplete ? plan.indexOf(r.incomplete.action) : plan.length;
  } catch (e) {
    log().error(`${what} failed: ${e instanceof Error ? e.message : String(e)}`);
    return 0;
  }
}
