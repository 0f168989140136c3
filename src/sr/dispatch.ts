// Runs one parsed request: find the handler, refuse a master-only command off the
// SR master, take the cross-host lock of a shared SR (shared-sr.ts) and then the SR
// lock when FileSR would, run it. That lock order is the one every caller keeps.
// Handlers throw SmError for what they mean to report.
import { SmError } from '../errors.js';
import type { SmRequest } from '../smapi/request.js';
import type { XmlRpcValue } from '../smapi/xmlrpc.js';
import { Lock, SR_EXCLUSIVE } from './locks.js';
import { lookup } from './registry.js';
import './commands.js';

export async function dispatch(req: SmRequest): Promise<XmlRpcValue> {
  const spec = await lookup(req.command);
  if (!spec) throw new SmError('Unimplemented', `${req.command} is not implemented by flatsnap`);
  // xapi's discovery call names no SR, so neither shared-SR rule applies to it, and
  // loading shared-sr.ts (crypto, fs/promises) would be an eighth of its start-up.
  if (req.command === 'sr_get_driver_info') return spec.run({ req });
  const { refuseOffMaster, withClusterLock } = await import('./shared-sr.js');
  refuseOffMaster(req);
  const ctx = { req };
  return withClusterLock(req, () => {
    if (req.sr_uuid && SR_EXCLUSIVE.has(req.command)) return Lock.sr(req.sr_uuid).with(() => spec.run(ctx));
    return spec.run(ctx);
  });
}
