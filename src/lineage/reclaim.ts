// Tombstones and reclaiming. One rule covers every case on a dependent backend:
//
//   an object is kept while it, or anything below it, backs a visible VDI;
//   everything else is destroyed, children before parents.
//
// "Below" follows the storage dependencies: a volume's snapshots, a snapshot's clones. So a
// deleted volume with snapshot VDIs, or a deleted snapshot VDI with clones, becomes a
// tombstone; when its last needed descendant goes, the whole dead branch is destroyed and
// the walk continues up through tombstoned ancestors (the paper's isDeleted cascade). Internal
// snapshots and hidden helper volumes never back a VDI, so they follow the same rule.
// After every plan the tree is at a fixed point: every leaf backs a visible VDI.
import { newestSnapshotOf, type Store } from './apply.js';
import { Draft } from './draft.js';
import { type LineageObject, type Plan, isVisible } from './model.js';

/** Children in a stable order (creation time, then id), so plans do not depend on load order. */
export function sortedChildren(store: Store, id: string): LineageObject[] {
  const out: LineageObject[] = [];
  for (const c of store.children(id)) {
    const o = store.get(c);
    if (o !== undefined) out.push(o);
  }
  return out.sort((a, b) => a.created - b.created || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
}

/** Whether `id` or any of its descendants backs a visible VDI. */
export function isNeeded(store: Store, id: string): boolean {
  const stack = [id];
  const seen = new Set<string>();
  while (stack.length > 0) {
    const x = stack.pop()!;
    if (seen.has(x)) continue;
    seen.add(x);
    const o = store.get(x);
    if (o === undefined) continue;
    if (isVisible(o)) return true;
    for (const c of store.children(x)) stack.push(c);
  }
  return false;
}

/** Emits a destroy for `id` and everything below it, children before parents. */
export function destroySubtree(draft: Draft, id: string): void {
  const order: string[] = [];
  const stack = [id];
  const seen = new Set<string>();
  while (stack.length > 0) {
    const x = stack.pop()!;
    if (seen.has(x)) continue;
    seen.add(x);
    order.push(x);
    // Oldest pushed first, visited last: after the final reversal its branch goes first.
    for (const c of sortedChildren(draft, x)) stack.push(c.id);
  }
  // Pre-order reversed is a valid post-order: every node after all of its descendants.
  for (let k = order.length - 1; k >= 0; k--) draft.emit({ op: 'destroy', object: order[k]! });
}

/** Walks up from `id` destroying invisible ancestors that nothing needs any more. */
function climb(draft: Draft, id: string | undefined): void {
  const seen = new Set<string>();
  for (let p = id; p !== undefined && !seen.has(p); ) {
    seen.add(p);
    const o = draft.get(p);
    if (o === undefined || isNeeded(draft, p)) return;
    destroySubtree(draft, p);
    p = o.parent;
  }
}

/**
 * `o` has just stopped backing a VDI (tombstoned, or unbound by a revert). Destroys it if
 * nothing depends on it, then cascades upwards; otherwise it stays as a tombstone, and a
 * tombstoned volume gives back its head (the blocks written after its newest snapshot,
 * which no VDI can reach any more) by a plain rollback to that newest snapshot.
 */
export function retire(draft: Draft, o: LineageObject): void {
  if (!draft.caps.dependent) {
    draft.emit({ op: 'destroy', object: o.id });
    return;
  }
  for (const c of sortedChildren(draft, o.id)) if (!isNeeded(draft, c.id)) destroySubtree(draft, c.id);
  if (draft.children(o.id).size === 0) {
    draft.emit({ op: 'destroy', object: o.id });
    climb(draft, o.parent);
    return;
  }
  if (o.kind === 'volume') {
    const newest = newestSnapshotOf(draft, o.id);
    if (newest !== undefined) draft.emit({ op: 'rollback', object: o.id, snapshot: newest.id, optional: true });
  }
}

/**
 * Everything reclaimable now: the actions that bring `store` to its fixed point. First any
 * object that claims a VDI another object backs (an interrupted swap-vdi) is tombstoned; then
 * every object nothing needs is destroyed, children first.
 */
export function planGc(store: Store & { objects(): Iterable<LineageObject> }): Plan {
  const draft = new Draft(store);
  const all = [...store.objects()].sort((a, b) => a.created - b.created || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
  for (const o of all) {
    if (isVisible(o) && store.byVdi(o.vdi!)?.id !== o.id) draft.emit({ op: 'mark-tombstone', object: o.id });
  }
  const visible = (id: string): boolean => {
    const o = draft.get(id);
    return o !== undefined && isVisible(o);
  };
  if (!store.caps.dependent) {
    for (const o of all) if (!visible(o.id)) draft.emit({ op: 'destroy', object: o.id });
    return draft.actions;
  }
  // needed(x) = visible(x) or needed(some child), computed bottom-up from the roots. Objects
  // on a parent cycle are unreachable from any root and are left alone (validate reports them).
  const roots = all.filter((o) => o.parent === undefined || store.get(o.parent) === undefined);
  const needed = new Map<string, boolean>();
  for (const root of roots) {
    const stack: Array<[string, boolean]> = [[root.id, false]];
    while (stack.length > 0) {
      const [id, expanded] = stack.pop()!;
      if (needed.has(id)) continue;
      const kids = [...store.children(id)];
      if (!expanded) {
        stack.push([id, true]);
        for (const c of kids) if (!needed.has(c)) stack.push([c, false]);
      } else {
        needed.set(id, visible(id) || kids.some((c) => needed.get(c) === true));
      }
    }
  }
  // Destroy maximal dead branches, top-down from the roots.
  const todo = [...roots].reverse();
  while (todo.length > 0) {
    const o = todo.pop()!;
    if (draft.get(o.id) === undefined) continue;
    if (needed.get(o.id) === false) destroySubtree(draft, o.id);
    else for (const c of sortedChildren(store, o.id).reverse()) todo.push(c);
  }
  return draft.actions;
}
