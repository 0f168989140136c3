// Where a VDI is active, in its sm_config, the way blktap2.py keeps it (_add_tag,
// _remove_tag): `host_<host ref>` = "RW" or "RO" from vdi_activate to vdi_deactivate,
// and `paused` while a live snapshot, clone or revert on the SR master holds the
// VDI's tapdisks (live-pause.ts). The master reads the host keys to know whose
// tapdisk to pause; an activation backs off while `paused` is set, so no tapdisk
// starts unpaused in the middle of a snapshot.
//
// The race between the two is closed as blktap2 closes it: activate adds its host
// key and then looks for `paused` again (backing off if it appeared), while the
// master sets `paused` before it reads the host keys. Whichever comes second sees
// the other. The per-VDI SM lock (/var/lock/sm/<vdi>/vdi) on the activating host,
// held by activate from its first look to the running tapdisk and by the pause
// plugin there, makes a pause wait for a tapdisk being started instead of missing it.
//
// xapi never writes these keys, and flatsnap's own sm_config sync (xapi-sync.ts)
// only touches its own keys, so they survive scans and updates (the Python
// VDI._db_update protects host_*, paused, activating and relinking likewise).
import { SmError } from '../errors.js';
import { log } from '../log.js';
import { XapiError } from '../xapi/errors.js';
import type { XapiPort } from './context.js';

export const PAUSED_KEY = 'paused';
const HOST_PREFIX = 'host_';
// A host key names an opaque ref; anything else under host_ is not ours to call.
const HOST_REF = /^OpaqueRef:[0-9A-Za-z-]+$/;

export function hostKey(hostRef: string): string {
  return `${HOST_PREFIX}${hostRef}`;
}

/** The hosts a VDI's sm_config says it is active on (host_<ref> keys), in key order. */
export function activeHosts(sm: Readonly<Record<string, string>>): string[] {
  const out: string[] = [];
  for (const k of Object.keys(sm).sort()) {
    if (!k.startsWith(HOST_PREFIX)) continue;
    const ref = k.slice(HOST_PREFIX.length);
    if (HOST_REF.test(ref)) out.push(ref);
    else log().warn(`sm_config key ${JSON.stringify(k)} names no host ref; ignored`);
  }
  return out;
}

type TagXapi = Pick<XapiPort['VDI'], 'get_sm_config' | 'add_to_sm_config' | 'remove_from_sm_config'>;

/**
 * One attempt to record that the VDI is active on `host`: false (nothing left behind)
 * when `paused` is set, before or right after the key went in.
 */
export async function addHostTag(xapi: TagXapi, vdiRef: string, host: string, writable: boolean): Promise<boolean> {
  const key = hostKey(host);
  const mode = writable ? 'RW' : 'RO';
  const sm = await xapi.get_sm_config(vdiRef);
  if (PAUSED_KEY in sm) return false;
  const added = sm[key] !== mode;
  if (added) {
    // A replayed activate (xapi restart, FH1) or an RO tag becoming RW.
    if (key in sm) await xapi.remove_from_sm_config(vdiRef, key);
    await xapi.add_to_sm_config(vdiRef, key, mode);
  }
  if (PAUSED_KEY in (await xapi.get_sm_config(vdiRef))) {
    // A pause began between the two looks: it may not have seen the key; back off.
    if (added) await xapi.remove_from_sm_config(vdiRef, key);
    return false;
  }
  return true;
}

/** The VDI is no longer active on `host` (vdi_deactivate); no key is fine. */
export async function removeHostTag(xapi: TagXapi, vdiRef: string, host: string): Promise<void> {
  await xapi.remove_from_sm_config(vdiRef, hostKey(host));
}

export interface RetryOptions {
  /** Attempts, one per `waitMs` (blktap2: ATTACH_DETACH_RETRY_SECS = 120, every second). */
  attempts?: number;
  waitMs?: number;
  sleep?: (ms: number) => Promise<void>;
}

const sleepMs = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Runs `attempt` until it returns true, waiting between tries (with no lock held: the
 * attempt takes its own), or fails with VDIUnavailable naming the `paused` key.
 */
export async function retryWhilePaused(vdi: string, attempt: () => Promise<boolean>, o: RetryOptions = {}): Promise<void> {
  const attempts = o.attempts ?? 120;
  const waitMs = o.waitMs ?? 1000;
  const sleep = o.sleep ?? sleepMs;
  for (let i = 1; i <= attempts; i++) {
    if (await attempt()) return;
    if (i === 1) log().info(`VDI ${vdi} is paused for a live snapshot on the SR master; waiting`);
    if (i < attempts) await sleep(waitMs);
  }
  throw new SmError(
    'VDIUnavailable',
    `VDI ${vdi} stayed paused (sm-config "paused") for ${Math.round((attempts * waitMs) / 1000)} s. If no snapshot, clone or revert of it ` +
      `is running on the SR master, the key is a leftover: xe vdi-param-remove uuid=${vdi} param-name=sm-config param-key=${PAUSED_KEY}`,
  );
}

/** True for MAP_DUPLICATE_KEY, xapi's answer to add_to_sm_config on an existing key. */
export function isDuplicateKey(e: unknown): boolean {
  return e instanceof XapiError && e.code === 'MAP_DUPLICATE_KEY';
}
