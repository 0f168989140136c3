// `flatsnap gc`: LineageTree.gcPlan() carried out through the Backend, under the SR lock.
// The plan holds only mark-tombstone, rollback (optional: a tombstone giving back its
// head) and destroy, children before parents. Each finished action is recorded in the
// tree, so every later one is checked against what storage now holds. The first failure
// ends the run (an optional rollback's is only reported): what is left stays reclaimable
// and the next gc or sr-scan picks it up.
import type { Backend, StoredObject } from '../backends/backend.js';
import type { Action, LineageTree } from '../lineage/index.js';
import { log } from '../log.js';
import type { Invocation } from './args.js';
import { kindName, markers, quotedLabel } from './objects.js';
import { type Io, type Timer, formatBytes, plural, printJson, table } from './output.js';
import { describeError, loadSr, openBackend, srUuidOf, withSrLock } from './storage.js';

type GcArgs = Extract<Invocation, { cmd: 'gc' }>;

export type StepStatus = 'planned' | 'done' | 'failed' | 'ignored' | 'not-run';

export interface GcStep {
  action: Action;
  /** The object acted on, as the inventory reported it. */
  object?: StoredObject;
  status: StepStatus;
  error?: string;
}

function target(a: Action): string {
  return a.op === 'forget-in-xapi' ? a.vdi : a.op === 'swap-vdi' ? a.from : a.object;
}

/** Runs the steps in order on `backend`, recording each in `tree`. Returns whether all succeeded. */
export async function carryOut(backend: Backend, tree: LineageTree, objects: Map<string, StoredObject>, steps: GcStep[]): Promise<boolean> {
  const need = (id: string): StoredObject => {
    const o = objects.get(id);
    if (o === undefined) throw new Error(`object ${id} is not in the inventory`);
    return o;
  };
  for (let i = 0; i < steps.length; i++) {
    const step = steps[i]!;
    const a = step.action;
    try {
      switch (a.op) {
        case 'mark-tombstone':
          await backend.markTombstone(need(a.object));
          break;
        case 'rollback':
          await backend.rollback(need(a.object), need(a.snapshot));
          break;
        case 'destroy':
          await backend.destroy(need(a.object));
          break;
        default:
          throw new Error(`a gc plan never holds ${a.op}`);
      }
      tree.applyAction(a);
      if (a.op === 'destroy') objects.delete(a.object);
      else if (a.op === 'mark-tombstone') objects.set(a.object, { ...need(a.object), deleted: true });
      step.status = 'done';
      log().info(`flatsnap gc: ${a.op} ${target(a)} done`);
    } catch (e) {
      step.error = describeError(e);
      if (a.op === 'rollback' && a.optional) {
        step.status = 'ignored';
        log().warn(`flatsnap gc: optional ${a.op} ${target(a)} failed, ignored: ${step.error}`);
        continue;
      }
      step.status = 'failed';
      log().error(`flatsnap gc: ${a.op} ${target(a)} failed; the rest is left for the next gc: ${step.error}`);
      for (const rest of steps.slice(i + 1)) rest.status = 'not-run';
      return false;
    }
  }
  return true;
}

export async function gcCommand(a: GcArgs, io: Io, timer: Timer): Promise<number> {
  const backend = await openBackend(a.target);
  const srUuid = await timer.time('probe', () => srUuidOf(backend));
  return withSrLock(srUuid, io, async () => {
    const sr = await loadSr(backend, io, timer, { srUuid, locked: true });
    const plan = timer.timeSync('plan', () => sr.tree.gcPlan());
    const objects = new Map(sr.byId);
    const steps: GcStep[] = plan.map((action) => {
      const object = objects.get(target(action));
      return { action, status: 'planned', ...(object === undefined ? {} : { object }) };
    });
    let ok = true;
    if (!a.dryRun && steps.length > 0) {
      log().info(`flatsnap gc on SR ${srUuid} (${sr.where}): ${plan.length} action(s)`);
      ok = await timer.time('reclaim', () => carryOut(backend, sr.tree, objects, steps));
    }
    const destroyed = steps.filter((s) => s.action.op === 'destroy' && s.status === (a.dryRun ? 'planned' : 'done'));
    const bytes = destroyed.reduce((n, s) => n + (s.object?.physical_utilisation ?? 0), 0);
    if (a.json) {
      printJson(io, {
        sr: { uuid: srUuid, backend: backend.kind, location: sr.where },
        dry_run: a.dryRun,
        complete: ok,
        actions: steps.map((s) => ({
          ...s.action,
          kind: s.object?.kind ?? null,
          vdi: s.object?.vdi ?? null,
          markers: s.object ? markers(s.object) : [],
          name_label: s.object?.meta?.name_label ?? null,
          physical_utilisation: s.object?.physical_utilisation ?? null,
          status: s.status,
          error: s.error ?? null,
        })),
        reclaimed: { objects: destroyed.length, physical_utilisation: bytes },
      });
      return ok ? 0 : 1;
    }
    io.out(`SR ${srUuid}  ${backend.kind}: ${sr.where}`);
    if (steps.length === 0) {
      io.out('nothing to reclaim: every object backs a VDI or something that does');
      return 0;
    }
    io.out(`${plural(steps.length, 'action')}${a.dryRun ? ' planned (dry run: nothing done)' : ''}:`);
    const rows = steps.map((s) => {
      const o = s.object;
      const what = s.action.op === 'rollback' ? `to ${s.action.snapshot}${s.action.optional ? ' (optional)' : ''}` : '';
      return [
        s.action.op,
        target(s.action),
        o ? `${kindName(o)}${markers(o).map((m) => ` [${m}]`).join('')}` : '',
        o ? formatBytes(o.physical_utilisation) : '',
        [what, o ? quotedLabel(o) : ''].filter(Boolean).join(' '),
        s.status + (s.error ? `: ${s.error}` : ''),
      ];
    });
    for (const l of table(rows, ['left', 'left', 'left', 'right'], ['ACTION', 'OBJECT', 'KIND', 'ALLOCATED', 'NAME', 'STATUS'])) io.out(`  ${l}`);
    const verb = a.dryRun ? 'would destroy' : 'destroyed';
    io.out(`${verb} ${plural(destroyed.length, 'object')}, ${formatBytes(bytes)} allocated (blocks still shared with other objects stay in use)`);
    if (!ok) io.out('gc stopped at the failed action; the rest is left for the next gc (see SMlog)');
    return ok ? 0 : 1;
  }, backend);
}
