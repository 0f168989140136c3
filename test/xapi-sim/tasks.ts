// Tasks: Async.* runs, task.create/cancel/destroy, and the sub-tasks xapi
// creates when one call drives another (VM.snapshot -> Async.VDI.snapshot).
// A task's result is the XML-RPC <value> string of the call's result.
import type { Ctx, Registry } from './api.js';
import type { Db } from './db.js';
import { encodeXmlValue } from './rpc-xml.js';
import { ApiError, NULL_REF, xapiDate, type Wire } from './wire.js';

export function createTask(db: Db, host: string, name: string, description: string, session: string, parent?: string): string {
  return db.create('task', {
    name_label: name,
    name_description: description,
    created: xapiDate(),
    status: 'pending',
    resident_on: host,
    progress: 0,
    subtask_of: parent && parent.startsWith('OpaqueRef:') ? parent : NULL_REF,
    session,
  });
}

export function finishTask(db: Db, task: string, outcome: { ok: true; value: Wire | void } | { ok: false; error: unknown }): void {
  if (!db.has('task', task)) return; // destroyed meanwhile
  const now = xapiDate();
  if (outcome.ok) {
    const v = outcome.value;
    db.update('task', task, {
      result: v === undefined || v === '' ? '' : encodeXmlValue(v),
      progress: 1,
      finished: now,
      status: 'success',
    });
    return;
  }
  const e = asApiError(outcome.error);
  const cancelled = e.code === 'TASK_CANCELLED';
  db.update('task', task, {
    error_info: e.description,
    progress: 1,
    finished: now,
    status: cancelled ? 'cancelled' : 'failure',
  });
}

export function asApiError(e: unknown): ApiError {
  if (e instanceof ApiError) return e;
  const msg = e instanceof Error ? e.message : String(e);
  return new ApiError('INTERNAL_ERROR', [msg]);
}

/** Throws TASK_CANCELLED if a client asked to cancel the task of this call. */
export function checkCancel(ctx: Ctx): void {
  if (!ctx.task.startsWith('OpaqueRef:') || !ctx.db.has('task', ctx.task)) return;
  if (ctx.db.field('task', ctx.task, 'status') === 'cancelling') throw new ApiError('TASK_CANCELLED', [ctx.task]);
}

export function setProgress(ctx: Ctx, p: number): void {
  if (ctx.task.startsWith('OpaqueRef:') && ctx.db.has('task', ctx.task)) ctx.db.set('task', ctx.task, 'progress', p);
}

/** Runs fn as xapi runs an Async sub-call: a sub-task, waited for, then destroyed. */
export async function withSubtask<T extends Wire | void>(ctx: Ctx, name: string, fn: (c: Ctx) => Promise<T>): Promise<T> {
  const task = createTask(ctx.db, ctx.sim.host, name, '', ctx.session, ctx.task);
  const sub: Ctx = { ...ctx, task, method: name.replace(/^Async\./, '') };
  try {
    const v = await fn(sub);
    finishTask(ctx.db, task, { ok: true, value: v });
    return v;
  } catch (e) {
    finishTask(ctx.db, task, { ok: false, error: e });
    throw e;
  } finally {
    if (ctx.db.has('task', task)) ctx.db.destroy('task', task);
  }
}

export function registerTasks(reg: Registry): void {
  reg.add('task.create', {
    params: [
      ['label', 'string'],
      ['description', 'string'],
    ],
    fn: (c, label: string, description: string) => createTask(c.db, c.sim.host, label, description, c.session),
  });
  reg.add('task.destroy', {
    params: [['self', 'ref']],
    fn: (c, self: string) => {
      c.db.get('task', self);
      c.db.destroy('task', self);
    },
  });
  reg.add('task.cancel', {
    params: [['task', 'ref']],
    fn: (c, task: string) => {
      if (c.db.field('task', task, 'status') === 'pending') c.db.set('task', task, 'status', 'cancelling');
    },
  });
  reg.add('task.set_status', {
    params: [
      ['self', 'ref'],
      ['value', 'string'],
    ],
    fn: (c, self: string, v: string) => {
      if (!['pending', 'success', 'failure', 'cancelling', 'cancelled'].includes(v)) throw new ApiError('ENUM_VALUE_INVALID', ['status', v]);
      c.db.set('task', self, 'status', v);
    },
  });
  reg.add('task.set_progress', {
    params: [
      ['self', 'ref'],
      ['value', 'float'],
    ],
    fn: (c, self: string, v: number) => c.db.set('task', self, 'progress', v),
  });
  reg.add('task.set_result', {
    params: [
      ['self', 'ref'],
      ['value', 'string'],
    ],
    fn: (c, self: string, v: string) => c.db.set('task', self, 'result', v),
  });
  reg.add('task.set_error_info', {
    params: [
      ['self', 'ref'],
      ['value', 'set'],
    ],
    fn: (c, self: string, v: string[]) => c.db.set('task', self, 'error_info', v),
  });
}
