// The VDI calls an SMAPIv1 driver makes to keep xapi's database in step with
// its storage (smapiv1-protocol.md 3.1): xapi writes no VDI rows itself after
// vdi_create/snapshot/clone, it reads back what the driver introduced.
//
// Not here on purpose: VDI.set_name_label/description. xapi routes them through
// the storage layer to the driver's own vdi_update, so calling them from inside
// a driver command would re-enter the driver.
import { parseVdiRecord, type VdiRecord, type VdiType } from './records.js';
import type { XapiTransport } from './transport.js';
import { NULL_REF, XapiDateTime, readRef, readStruct, readBool, readStringMap, type StringMap } from './wire.js';

/** VDI.db_introduce's 19 parameters; what a driver rarely sets has xapi's/SM's default. */
export interface VdiIntroduce {
  uuid: string;
  /** Default "". */
  name_label?: string;
  /** Default "". */
  name_description?: string;
  SR: string;
  /** Default "user". */
  type?: VdiType;
  /** Default false. */
  sharable?: boolean;
  /** Default false. */
  read_only?: boolean;
  /** Default {}. */
  other_config?: StringMap;
  /** Must be unique within the SR (LOCATION_NOT_UNIQUE). */
  location: string;
  /** Default {}. */
  xenstore_data?: StringMap;
  /** Default {}. */
  sm_config?: StringMap;
  /** Default true. */
  managed?: boolean;
  virtual_size: number;
  physical_utilisation: number;
  /** Default OpaqueRef:NULL. */
  metadata_of_pool?: string;
  /** Default false. */
  is_a_snapshot?: boolean;
  /** Default the epoch, 19700101T00:00:00Z. */
  snapshot_time?: Date | string | XapiDateTime;
  /** Default OpaqueRef:NULL. */
  snapshot_of?: string;
  /** Default false. */
  cbt_enabled?: boolean;
}

/** The query `get_all_records_where` needs for the VDIs of one SR (SM's util.list_VDI_records_in_sr). */
export function vdisInSr(sr: string): string {
  // A ref is opaque but never holds a quote; refusing one keeps the query a query.
  if (/["\\]/.test(sr)) throw new TypeError(`not a ref: ${JSON.stringify(sr)}`);
  return `field "SR" = "${sr}"`;
}

export class VdiCalls {
  constructor(private readonly t: XapiTransport) {}

  /** Creates the VDI row (local root only); returns its ref. */
  async db_introduce(v: VdiIntroduce): Promise<string> {
    const m = 'VDI.db_introduce';
    const ref = await this.t.call(m, [
      v.uuid,
      v.name_label ?? '',
      v.name_description ?? '',
      v.SR,
      v.type ?? 'user',
      v.sharable ?? false,
      v.read_only ?? false,
      v.other_config ?? {},
      v.location,
      v.xenstore_data ?? {},
      v.sm_config ?? {},
      v.managed ?? true,
      v.virtual_size,
      v.physical_utilisation,
      v.metadata_of_pool ?? NULL_REF,
      v.is_a_snapshot ?? false,
      XapiDateTime.from(v.snapshot_time ?? XapiDateTime.EPOCH),
      v.snapshot_of ?? NULL_REF,
      v.cbt_enabled ?? false,
    ]);
    return readRef(m, 'the result', ref);
  }

  /** Deletes the VDI row only (xapi also empties CD VBDs pointing at it). */
  async db_forget(vdi: string): Promise<void> {
    await this.t.call('VDI.db_forget', [vdi]);
  }

  async get_by_uuid(uuid: string): Promise<string> {
    return readRef('VDI.get_by_uuid', 'the result', await this.t.call('VDI.get_by_uuid', [uuid]));
  }

  async get_record(vdi: string): Promise<VdiRecord> {
    return parseVdiRecord('VDI.get_record', await this.t.call('VDI.get_record', [vdi]));
  }

  /** Ref → record for every VDI matching `expr` (see vdisInSr). */
  async get_all_records_where(expr: string): Promise<Map<string, VdiRecord>> {
    const m = 'VDI.get_all_records_where';
    const all = readStruct(m, 'the result', await this.t.call(m, [expr]));
    return new Map(Object.entries(all).map(([ref, rec]) => [ref, parseVdiRecord(m, rec, `record ${ref}`)]));
  }

  async get_is_a_snapshot(vdi: string): Promise<boolean> {
    const m = 'VDI.get_is_a_snapshot';
    return readBool(m, 'the result', await this.t.call(m, [vdi]));
  }

  // Setters. The hidden ones (all but read_only/sharable) are local-root only,
  // which the SM session is.

  async set_virtual_size(vdi: string, bytes: number): Promise<void> {
    await this.t.call('VDI.set_virtual_size', [vdi, bytes]);
  }
  async set_physical_utilisation(vdi: string, bytes: number): Promise<void> {
    await this.t.call('VDI.set_physical_utilisation', [vdi, bytes]);
  }
  async set_read_only(vdi: string, value: boolean): Promise<void> {
    await this.t.call('VDI.set_read_only', [vdi, value]);
  }
  async set_sharable(vdi: string, value: boolean): Promise<void> {
    await this.t.call('VDI.set_sharable', [vdi, value]);
  }
  async set_managed(vdi: string, value: boolean): Promise<void> {
    await this.t.call('VDI.set_managed', [vdi, value]);
  }
  async set_missing(vdi: string, value: boolean): Promise<void> {
    await this.t.call('VDI.set_missing', [vdi, value]);
  }
  async set_is_a_snapshot(vdi: string, value: boolean): Promise<void> {
    await this.t.call('VDI.set_is_a_snapshot', [vdi, value]);
  }
  async set_snapshot_of(vdi: string, of: string): Promise<void> {
    await this.t.call('VDI.set_snapshot_of', [vdi, of]);
  }
  async set_snapshot_time(vdi: string, time: Date | string | XapiDateTime): Promise<void> {
    await this.t.call('VDI.set_snapshot_time', [vdi, XapiDateTime.from(time)]);
  }
  async set_cbt_enabled(vdi: string, value: boolean): Promise<void> {
    await this.t.call('VDI.set_cbt_enabled', [vdi, value]);
  }

  // sm_config and other_config. add_to_* fails with MAP_DUPLICATE_KEY when the
  // key exists; remove_from_* succeeds when it does not.

  async get_sm_config(vdi: string): Promise<StringMap> {
    const m = 'VDI.get_sm_config';
    return readStringMap(m, 'the result', await this.t.call(m, [vdi]));
  }
  async set_sm_config(vdi: string, value: StringMap): Promise<void> {
    await this.t.call('VDI.set_sm_config', [vdi, value]);
  }
  async add_to_sm_config(vdi: string, key: string, value: string): Promise<void> {
    await this.t.call('VDI.add_to_sm_config', [vdi, key, value]);
  }
  async remove_from_sm_config(vdi: string, key: string): Promise<void> {
    await this.t.call('VDI.remove_from_sm_config', [vdi, key]);
  }

  async get_other_config(vdi: string): Promise<StringMap> {
    const m = 'VDI.get_other_config';
    return readStringMap(m, 'the result', await this.t.call(m, [vdi]));
  }
  async set_other_config(vdi: string, value: StringMap): Promise<void> {
    await this.t.call('VDI.set_other_config', [vdi, value]);
  }
  async add_to_other_config(vdi: string, key: string, value: string): Promise<void> {
    await this.t.call('VDI.add_to_other_config', [vdi, key, value]);
  }
  async remove_from_other_config(vdi: string, key: string): Promise<void> {
    await this.t.call('VDI.remove_from_other_config', [vdi, key]);
  }
}
