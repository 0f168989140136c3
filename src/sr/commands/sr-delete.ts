// sr_delete (xapi's SR.destroy, after an sr_attach): refuse while any VDI is left
// (SRNotEmpty, 39 -> SR_NOT_EMPTY), reclaim leftovers first, remove the SR's root,
// and leave the SR detached: xapi calls sr_detach only when sr_delete fails.
import { SmError } from '../../errors.js';
import { log } from '../../log.js';
import { SrContext } from '../context.js';
import { collectGarbage } from '../gc.js';
import { register } from '../registry.js';

register('sr_delete', {
  run: async (c) => {
    const ctx = SrContext.of(c);
    const backend = await ctx.backend();
    const l = await ctx.lineage();
    await collectGarbage(ctx, l);
    const left = l.tree.visible().map((o) => o.vdi!);
    if (left.length > 0) {
      const shown = left.slice(0, 5).join(', ') + (left.length > 5 ? ', ...' : '');
      throw new SmError('SRNotEmpty', `${left.length} VDI(s) remain in SR ${ctx.srUuid}: ${shown}`);
    }
    await backend.deleteSr(ctx.srUuid);
    try {
      await backend.detachSr(ctx.srUuid);
    } catch (e) {
      log().warn(`sr_delete: detach after delete: ${e instanceof Error ? e.message : String(e)}`);
    }
    log().info(`sr_delete: removed flatsnap SR ${ctx.srUuid} from ${backend.describe()}`);
    return null;
  },
});
