// The datapath: how a VDI's bytes reach a guest or dom0 (smapiv1-protocol.md 5).
//
// - "tapdisk" mode (a real dom0: tap-ctl exists): what blktap2.py does for a raw
//   FileSR VDI. Attach links /dev/sm/phy/<sr>/<vdi> to the image and answers with the
//   tapdisk paths; activate spawns a tapdisk serving `aio:<image>` and makes the
//   backend node /dev/sm/backend/<sr>/<vdi> and the NBD link; deactivate and detach
//   undo those steps. xenopsd's vbd3 backend (tapback) only serves blktap2 devices,
//   so guests need this mode.
// - "direct" mode (machines without blktap: CI, the XAPI simulator, dom0-only use):
//   params is the image's own path (file or block device), params_nbd is "" (xapi
//   accepts it), activate/deactivate do nothing.
//
// Both keep every step idempotent (xapi may replay an attach after a restart, FH1)
// and answer params_nbd, which xapi requires since 2023.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { log } from '../log.js';
import type { XmlRpcStruct } from '../smapi/xmlrpc.js';
import { O_DIRECT_REASON, xenstoreData, type AttachTarget, type Datapath, type VdiTarget } from './common.js';
import { TapdiskDatapath, type TapdiskPaths } from './tapdisk.js';

export { xenstoreData, type AttachTarget, type Datapath, type VdiTarget } from './common.js';

export class DirectDatapath implements Datapath {
  readonly mode = 'direct' as const;

  async attach(t: AttachTarget, writable: boolean): Promise<XmlRpcStruct> {
    if (!writable) log().info(`direct datapath: VDI ${t.vdiUuid} attached read-only; the path itself is not write-protected`);
    return {
      params: t.path,
      params_nbd: '',
      o_direct: true,
      o_direct_reason: O_DIRECT_REASON,
      xenstore_data: xenstoreData(t),
    };
  }

  async activate(): Promise<void> {}
  async deactivate(): Promise<void> {}
  async detach(): Promise<void> {}

  /** Nothing sits between the guest and the image here: the backend's copy is as consistent as a crash. */
  quiesce<T>(_t: VdiTarget, fn: () => Promise<T>): Promise<T> {
    return fn();
  }
}

const TAP_CTL_CANDIDATES = ['/usr/sbin/tap-ctl', '/sbin/tap-ctl'];

export interface SelectOptions {
  env?: NodeJS.ProcessEnv;
  /** For tests: where tap-ctl and the /dev, /run trees are. */
  tapdisk?: Partial<TapdiskPaths>;
}

/**
 * FLATSNAP_DATAPATH_ROOT: a directory that stands for this host's "/" in the datapath's
 * paths (tap-ctl, /dev/sm, /run/blktap-control, /dev/xen/blktap-2). Only for tests: the
 * XAPI simulator runs several hosts on one machine and gives each its own.
 */
function rootedPaths(root: string | undefined): { candidates: string[]; paths: Partial<TapdiskPaths> } {
  if (!root) return { candidates: TAP_CTL_CANDIDATES, paths: {} };
  const r = (p: string) => join(root, p);
  return {
    candidates: TAP_CTL_CANDIDATES.map(r),
    paths: { smDev: r('/dev/sm'), blktapRun: r('/run/blktap-control'), tapdevDir: r('/dev/xen/blktap-2') },
  };
}

/**
 * The datapath for this host: tapdisk when tap-ctl exists, else direct.
 * FLATSNAP_DATAPATH=direct|tapdisk overrides the detection.
 */
export function selectDatapath(o: SelectOptions = {}): Datapath {
  const env = o.env ?? process.env;
  const forced = env.FLATSNAP_DATAPATH;
  const rooted = rootedPaths(env.FLATSNAP_DATAPATH_ROOT);
  const tapCtl = o.tapdisk?.tapCtl ?? rooted.candidates.find((p) => existsSync(p));
  let dp: Datapath;
  if (forced === 'direct' || (forced !== 'tapdisk' && tapCtl === undefined)) {
    dp = new DirectDatapath();
  } else {
    dp = new TapdiskDatapath({ ...rooted.paths, ...o.tapdisk, tapCtl: tapCtl ?? rooted.candidates[0]! });
  }
  log().info(`datapath: ${dp.mode} mode${forced ? ` (FLATSNAP_DATAPATH=${forced})` : dp.mode === 'direct' ? ' (no tap-ctl on this host)' : ''}`);
  return dp;
}
