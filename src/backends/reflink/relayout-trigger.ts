// When a relayout runs (relayout.ts): right after a snapshot, in the background,
// when the live image has more extents than the SR's threshold.
//
// After a snapshot every block of the live image is shared, so the relayout then also
// brings the new snapshot onto the contiguous blocks and the next snapshot copies a
// short extent map. It must not lengthen the snapshot itself (xapi waits for
// vdi_snapshot, and the VM may be paused for it): the driver starts
// `flatsnap relayout` as a detached process and returns. The cost that remains in
// the snapshot is one FIEMAP walk of the live image's extent map.
//
// device-config:relayout (type-analysis.ts): "auto" (default) relayouts at
// DEFAULT_RELAYOUT_THRESHOLD extents, a number sets the threshold, "off" disables it.
// device-config:unshare (unshare.ts, "auto" by default): after every snapshot, whatever
// the extent count, the same background run first moves the snapshots off the live
// image's blocks (with "auto", only while the filesystem keeps its share free).
//
// The run is niced and in the idle-most best-effort I/O class, as the hourly cron: an
// unshare after a first snapshot copies the whole disk, and the guests come first.
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { log } from '../../log.js';
import { extentStats } from './volume.js';
import { type RelayoutPolicy, type UnshareMode, unshareArgs } from './relayout-policy.js';

export { DEFAULT_RELAYOUT_THRESHOLD, RELAYOUT_DEFAULT, type RelayoutPolicy } from './relayout-policy.js';

/** Where the operator command is: beside the bundle (plugin/ and the installed SM dir), or the built tree. */
export function cliCandidates(): string[] {
  const here = dirname(fileURLToPath(import.meta.url));
  const out: string[] = [];
  if (process.env.FLATSNAP_CLI) out.push(process.env.FLATSNAP_CLI);
  out.push(join(here, '..', 'flatsnap')); // bundle: <dir>/flatsnap-lib/driver.cjs -> <dir>/flatsnap
  out.push(join(here, '..', '..', '..', 'plugin', 'flatsnap')); // source tree: src/backends/reflink
  return out;
}

export type TriggerOutcome = 'off' | 'below' | 'started' | 'no-command';

/**
 * After a snapshot of VDI `vdi` (image `image` in SR directory `dir`): starts a background
 * relayout if the policy says so. Never throws: a failure here must not fail the snapshot.
 */
export async function relayoutAfterSnapshot(dir: string, vdi: string, image: string, policy: RelayoutPolicy, mode: UnshareMode = 'off'): Promise<TriggerOutcome> {
  const unshare = mode !== 'off';
  if (!policy.enabled && !unshare) return 'off';
  try {
    // Physically contiguous runs, not FIEMAP's extents (XFS also splits those where sharing
    // changes): the runs are what a clone walks one by one, and what a relayout can merge.
    const extents = (await extentStats(image)).fragments;
    if (!unshare && policy.enabled && extents < policy.threshold) return 'below';
    const cli = cliCandidates().find((p) => existsSync(p));
    if (cli === undefined) {
      log().warn(`flatsnap: VDI ${vdi} has ${extents} extents, but the flatsnap command to relayout it is missing (looked in ${cliCandidates().join(', ')})`);
      return 'no-command';
    }
    const args = ['relayout', '--path', dir, '--vdi', vdi, ...unshareArgs(mode), ...(unshare && !policy.enabled ? ['--no-relayout'] : [])];
    const [cmd, ...argv] = [...lowPriority(), cli, ...args];
    const child = spawn(cmd!, argv, { detached: true, stdio: 'ignore', env: process.env });
    child.on('error', (e) => log().warn(`flatsnap: could not start the relayout of VDI ${vdi}: ${e.message}`));
    child.unref();
    const why = unshare ? `unshare ${mode}` : `threshold ${policy.enabled ? policy.threshold : 'off'}`;
    log().info(`flatsnap: VDI ${vdi} has ${extents} extents (${why}): relayout started in the background (pid ${child.pid ?? '?'})`);
    return 'started';
  } catch (e) {
    log().warn(`flatsnap: relayout check of VDI ${vdi} failed: ${e instanceof Error ? e.message : String(e)}`);
    return 'below';
  }
}

/** `ionice -c 2 -n 7 nice -n 19` where util-linux and coreutils have them (dom0 has both). */
function lowPriority(): string[] {
  const find = (name: string): string | undefined => ['/usr/bin', '/bin', '/usr/sbin', '/sbin'].map((d) => join(d, name)).find((p) => existsSync(p));
  const ionice = find('ionice');
  const nice = find('nice');
  return [...(ionice ? [ionice, '-c', '2', '-n', '7'] : []), ...(nice ? [nice, '-n', '19'] : [])];
}
