// The flatsnap-tapdisk host plugin (/etc/xapi.d/plugins/flatsnap-tapdisk): the SR
// master calls it through host.call_plugin on every other host where a VDI of a
// shared SR is active, to pause that host's tapdisk around a live snapshot, clone
// or revert and to unpause it afterwards (src/sr/live-pause.ts).
//
//   pause   {sr_uuid, vdi_uuid}  -> "paused", or "not-running" (no tapdisk serves the
//                                   VDI on this host), or "no-blktap" (direct datapath)
//   unpause {sr_uuid, vdi_uuid}  -> "unpaused", "not-running" or "no-blktap"
//
// Both run under the per-VDI SM lock of this host, which vdi_activate and
// vdi_deactivate hold too: a pause that arrives while a tapdisk is being started
// waits for it and pauses it, instead of missing it (src/sr/host-tags.ts).
//
// It runs inside a guest's pause window, so it loads little: the datapath and the
// lock helper only once the call is known to be well-formed.
import { SmError } from '../errors.js';
import { flushLog, log } from '../log.js';
import type { VdiTarget } from '../datapath/common.js';
import { requireUuid } from '../smapi/validate.js';
import { writeResponse } from '../smapi/response.js';
import { PluginFailure, failureEnvelope, parsePluginCall, pluginException, successEnvelope, type PluginCall } from './protocol.js';

export const FUNCTIONS = ['pause', 'unpause'] as const;
export type TapdiskFunction = (typeof FUNCTIONS)[number];
const ARG_KEYS = ['sr_uuid', 'vdi_uuid'];

/** The function and its target, or a PluginFailure saying what is wrong with the call. */
export function validateCall(call: PluginCall): { fn: TapdiskFunction; target: VdiTarget } {
  const fn = call.fn;
  if (!(FUNCTIONS as readonly string[]).includes(fn)) throw new PluginFailure('UNKNOWN_XENAPI_PLUGIN_FUNCTION', [fn]);
  const extra = Object.keys(call.args).filter((k) => !ARG_KEYS.includes(k));
  if (extra.length > 0) throw pluginException(fn, 'BadRequest', `unknown args: ${extra.sort().join(', ')} (expected ${ARG_KEYS.join(', ')})`);
  try {
    for (const k of ARG_KEYS) if (call.args[k] === undefined) throw new SmError('BadRequest', `${fn} needs args.${k}`);
    return {
      fn: fn as TapdiskFunction,
      target: { srUuid: requireUuid('sr_uuid', call.args.sr_uuid!), vdiUuid: requireUuid('vdi_uuid', call.args.vdi_uuid!) },
    };
  } catch (e) {
    if (e instanceof SmError) throw pluginException(fn, e.kind, e.message);
    throw e;
  }
}

/** Runs a validated call on this host; what it did, as the plugin answers it. */
export async function runTapdiskFunction(fn: TapdiskFunction, t: VdiTarget): Promise<string> {
  const { selectDatapath } = await import('../datapath/index.js');
  const dp = selectDatapath();
  if (dp.mode !== 'tapdisk') return 'no-blktap';
  const tap = dp as import('../datapath/tapdisk.js').TapdiskDatapath;
  const { Lock } = await import('../sr/locks.js');
  return Lock.vdi(t.vdiUuid).with(async () => {
    if (fn === 'pause') return (await tap.pause(t)) ? 'paused' : 'not-running';
    return (await tap.unpause(t)) ? 'unpaused' : 'not-running';
  });
}

/** The plugin's whole run: exactly one methodResponse on stdout, exit status 0. */
export async function main(argv: readonly string[]): Promise<void> {
  let fn = '';
  try {
    const call = parsePluginCall(argv);
    fn = call.fn;
    const { fn: f, target } = validateCall(call);
    log().info(`flatsnap-tapdisk ${f} sr=${target.srUuid} vdi=${target.vdiUuid}`);
    const value = await runTapdiskFunction(f, target);
    log().info(`flatsnap-tapdisk ${f} of VDI ${target.vdiUuid}: ${value}`);
    writeResponse(successEnvelope(value));
  } catch (e) {
    const failure =
      e instanceof PluginFailure
        ? e
        : e instanceof SmError
          ? pluginException(fn, e.kind, e.message)
          : pluginException(fn, e instanceof Error ? e.name : 'Error', e instanceof Error ? e.message : String(e));
    log().error(`flatsnap-tapdisk ${fn || '(no function)'} failed: ${failure.code} ${JSON.stringify(failure.params)}`);
    writeResponse(failureEnvelope(failure.code, failure.params));
  } finally {
    await flushLog();
  }
}
