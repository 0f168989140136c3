// sr_update (SR.stat / SR.update, and after every scan): the SR's physical sizes, as
// FileSR.update does (_update(sr_uuid, 0)): no listing of the SR, so its cost does not
// grow with the SR. virtual_allocation stays what the commands keep up to date (and xapi
// sums the VDI rows itself after every scan).
import { SrContext } from '../context.js';
import { register } from '../registry.js';
import { updateSrSizes } from '../xapi-apply.js';

register('sr_update', {
  run: async (c) => {
    await updateSrSizes(SrContext.of(c));
    return null;
  },
});
