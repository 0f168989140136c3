// vdi_resize (SR master only; args [new_size]): grow the VDI, record the new
// virtual_size in xapi, answer {uuid, location}. Shrinking is refused (VDISize, 79)
// as FileSR does; the same size is a no-op.
import { SmError } from '../../errors.js';
import { log } from '../../log.js';
import { SrContext } from '../context.js';
import { register } from '../registry.js';
import { stepError } from '../run-plan.js';
import { vdiInfo, visibleVdi, withSrLock } from '../vdi-common.js';
import { updateSrSizesQuietly } from '../xapi-apply.js';

register('vdi_resize', {
  run: async (c) => {
    const ctx = SrContext.of(c);
    ctx.requireMaster();
    const { req } = ctx;
    if (req.args.kind !== 'resize') throw new SmError('BadRequest', 'vdi_resize without its size');
    const want = req.args.new_size;
    return withSrLock(ctx, async () => {
      const l = await ctx.lineageFor([{ vdi: ctx.vdi, ref: ctx.vdiRef }]);
      const o = visibleVdi(l, ctx.vdi);
      if (want < o.virtual_size) {
        throw new SmError('VDISize', `shrinking VDI ${ctx.vdi} from ${o.virtual_size} to ${want} bytes is not supported (only growing is)`);
      }
      let size = o.virtual_size;
      if (want > o.virtual_size) {
        try {
          size = await (await ctx.backend()).resize(o, want);
        } catch (e) {
          throw stepError(e, 'VDIResize', `vdi_resize of ${ctx.vdi} to ${want} bytes`);
        }
        l.objects.set(o.id, { ...o, virtual_size: size });
        log().info(`vdi_resize of ${ctx.vdi}: ${o.virtual_size} -> ${size} bytes (${want} asked)`);
      }
      await ctx.xapi.VDI.set_virtual_size(ctx.vdiRef, size);
      await updateSrSizesQuietly(ctx, l);
      return vdiInfo(ctx.vdi);
    });
  },
});
