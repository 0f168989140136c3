// sr_attach (PBD.plug, on every host with a PBD): check the storage is there and
// is this SR. Then, as the Python stack does: clear what a crash left in the VDIs'
// sm_config (this host's host_<ref> keys; on the master, `paused`: reset-vdis.ts),
// once storage has repaired any interrupted change; on the SR master, mark the SR
// dirty so xapi's scanning thread rescans it, and report the SR's sizes.
import { SrContext } from '../context.js';
import { register } from '../registry.js';
import { resetVdis } from '../reset-vdis.js';
import { markSrDirty, updateSrSizesQuietly } from '../xapi-apply.js';

register('sr_attach', {
  run: async (c) => {
    const ctx = SrContext.of(c);
    const backend = await ctx.backend();
    await backend.attachSr(ctx.srUuid);
    await resetVdis(ctx);
    if (!ctx.req.sr_master) return null;
    await markSrDirty(ctx);
    await updateSrSizesQuietly(ctx, await ctx.lineage());
    return null;
  },
});
