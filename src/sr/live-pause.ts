// Holding a live VDI still while the SR master copies it (vdi_snapshot, vdi_clone)
// or replaces its image (vdi_revert).
//
// On a local SR the VDI can only be active on this host: its tapdisk here is paused
// around the storage step (Datapath.quiesce). On a shared SR it may be active on any
// host of the pool, so the master follows blktap2's tap_pause/tap_unpause
// (smapiv1-protocol.md 5.2):
//
//   1. sm_config paused=true: from now on no host starts a tapdisk for the VDI
//      (vdi_activate waits, host-tags.ts);
//   2. for every host_<ref> key naming another host, host.call_plugin(ref,
//      "flatsnap-tapdisk", "pause", {sr_uuid, vdi_uuid}): that host's tapdisk drains
//      and holds the guest's I/O (src/host-plugin/). The stock "tapdisk-pause" plugin
//      cannot serve a non-Python driver: its unpause imports the SR driver as Python;
//   3. this host's own tapdisk, directly, under the per-VDI SM lock;
//   4. the storage step;
//   5. unpause every tapdisk paused above, newest first, then remove `paused`.
//
// Step 5 runs whatever step 2, 3 or 4 did (an Undo that is always rolled back). A
// host that cannot be paused (unreachable, no plugin, tap-ctl failing) fails the
// command before any storage is touched: a snapshot of a disk a guest is still
// writing elsewhere is not taken. A tapdisk that cannot be unpaused fails the
// command too (its guest is frozen, someone must know) and leaves `paused` in place:
// the next command that pauses the VDI unpauses it again and then removes the key.
import { SmError, type SmErrorKind } from '../errors.js';
import { log } from '../log.js';
import type { VdiTarget } from '../datapath/common.js';
import type { SrContext } from './context.js';
import { PAUSED_KEY, activeHosts, isDuplicateKey } from './host-tags.js';
import { Undo } from './undo.js';

/** The host plugin's name in /etc/xapi.d/plugins (plugin/install.sh). */
export const TAPDISK_PLUGIN = 'flatsnap-tapdisk';

const message = (e: unknown): string => (e instanceof Error ? e.message : String(e));

/**
 * Runs `fn` with the VDI (`vdi` uuid, `ref` its row) paused wherever it is active;
 * `fail` is the command's error kind for a host that cannot be paused or unpaused.
 */
export async function withVdiPaused<T>(ctx: SrContext, v: { vdi: string; ref: string }, fail: SmErrorKind, fn: () => Promise<T>): Promise<T> {
  const t: VdiTarget = { srUuid: ctx.srUuid, vdiUuid: v.vdi };
  const { selectDatapath } = await import('../datapath/index.js');
  const local = selectDatapath();
  // A ZFS pool is imported on one host at a time: its SRs are never shared (no XenAPI call).
  const shared = (await ctx.backend()).kind !== 'zfs' && (await ctx.srRecord()).shared;
  if (!shared) return local.quiesce(t, fn);

  const xapi = ctx.xapi;
  const what = `${ctx.req.command} of VDI ${v.vdi}`;
  const resume = new Undo();
  const stuck: string[] = [];
  let result: T;
  try {
    try {
      await xapi.VDI.add_to_sm_config(v.ref, PAUSED_KEY, 'true');
    } catch (e) {
      if (!isDuplicateKey(e)) throw e;
      // Every command that pauses holds the SR lock: a key already there is a leftover.
      log().warn(`${what}: sm_config "${PAUSED_KEY}" was already set (left by an interrupted command); taking it over`);
    }
    resume.add(`remove sm_config "${PAUSED_KEY}" of VDI ${v.vdi}`, async () => {
      if (stuck.length > 0) throw new Error(`left in place: the tapdisk on ${stuck.join(', ')} may still be paused`);
      await xapi.VDI.remove_from_sm_config(v.ref, PAUSED_KEY);
    });

    const hosts = activeHosts(await xapi.VDI.get_sm_config(v.ref)).filter((h) => h !== ctx.req.host_ref);
    for (const host of hosts) {
      try {
        const r = await xapi.host.call_plugin(host, TAPDISK_PLUGIN, 'pause', { sr_uuid: t.srUuid, vdi_uuid: t.vdiUuid });
        log().info(`${what}: tapdisk on host ${host}: ${r}`);
      } catch (e) {
        throw new SmError(fail, `${what}: could not pause the VDI's tapdisk on host ${host}, storage was not touched: ${message(e)}`);
      }
      resume.add(`unpause the tapdisk of VDI ${v.vdi} on host ${host}`, async () => {
        try {
          const r = await xapi.host.call_plugin(host, TAPDISK_PLUGIN, 'unpause', { sr_uuid: t.srUuid, vdi_uuid: t.vdiUuid });
          log().info(`${what}: tapdisk on host ${host}: ${r}`);
        } catch (e) {
          stuck.push(`host ${host}`);
          throw e;
        }
      });
    }

    if (local.mode === 'tapdisk') {
      const tap = local as import('../datapath/tapdisk.js').TapdiskDatapath;
      const { Lock } = await import('./locks.js');
      if (await Lock.vdi(v.vdi).with(() => tap.pause(t))) {
        resume.add(`unpause the tapdisk of VDI ${v.vdi} on this host`, async () => {
          try {
            await Lock.vdi(v.vdi).with(() => tap.unpause(t));
          } catch (e) {
            stuck.push('this host');
            throw e;
          }
        });
      }
    }

    result = await fn();
  } catch (e) {
    // fn's own error (or a pause's) is the one to report; the undo log has the rest.
    await resume.rollback();
    throw e;
  }
  const failed = await resume.rollback();
  if (failed.length > 0) {
    throw new SmError(
      fail,
      `${what}: storage was done, but resuming the VDI failed (${failed.map((f) => `${f.what}: ${message(f.error)}`).join('; ')}); ` +
        `run tap-ctl unpause for it there, then xe vdi-param-remove uuid=${v.vdi} param-name=sm-config param-key=${PAUSED_KEY}`,
    );
  }
  return result;
}
