// What counts as valid VdiMeta, shared by both backends: a record read back from
// storage (a ZFS user property set, a reflink sidecar) is checked against the same
// rules whichever backend wrote it, so the two cannot drift apart.

/** xapi's DateTime for "never" (a VDI that is not a snapshot). */
export const EPOCH = '19700101T00:00:00Z';

const XAPI_TIME = /^\d{8}T\d{2}:\d{2}:\d{2}Z$/;
/** xapi's VDI type names: user, system, suspend, ha_statefile, ... */
export const VDI_TYPE = /^[a-z][a-z_]{0,31}$/;
const LOWER_UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

/** A real calendar time in xapi's wire form, e.g. 20261125T01:02:03Z. */
export function isXapiTime(s: string): boolean {
  if (!XAPI_TIME.test(s)) return false;
  const iso = `${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 8)}${s.slice(8)}`;
  const t = Date.parse(iso);
  return !Number.isNaN(t) && new Date(t).toISOString().slice(0, 19) === iso.slice(0, 19);
}

/** Why `m` is not a valid VdiMeta, or undefined. */
export function metaProblem(m: unknown): string | undefined {
  if (typeof m !== 'object' || m === null || Array.isArray(m)) return 'meta is not an object';
  const o = m as Record<string, unknown>;
  if (typeof o.name_label !== 'string') return 'meta.name_label is not a string';
  if (typeof o.name_description !== 'string') return 'meta.name_description is not a string';
  if (typeof o.vdi_type !== 'string' || !VDI_TYPE.test(o.vdi_type)) return 'meta.vdi_type is not a VDI type name';
  if (typeof o.is_a_snapshot !== 'boolean') return 'meta.is_a_snapshot is not a boolean';
  if (typeof o.snapshot_time !== 'string' || !isXapiTime(o.snapshot_time)) return 'meta.snapshot_time is not a time like 19700101T00:00:00Z';
  if (typeof o.snapshot_of !== 'string' || (o.snapshot_of !== '' && !LOWER_UUID.test(o.snapshot_of)))
    return 'meta.snapshot_of is neither "" nor a lower-case uuid';
  if (typeof o.read_only !== 'boolean') return 'meta.read_only is not a boolean';
  return undefined;
}
