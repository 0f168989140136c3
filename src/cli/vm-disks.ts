// VM -> VBDs -> VDIs -> SRs: which disks a VM has and where they live, from xapi.
import type { XapiClient } from '../xapi/client.js';
import { XapiError } from '../xapi/errors.js';
import { NULL_REF } from '../xapi/wire.js';
import { CommandError } from './storage.js';

export interface VmDisk {
  vbd: string;
  /** "0", "1", ... (xapi's position on the VM). */
  userdevice: string;
  /** Disk, CD, Floppy. */
  type: string;
  /** An empty drive (a CD drive without a disc). */
  empty: boolean;
  vdi?: { uuid: string; name_label: string; sr_uuid: string };
}

export interface VmDisks {
  vm: { uuid: string; name_label: string; is_a_snapshot: boolean };
  disks: VmDisk[];
}

/** The VM's VBDs with their VDIs, ordered by userdevice. */
export async function disksOfVm(x: XapiClient, vmUuid: string): Promise<VmDisks> {
  let vmRef: string;
  try {
    vmRef = await x.VM.get_by_uuid(vmUuid);
  } catch (e) {
    if (e instanceof XapiError && (e.code === 'UUID_INVALID' || e.code === 'HANDLE_INVALID')) throw new CommandError(`xapi knows no VM ${vmUuid}`);
    throw e;
  }
  const vm = await x.VM.get_record(vmRef);
  const srUuids = new Map<string, string>();
  const srUuid = async (ref: string): Promise<string> => {
    let u = srUuids.get(ref);
    if (u === undefined) srUuids.set(ref, (u = (await x.SR.get_record(ref)).uuid));
    return u;
  };
  const disks: VmDisk[] = [];
  for (const vbdRef of vm.VBDs) {
    const vbd = await x.VBD.get_record(vbdRef);
    const d: VmDisk = { vbd: vbd.uuid, userdevice: vbd.userdevice, type: vbd.type, empty: vbd.empty };
    if (!vbd.empty && vbd.VDI !== NULL_REF && vbd.VDI !== '') {
      const vdi = await x.VDI.get_record(vbd.VDI);
      d.vdi = { uuid: vdi.uuid, name_label: vdi.name_label, sr_uuid: await srUuid(vdi.SR) };
    }
    disks.push(d);
  }
  disks.sort((a, b) => deviceOrder(a.userdevice) - deviceOrder(b.userdevice) || (a.userdevice < b.userdevice ? -1 : 1));
  return { vm: { uuid: vm.uuid, name_label: vm.name_label, is_a_snapshot: vm.is_a_snapshot }, disks };
}

function deviceOrder(u: string): number {
  return /^\d+$/.test(u) ? Number(u) : Number.MAX_SAFE_INTEGER;
}
