// vdi_snapshot (SR master only): a read-only, independent snapshot VDI.
import { SrContext } from '../context.js';
import { newVdiFrom } from '../new-vdi.js';
import { register } from '../registry.js';

register('vdi_snapshot', {
  run: (c) => newVdiFrom(SrContext.of(c), 'snapshot'),
});
