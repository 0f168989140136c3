// How one storage object is shown: its markers, its name, its JSON form, and the
// forest of all objects (a volume's snapshots and a snapshot's clones below it).
import type { StoredObject } from '../backends/backend.js';
import type { LineageTree } from '../lineage/index.js';
import { isoTime } from './time.js';

export type Marker = 'deleted' | 'internal' | 'hidden';

/** [deleted] tombstone, [internal] internal snapshot, [hidden] a volume that backs no VDI. */
export function markers(o: StoredObject): Marker[] {
  const m: Marker[] = [];
  if (o.deleted) m.push('deleted');
  if (o.kind === 'internal-snapshot') m.push('internal');
  else if (o.vdi === undefined && !o.deleted) m.push('hidden');
  return m;
}

export function kindName(o: StoredObject): string {
  return o.kind === 'internal-snapshot' ? 'snapshot' : o.kind; // [internal] says the rest
}

/** The VDI's name label, quoted, or "" (internal snapshots and hidden volumes have none). */
export function quotedLabel(o: StoredObject): string {
  return o.meta === undefined ? '' : JSON.stringify(o.meta.name_label);
}

/** One object as --json shows it: every key always present (null when absent). */
export interface ObjectJson {
  id: string;
  kind: StoredObject['kind'];
  vdi: string | null;
  parent: string | null;
  created: number;
  created_iso: string;
  deleted: boolean;
  /** Backs a VDI xapi may see. */
  visible: boolean;
  markers: Marker[];
  name_label: string | null;
  is_a_snapshot: boolean | null;
  virtual_size: number;
  physical_utilisation: number;
  handle: string;
}

export function objectJson(o: StoredObject, tree: LineageTree): ObjectJson {
  return {
    id: o.id,
    kind: o.kind,
    vdi: o.vdi ?? null,
    parent: o.parent ?? null,
    created: o.created,
    created_iso: safeIso(o.created),
    deleted: o.deleted,
    visible: tree.isVisible(o.id),
    markers: markers(o),
    name_label: o.meta?.name_label ?? null,
    is_a_snapshot: o.meta?.is_a_snapshot ?? null,
    virtual_size: o.virtual_size,
    physical_utilisation: o.physical_utilisation,
    handle: o.handle,
  };
}

export function safeIso(ms: number): string {
  return Number.isFinite(ms) && Math.abs(ms) <= 8.64e15 ? isoTime(ms) : String(ms);
}

function byTime(a: StoredObject, b: StoredObject): number {
  return a.created - b.created || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0);
}

export interface ForestNode {
  readonly obj: StoredObject;
  readonly depth: number;
  /** Tree-drawing prefix ("│   ├── "), "" for roots. */
  readonly prefix: string;
  /** Its parent id names no object (reflink provenance of a destroyed object, or damage). */
  readonly parentGone: boolean;
  /** Reached again through a parent cycle (shown once, then cut). */
  readonly cycle: boolean;
}

/**
 * Every object in pre-order: roots (no parent, or a parent that no longer exists) by time,
 * each followed by its children by time. `keep` limits the forest to some objects (a VDI's
 * lineage); objects only reachable through a parent cycle are appended as extra roots.
 */
export function forest(objects: readonly StoredObject[], keep?: ReadonlySet<string>): ForestNode[] {
  const byId = new Map(objects.map((o) => [o.id, o]));
  const kids = new Map<string, StoredObject[]>();
  const roots: StoredObject[] = [];
  for (const o of objects) {
    if (keep && !keep.has(o.id)) continue;
    if (o.parent !== undefined && byId.has(o.parent) && (!keep || keep.has(o.parent))) {
      let l = kids.get(o.parent);
      if (!l) kids.set(o.parent, (l = []));
      l.push(o);
    } else roots.push(o);
  }
  for (const l of kids.values()) l.sort(byTime);
  roots.sort(byTime);
  const out: ForestNode[] = [];
  const seen = new Set<string>();
  const walk = (o: StoredObject, depth: number, lead: string, branch: string): void => {
    const cycle = seen.has(o.id);
    out.push({ obj: o, depth, prefix: branch, parentGone: o.parent !== undefined && !byId.has(o.parent), cycle });
    if (cycle) return;
    seen.add(o.id);
    const children = kids.get(o.id) ?? [];
    children.forEach((c, i) => {
      const last = i === children.length - 1;
      walk(c, depth + 1, lead + (last ? '    ' : '│   '), lead + (last ? '└── ' : '├── '));
    });
  };
  for (const r of roots) walk(r, 0, '', '');
  // Parent cycles have no root: show each ring from its smallest id.
  const rest = objects.filter((o) => (!keep || keep.has(o.id)) && !seen.has(o.id)).sort((a, b) => (a.id < b.id ? -1 : 1));
  for (const o of rest) if (!seen.has(o.id)) walk(o, 0, '', '');
  return out;
}

/** The object a --vdi names: the one backing it, else a tombstone that backed it, else an object id. */
export function findVdi(objects: readonly StoredObject[], tree: LineageTree, uuid: string): StoredObject | undefined {
  const visible = tree.byVdi(uuid);
  if (visible) return objects.find((o) => o.id === visible.id);
  return objects.filter((o) => o.vdi === uuid).sort(byTime).pop() ?? objects.find((o) => o.id === uuid);
}

/** `id`'s ancestors and everything below it: its lineage. */
export function lineageOf(objects: readonly StoredObject[], id: string): Set<string> {
  const byId = new Map(objects.map((o) => [o.id, o]));
  const keep = new Set<string>();
  for (let cur = byId.get(id); cur !== undefined && !keep.has(cur.id); cur = cur.parent === undefined ? undefined : byId.get(cur.parent)) {
    keep.add(cur.id);
  }
  const kids = new Map<string, string[]>();
  for (const o of objects) {
    if (o.parent === undefined) continue;
    let l = kids.get(o.parent);
    if (!l) kids.set(o.parent, (l = []));
    l.push(o.id);
  }
  const stack = [id];
  const below = new Set<string>();
  while (stack.length > 0) {
    const x = stack.pop()!;
    if (below.has(x)) continue;
    below.add(x);
    keep.add(x);
    for (const c of kids.get(x) ?? []) stack.push(c);
  }
  return keep;
}
