// sr_update (SR.stat / SR.update, and after every scan): the SR's sizes.
import { SrContext } from '../context.js';
import { register } from '../registry.js';
import { updateSrSizes } from '../xapi-apply.js';

register('sr_update', {
  run: async (c) => {
    const ctx = SrContext.of(c);
    await updateSrSizes(ctx, await ctx.lineage());
    return null;
  },
});
