// Runs the built plugin the way xapi does: one argv argument, xapi's bare
// environment (PATH=/sbin:/usr/sbin:/bin:/usr/bin, ORIGINATOR=SM, no HOME).
import { execa } from 'execa';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { pyLoads, type PyParsed } from './python.js';

export const PLUGIN = join(process.cwd(), 'plugin', 'FlatSnapSR');
export const XAPI_ENV = { PATH: '/sbin:/usr/sbin:/bin:/usr/bin', ORIGINATOR: 'SM' };

export interface DriverRun {
  stdout: string;
  stderr: string;
  exitCode: number;
  parsed: PyParsed;
}

export async function runDriver(argv: string[], env: Record<string, string> = {}): Promise<DriverRun> {
  if (!existsSync(PLUGIN)) throw new Error(`${PLUGIN} is missing: run make build first`);
  const r = await execa(PLUGIN, argv, { env: { ...XAPI_ENV, ...env }, extendEnv: false, reject: false });
  return { stdout: r.stdout, stderr: r.stderr, exitCode: r.exitCode ?? -1, parsed: await pyLoads(r.stdout) };
}
