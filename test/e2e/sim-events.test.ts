// event.from / event.inject: xapi's token format, blocking with a timeout,
// add/mod/del operations, per-object classes and valid_ref_counts; tasks as
// Async calls leave them.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { Client, removeDir, startSim, type SimProc } from './sim-helpers.js';

interface Ev {
  class: string;
  operation: string;
  ref: string;
  snapshot?: Record<string, unknown>;
}
interface From {
  events: Ev[];
  token: string;
  valid_ref_counts: Record<string, number>;
}

let sim: SimProc;
let c: Client;

beforeAll(async () => {
  sim = await startSim();
  c = await new Client(sim.url).login();
});
afterAll(async () => {
  await sim?.stop();
  if (sim) removeDir(sim.dir);
});

describe('events', () => {
  it('returns every object for an empty token, with a %020Ld,%020Ld token', async () => {
    const r = await c.call<From>('event.from', ['pool', 'host', 'VM'], '', 0.0);
    expect(r.token).toMatch(/^\d{20},\d{20}$/);
    expect(r.events.map((e) => e.class).sort()).toEqual(['host', 'pool', 'vm']);
    expect(r.events.every((e) => e.operation === 'add')).toBe(true);
    expect(r.valid_ref_counts).toEqual({ pool: 1, host: 1, vm: 1 });
  });

  it('blocks until the timeout when nothing changes', async () => {
    const { token } = await c.call<From>('event.from', ['vm'], '', 0.0);
    const t0 = Date.now();
    const r = await c.call<From>('event.from', ['vm'], token, 0.5);
    expect(r.events).toEqual([]);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(450);
  });

  it('wakes up on a change and reports add, mod and del', async () => {
    const { token } = await c.call<From>('event.from', ['vm'], '', 0.0);
    const pending = c.call<From>('event.from', ['vm'], token, 30.0);
    const vm = await c.call<string>('VM.create', { name_label: 'ev' });
    const r1 = await pending;
    expect(r1.events).toEqual([expect.objectContaining({ class: 'vm', operation: 'add', ref: vm })]);
    expect(r1.events[0]!.snapshot).toMatchObject({ name_label: 'ev' });
    await c.call('VM.set_name_label', vm, 'ev2');
    const r2 = await c.call<From>('event.from', ['vm'], r1.token, 1.0);
    expect(r2.events).toEqual([expect.objectContaining({ operation: 'mod', ref: vm })]);
    await c.call('VM.destroy', vm);
    const r3 = await c.call<From>('event.from', ['vm'], r2.token, 1.0);
    expect(r3.events).toEqual([expect.objectContaining({ operation: 'del', ref: vm })]);
  });

  it('event.inject returns a token from which the touched object is reported', async () => {
    const pool = (await c.call<string[]>('pool.get_all'))[0]!;
    const token = await c.call<string>('event.inject', 'pool', pool);
    expect(token).toMatch(/^\d{20},\d{20}$/);
    const r = await c.call<From>('event.from', ['pool'], token, 1.0);
    expect(r.events).toEqual([expect.objectContaining({ class: 'pool', operation: 'mod', ref: pool })]);
  });

  it('follows one task through task/<ref> until it completes, with its result as an XML-RPC value', async () => {
    const vm = await c.call<string>('VM.create', { name_label: 'tasky' });
    const task = await c.call<string>('Async.VM.clone', vm, 'tasky2');
    let token = '';
    let rec: Record<string, unknown> | undefined;
    for (let i = 0; i < 50; i++) {
      const r = await c.call<From>('event.from', [`task/${task}`], token, 5.0);
      token = r.token;
      expect(r.events.every((e) => e.ref === task)).toBe(true);
      const last = r.events.pop();
      if (last?.snapshot && last.snapshot.status !== 'pending') {
        rec = last.snapshot;
        break;
      }
    }
    expect(rec).toMatchObject({ status: 'success', progress: 1, name_label: 'Async.VM.clone', error_info: [] });
    expect(rec!.result).toMatch(/^<value>OpaqueRef:[0-9a-f-]+<\/value>$/);
    await c.call('task.destroy', task);
    const r = await c.call<From>('event.from', [`task/${task}`], token, 1.0);
    expect(r.events).toEqual([expect.objectContaining({ operation: 'del', ref: task })]);
  });

  it('records failures in error_info and supports task.create / cancel', async () => {
    const task = await c.call<string>('Async.VM.snapshot', 'OpaqueRef:missing', 'x');
    for (;;) {
      const st = await c.call('task.get_status', task);
      if (st !== 'pending') break;
      await new Promise((r) => setTimeout(r, 10));
    }
    expect(await c.call('task.get_error_info', task)).toEqual(['HANDLE_INVALID', 'VM', 'OpaqueRef:missing']);
    expect(await c.call('task.get_status', task)).toBe('failure');
    const t2 = await c.call<string>('task.create', 'mine', 'desc');
    await c.call('task.cancel', t2);
    expect(await c.call('task.get_status', t2)).toBe('cancelling');
  });
});
