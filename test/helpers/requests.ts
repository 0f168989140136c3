// xapi-shaped SMAPIv1 requests for tests, built with the same key order and
// encoding as xapi's sm_exec (smapiv1-protocol.md 1.3-1.5).
import { encodeMethodCall, type XmlRpcStruct, type XmlRpcValue } from '../../src/smapi/xmlrpc.js';

export const SR_UUID = '0f3e4d8a-5b6c-4d7e-8f90-a1b2c3d4e5f6';
export const VDI_UUID = '11111111-2222-4333-8444-555555555555';
export const NEW_UUID = '99999999-8888-4777-8666-555555555555';

export interface ReqOpts {
  args?: string[];
  device_config?: Record<string, string>;
  session?: boolean;
  sr?: boolean;
  vdi?: boolean;
  extra?: XmlRpcStruct;
  master?: boolean;
}

export function smRequest(command: string, o: ReqOpts = {}): string {
  const s: XmlRpcStruct = {
    host_ref: 'OpaqueRef:4b1c0e5e-0c4a-4c59-9d2f-7c0c9e7f1a01',
    command,
    args: (o.args ?? []) as XmlRpcValue[],
    device_config: command === 'sr_get_driver_info' ? {} : { SRmaster: o.master === false ? 'false' : 'true', ...(o.device_config ?? {}) },
  };
  if (o.session !== false && command !== 'sr_get_driver_info') s.session_ref = 'OpaqueRef:5e55e55e-0000-4000-8000-000000000001';
  if (o.sr !== false && command !== 'sr_get_driver_info' && command !== 'sr_probe') {
    s.sr_ref = 'OpaqueRef:5a000000-0000-4000-8000-000000000002';
    s.sr_uuid = SR_UUID;
  }
  if (o.vdi) {
    s.vdi_ref = 'OpaqueRef:7d000000-0000-4000-8000-000000000003';
    s.vdi_location = VDI_UUID;
    s.vdi_uuid = VDI_UUID;
  }
  Object.assign(s, o.extra ?? {});
  if (o.vdi) {
    s.vdi_on_boot = 'persist';
    s.vdi_allow_caching = 'false';
  }
  return encodeMethodCall(command, [s]);
}
