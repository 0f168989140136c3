// Bundled into plugin/flatsnap-lib/cli.cjs, run by plugin/flatsnap: the operator
// command (flatsnap tree | seek | gc | check). See src/cli/main.ts.
import { existsSync, readFileSync } from 'node:fs';
import { run } from '../cli/main.js';

// Log lines go to SMlog (syslog local2, or $FLATSNAP_SMLOG). Where neither exists they would
// land on stderr between the command's own messages: keep only warnings and errors there.
if (!process.env.FLATSNAP_SMLOG && !existsSync(process.env.FLATSNAP_SYSLOG_SOCKET ?? '/dev/log')) {
  process.env.FLATSNAP_LOG_LEVEL ??= 'warn';
}

void run(process.argv.slice(2), undefined, { readFile: (p) => readFileSync(p, 'utf8') }).then((code) => {
  process.exitCode = code;
});
