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
 * image's blocks, so that the guest writes in place rather than through copy on write.
 * Off by default: it costs one copy of each snapshotted disk in space, a full copy of the
 * disk after its first snapshot, and a read of two disk sizes after every later one
 * (docs/fragmentation.md): a snapshot's cost would grow with the disk again.
 */
export const UNSHARE_DEFAULT = false;
