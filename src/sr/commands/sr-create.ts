// sr_create (args [physical_size], SRmaster=true): make the SR's root on storage.
// xapi made the SR and PBD rows already and plugs the PBDs (sr_attach) afterwards.
// The backend refuses a root that holds anything that is not an empty flatsnap SR.
import { log } from '../../log.js';
import { SrContext } from '../context.js';
import { register } from '../registry.js';

register('sr_create', {
  run: async (c) => {
    const ctx = SrContext.of(c);
    const backend = await ctx.backend(); // type analysis: a bad device_config faults before storage is touched
    await backend.createSr(ctx.srUuid);
    log().info(`sr_create: flatsnap SR ${ctx.srUuid} on ${backend.describe()}`);
    return null;
  },
});
