// The zfs commands the command layer (cli.ts) does not wrap: `zfs rollback SNAPSHOT`
// and `zfs mount -o ro FS`. Kept beside it with the same rules: argument arrays, names
// checked, "busy" retried with the same bounded backoff, failures classified by the
// one table in errors.ts.
//   - rollback: never -r / -R (they destroy newer snapshots and their clones). A
//     rollback here only ever targets the newest snapshot, and ZFS refuses anything
//     else without destroying a thing.
//   - mount -o ro: zfs-fuse ignores `readonly=on` for writes to existing files (only
//     creating files fails); a read-only FUSE mount is what makes a view read-only.
// TODO(lead): fold both into ZfsCli (`rollback(snap)`, `mount(name, { readOnly })`).
import { ZfsError, classifyStderr, isRetryable } from './errors.js';
import type { Exec } from './exec.js';
import { requireDataset, requireSnapshot } from './names.js';
import type { RetryPolicy, ZfsLogger } from './cli.js';

export interface ZfsRunner {
  readonly exec: Exec;
  readonly zfsBin: string;
  readonly timeoutMs: number;
  readonly retry: RetryPolicy;
  readonly sleep: (ms: number) => Promise<void>;
  readonly logger: ZfsLogger;
}

/** ZFS's wording when a rollback target is not the newest snapshot (OpenZFS and zfs-fuse alike). */
export const NOT_NEWEST = /more recent snapshots (?:or bookmarks )?exist/;

async function runZfs(r: ZfsRunner, args: readonly string[]): Promise<void> {
  const argv = [r.zfsBin, ...args];
  let delay = r.retry.initialDelayMs;
  for (let attempt = 1; ; attempt++) {
    r.logger.info(`zfs: ${JSON.stringify(argv)}`);
    const res = await r.exec(r.zfsBin, args, { timeoutMs: r.timeoutMs });
    if (res.exitCode === 0 && !res.spawnError && !res.timedOut) return;
    const base = { argv, stderr: res.stderr, attempts: attempt, ...(res.exitCode !== undefined ? { exitCode: res.exitCode } : {}) };
    let err: ZfsError;
    if (res.spawnError) err = new ZfsError({ ...base, kind: 'NotInstalled', detail: `zfs is not installed (${res.spawnError})` });
    else if (res.timedOut) err = new ZfsError({ ...base, kind: 'Timeout', detail: `no answer within ${Math.round(r.timeoutMs / 1000)} s` });
    else err = new ZfsError({ ...base, kind: classifyStderr(res.stderr) });
    if (isRetryable(err.kind) && attempt < r.retry.attempts) {
      r.logger.warn(`zfs: ${err.summary}; retry ${attempt}/${r.retry.attempts - 1} in ${delay} ms`);
      await r.sleep(delay);
      delay = Math.min(delay * 2, r.retry.maxDelayMs);
      continue;
    }
    r.logger.warn(`zfs: ${JSON.stringify(argv)} failed (${err.kind}): ${res.stderr.trim().replace(/\n/g, ' | ')}`);
    throw err;
  }
}

/** zfs rollback SNAPSHOT (never -r). */
export async function zfsRollback(r: ZfsRunner, snap: string): Promise<void> {
  await runZfs(r, ['rollback', requireSnapshot(snap)]);
}

/** zfs mount -o ro FS; the caller has made sure it is not mounted. */
export async function zfsMountReadOnly(r: ZfsRunner, name: string): Promise<void> {
  await runZfs(r, ['mount', '-o', 'ro', requireDataset(name)]);
}
