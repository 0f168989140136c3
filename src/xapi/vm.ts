// Read-only VM and VBD lookups, for mapping a VDI to the VMs that use it.
import { parseVbdRecord, parseVmRecord, type VbdRecord, type VmRecord } from './records.js';
import type { XapiTransport } from './transport.js';
import { readRef } from './wire.js';

export class VmCalls {
  constructor(private readonly t: XapiTransport) {}

  async get_by_uuid(uuid: string): Promise<string> {
    return readRef('VM.get_by_uuid', 'the result', await this.t.call('VM.get_by_uuid', [uuid]));
  }

  async get_record(vm: string): Promise<VmRecord> {
    return parseVmRecord('VM.get_record', await this.t.call('VM.get_record', [vm]));
  }
}

export class VbdCalls {
  constructor(private readonly t: XapiTransport) {}

  async get_record(vbd: string): Promise<VbdRecord> {
    return parseVbdRecord('VBD.get_record', await this.t.call('VBD.get_record', [vbd]));
  }
}
