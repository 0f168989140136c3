// The SR calls an SMAPIv1 driver makes: read its SR, report sizes after
// sr_scan/sr_update (the Python SR._db_update trio), and keep its own keys in
// other_config/sm_config (e.g. SM's "dirty" flag on attach).
import { parseSrRecord, type SrRecord } from './records.js';
import type { XapiTransport } from './transport.js';
import { readRef, readStringMap, type StringMap } from './wire.js';

export class SrCalls {
  constructor(private readonly t: XapiTransport) {}

  async get_by_uuid(uuid: string): Promise<string> {
    return readRef('SR.get_by_uuid', 'the result', await this.t.call('SR.get_by_uuid', [uuid]));
  }

  async get_record(sr: string): Promise<SrRecord> {
    return parseSrRecord('SR.get_record', await this.t.call('SR.get_record', [sr]));
  }

  // Sizes in bytes. physical_size needs pool-operator; the other two are hidden,
  // local root only.

  async set_physical_size(sr: string, bytes: number): Promise<void> {
    await this.t.call('SR.set_physical_size', [sr, bytes]);
  }
  async set_physical_utilisation(sr: string, bytes: number): Promise<void> {
    await this.t.call('SR.set_physical_utilisation', [sr, bytes]);
  }
  async set_virtual_allocation(sr: string, bytes: number): Promise<void> {
    await this.t.call('SR.set_virtual_allocation', [sr, bytes]);
  }

  async get_other_config(sr: string): Promise<StringMap> {
    const m = 'SR.get_other_config';
    return readStringMap(m, 'the result', await this.t.call(m, [sr]));
  }
  /** Fails with MAP_DUPLICATE_KEY when the key exists. */
  async add_to_other_config(sr: string, key: string, value: string): Promise<void> {
    await this.t.call('SR.add_to_other_config', [sr, key, value]);
  }
  async remove_from_other_config(sr: string, key: string): Promise<void> {
    await this.t.call('SR.remove_from_other_config', [sr, key]);
  }

  async get_sm_config(sr: string): Promise<StringMap> {
    const m = 'SR.get_sm_config';
    return readStringMap(m, 'the result', await this.t.call(m, [sr]));
  }
  async set_sm_config(sr: string, value: StringMap): Promise<void> {
    await this.t.call('SR.set_sm_config', [sr, value]);
  }
  /** Fails with MAP_DUPLICATE_KEY when the key exists. */
  async add_to_sm_config(sr: string, key: string, value: string): Promise<void> {
    await this.t.call('SR.add_to_sm_config', [sr, key, value]);
  }
  async remove_from_sm_config(sr: string, key: string): Promise<void> {
    await this.t.call('SR.remove_from_sm_config', [sr, key]);
  }
}
