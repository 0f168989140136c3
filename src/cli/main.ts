// `flatsnap`, the operator command: parses the command line, runs one subcommand, and
// turns every outcome into an exit status:
//   0 ok; 1 problems found (check) or left (gc, seek --vm); 2 usage error;
//   3 the command could not run (no SR there, storage or xapi unavailable, unknown VDI...).
import { SmError } from '../errors.js';
import { flushLog } from '../log.js';
import { VERSION } from '../version.js';
import { XapiError, XapiProtocolError, XapiTransportError } from '../xapi/errors.js';
import { type ArgsEnv, type Invocation, UsageError, parseArgs } from './args.js';
import { checkCommand } from './check.js';
import { gcCommand } from './gc.js';
import { MAIN_USAGE, USAGE } from './help.js';
import { type Io, Timer, printJson, stdio } from './output.js';
import { relayoutCommand } from './relayout.js';
import { seekCommand } from './seek.js';
import { CommandError, describeError } from './storage.js';
import { treeCommand } from './tree.js';

export const EXIT = { ok: 0, problems: 1, usage: 2, failed: 3 } as const;

async function runInvocation(inv: Invocation, io: Io, timer: Timer): Promise<number> {
  switch (inv.cmd) {
    case 'help':
      io.out(inv.topic === undefined ? MAIN_USAGE : USAGE[inv.topic]);
      return EXIT.ok;
    case 'version':
      io.out(`flatsnap ${VERSION}`);
      return EXIT.ok;
    case 'tree':
      return treeCommand(inv, io, timer);
    case 'seek':
      return seekCommand(inv, io, timer);
    case 'gc':
      return gcCommand(inv, io, timer);
    case 'check':
      return checkCommand(inv, io, timer);
    case 'relayout':
      return relayoutCommand(inv, io, timer);
  }
}

/** One error as the line the operator reads. */
export function errorMessage(e: unknown): string {
  if (e instanceof XapiError) {
    if (e.code === 'SESSION_AUTHENTICATION_FAILED') return `xapi refused the login (${e.params.join(': ') || 'authentication failure'}); check --user and --password`;
    return `xapi: ${e.message}`;
  }
  if (e instanceof XapiTransportError || e instanceof XapiProtocolError) return e.message;
  return describeError(e);
}

/** Runs the command line `argv` (without node and the script); returns the exit status. */
export async function run(argv: readonly string[], io: Io = stdio, e: ArgsEnv = {}): Promise<number> {
  const timer = new Timer();
  let inv: Invocation | undefined;
  try {
    inv = parseArgs(argv, e);
    return await runInvocation(inv, io, timer);
  } catch (err) {
    if (err instanceof UsageError) {
      io.err(`flatsnap: ${err.message}`);
      io.err(err.command ? `run "flatsnap ${err.command} --help" for its usage` : MAIN_USAGE);
      return EXIT.usage;
    }
    const known = err instanceof CommandError || err instanceof SmError || err instanceof XapiError || err instanceof XapiTransportError || err instanceof XapiProtocolError;
    const what = inv !== undefined && 'target' in inv ? `flatsnap ${inv.cmd}` : 'flatsnap';
    io.err(`${what}: ${errorMessage(err)}`);
    if (!known && err instanceof Error && err.stack) io.err(err.stack);
    if (inv !== undefined && 'json' in inv && inv.json) {
      printJson(io, { error: { message: errorMessage(err), kind: err instanceof SmError ? err.kind : err instanceof Error ? err.name : 'Error' } });
    }
    return EXIT.failed;
  } finally {
    if (inv !== undefined && 'timings' in inv && inv.timings) io.err(timer.summary());
    await flushLog();
  }
}
