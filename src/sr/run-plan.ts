// The plan runner: carries out a lineage Plan (src/lineage) on a Backend, one
// action at a time, recording each finished action in the tree (applyAction) and
// keeping the call's object map in step, so the tree always says what storage holds.
//
// Undo (src/sr/undo.ts). Until the plan commits, every finished step registers its
// inverse on the caller's Undo, so a later failure (a later step, or the caller's
// own db_introduce after the plan) takes storage back to where it was:
//   create / snapshot / clone   -> destroy the new object
//   swap-vdi                    -> swap back
// The plan commits at its first irreversible step: a mark-tombstone (the VDI is gone
// from then on: there is no "un-tombstone" in the Backend contract), a rollback or a
// destroy. From there the plan only reclaims; the caller's earlier undos are dropped
// (undoing a swap after the old volume is destroyed would lose the VDI), and a failing
// reclaim step is logged and ends the run without failing the command: what it left is
// reclaimable, and gcPlan() (sr_scan, sr_delete) picks it up.
//
// Errors. A failing step before the commit rolls back and throws an SmError: the
// backend's own kind when it means something to the administrator (no space,
// read-only or unavailable SR, I/O error, in use, size), else the command's kind
// (VDISnapshot, VDIClone, VDIDelete, VDICreate...) with the backend's message.
import type { Backend, StoredObject, VdiMeta } from '../backends/backend.js';
import { SmError, type SmErrorKind } from '../errors.js';
import { type Action, type LineageTree, type Plan, LineageError } from '../lineage/index.js';
import { log } from '../log.js';
import { XapiError } from '../xapi/errors.js';
import type { Undo } from './undo.js';

/** SmError kinds a failing step reports as they are: they tell the administrator what to fix. */
export const PASS_THROUGH: ReadonlySet<SmErrorKind> = new Set<SmErrorKind>([
  'SRNoSpace',
  'SRUnavailable',
  'SharedFileSystemNoWrite',
  'EIO',
  'VDIInUse',
  'SRInUse',
  'VDISize',
  'LockErr',
  'SRUnknownType',
]);

/** `e` as the SmError a failed step should surface as. */
export function stepError(e: unknown, kind: SmErrorKind, what: string): SmError {
  if (e instanceof SmError && PASS_THROUGH.has(e.kind)) return e;
  const detail = e instanceof SmError ? (e.detail ?? e.message) : e instanceof Error ? e.message : String(e);
  return new SmError(kind, `${what}: ${detail}`);
}

// The reflink backend takes the lineage time of new objects as an optional last
// argument, so storage records the same creation time as the plan (ignored where absent).
type TimedBackend = Backend & {
  create(id: string, meta: VdiMeta, size: number, time?: number): Promise<StoredObject>;
  clone(id: string, from: StoredObject, meta?: VdiMeta, time?: number): Promise<StoredObject>;
};

export interface PlanTarget {
  backend: Backend;
  tree: LineageTree;
  objects: Map<string, StoredObject>;
}

export interface RunPlanOptions {
  /** The command's error kind for steps that fail without a more telling one. */
  fail: SmErrorKind;
  /** Where finished steps register their inverse (the caller's withUndo). */
  undo: Undo;
  /** Metadata of the VDI a create/snapshot/clone makes (only asked for actions that carry a vdi). */
  meta?: (vdi: string) => VdiMeta;
  /** Size of a `create`. */
  size?: number;
  /** Carries out forget-in-xapi (VDI.db_forget); failures are logged, never fatal. */
  forget?: (vdi: string) => Promise<void>;
  /** For log lines: "vdi_delete of <uuid>". */
  what: string;
}

export interface RunPlanResult {
  /** Objects made by the plan, in plan order. */
  created: StoredObject[];
  /** The plan reached an irreversible step (tombstone, rollback, destroy). */
  committed: boolean;
  /** A reclaim step after the commit failed: the rest was left for gcPlan. */
  incomplete?: { action: Action; error: string };
}

function need(objects: Map<string, StoredObject>, id: string, what: string): StoredObject {
  const o = objects.get(id);
  if (o === undefined) throw new SmError('SMGeneral', `${what}: object ${id} is not in the SR's inventory`);
  return o;
}

/** `o` with its lineage fields as the tree now has them (e.g. without a vdi after a swap). */
function withLineage(o: StoredObject, tree: LineageTree): StoredObject {
  const t = tree.get(o.id);
  if (t === undefined) return o;
  const { vdi: _vdi, ...rest } = o;
  return t.vdi === undefined ? { ...rest, deleted: t.deleted } : { ...rest, vdi: t.vdi, deleted: t.deleted };
}

function describe(a: Action): string {
  switch (a.op) {
    case 'create':
      return `create ${a.object}`;
    case 'snapshot':
      return `${a.kind} ${a.object} of ${a.of}`;
    case 'clone':
      return `clone ${a.object} of ${a.from}`;
    case 'mark-tombstone':
      return `tombstone ${a.object}`;
    case 'forget-in-xapi':
      return `forget VDI ${a.vdi} in xapi`;
    case 'swap-vdi':
      return `swap VDI ${a.vdi} from ${a.from} to ${a.to}`;
    case 'rollback':
      return `rollback ${a.object} to ${a.snapshot}`;
    case 'destroy':
      return `destroy ${a.object}`;
  }
}

const IRREVERSIBLE = new Set<Action['op']>(['mark-tombstone', 'rollback', 'destroy']);

/** Runs `plan` on `t.backend`, recording every finished action in `t.tree`. See the top of the file. */
export async function runPlan(t: PlanTarget, plan: Plan, o: RunPlanOptions): Promise<RunPlanResult> {
  const backend = t.backend as TimedBackend;
  const { tree, objects } = t;
  const undo = o.undo;
  const result: RunPlanResult = { created: [], committed: false };
  const metaOf = (vdi: string): VdiMeta => {
    if (!o.meta) throw new SmError('SMGeneral', `${o.what}: no metadata for the new VDI ${vdi}`);
    return o.meta(vdi);
  };
  const made = (obj: StoredObject): StoredObject => {
    objects.set(obj.id, obj);
    result.created.push(obj);
    undo.add(`destroy ${obj.id} (made by ${o.what})`, async () => {
      await backend.destroy(objects.get(obj.id) ?? obj);
      objects.delete(obj.id);
    });
    return obj;
  };

  for (const a of plan) {
    const step = describe(a);
    try {
      // The tree checks every action before storage sees it: a plan that no longer fits
      // (the SR changed under us) fails here with nothing done.
      switch (a.op) {
        case 'create':
          made(await backend.create(a.object, metaOf(a.vdi), o.size ?? 0, a.time));
          break;
        case 'snapshot':
          made(await backend.snapshot(a.object, need(objects, a.of, step), a.name, a.kind, a.vdi === undefined ? undefined : metaOf(a.vdi)));
          break;
        case 'clone':
          made(await backend.clone(a.object, need(objects, a.from, step), a.vdi === undefined ? undefined : metaOf(a.vdi), a.time));
          break;
        case 'swap-vdi': {
          const from = need(objects, a.from, step);
          const to = need(objects, a.to, step);
          await backend.swapVdi(a.vdi, from, to);
          undo.add(`swap VDI ${a.vdi} back to ${a.from}`, async () => {
            const f = objects.get(a.from);
            const tt = objects.get(a.to);
            if (f === undefined || tt === undefined) return;
            await backend.swapVdi(a.vdi, tt, f);
            const { vdi: _v, ...unbound } = tt;
            objects.set(a.to, unbound);
            objects.set(a.from, { ...f, vdi: a.vdi });
          });
          break;
        }
        case 'mark-tombstone':
          await backend.markTombstone(need(objects, a.object, step));
          break;
        case 'forget-in-xapi':
          break; // after the tree has recorded it, below
        case 'rollback':
          await backend.rollback(need(objects, a.object, step), need(objects, a.snapshot, step));
          break;
        case 'destroy':
          await backend.destroy(need(objects, a.object, step));
          break;
      }
    } catch (e) {
      if (a.op === 'rollback' && a.optional) {
        log().warn(`${o.what}: ${step} (optional) failed, ignored: ${e instanceof Error ? e.message : String(e)}`);
        continue;
      }
      if (result.committed) {
        const msg = e instanceof Error ? e.message : String(e);
        log().error(`${o.what}: ${step} failed after the point of no return; the rest of the plan is left for garbage collection: ${msg}`);
        result.incomplete = { action: a, error: msg };
        return result;
      }
      throw stepError(e, o.fail, `${o.what}: ${step}`);
    }

    // Record what storage now holds.
    try {
      tree.applyAction(a);
    } catch (e) {
      // The model refused what storage has just done: a bug or a concurrent change. Storage
      // is the truth; the next inventory reloads it.
      const msg = e instanceof LineageError ? e.message : String(e);
      if (result.committed) {
        log().error(`${o.what}: the lineage model refused ${step} after storage did it: ${msg}`);
        result.incomplete = { action: a, error: msg };
        return result;
      }
      throw new SmError(o.fail, `${o.what}: the lineage model refused ${step}: ${msg}`);
    }
    if (a.op === 'destroy') objects.delete(a.object);
    for (const id of touched(a)) {
      const s = objects.get(id);
      if (s !== undefined) objects.set(id, withLineage(s, tree));
    }

    if (a.op === 'forget-in-xapi' && o.forget) {
      try {
        await o.forget(a.vdi);
      } catch (e) {
        log().warn(`${o.what}: ${step} failed (xapi removes the row itself after vdi_delete; a scan does otherwise): ${e instanceof Error ? e.message : String(e)}`);
      }
    }

    if (IRREVERSIBLE.has(a.op) && !result.committed) {
      result.committed = true;
      undo.commit();
    }
  }
  return result;
}

function touched(a: Action): string[] {
  switch (a.op) {
    case 'swap-vdi':
      return [a.from, a.to];
    case 'forget-in-xapi':
      return [];
    default:
      return [a.object];
  }
}

/** XenAPI errors that mean "that VDI row is not there": a forget has nothing to do. */
export function isGoneInXapi(e: unknown): boolean {
  return e instanceof XapiError && (e.code === 'HANDLE_INVALID' || e.code === 'UUID_INVALID');
}

/** VDI.db_forget by uuid, tolerating a row that is already gone. */
export async function forgetByUuid(
  xapi: { VDI: { get_by_uuid(u: string): Promise<string>; db_forget(r: string): Promise<void> } },
  vdi: string,
): Promise<void> {
  let ref: string;
  try {
    ref = await xapi.VDI.get_by_uuid(vdi);
  } catch (e) {
    if (isGoneInXapi(e)) return;
    throw e;
  }
  await forgetRef(xapi, ref);
}

/** VDI.db_forget, tolerating a row that is already gone. */
export async function forgetRef(xapi: { VDI: { db_forget(r: string): Promise<void> } }, ref: string): Promise<void> {
  try {
    await xapi.VDI.db_forget(ref);
  } catch (e) {
    if (!isGoneInXapi(e)) throw e;
  }
}
