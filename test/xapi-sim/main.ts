// npm run sim -- --listen HOST:PORT --state FILE --sm-dir DIR [--socket PATH]
//                [--sm-plugins a,b|*] [--revert-flow classic|vdi-revert]
//                [--sm-log FILE] [--strict-sm-callbacks] [--hosts N] [--lock-root DIR]
//                [--xapi-plugins DIR] [--datapath-root DIR]
// Prints "listening <url>" once calls are accepted.
import * as path from 'node:path';
import { Db } from './db.js';
import { listen } from './server.js';
import { Sim } from './sim.js';

function usage(msg: string): never {
  process.stderr.write(
    `xapi-sim: ${msg}\nusage: main.ts --listen HOST:PORT --state FILE --sm-dir DIR [--socket PATH] [--sm-plugins LIST] [--revert-flow classic|vdi-revert] [--sm-log FILE] [--strict-sm-callbacks] [--hosts N] [--lock-root DIR] [--xapi-plugins DIR] [--datapath-root DIR]\n`,
  );
  process.exit(2);
}

function parseArgs(argv: string[]): Record<string, string | true> {
  const out: Record<string, string | true> = {};
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) usage(`unexpected argument ${a}`);
    const eq = a.indexOf('=');
    if (eq > 0) out[a.slice(2, eq)] = a.slice(eq + 1);
    else if (a === '--strict-sm-callbacks') out['strict-sm-callbacks'] = true;
    else {
      const v = argv[++i];
      if (v === undefined) usage(`${a} needs a value`);
      out[a.slice(2)] = v;
    }
  }
  return out;
}

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const listenArg = a.listen;
  if (typeof listenArg !== 'string') usage('--listen is required');
  const m = /^(.*):(\d+)$/.exec(listenArg);
  if (!m) usage('--listen wants HOST:PORT');
  const host = m[1]!.replace(/^\[(.*)\]$/, '$1');
  const port = Number(m[2]);
  if (typeof a.state !== 'string') usage('--state is required');
  if (typeof a['sm-dir'] !== 'string') usage('--sm-dir is required');
  const flow = a['revert-flow'] ?? 'classic';
  if (flow !== 'classic' && flow !== 'vdi-revert') usage('--revert-flow is classic or vdi-revert');
  const hosts = a.hosts === undefined ? 1 : Number(a.hosts);
  if (!Number.isInteger(hosts) || hosts < 1 || hosts > 16) usage('--hosts is a number of hosts, 1 to 16');
  if (a['lock-root'] === true) usage('--lock-root needs a directory');
  // Several hosts on one machine need one /var/lock/sm each, or their SM locks would be one.
  const lockRoot =
    typeof a['lock-root'] === 'string' ? path.resolve(a['lock-root']) : hosts > 1 ? path.join(path.dirname(path.resolve(a.state)), 'locks') : undefined;
  for (const k of ['xapi-plugins', 'datapath-root']) if (a[k] === true) usage(`--${k} needs a directory`);
  const dirArg = (k: string) => (typeof a[k] === 'string' ? path.resolve(a[k]) : undefined);
  const log = (s: string) => process.stderr.write(`xapi-sim: ${s}\n`);
  const db = new Db(path.resolve(a.state));
  const settings = {
    smDir: path.resolve(a['sm-dir']),
    smPlugins: typeof a['sm-plugins'] === 'string' ? a['sm-plugins'].split(/[\s,]+/).filter(Boolean) : undefined,
    revertFlow: flow,
    url: '',
    smLog: typeof a['sm-log'] === 'string' ? path.resolve(a['sm-log']) : undefined,
    strictSmCallbacks: a['strict-sm-callbacks'] === true,
    hosts,
    lockRoot,
    xapiPluginsDir: dirArg('xapi-plugins'),
    datapathRoot: dirArg('datapath-root'),
  } as const;
  const sim = new Sim(db, { ...settings }, log);
  // listen first: plugins probed at registration may already call back
  const l = await listen(sim, host, port, typeof a.socket === 'string' ? path.resolve(a.socket) : undefined);
  sim.settings.url = l.url;
  await sim.boot();
  await sim.replug();
  sim.startAutoScan();
  process.stdout.write(`listening ${l.url}\n`);
  const shutdown = async () => {
    await l.close();
    await sim.stop();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown());
  process.on('SIGINT', () => void shutdown());
}

main().catch((e) => {
  process.stderr.write(`xapi-sim: ${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  process.exit(1);
});
