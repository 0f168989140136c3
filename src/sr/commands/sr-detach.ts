// sr_detach (PBD.unplug): undo sr_attach; idempotent. xapi has already torn down
// every datapath of the SR.
import { SrContext } from '../context.js';
import { register } from '../registry.js';

register('sr_detach', {
  run: async (c) => {
    const ctx = SrContext.of(c);
    await (await ctx.backend()).detachSr(ctx.srUuid);
    return null;
  },
});
