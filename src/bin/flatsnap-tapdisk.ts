// Bundled into plugin/flatsnap-lib/tapdisk-plugin.cjs, run by plugin/flatsnap-tapdisk:
// the XAPI host plugin (installed in /etc/xapi.d/plugins) that pauses and unpauses a
// VDI's tapdisk on this host for a live snapshot on the SR master.
import { main } from '../host-plugin/tapdisk-plugin.js';

// Anything a dependency prints with console.log must not reach stdout.
console.log = console.error;
console.info = console.error;

void main(process.argv.slice(2)).then(() => {
  process.exitCode = 0;
});
