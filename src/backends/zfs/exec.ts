// Running zfs/zpool: always execa with an argument array (never a shell), an
// absolute binary when one is found in the usual sbin directories (xapi runs
// plugins with PATH=/sbin:/usr/sbin:/bin:/usr/bin), LC_ALL=C so the messages
// are the English ones errors.ts classifies, stdin closed and a timeout.
import { execa } from 'execa';
import { accessSync, constants } from 'node:fs';
import { delimiter } from 'node:path';

export interface ExecResult {
  /** undefined when the process was killed or never started. */
  readonly exitCode: number | undefined;
  readonly stdout: string;
  readonly stderr: string;
  readonly signal: string | undefined;
  readonly timedOut: boolean;
  /** Node's error code when the program could not be started ('ENOENT', 'EACCES'). */
  readonly spawnError: string | undefined;
}

export type Exec = (file: string, args: readonly string[], opts: { timeoutMs: number }) => Promise<ExecResult>;

export const SBIN_DIRS = ['/usr/sbin', '/sbin', '/usr/local/sbin', '/usr/bin', '/bin'] as const;

function isExecutable(p: string): boolean {
  try {
    accessSync(p, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** Absolute path of `name` in the standard directories, or the bare name (PATH lookup) if none has it. */
export function resolveBinary(name: string, dirs: readonly string[] = SBIN_DIRS): string {
  for (const d of dirs) {
    const p = `${d}/${name}`;
    if (isExecutable(p)) return p;
  }
  return name;
}

function childEnv(): Record<string, string> {
  // zfs runs mount/umount helpers itself (zfs-fuse: "umount child process"): make sure they resolve.
  const path = [...(process.env.PATH ?? '').split(delimiter).filter(Boolean)];
  for (const d of ['/usr/sbin', '/sbin', '/usr/bin', '/bin']) if (!path.includes(d)) path.push(d);
  return { PATH: path.join(delimiter), LC_ALL: 'C', LANG: 'C' };
}

/** The real runner. */
export const execaExec: Exec = async (file, args, { timeoutMs }) => {
  const r = await execa(file, [...args], {
    reject: false,
    stdin: 'ignore',
    timeout: timeoutMs,
    env: childEnv(),
    extendEnv: true,
    stripFinalNewline: false,
    maxBuffer: 256 * 1024 * 1024,
    encoding: 'utf8',
  });
  return {
    exitCode: r.exitCode,
    stdout: typeof r.stdout === 'string' ? r.stdout : '',
    stderr: typeof r.stderr === 'string' ? r.stderr : '',
    signal: r.signal,
    timedOut: r.timedOut,
    spawnError: r.exitCode === undefined && !r.timedOut && !r.signal ? (r.code ?? 'spawn failed') : undefined,
  };
};
