// What the installed ZFS can do, found once per process with one command
// (`zfs version`) and a static table per flavour. Probing each feature would
// cost a command per SM call (every SM call is a new process) and some probes
// (creating a zvol on zfs-fuse) abort the client.
//
// zfs-fuse 0.7 (Debian package zfs-fuse, pool version 23), as observed:
//   - no `zfs version` ("unrecognized command 'version'", exit 2)
//   - `zfs get -H -p` works and prints exact numbers; `zfs get -t` does not exist
//     ("invalid option 't'"), `zfs get -r` lists snapshots anyway
//   - `zfs list -p` and `zpool list -p` / `zpool get -p` do not exist
//   - `zfs set` takes one property=value per command
//   - `zfs create -V` aborts: "internal error: Function not implemented" (SIGABRT)
//   - renaming a mounted filesystem fails "dataset is busy" (almost always: a
//     never-accessed one sometimes goes through); unmounted it always works
//   - destroying a mounted filesystem that has been used fails "dataset is busy"
//     once (zfs unmounts it on the way, so a second try works); unmount first
//   - no .zfs directory, even with snapdir=visible
//   - `zfs snapshot -o` and `zfs clone -o` with user properties work
//   - `zfs destroy -d` works; the snapshot shows defer_destroy=on until its last clone goes
//   - user property values up to 8191 bytes; 8192+ abort ("Argument list too long");
//     an empty value is refused ("missing value in property=value argument")
//   - `zfs unmount -f` of a busy filesystem detaches it lazily and leaves the
//     daemon unable to serve the next new mount (hangs in the kernel): never use -f
import { ZfsError } from './errors.js';
import type { ExecResult } from './exec.js';
import { parseZfsVersion, type OpenZfsVersion } from './parse.js';

export type ZfsFlavor = 'openzfs' | 'zfs-fuse' | 'legacy';

export interface ZfsFeatures {
  readonly flavor: ZfsFlavor;
  /** OpenZFS only. */
  readonly version?: OpenZfsVersion;
  /** `zfs create -V` (zvols, /dev/zvol/...). */
  readonly volumes: boolean;
  /** `zfs list -p` and `zpool list -p` (exact numbers). `zfs get -p` works everywhere. */
  readonly parsableList: boolean;
  /** `zfs get -t type,...`. */
  readonly getTypeFilter: boolean;
  /** `zfs set a=1 b=2 ds` in one command (atomic). */
  readonly multiSet: boolean;
  /** `zfs rename` of a mounted filesystem. */
  readonly renameMounted: boolean;
  /** `zfs destroy` of a mounted filesystem, without unmounting it first. */
  readonly destroyMounted: boolean;
  /** `zfs snapshot -o prop=value` (atomic with the snapshot). */
  readonly snapshotProps: boolean;
  /** `zfs destroy -d` on snapshots. */
  readonly deferDestroy: boolean;
  /** `<mountpoint>/.zfs/snapshot/<snap>`. */
  readonly snapdir: boolean;
  /** Longest user-property value we may write (encoded bytes). */
  readonly maxUserValueBytes: number;
}

const OPENZFS: Omit<ZfsFeatures, 'flavor' | 'version'> = {
  volumes: true,
  parsableList: true,
  getTypeFilter: true,
  multiSet: true,
  renameMounted: true,
  destroyMounted: true,
  snapshotProps: true,
  deferDestroy: true,
  snapdir: true,
  maxUserValueBytes: 4095,
};

const ZFS_FUSE: Omit<ZfsFeatures, 'flavor' | 'version'> = {
  volumes: false,
  parsableList: false,
  getTypeFilter: false,
  multiSet: false,
  renameMounted: false,
  destroyMounted: false,
  snapshotProps: true,
  deferDestroy: true,
  snapdir: false,
  maxUserValueBytes: 4095,
};

/** The feature set of a flavour. 'legacy' (ZFS on Linux < 0.8, no `zfs version`) gets the cautious zfs-fuse set plus zvols. */
export function featuresFor(flavor: ZfsFlavor, version?: OpenZfsVersion): ZfsFeatures {
  switch (flavor) {
    case 'openzfs':
      return version ? { flavor, version, ...OPENZFS } : { flavor, ...OPENZFS };
    case 'zfs-fuse':
      return { flavor, ...ZFS_FUSE };
    case 'legacy':
      return { flavor, ...ZFS_FUSE, volumes: true, renameMounted: true, destroyMounted: true };
  }
}

export const ZFS_FUSE_MARKERS = ['/usr/sbin/zfs-fuse', '/sbin/zfs-fuse', '/usr/bin/zfs-fuse', '/var/run/zfs/zfs_socket', '/run/zfs/zfs_socket'];

/**
 * Decides the flavour from the result of `zfs version`. Throws the ZfsError the
 * result means when zfs is missing or not usable at all.
 */
export function featuresFromVersionResult(
  r: ExecResult,
  argv: readonly string[],
  fileExists: (p: string) => boolean,
): ZfsFeatures {
  if (r.spawnError) {
    throw new ZfsError({ kind: 'NotInstalled', argv, detail: `zfs is not installed (${r.spawnError})` });
  }
  // OpenZFS prints the version even when the module is missing ("zfs-kmod-unknown" or an error after it).
  const v = parseZfsVersion(r.stdout);
  if (v) return featuresFor('openzfs', v);
  if (r.timedOut) throw new ZfsError({ kind: 'Timeout', argv, detail: 'zfs version did not answer' });
  if (ZFS_FUSE_MARKERS.some((p) => fileExists(p))) return featuresFor('zfs-fuse');
  return featuresFor('legacy');
}
