// Lineage: pure logic (no I/O, no clock) for flatsnap's clone tree, tombstones,
// snapshot names and the timestamp index. See docs/lineage.md.
export {
  type SnapshotName,
  type SnapshotNameKind,
  INTERNAL_TAG,
  MAX_TIME,
  MIN_TIME,
  STAMP_LENGTH,
  formatInternalSnapshotName,
  formatName,
  formatSnapshotName,
  formatTimestamp,
  isNameableTime,
  isSnapshotName,
  isUuid,
  parseSnapshotName,
  parseTimestamp,
} from './names.js';
export { type ReadonlyTimeIndex, type TimeEntry, TimeIndex, compareEntries } from './time-index.js';
export {
  type Action,
  type ActionOp,
  type Capabilities,
  type LineageErrorCode,
  type LineageObject,
  type ObjectKind,
  type Plan,
  LineageError,
  REFLINK_CAPABILITIES,
  ZFS_CAPABILITIES,
  isSnapshotKind,
  isVisible,
  snapshotNameOf,
} from './model.js';
export { type NewVdi, type RevertOptions } from './plans.js';
export { LineageTree } from './tree.js';
export { type Issue, type IssueCode, validateObjects } from './validate.js';
export { type InventoryDiff, checkLineage, compareInventory } from './check.js';
