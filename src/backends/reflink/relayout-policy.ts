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
