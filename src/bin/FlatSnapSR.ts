// Bundled into plugin/flatsnap-lib/driver.cjs, run by plugin/FlatSnapSR: the
// executable xapi runs for SRs of type flatsnap.
import { main } from '../main.js';

void main(process.argv.slice(2)).then(() => {
  process.exitCode = 0;
});
