// The typed XenAPI client a driver command uses to call back into xapi. Calls
// are grouped and named as in XenAPI (xapi.VDI.db_introduce, xapi.SR.get_record)
// so each one can be looked up in datamodel.ml by name.
import { HostCalls, TaskCalls } from './host.js';
import { PbdCalls, PoolCalls } from './pbd.js';
import { SrCalls } from './sr.js';
import { XapiTransportError } from './errors.js';
import { XapiTransport, type TransportOptions, type XapiEndpoint } from './transport.js';
import { VdiCalls } from './vdi.js';
import { VbdCalls, VmCalls } from './vm.js';

export class XapiClient {
  readonly VDI: VdiCalls;
  readonly SR: SrCalls;
  readonly VM: VmCalls;
  readonly VBD: VbdCalls;
  readonly host: HostCalls;
  readonly task: TaskCalls;
  readonly PBD: PbdCalls;
  readonly pool: PoolCalls;

  constructor(o: TransportOptions) {
    const t = new XapiTransport(o);
    this.VDI = new VdiCalls(t);
    this.SR = new SrCalls(t);
    this.VM = new VmCalls(t);
    this.VBD = new VbdCalls(t);
    this.host = new HostCalls(t);
    this.task = new TaskCalls(t);
    this.PBD = new PbdCalls(t);
    this.pool = new PoolCalls(t);
  }

  /** The client for one SMAPIv1 request: its session, its subtask, and the endpoint from the environment. */
  static forRequest(req: { session_ref?: string; subtask_of?: string }, endpoint?: XapiEndpoint): XapiClient {
    if (!req.session_ref) throw new XapiTransportError('(connect)', 'the request carries no session_ref');
    return new XapiClient({ session: req.session_ref, subtaskOf: req.subtask_of, endpoint });
  }
}
