// vdi_epoch_begin / vdi_epoch_end: xenopsd calls them around every VM start/stop.
// Nothing to do for a persistent VDI. on_boot=reset needs VDI_RESET_ON_BOOT/2, which
// flatsnap does not offer (xapi then never lets a VDI be set to reset); should one
// arrive anyway, answer "not implemented" as the Python stack does.
import { SmError } from '../../errors.js';
import { SrContext } from '../context.js';
import { register } from '../registry.js';

register('vdi_epoch_begin', {
  run: async (c) => {
    const ctx = SrContext.of(c);
    if (ctx.req.vdi_on_boot === 'reset') {
      throw new SmError('Unimplemented', `VDI ${ctx.vdi} has on_boot=reset, which flatsnap does not support (no VDI_RESET_ON_BOOT/2)`);
    }
    return null;
  },
});

register('vdi_epoch_end', {
  run: async () => null,
});
