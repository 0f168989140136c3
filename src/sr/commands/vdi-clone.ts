// vdi_clone (SR master only): a writable, independent copy of any VDI; classic
// VM.revert clones the snapshot after deleting the VM's disk.
import { SrContext } from '../context.js';
import { newVdiFrom } from '../new-vdi.js';
import { register } from '../registry.js';

register('vdi_clone', {
  run: (c) => newVdiFrom(SrContext.of(c), 'clone'),
});
