// Where the pool's SRs are plugged: PBD records (one per host and SR, with the SR's
// device-config as that host uses it), the pool's master and a host by uuid. The operator
// command's `relayout --all-srs` reads them to find this host's flatsnap SRs.
import { XapiProtocolError } from './errors.js';
import type { XapiTransport } from './transport.js';
import { type StringMap, RecordReader, readRef, readRefs, readStruct } from './wire.js';

export interface PbdRecord {
  uuid: string;
  host: string;
  SR: string;
  device_config: StringMap;
  currently_attached: boolean;
}

export function parsePbdRecord(method: string, v: unknown, what?: string): PbdRecord {
  const r = new RecordReader(method, v, what);
  return { uuid: r.str('uuid'), host: r.ref('host'), SR: r.ref('SR'), device_config: r.map('device_config'), currently_attached: r.bool('currently_attached') };
}

export class PbdCalls {
  constructor(private readonly t: XapiTransport) {}

  /** Every PBD of the pool, by ref. */
  async get_all_records(): Promise<Map<string, PbdRecord>> {
    const m = 'PBD.get_all_records';
    const all = readStruct(m, 'the result', await this.t.call(m, []));
    return new Map(Object.entries(all).map(([ref, rec]) => [ref, parsePbdRecord(m, rec, `the record of ${ref}`)]));
  }
}

export class PoolCalls {
  constructor(private readonly t: XapiTransport) {}

  /** The pool's master host (a pool always has exactly one pool object). */
  async master(): Promise<string> {
    const pools = readRefs('pool.get_all', 'the result', await this.t.call('pool.get_all', []));
    if (pools.length !== 1) throw new XapiProtocolError('pool.get_all', `${pools.length} pool objects, expected exactly 1`);
    return readRef('pool.get_master', 'the result', await this.t.call('pool.get_master', [pools[0]!]));
  }
}
