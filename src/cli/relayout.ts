// `flatsnap relayout`: the relayout of reflink VDIs (src/backends/reflink/relayout.ts):
// one VDI, as the driver starts it in the background after a snapshot, or --all the live
// disks over a threshold (by hand, or from cron between snapshots), or --all-srs the same
// on every flatsnap reflink SR plugged on this host (relayout-srs.ts: the cron job
// install.sh sets up). Exit status 0 when it ran or had nothing to do.
import type { ReflinkBackend } from '../backends/reflink/backend.js';
import type { RelayoutOptions, RelayoutResult } from '../backends/reflink/relayout.js';
import { DEFAULT_RELAYOUT_THRESHOLD } from '../backends/reflink/relayout-policy.js';
import { log } from '../log.js';
import type { Invocation } from './args.js';
import { type Io, type Timer, formatBytes, printJson } from './output.js';
import { CommandError, openBackend } from './storage.js';

type RelayoutArgs = Extract<Invocation, { cmd: 'relayout' }>;

function describeUnshare(r: RelayoutResult): string {
  const u = r.unshare;
  if (u === undefined) return '';
  return (
    `; unshared: ${formatBytes(u.shared_bytes_before)} -> ${formatBytes(u.shared_bytes_after)} of the live image shared, ` +
    `${u.holders_moved} of ${u.holders} snapshots moved off it (${formatBytes(u.bytes_to_donor)} onto the previous snapshot's blocks, ${formatBytes(u.bytes_copied)} copied)` +
    (u.stopped !== undefined ? `, stopped: ${u.stopped}` : '')
  );
}

export function describe(r: RelayoutResult): string {
  return describeRelayout(r) + describeUnshare(r);
}

function describeRelayout(r: RelayoutResult): string {
  if (r.skipped !== undefined) return `VDI ${r.vdi}: nothing done: ${r.skipped} (${r.extents_before} extents)`;
  if (r.relayout_skipped !== undefined && r.compact_bytes === 0) return `VDI ${r.vdi}: not rewritten: ${r.relayout_skipped} (${r.extents_before} extents)`;
  return (
    `VDI ${r.vdi}: ${r.extents_before} -> ${r.extents_after} extents; ${r.windows_selected} of ${r.windows} windows rewritten ` +
    `(${formatBytes(r.bytes_copied)} copied${r.windows_changed > 0 ? `, ${r.windows_changed} written by the guest meanwhile` : ''}); ` +
    `${r.family_objects_remapped} of ${r.family_objects} snapshots and other family objects moved onto the new blocks; ${(r.ms / 1000).toFixed(1)} s`
  );
}

/** One VDI's relayout; a failure is also logged (usually started in the background with no terminal: SMlog is where it is seen). */
export async function relayoutLogged(dir: string, vdi: string, opts: RelayoutOptions = {}): Promise<RelayoutResult> {
  const { relayoutVdi } = await import('../backends/reflink/relayout.js');
  return relayoutVdi(dir, vdi, opts).catch((e: unknown) => {
    log().error(`flatsnap: relayout of VDI ${vdi} failed: ${e instanceof Error ? e.message : String(e)}`);
    throw e;
  });
}

/**
 * The relayout of every live disk of the SR in `dir` with at least `min` physically
 * contiguous runs (with `unshare`, also of every one still sharing blocks), one after the other.
 * With `unshareIfRoom` (unshare=auto) only disks with snapshots of their own are unshared:
 * a clone (a fast-cloned VM, say) that shares its blocks with a template's snapshot stays
 * thin until it is snapshotted itself; auto spends spare space on the first writes after
 * the administrator's snapshots, not on copying every clone.
 */
export async function relayoutLiveDisks(dir: string, min: number, opts: Pick<RelayoutOptions, 'unshare' | 'unshareIfRoom' | 'rewrite'> = {}): Promise<RelayoutResult[]> {
  const { listVdis } = await import('../backends/reflink/listing.js');
  const { extentStats } = await import('../backends/reflink/volume.js');
  const all = (await listVdis(dir)).vdis;
  const live = all.filter((e) => e.record?.kind === 'volume' && e.record.vdi !== undefined && !e.record.deleted && !e.hidden);
  const snapshotted = new Set(all.filter((e) => e.record?.kind === 'snapshot' && !e.record.deleted).map((e) => e.record!.parent));
  const results: RelayoutResult[] = [];
  for (const e of live) {
    const st = await extentStats(e.path).catch(() => undefined);
    if (st === undefined) continue;
    const rewrite = opts.rewrite !== false && st.fragments >= min;
    const unshare = opts.unshare === true && st.shared > 0 && (opts.unshareIfRoom !== true || snapshotted.has(e.record!.id));
    // A disk under the threshold that only still shares blocks is unshared, not rewritten.
    if (rewrite || unshare) results.push(await relayoutLogged(dir, e.record!.vdi!, { ...opts, unshare, rewrite }));
  }
  return results;
}

export async function relayoutCommand(a: RelayoutArgs, io: Io, timer: Timer): Promise<number> {
  if ('allSrs' in a) {
    const { relayoutAllSrsCommand } = await import('./relayout-srs.js');
    return relayoutAllSrsCommand(a, io, timer);
  }
  const backend = await openBackend(a.target);
  if (backend.kind !== 'reflink') throw new CommandError('relayout is for reflink SRs');
  const dir = (backend as ReflinkBackend).dir;
  let results: RelayoutResult[];
  if (a.vdi !== undefined) {
    const vdi = a.vdi;
    results = [await timer.time('relayout', () => relayoutLogged(dir, vdi, { unshare: a.unshare, unshareIfRoom: a.unshareIfRoom, rewrite: a.rewrite }))];
  } else {
    const min = a.minExtents ?? DEFAULT_RELAYOUT_THRESHOLD;
    results = await timer.time('relayout', () => relayoutLiveDisks(dir, min, { unshare: a.unshare, unshareIfRoom: a.unshareIfRoom, rewrite: a.rewrite }));
  }
  if (a.json) printJson(io, a.vdi !== undefined ? results[0] : results);
  else if (results.length === 0) io.out('no VDI to relayout');
  else for (const r of results) io.out(describe(r));
  return 0;
}
