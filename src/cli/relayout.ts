// `flatsnap relayout`: the relayout of reflink VDIs (src/backends/reflink/relayout.ts):
// one VDI, as the driver starts it in the background after a snapshot, or --all the live
// disks over a threshold (by hand, or from cron between snapshots). Exit status 0 when
// it ran or had nothing to do.
import type { ReflinkBackend } from '../backends/reflink/backend.js';
import type { RelayoutResult } from '../backends/reflink/relayout.js';
import { DEFAULT_RELAYOUT_THRESHOLD } from '../backends/reflink/relayout-policy.js';
import { log } from '../log.js';
import type { Invocation } from './args.js';
import { type Io, type Timer, formatBytes, printJson } from './output.js';
import { CommandError, openBackend } from './storage.js';

type RelayoutArgs = Extract<Invocation, { cmd: 'relayout' }>;

function describe(r: RelayoutResult): string {
  if (r.skipped !== undefined) return `VDI ${r.vdi}: nothing done: ${r.skipped} (${r.extents_before} extents)`;
  return (
    `VDI ${r.vdi}: ${r.extents_before} -> ${r.extents_after} extents; ${r.windows_selected} of ${r.windows} windows rewritten ` +
    `(${formatBytes(r.bytes_copied)} copied${r.windows_changed > 0 ? `, ${r.windows_changed} written by the guest meanwhile` : ''}); ` +
    `${r.family_objects_remapped} of ${r.family_objects} snapshots and other family objects moved onto the new blocks; ${(r.ms / 1000).toFixed(1)} s`
  );
}

export async function relayoutCommand(a: RelayoutArgs, io: Io, timer: Timer): Promise<number> {
  const backend = await openBackend(a.target);
  if (backend.kind !== 'reflink') throw new CommandError('relayout is for reflink SRs');
  const dir = (backend as ReflinkBackend).dir;
  const { relayoutVdi } = await import('../backends/reflink/relayout.js');
  const one = (vdi: string): Promise<RelayoutResult> =>
    relayoutVdi(dir, vdi).catch((e: unknown) => {
      // Usually started in the background with no terminal: SMlog is where this is seen.
      log().error(`flatsnap: relayout of VDI ${vdi} failed: ${e instanceof Error ? e.message : String(e)}`);
      throw e;
    });
  let results: RelayoutResult[];
  if (a.vdi !== undefined) {
    const vdi = a.vdi;
    results = [await timer.time('relayout', () => one(vdi))];
  } else {
    const { listVdis } = await import('../backends/reflink/listing.js');
    const { extentStats } = await import('../backends/reflink/volume.js');
    const min = a.minExtents ?? DEFAULT_RELAYOUT_THRESHOLD;
    const live = (await listVdis(dir)).vdis.filter((e) => e.record?.kind === 'volume' && e.record.vdi !== undefined && !e.record.deleted && !e.hidden);
    results = [];
    await timer.time('relayout', async () => {
      for (const e of live) {
        const runs = await extentStats(e.path).then((st) => st.fragments, () => 0);
        if (runs >= min) results.push(await one(e.record!.vdi!));
      }
    });
  }
  if (a.json) printJson(io, a.vdi !== undefined ? results[0] : results);
  else if (results.length === 0) io.out('no VDI to relayout');
  else for (const r of results) io.out(describe(r));
  return 0;
}
