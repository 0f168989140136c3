// Structural checks of a set of lineage records, for `flatsnap check` and for loading.
import { type Capabilities, type LineageObject, isSnapshotKind, isVisible, snapshotNameOf } from './model.js';

export type IssueCode =
  | 'duplicate-id' // two records with one id
  | 'duplicate-vdi' // two visible objects claim one VDI (two volumes: an interrupted swap, a warning)
  | 'missing-parent' // a snapshot without the volume it belongs to (dependent backends)
  | 'dangling-parent' // parent id names no object (dependent backends)
  | 'bad-parent-kind' // snapshot of a non-volume, or clone of a non-snapshot (dependent backends)
  | 'cycle' // following parents comes back to the start
  | 'internal-with-vdi' // an internal snapshot claims a VDI
  | 'snapshot-without-vdi' // a snapshot-VDI object without its VDI
  | 'snapshot-id-mismatch' // a snapshot VDI whose object id is not its VDI uuid
  | 'bad-time' // creation time not finite
  | 'bad-name' // a snapshot whose id/time cannot form a snapshot name
  | 'reclaimable'; // nothing needs it any more: gcPlan would destroy it (warning)

export interface Issue {
  readonly code: IssueCode;
  readonly severity: 'error' | 'warning';
  readonly object: string;
  readonly message: string;
}

const error = (code: IssueCode, object: string, message: string): Issue => ({ code, severity: 'error', object, message });

/** Every structural problem in `objects` (dependency problems only matter on dependent backends). */
export function validateObjects(objects: Iterable<LineageObject>, caps: Capabilities): Issue[] {
  const issues: Issue[] = [];
  const byId = new Map<string, LineageObject>();
  for (const o of objects) {
    if (byId.has(o.id)) issues.push(error('duplicate-id', o.id, `object ${o.id} is recorded more than once`));
    byId.set(o.id, o);
  }
  const vdiOwner = new Map<string, string>();
  for (const o of byId.values()) {
    if (!Number.isFinite(o.created)) issues.push(error('bad-time', o.id, `creation time ${o.created}`));
    if (o.kind === 'internal-snapshot' && o.vdi !== undefined) {
      issues.push(error('internal-with-vdi', o.id, `internal snapshot claims VDI ${o.vdi}`));
    }
    if (o.kind === 'snapshot') {
      if (o.vdi === undefined) issues.push(error('snapshot-without-vdi', o.id, 'snapshot VDI object without a VDI'));
      else if (o.vdi !== o.id) issues.push(error('snapshot-id-mismatch', o.id, `backs VDI ${o.vdi}`));
    }
    if (isSnapshotKind(o.kind) && Number.isFinite(o.created)) {
      try {
        snapshotNameOf(o);
      } catch (e) {
        issues.push(error('bad-name', o.id, e instanceof Error ? e.message : String(e)));
      }
    }
    if (isVisible(o)) {
      const other = vdiOwner.get(o.vdi!);
      if (other === undefined) vdiOwner.set(o.vdi!, o.id);
      else if (o.kind === 'volume' && byId.get(other)?.kind === 'volume') {
        issues.push({
          code: 'duplicate-vdi',
          severity: 'warning',
          object: o.id,
          message: `VDI ${o.vdi} is also claimed by ${other} (interrupted swap?): the later one backs it, gcPlan retires the other`,
        });
      } else issues.push(error('duplicate-vdi', o.id, `VDI ${o.vdi} is also claimed by ${other}`));
    }
    if (caps.dependent) checkParent(o, byId, issues);
  }
  issues.push(...findCycles(byId));
  return issues;
}

function checkParent(o: LineageObject, byId: Map<string, LineageObject>, issues: Issue[]): void {
  if (o.parent === undefined) {
    if (isSnapshotKind(o.kind)) issues.push(error('missing-parent', o.id, `${o.kind} without a volume`));
    return;
  }
  const p = byId.get(o.parent);
  if (p === undefined) {
    issues.push(error('dangling-parent', o.id, `parent ${o.parent} does not exist`));
  } else if (isSnapshotKind(o.kind) ? p.kind !== 'volume' : !isSnapshotKind(p.kind)) {
    issues.push(error('bad-parent-kind', o.id, `${o.kind} with a ${p.kind} parent ${p.id}`));
  }
}

/** One issue per parent cycle, reported on its smallest id. */
function findCycles(byId: Map<string, LineageObject>): Issue[] {
  const issues: Issue[] = [];
  const state = new Map<string, 'active' | 'done'>();
  for (const start of byId.keys()) {
    if (state.has(start)) continue;
    const path: string[] = [];
    let cur: string | undefined = start;
    while (cur !== undefined && byId.has(cur) && !state.has(cur)) {
      state.set(cur, 'active');
      path.push(cur);
      cur = byId.get(cur)!.parent;
    }
    if (cur !== undefined && state.get(cur) === 'active') {
      const ring = path.slice(path.indexOf(cur));
      const first = [...ring].sort()[0]!;
      issues.push(error('cycle', first, `parent cycle: ${[...ring, cur].join(' -> ')}`));
    }
    for (const id of path) state.set(id, 'done');
  }
  return issues;
}
