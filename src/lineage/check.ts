// `flatsnap check` helpers: records as read back from storage, against the rules and
// against what storage actually holds.
import type { Capabilities, LineageObject } from './model.js';
import { LineageTree } from './tree.js';
import { type Issue, validateObjects } from './validate.js';

/**
 * All issues of raw records: structural errors (duplicate ids included, which a loaded tree
 * can no longer see); if there are none, the warnings, reclaimable leftovers included.
 */
export function checkLineage(objects: Iterable<LineageObject>, caps: Capabilities): Issue[] {
  const list = [...objects];
  const issues = validateObjects(list, caps);
  return issues.some((i) => i.severity === 'error') ? issues : new LineageTree(caps, list).validate();
}

export interface InventoryDiff {
  /** In the model, absent from storage (lost, or destroyed outside flatsnap). */
  readonly missing: string[];
  /** On storage, unknown to the model (leaked, or created outside flatsnap). */
  readonly unknown: string[];
}

/** Compares the model's object ids with the ids found on storage. Both lists sorted. */
export function compareInventory(tree: LineageTree, present: Iterable<string>): InventoryDiff {
  const found = new Set(present);
  const missing = [...tree.objects()].map((o) => o.id).filter((id) => !found.has(id));
  const unknown = [...found].filter((id) => !tree.has(id));
  return { missing: missing.sort(), unknown: unknown.sort() };
}
