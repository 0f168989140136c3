// sr_attach (PBD.plug, on every host with a PBD): check the storage is there and
// is this SR. On the SR master, as the Python stack does, mark the SR dirty so
// xapi's scanning thread rescans it, and report the SR's sizes.
import { SrContext } from '../context.js';
import { register } from '../registry.js';
import { markSrDirty, updateSrSizesQuietly } from '../xapi-apply.js';

register('sr_attach', {
  run: async (c) => {
    const ctx = SrContext.of(c);
    const backend = await ctx.backend();
    await backend.attachSr(ctx.srUuid);
    if (!ctx.req.sr_master) return null;
    await markSrDirty(ctx);
    await updateSrSizesQuietly(ctx, await ctx.lineage());
    return null;
  },
});
