// The relayout's policy (relayout-trigger.ts), apart so that type analysis can parse
// device-config:relayout without loading the backend.

/**
 * Extents at which a relayout starts. FICLONE costs ~15-50 µs per extent on the bench's
 * XFS (bench/README.md), so a snapshot then spends at most ~0.03-0.1 s copying the map:
 * about the fixed cost of a snapshot, which is what keeps snapshot latency within twice
 * that of a fresh disk.
 */
export const DEFAULT_RELAYOUT_THRESHOLD = 2048;

export type RelayoutPolicy = { readonly enabled: false } | { readonly enabled: true; readonly threshold: number };

export const RELAYOUT_DEFAULT: RelayoutPolicy = { enabled: true, threshold: DEFAULT_RELAYOUT_THRESHOLD };

/**
 * device-config:unshare (unshare.ts): after each snapshot, move the snapshots off the live
 * image's blocks, so that the guest writes in place rather than through copy on write
 * (4-8x fewer 2 KiB writes per second on XFS until each block has been written once).
 * It costs one more copy of each snapshotted disk in space, a full copy of the disk after
 * its first snapshot, and a read of two disk sizes after every later one
 * (docs/fragmentation.md).
 *   on    always, until the filesystem's own spare margin (relayout.ts);
 *   auto  (the default) only while the filesystem keeps AUTO_UNSHARE_FREE_SHARE of its
 *         size free after the copy: the space an SR has to spare buys write speed, and a
 *         filling SR keeps its sharing (thin as with the unshare off) rather than running
 *         out, which would pause the VMs on it;
 *   off   never: a snapshot's cost stays independent of the disk's size, also in the
 *         background.
 */
export type UnshareMode = 'on' | 'off' | 'auto';

export const UNSHARE_DEFAULT: UnshareMode = 'auto';

/** The share of the filesystem that device-config:unshare=auto leaves free. */
export const AUTO_UNSHARE_FREE_SHARE = 0.2;

/**
 * Free bytes an unshare leaves untouched: `base` (the margin every copy of a relayout
 * keeps), or with `ifRoom` (unshare=auto) at least AUTO_UNSHARE_FREE_SHARE of the
 * filesystem's `totalBytes`.
 */
export function unshareMargin(ifRoom: boolean, totalBytes: number, base: number): number {
  return ifRoom ? Math.max(base, Math.round(totalBytes * AUTO_UNSHARE_FREE_SHARE)) : base;
}

/** The flags of `flatsnap relayout` that run an unshare in `mode` (none when off). */
export function unshareArgs(mode: UnshareMode): string[] {
  return mode === 'off' ? [] : mode === 'auto' ? ['--unshare', '--if-room'] : ['--unshare'];
}
