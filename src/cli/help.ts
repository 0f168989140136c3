// Usage texts of `flatsnap`.
import { AUTO_UNSHARE_FREE_SHARE, DEFAULT_RELAYOUT_THRESHOLD } from '../backends/reflink/relayout-policy.js';
import type { CommandName } from './args.js';

const SR = `  --dataset POOL/PATH   the SR's ZFS dataset (device-config:dataset), or
  --path DIR            the SR's directory on XFS/btrfs/OCFS2 (device-config:path)`;
const OUT = `  --json                machine-readable output on stdout
  --timings             print how long each phase took on stderr`;
const XAPI = `  --xapi URL|local      xapi to ask: http://host[:port]/ or "local" (/var/lib/xcp/xapi)
  --user NAME           default root
  --password PW         default $FLATSNAP_XAPI_PASSWORD, else empty (enough for root
  --password-file FILE    on the local socket); the file's first line is the password`;

export const MAIN_USAGE = `usage: flatsnap COMMAND (--dataset POOL/PATH | --path DIR) [options]

Operator tool for flatsnap SRs. Works from the SR's storage alone (every object's
lineage is recorded with it); xapi is only asked where a command says so.

commands:
  tree    the lineage of the SR or of one VDI: volumes, snapshots in time order,
          clones under the snapshot they came from, [deleted] tombstones, [internal]
  seek    the snapshot VDI holding a disk's state at a given time (binary search)
  gc      reclaim what nothing needs any more (what sr-scan would), under the SR lock
  check   storage against the lineage rules (and against xapi with --xapi)
  relayout  rewrite a fragmented reflink disk contiguously (what snapshots start)

flatsnap help COMMAND (or flatsnap COMMAND --help) for its options.
exit status: 0 ok, 1 problems found (check) or left (gc), 2 usage error,
3 the command could not run (storage or xapi unavailable, unknown VDI, ...).`;

export const USAGE: Record<CommandName, string> = {
  tree: `usage: flatsnap tree (--dataset POOL/PATH | --path DIR) [--vdi UUID] [--json]

Every storage object of the SR as a tree: a volume's snapshots in time order, a
clone under the snapshot (or volume) it was made from. [deleted] marks tombstones
(gone for xapi, kept while something depends on them), [internal] the snapshots
taken only to clone a live disk, [hidden] volumes that back no VDI.

${SR}
  --vdi UUID            only this VDI's lineage: its ancestors and everything below it
${OUT}`,
  seek: `usage: flatsnap seek (--dataset POOL/PATH | --path DIR) (--vdi UUID | --vm UUID) --at TIME [--json]

The snapshot VDI that holds the disk's state at TIME: its newest snapshot taken at
or before TIME, following the disk's lineage back through the snapshot it was
cloned from. "none" if no snapshot is that old.

${SR}
  --vdi UUID            the disk (a VDI of this SR)
  --vm UUID             every disk of this VM (asks xapi for its VBDs; disks on
                        other SRs are listed as skipped)
  --at TIME             2026-11-25T01:02:03Z, 2026-11-25T02:02:03.5+01:00,
                        20261125T01:02:03Z (xapi's form) or now; a zone is required
${XAPI}
                        (xapi options only with --vm; default --xapi:
                        $FLATSNAP_XAPI_URL, else local)
${OUT}`,
  gc: `usage: flatsnap gc (--dataset POOL/PATH | --path DIR) [--dry-run] [--json]

Destroys every object nothing needs any more (tombstones whose dependants are gone,
internal snapshots and helper volumes an interrupted operation left), children
first, and gives back a tombstone's head (rollback to its newest snapshot). The
same plan sr-scan runs; normally empty. Holds the SR lock while it runs: run it on
the SR master.

${SR}
  --dry-run             only show the plan
${OUT}`,
  check: `usage: flatsnap check (--dataset POOL/PATH | --path DIR) [--xapi URL|local ...] [--json]

Storage against the lineage rules: unreadable or unknown objects, broken records,
parent cycles, crash leftovers, reclaimable objects (flatsnap gc), and on reflink
each object's extent and fragment counts. With --xapi, also the SR's VDIs in xapi
against storage: VDIs missing on either side. Exit status 1 if anything is found.

${SR}
  --no-health           skip the per-object extent counts (FIEMAP)
${XAPI}
${OUT}`,
  relayout: `usage: flatsnap relayout --path DIR (--vdi UUID | --all [--min-extents N]) [--unshare [--if-room] [--no-relayout]] [--json]
       flatsnap relayout --all-srs [--host UUID] [--min-extents N] [--xapi URL|local ...] [--json]

Rewrites the fragmented parts of a reflink VDI's image into contiguous blocks and
points its snapshots at them too, so that its next snapshot copies a short extent
map and no space is lost (docs/fragmentation.md). Safe while the VM runs: every
change is a kernel-checked swap of equal bytes. The driver starts it in the
background after a snapshot when the disk has many extents (device-config:relayout);
--all, e.g. from cron, also catches the writes made since, so that the next
snapshot finds the disk contiguous. Needs no SR lock; one relayout per VDI at a time.

  --path DIR            the SR's directory (device-config:path)
  --vdi UUID            the disk
  --all                 every disk (live VDI) with at least --min-extents extents
  --min-extents N       default ${DEFAULT_RELAYOUT_THRESHOLD}, as the driver's default threshold
                        (with --all-srs: each SR's device-config:relayout)
  --unshare             first move the snapshots off the live image's blocks, so that
                        the guest writes in place (what the driver does after each
                        snapshot with device-config:unshare=on or auto, the default);
                        with --all, also every disk that still shares blocks
  --if-room             with --unshare: copy only while ${AUTO_UNSHARE_FREE_SHARE * 100} % of the filesystem
                        stays free, and with --all only disks that have snapshots
                        of their own, not clones (device-config:unshare=auto)
  --no-relayout         with --unshare: only that (device-config:relayout=off)
  --all-srs             --all on every flatsnap reflink SR plugged on this host (asks
                        xapi for this host's PBDs), except those with relayout=off and
                        unshare=off; a
                        shared SR only on the pool master. What the cron job
                        /etc/cron.d/flatsnap-relayout (plugin/install.sh) runs hourly
  --host UUID           this host (default: INSTALLATION_UUID, /etc/xensource-inventory)
${XAPI}
                        (default --xapi: $FLATSNAP_XAPI_URL, else local)
${OUT}`,
};
