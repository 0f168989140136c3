// The FlatSnapSR entry point: xapi execs it with the XML-RPC request as argv[1]
// and reads one methodResponse from stdout. Whatever happens, it writes exactly
// one response (a result or a fault) and exits 0, as SRCommand.run does.
import { toFault } from './errors.js';
import { flushLog, log } from './log.js';
import { parseArgv, type SmRequest } from './smapi/request.js';
import { writeFault, writeResponse } from './smapi/response.js';
import { dispatch } from './sr/dispatch.js';

// Anything a dependency prints with console.log must not reach stdout.
console.log = console.error;
console.info = console.error;

const SECRET_KEY = /pass|secret|chap|key/i;

function describe(req: SmRequest): string {
  const dc = Object.entries(req.device_config)
    .map(([k, v]) => `${k}=${SECRET_KEY.test(k) ? '******' : v}`)
    .join(',');
  const parts: string[] = [req.command];
  if (req.sr_uuid) parts.push(`sr=${req.sr_uuid}`);
  if (req.vdi_uuid) parts.push(`vdi=${req.vdi_uuid}`);
  if (req.vdi_location) parts.push(`location=${req.vdi_location}`);
  if (req.raw_args.length) parts.push(`args=${JSON.stringify(req.raw_args)}`);
  if (dc) parts.push(`device_config={${dc}}`);
  return parts.join(' ');
}

// process.hrtime, not perf_hooks: loading perf_hooks costs more than the parse.
const sinceMs = (t0: bigint): string => (Number(process.hrtime.bigint() - t0) / 1e6).toFixed(1);

export async function main(argv: string[]): Promise<void> {
  const t0 = process.hrtime.bigint();
  let what = 'request';
  try {
    const req = parseArgv(argv);
    what = req.command;
    log().info(describe(req));
    const value = await dispatch(req);
    writeResponse(value);
    log().info(`${what} ok in ${sinceMs(t0)} ms`);
  } catch (e) {
    const f = toFault(e);
    writeFault(f.code, f.message);
    log().error(`${what} failed in ${sinceMs(t0)} ms: fault ${f.code}: ${f.message}`);
    if (!(e instanceof Error && e.name === 'SmError')) log().error(String((e as Error)?.stack ?? e));
  } finally {
    await flushLog();
  }
}
