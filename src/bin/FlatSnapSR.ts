// Bundled into plugin/FlatSnapSR, the executable xapi runs for type=flatsnap.
import { main } from '../main.js';

await main(process.argv.slice(2));
process.exitCode = 0;
