// Shared SRs: one SR directory on a cluster filesystem (OCFS2), attached by every
// host of the pool. Two rules (docs/shared-srs.md):
//
// 1. Commands that change the SR's objects run on the SR master only. xapi sends
//    them there (sm.ml srmaster_only + the storage layer's redirect); should one
//    arrive on another host anyway, it is refused before any lock or storage is
//    touched. Other hosts attach from the XAPI database and the files.
// 2. Every command that reads or changes the SR's files takes the cross-host lock
//    (cluster-lock.ts): exclusive to change them, shared to read them, so a host
//    never reads the middle of another host's change (a half-done swap, a sidecar
//    being rewritten). Only the reflink backend has one: a ZFS pool is imported on
//    one host at a time.
//
// Lock order, the same in every process, so no two can wait for each other:
//   1. the cross-host lock (this file), 2. the SM SR lock /var/lock/sm/<sr>/sr
//   (dispatch.ts for FileSR's exclusive commands, withSrLock for vdi_resize and
//   vdi_revert), 3. the per-VDI SM lock /var/lock/sm/<vdi>/vdi, held briefly by
//   vdi_activate/vdi_deactivate, the flatsnap-tapdisk host plugin and the master's own
//   tapdisk pause (host-tags.ts, live-pause.ts); nothing that holds it waits for 1 or 2.
import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { SmError } from '../errors.js';
import { log } from '../log.js';
import { analyseDeviceConfig } from '../backends/type-analysis.js';
import { identifyFs } from '../backends/reflink/fsinfo.js';
import { clusterFlockProblem, readMountOf } from '../backends/reflink/mounts.js';
import { parseSwapName, SR_MARKER } from '../backends/reflink/names.js';
import type { SmCommand, SmRequest } from '../smapi/request.js';
import { ClusterLock, type ClusterLockMode } from './cluster-lock.js';

/**
 * sm.ml's srmaster_only commands (smapiv1-protocol.md 6.3), plus vdi_revert, which
 * rewrites a VDI's objects like vdi_clone does.
 */
export const SR_MASTER_ONLY: ReadonlySet<SmCommand> = new Set<SmCommand>([
  'sr_scan',
  'vdi_create',
  'vdi_delete',
  'vdi_snapshot',
  'vdi_clone',
  'vdi_resize',
  'vdi_resize_online',
  'vdi_compose',
  'vdi_revert',
  'vdi_enable_cbt',
  'vdi_disable_cbt',
  'vdi_data_destroy',
  'vdi_list_changed_blocks',
]);

/** Commands that change the SR's files (objects, records, leftovers): exclusive. */
const EXCLUSIVE: ReadonlySet<SmCommand> = new Set<SmCommand>([
  // sr_attach runs on every host, and reaps crash leftovers (old temp files, orphan sidecars).
  'sr_attach',
  'sr_delete',
  'sr_scan',
  'vdi_create',
  'vdi_delete',
  'vdi_snapshot',
  'vdi_clone',
  'vdi_resize',
  'vdi_resize_online',
  'vdi_revert',
  'vdi_compose',
  // Runs wherever xapi's call lands, and stores xapi's fields in the VDI's sidecar.
  'vdi_update',
]);

/** Commands that only read the SR's files: shared. */
const SHARED: ReadonlySet<SmCommand> = new Set<SmCommand>(['sr_update', 'vdi_attach', 'vdi_introduce']);

// Not locked: sr_create and sr_probe (no SR yet, or not ours), sr_detach, and the
// datapath steps after attach (detach, activate, deactivate, epochs), which work from
// what attach left on this host and never read the SR's records.

/** The cross-host lock mode of `command`, undefined when it takes none. */
export function clusterLockMode(command: SmCommand): ClusterLockMode | undefined {
  if (EXCLUSIVE.has(command)) return 'exclusive';
  if (SHARED.has(command)) return 'shared';
  return undefined;
}

/** SMGeneral unless this host is the SR master or `req` is not master-only. */
export function refuseOffMaster(req: SmRequest): void {
  if (req.sr_master || !SR_MASTER_ONLY.has(req.command)) return;
  throw new SmError(
    'SMGeneral',
    `${req.command} runs on the SR master only, and this host is not it (device_config SRmaster is not "true"); ` +
      'xapi sends it to the pool master for a shared SR',
  );
}

/** The SR directory whose marker is the cross-host lock, or undefined (ZFS, or a device_config the handler will refuse). */
export function clusterLockDir(dc: Readonly<Record<string, string>>): string | undefined {
  try {
    const cfg = analyseDeviceConfig(dc);
    return cfg.kind === 'reflink' ? cfg.path : undefined;
  } catch {
    return undefined;
  }
}

/**
 * The lock file: the SR marker. It exists for as long as the SR does, every host opens
 * the same inode, it is never rewritten in place, and it adds no file to the directory.
 */
export function clusterLockPath(dir: string): string {
  return join(dir, SR_MARKER);
}

/** statfs says OCFS2 (cheap); only then is /proc/self/mounts worth reading. */
function onOcfs2(dir: string): boolean {
  try {
    return identifyFs(dir).kind === 'ocfs2';
  } catch {
    return false; // no such directory: the command reports it
  }
}

/** Whether a swap a crash interrupted waits in `dir` (only an exclusive holder may finish it). */
async function swapPending(dir: string): Promise<boolean> {
  try {
    return (await readdir(dir)).some((n) => parseSwapName(n) !== undefined);
  } catch {
    return false; // the command itself reports an unreadable directory
  }
}

/**
 * Runs `fn` under the cross-host lock `req` needs, if any (see withSrDirLock).
 */
export async function withClusterLock<T>(req: SmRequest, fn: () => Promise<T>, timeoutMs?: number): Promise<T> {
  const mode = clusterLockMode(req.command);
  const dir = mode === undefined ? undefined : clusterLockDir(req.device_config);
  if (mode === undefined || dir === undefined) return fn();
  return withSrDirLock(dir, mode, req.command, fn, timeoutMs);
}

/**
 * Runs `fn` holding the cross-host lock of the reflink SR in `dir` in `mode` (`what`
 * names the caller in messages). Refuses an OCFS2 mount whose flock is host-local. A
 * reader that finds an interrupted swap takes the lock exclusively instead: its
 * inventory completes the swap (one pending under a shared lock can only be a crashed
 * writer's), and two readers must not complete it at once. Without an SR marker there
 * is no SR to protect: `fn` runs unlocked and reports what is wrong.
 */
export async function withSrDirLock<T>(dir: string, mode: ClusterLockMode, what: string, fn: () => Promise<T>, timeoutMs?: number): Promise<T> {
  const mount = onOcfs2(dir) ? readMountOf(dir) : undefined;
  const problem = mount && clusterFlockProblem(mount);
  if (problem) throw new SmError('SRUnavailable', `${what} on ${dir}: ${problem}`);
  const lock = new ClusterLock(clusterLockPath(dir));
  const held = await lock.acquire(mode, timeoutMs);
  try {
    if (held && mode === 'shared' && (await swapPending(dir))) {
      lock.release();
      log().warn(`${what}: an interrupted swap is pending in ${dir}; taking the cross-host lock exclusively to complete it`);
      await lock.acquire('exclusive', timeoutMs);
    }
    return await fn();
  } finally {
    lock.release();
  }
}
