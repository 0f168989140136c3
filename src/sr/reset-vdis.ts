// What a crash leaves in the SR's VDI rows, cleared at sr_attach (PBD.plug) the way the
// stock SM's resetvdis.reset_sr does at every attach:
//
// - `host_<this host>` (host-tags.ts): written by vdi_activate here, removed by
//   vdi_deactivate here. A host that crashed never deactivated, and its tapdisks died
//   with it, so at its next attach every such key of its own is a leftover. Left in
//   place it makes the master's live snapshots of the VDI call a host that may be dead
//   (and refuse the snapshot: live-pause.ts fails a command it cannot pause).
// - `paused`, on the SR master only: set and removed by a snapshot, clone or revert
//   running on the master (live-pause.ts). Each of those holds, for its whole pause
//   window, the SM SR lock on the master and, on a shared reflink SR, the cross-host
//   lock exclusively; sr_attach holds both too (dispatch.ts, shared-sr.ts), so a
//   `paused` it sees belongs to no running command. Left in place, the VDI can no
//   longer be activated anywhere (host-tags.ts retryWhilePaused).
//
// Another host's keys are never touched here: only that host knows its tapdisks are
// gone (its own attach clears them). Unlike the stock script:
// - a key of this host whose tapdisk still runs here (tap-ctl list) is kept: xapi calls
//   sr_attach after a reboot, when none runs, but a replayed attach (FH1) must not
//   hide a live tapdisk from the master's pause, which would then copy a disk a guest
//   is writing. When tap-ctl cannot answer, every key of this host is kept (a stale key
//   refuses snapshots; a missing one tears them);
// - a `paused` leftover is reported with the hosts still tagged: a master that crashed
//   in the middle of a pause may have left a tapdisk there paused, which only
//   `tap-ctl unpause` there resumes.
//
// Cost: one VDI.get_all_records_where for the SR, one tap-ctl list when this host has
// keys, then one call per key removed. Bookkeeping in xapi only: a failure is logged
// and does not fail the attach (the next attach tries again; the `paused` error names
// the xe command that clears it).
import { readlink } from 'node:fs/promises';
import { log } from '../log.js';
import { vdisInSr } from '../xapi/vdi.js';
import type { SrContext } from './context.js';
import { PAUSED_KEY, activeHosts, hostKey } from './host-tags.js';

/** The sm_config keys of one VDI that sr_attach on `host` removes (master: also `paused`). */
export function staleKeys(sm: Readonly<Record<string, string>>, host: string, master: boolean): string[] {
  const out: string[] = [];
  const mine = hostKey(host);
  if (Object.hasOwn(sm, mine)) out.push(mine);
  if (master && Object.hasOwn(sm, PAUSED_KEY)) out.push(PAUSED_KEY);
  return out;
}

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/**
 * Removes this host's `host_<ref>` keys, and on the SR master the `paused` keys, from
 * the VDIs of the request's SR. Must run where no pausing command can (sr_attach's locks).
 * Returns how many keys were removed.
 */
export async function resetVdis(ctx: SrContext): Promise<number> {
  const host = ctx.req.host_ref;
  const master = ctx.req.sr_master;
  let records;
  try {
    records = await ctx.xapi.VDI.get_all_records_where(vdisInSr(ctx.srRef));
  } catch (e) {
    log().warn(`sr_attach: could not read the VDIs of SR ${ctx.srUuid} to clear crash leftovers in their sm-config: ${message(e)}`);
    return 0;
  }
  // The query names the SR; a row of another SR is never ours to change.
  const rows = [...records].filter(([, rec]) => rec.SR === ctx.srRef);
  const mine = hostKey(host);
  const tagged = rows.filter(([, rec]) => Object.hasOwn(rec.sm_config, mine)).map(([, rec]) => rec.location.toLowerCase());
  const live = tagged.length > 0 ? await servedHere(ctx.srUuid, tagged) : new Set<string>();
  let removed = 0;
  for (const [ref, rec] of rows) {
    for (const key of staleKeys(rec.sm_config, host, master)) {
      if (key === mine && (live === 'unknown' || live.has(rec.location.toLowerCase()))) {
        const why = live === 'unknown' ? 'tap-ctl could not tell whether a tapdisk serves it here' : 'a tapdisk still serves it here';
        log().info(`sr_attach: VDI ${rec.uuid} keeps ${key}: ${why}`);
        continue;
      }
      try {
        await ctx.xapi.VDI.remove_from_sm_config(ref, key);
        removed++;
      } catch (e) {
        log().warn(`sr_attach: could not remove sm-config "${key}" of VDI ${rec.uuid}: ${message(e)}`);
        continue;
      }
      if (key === PAUSED_KEY) {
        const others = activeHosts(rec.sm_config).filter((h) => h !== host);
        log().warn(
          `sr_attach: VDI ${rec.uuid} was left paused by an interrupted snapshot, clone or revert; key removed` +
            (others.length > 0 ? `. Its tapdisk on host(s) ${others.join(', ')} may still be paused: check tap-ctl list there` : ''),
        );
      } else {
        log().info(`sr_attach: VDI ${rec.uuid} was left active on this host (${key}=${rec.sm_config[key]}) by a crash; key removed`);
      }
    }
  }
  return removed;
}

/**
 * Which of `vdis` (locations) a tapdisk on this host serves, from one tap-ctl list and
 * the /dev/sm/phy links attach made; 'unknown' when tap-ctl cannot say. None without
 * blktap (direct mode writes no host key).
 */
async function servedHere(srUuid: string, vdis: readonly string[]): Promise<Set<string> | 'unknown'> {
  const { selectDatapath } = await import('../datapath/index.js');
  const dp = selectDatapath();
  const out = new Set<string>();
  if (dp.mode !== 'tapdisk') return out;
  const tap = dp as import('../datapath/tapdisk.js').TapdiskDatapath;
  let served: Set<string>;
  try {
    served = new Set((await tap.list()).filter((e) => e.pid !== undefined && e.args !== undefined).map((e) => e.args!));
  } catch (e) {
    log().warn(`sr_attach: tap-ctl list failed, this host's host_<ref> keys are kept: ${message(e)}`);
    return 'unknown';
  }
  if (served.size === 0) return out;
  for (const vdi of vdis) {
    const image = await readlink(tap.phyLink({ srUuid, vdiUuid: vdi })).catch(() => undefined);
    if (image !== undefined && served.has(`aio:${image}`)) out.add(vdi);
  }
  return out;
}
