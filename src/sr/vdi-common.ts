// Small pieces the VDI handlers share.
import type { StoredObject, VdiMeta } from '../backends/backend.js';
import { SmError, type SmErrorKind } from '../errors.js';
import type { XmlRpcStruct } from '../smapi/xmlrpc.js';
import type { Lineage, SrContext } from './context.js';
import { Lock, SR_EXCLUSIVE } from './locks.js';

/** The {uuid, location} struct xapi parses (sm_exec.ml parse_vdi_info); location == uuid. */
export function vdiInfo(vdi: string): XmlRpcStruct {
  return { uuid: vdi, location: vdi };
}

/** The stored object behind visible VDI `vdi`, or `kind` (VDIMissing by default). */
export function visibleVdi(l: Lineage, vdi: string, kind: SmErrorKind = 'VDIMissing'): StoredObject {
  const t = l.tree.byVdi(vdi);
  const o = t === undefined ? undefined : l.objects.get(t.id);
  if (t === undefined || o === undefined) throw new SmError(kind, `no VDI ${vdi} in this SR`);
  return o;
}

/** The object's stored metadata, or what can be said without it. */
export function metaOf(o: StoredObject): VdiMeta {
  return (
    o.meta ?? {
      name_label: '',
      name_description: '',
      vdi_type: 'user',
      is_a_snapshot: o.kind !== 'volume',
      snapshot_time: '19700101T00:00:00Z',
      snapshot_of: '',
      read_only: o.kind !== 'volume',
    }
  );
}

/**
 * Runs `fn` under the SR lock. dispatch already holds it for FileSR's exclusive commands;
 * the others that change the SR's objects (vdi_revert, vdi_resize) take it here. A second
 * Lock on the same file in this process would release the first on close (POSIX fcntl),
 * hence the check.
 */
export async function withSrLock<T>(ctx: SrContext, fn: () => Promise<T>): Promise<T> {
  if (SR_EXCLUSIVE.has(ctx.req.command)) return fn();
  return Lock.sr(ctx.srUuid).with(fn);
}
