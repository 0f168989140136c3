// Dataset, snapshot and user-property names as the ZFS command layer accepts
// them. Checked before anything reaches argv: a name that began with '-' would
// be read by zfs as an option, and one with a space or a newline would break the
// tab-separated output we parse. We allow a strict subset of what ZFS allows
// (no spaces, no '%', no '#' bookmarks); the SR root comes from device-config,
// every name below it is ours (uuids and fixed prefixes).

/** ZFS_MAX_DATASET_NAME_LEN is 256 including the NUL. */
export const MAX_DATASET_NAME = 255;
/** ZAP_MAXNAMELEN is 256 including the NUL; user property names share it. */
export const MAX_USER_PROP_NAME = 255;

// A component starts with a letter, digit or '_' (never '-'), then ZFS's other
// characters minus the space.
const COMPONENT = '[A-Za-z0-9_][A-Za-z0-9_.:-]*';
const DATASET_RE = new RegExp(`^${COMPONENT}(?:/${COMPONENT})*$`);
const SNAP_RE = new RegExp(`^(${COMPONENT}(?:/${COMPONENT})*)@(${COMPONENT})$`);
// Pool names must begin with a letter (zpool(8)); mirror/raidz/... are reserved.
const POOL_RE = /^[A-Za-z][A-Za-z0-9_.:-]*$/;
const RESERVED_POOL = /^(mirror|raidz|draid|spare|log|cache|special|dedup)|^c[0-9]/;
// zfs_prop_user(): lowercase letters, digits, '-', '_', '.', ':' and at least one ':'.
const USER_PROP_RE = /^[a-z0-9_.-]*:[a-z0-9_.:-]*$/;
// Native property names (quota, volsize, userquota@... is not something we set).
const NATIVE_PROP_RE = /^[a-z][a-z0-9_]*$/;

export class ZfsNameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ZfsNameError';
  }
}

function check(ok: boolean, what: string, v: string): void {
  if (!ok) throw new ZfsNameError(`invalid ZFS ${what}: ${JSON.stringify(v).slice(0, 300)}`);
}

export function isDatasetName(v: string): boolean {
  return v.length <= MAX_DATASET_NAME && DATASET_RE.test(v);
}

export function isSnapshotName(v: string): boolean {
  return v.length <= MAX_DATASET_NAME && SNAP_RE.test(v);
}

/** A filesystem or volume name: pool[/component]*. */
export function requireDataset(v: string): string {
  check(isDatasetName(v), 'dataset name', v);
  return v;
}

/** dataset@snap. */
export function requireSnapshot(v: string): string {
  check(isSnapshotName(v), 'snapshot name', v);
  return v;
}

/** A dataset or a snapshot. */
export function requireDatasetOrSnapshot(v: string): string {
  check(isDatasetName(v) || isSnapshotName(v), 'dataset or snapshot name', v);
  return v;
}

export function requirePool(v: string): string {
  check(v.length <= MAX_DATASET_NAME && POOL_RE.test(v) && !RESERVED_POOL.test(v), 'pool name', v);
  return v;
}

export function isUserProp(name: string): boolean {
  return name.length <= MAX_USER_PROP_NAME && USER_PROP_RE.test(name);
}

export function requireUserProp(name: string): string {
  check(isUserProp(name), 'user property name', name);
  return name;
}

export function requireNativeProp(name: string): string {
  check(NATIVE_PROP_RE.test(name), 'property name', name);
  return name;
}

/** A property name either kind (for `zfs get` lists and `inherit`). */
export function requirePropName(name: string): string {
  check(isUserProp(name) || NATIVE_PROP_RE.test(name), 'property name', name);
  return name;
}

/** 'tank/a/b@s' -> { dataset: 'tank/a/b', snap: 's' }; snap undefined for a dataset. */
export function splitSnapshot(name: string): { dataset: string; snap?: string } {
  const at = name.indexOf('@');
  if (at < 0) return { dataset: name };
  return { dataset: name.slice(0, at), snap: name.slice(at + 1) };
}

/** The pool a dataset or snapshot lives in. */
export function poolOf(name: string): string {
  const slash = name.search(/[/@]/);
  return slash < 0 ? name : name.slice(0, slash);
}

/** The parent dataset ('tank/a' for 'tank/a/b', the dataset for a snapshot), undefined for a pool. */
export function parentOf(name: string): string | undefined {
  const { dataset, snap } = splitSnapshot(name);
  if (snap !== undefined) return dataset;
  const i = dataset.lastIndexOf('/');
  return i < 0 ? undefined : dataset.slice(0, i);
}

/** True when `name` is `root` itself or lies below it (snapshots of root included). */
export function isWithin(name: string, root: string): boolean {
  return name === root || name.startsWith(`${root}/`) || name.startsWith(`${root}@`);
}

/** OpenZFS on Linux: udev makes /dev/zvol/<pool>/<path> for each volume. */
export function zvolDevicePath(volume: string): string {
  return `/dev/zvol/${requireDataset(volume)}`;
}
