// The XenAPI records the driver reads back, with the fields it uses
// (xapi-flows.md 3.1, 3.5, 3.6). Ints arrive as decimal strings and are numbers
// here; DateTimes are xapi's canonical text (19700101T00:00:00Z); refs are
// opaque strings. get_record always carries every field, so a missing one is a
// protocol error rather than a silent default.
import { RecordReader, type StringMap } from './wire.js';

export const VDI_TYPES = [
  'system',
  'user',
  'ephemeral',
  'suspend',
  'crashdump',
  'ha_statefile',
  'metadata',
  'redo_log',
  'rrd',
  'pvs_cache',
  'cbt_metadata',
] as const;
export type VdiType = (typeof VDI_TYPES)[number];

export interface VdiRecord {
  uuid: string;
  name_label: string;
  name_description: string;
  SR: string;
  VBDs: string[];
  virtual_size: number;
  physical_utilisation: number;
  /** One of VDI_TYPES on today's xapi; kept open so a newer xapi's type is not an error. */
  type: string;
  sharable: boolean;
  read_only: boolean;
  other_config: StringMap;
  location: string;
  managed: boolean;
  missing: boolean;
  xenstore_data: StringMap;
  sm_config: StringMap;
  is_a_snapshot: boolean;
  snapshot_of: string;
  snapshots: string[];
  snapshot_time: string;
  metadata_of_pool: string;
  on_boot: string;
  allow_caching: boolean;
  cbt_enabled: boolean;
}

export function parseVdiRecord(method: string, v: unknown, what?: string): VdiRecord {
  const r = new RecordReader(method, v, what);
  return {
    uuid: r.str('uuid'),
    name_label: r.str('name_label'),
    name_description: r.str('name_description'),
    SR: r.ref('SR'),
    VBDs: r.refs('VBDs'),
    virtual_size: r.int('virtual_size'),
    physical_utilisation: r.int('physical_utilisation'),
    type: r.str('type'),
    sharable: r.bool('sharable'),
    read_only: r.bool('read_only'),
    other_config: r.map('other_config'),
    location: r.str('location'),
    managed: r.bool('managed'),
    missing: r.bool('missing'),
    xenstore_data: r.map('xenstore_data'),
    sm_config: r.map('sm_config'),
    is_a_snapshot: r.bool('is_a_snapshot'),
    snapshot_of: r.ref('snapshot_of'),
    snapshots: r.refs('snapshots'),
    snapshot_time: r.time('snapshot_time'),
    metadata_of_pool: r.ref('metadata_of_pool'),
    on_boot: r.str('on_boot'),
    allow_caching: r.bool('allow_caching'),
    cbt_enabled: r.bool('cbt_enabled'),
  };
}

export interface SrRecord {
  uuid: string;
  name_label: string;
  name_description: string;
  VDIs: string[];
  PBDs: string[];
  virtual_allocation: number;
  /** -1 on a new SR until the driver reports it (so is physical_size). */
  physical_utilisation: number;
  physical_size: number;
  type: string;
  content_type: string;
  shared: boolean;
  other_config: StringMap;
  sm_config: StringMap;
}

export function parseSrRecord(method: string, v: unknown): SrRecord {
  const r = new RecordReader(method, v);
  return {
    uuid: r.str('uuid'),
    name_label: r.str('name_label'),
    name_description: r.str('name_description'),
    VDIs: r.refs('VDIs'),
    PBDs: r.refs('PBDs'),
    virtual_allocation: r.int('virtual_allocation'),
    physical_utilisation: r.int('physical_utilisation'),
    physical_size: r.int('physical_size'),
    type: r.str('type'),
    content_type: r.str('content_type'),
    shared: r.bool('shared'),
    other_config: r.map('other_config'),
    sm_config: r.map('sm_config'),
  };
}

export interface VmRecord {
  uuid: string;
  name_label: string;
  power_state: string;
  is_a_template: boolean;
  is_a_snapshot: boolean;
  is_control_domain: boolean;
  snapshot_of: string;
  snapshots: string[];
  snapshot_time: string;
  suspend_VDI: string;
  VBDs: string[];
  other_config: StringMap;
}

export function parseVmRecord(method: string, v: unknown): VmRecord {
  const r = new RecordReader(method, v);
  return {
    uuid: r.str('uuid'),
    name_label: r.str('name_label'),
    power_state: r.str('power_state'),
    is_a_template: r.bool('is_a_template'),
    is_a_snapshot: r.bool('is_a_snapshot'),
    is_control_domain: r.bool('is_control_domain'),
    snapshot_of: r.ref('snapshot_of'),
    snapshots: r.refs('snapshots'),
    snapshot_time: r.time('snapshot_time'),
    suspend_VDI: r.ref('suspend_VDI'),
    VBDs: r.refs('VBDs'),
    other_config: r.map('other_config'),
  };
}

export interface VbdRecord {
  uuid: string;
  VM: string;
  VDI: string;
  device: string;
  userdevice: string;
  mode: 'RO' | 'RW';
  type: string;
  empty: boolean;
  bootable: boolean;
  currently_attached: boolean;
  other_config: StringMap;
}

export function parseVbdRecord(method: string, v: unknown): VbdRecord {
  const r = new RecordReader(method, v);
  return {
    uuid: r.str('uuid'),
    VM: r.ref('VM'),
    VDI: r.ref('VDI'),
    device: r.str('device'),
    userdevice: r.str('userdevice'),
    mode: r.oneOf('mode', ['RO', 'RW'] as const),
    type: r.str('type'),
    empty: r.bool('empty'),
    bootable: r.bool('bootable'),
    currently_attached: r.bool('currently_attached'),
    other_config: r.map('other_config'),
  };
}
