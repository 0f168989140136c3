// Types and the xenstore data both datapath modes share.
import type { XmlRpcStruct } from '../smapi/xmlrpc.js';

export interface VdiTarget {
  srUuid: string;
  vdiUuid: string;
}

export interface AttachTarget extends VdiTarget {
  /** dom0 path of the VDI's bytes (the backend's datapath()). */
  path: string;
}

export interface Datapath {
  readonly mode: 'tapdisk' | 'direct';
  /** The attach result struct (sm_exec.ml parse_attach_result). */
  attach(t: AttachTarget, writable: boolean): Promise<XmlRpcStruct>;
  activate(t: VdiTarget, writable: boolean): Promise<void>;
  deactivate(t: VdiTarget): Promise<void>;
  detach(t: VdiTarget): Promise<void>;
  /**
   * Runs `fn` with the VDI's I/O on this host drained and held (tapdisk pause/unpause
   * around a live snapshot or clone, as blktap2's tap_pause does); just `fn` where nothing
   * serves the VDI here.
   */
  quiesce<T>(t: VdiTarget, fn: () => Promise<T>): Promise<T>;
}

/** What the guest's backend sees under sm-data/ (FileSR writes storage-type and vdi-uuid too). */
export function xenstoreData(t: VdiTarget): XmlRpcStruct {
  return { 'storage-type': 'flatsnap', 'vdi-uuid': t.vdiUuid };
}

// blktap2 keeps O_DIRECT on for every SR type but nfs/ext/smb (reason SR_NOT_SUPPORTED).
export const O_DIRECT_REASON = 'SR_NOT_SUPPORTED';
