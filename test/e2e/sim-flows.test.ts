// Storage and VM flows through the fixture plugin: the SM calls xapi makes and
// their order, the DB effects (dangling snapshot_of, lineage re-pointing), the
// SR.scan fixed point, and persistence across a restart.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ApiFailure, Client, readSmLog, removeDir, ROOT, startSim, type SimProc, type SmLogEntry } from './sim-helpers.js';

type Rec = Record<string, unknown>;

function member(e: SmLogEntry, name: string): string | undefined {
  return new RegExp(`<member><name>${name}</name><value>([^<]*)</value>`).exec(e.argv1)?.[1];
}

async function setup(c: Client, dir: string, type = 'filefixture', dc: Record<string, string> = {}) {
  const host = (await c.call<string[]>('host.get_all'))[0]!;
  const sr = await c.callAsync<string>('SR.create', host, { path: path.join(dir, 'sr'), ...dc }, '0', 'sr', '', type, 'user', false, {});
  const mkdisk = (name: string) =>
    c.callAsync<string>('VDI.create', { name_label: name, name_description: '', SR: sr, virtual_size: String(1 << 20), type: 'user', sharable: false, read_only: false, other_config: { tag: name }, xenstore_data: {}, sm_config: {}, tags: [] });
  const mkvm = async (name: string, disks: string[]) => {
    const mem = String(4 << 20); // keeps checkpoint's suspend image small
    const vm = await c.call<string>('VM.create', { name_label: name, memory_static_max: mem, memory_dynamic_max: mem, memory_dynamic_min: mem, memory_static_min: mem });
    for (const [i, d] of disks.entries()) await c.call('VBD.create', { VM: vm, VDI: d, userdevice: String(i), bootable: i === 0, mode: 'RW', type: 'Disk', empty: false, other_config: {} });
    return vm;
  };
  return { host, sr, mkdisk, mkvm };
}

const diskOf = async (c: Client, vm: string, userdevice: string) => {
  for (const vbd of await c.call<string[]>('VM.get_VBDs', vm)) {
    if ((await c.call('VBD.get_userdevice', vbd)) === userdevice) return c.call<string>('VBD.get_VDI', vbd);
  }
  throw new Error('no such disk');
};

describe('classic flows', () => {
  let sim: SimProc;
  let c: Client;
  let env: Awaited<ReturnType<typeof setup>>;
  const since = () => {
    const n = readSmLog(sim.smLog).length;
    return () => readSmLog(sim.smLog).slice(n);
  };

  beforeAll(async () => {
    sim = await startSim();
    c = await new Client(sim.url).login();
    env = await setup(c, sim.dir);
  });
  afterAll(async () => {
    await sim?.stop();
    if (sim) removeDir(sim.dir);
  });

  it('reverts in the classic order: shutdown, vdi_delete of current disks, then vdi_clone of snapshot disks', async () => {
    const d0 = await env.mkdisk('d0');
    const d1 = await env.mkdisk('d1');
    const vm = await env.mkvm('rv', [d0, d1]);
    let log = since();
    await c.callAsync('VM.start', vm, false, false);
    expect(log().map((e) => e.cmd)).toEqual(['vdi_epoch_begin', 'vdi_epoch_begin', 'vdi_attach', 'vdi_activate', 'vdi_attach', 'vdi_activate']);
    expect(log()[2]!.argv1).toContain('<member><name>args</name><value><array><data><value>true</value></data></array></value></member>');

    log = since();
    const snapA = await c.callAsync<string>('VM.snapshot', vm, 'A');
    expect(log().map((e) => e.cmd)).toEqual(['vdi_snapshot', 'vdi_update', 'vdi_snapshot', 'vdi_update']);
    expect(member(log()[0]!, 'epochhint')).toMatch(/^[0-9a-f-]{36}$/);
    const snapB = await c.callAsync<string>('VM.snapshot', vm, 'B'); // a sibling snapshot of the same disks
    const rec = await c.call<Rec>('VM.get_record', snapA);
    expect(rec).toMatchObject({ is_a_snapshot: true, is_a_template: true, snapshot_of: vm, power_state: 'Halted', snapshot_info: { 'disk-snapshot-type': 'crash_consistent', 'power-state-at-snapshot': 'Running' } });
    expect(await c.call('VM.get_parent', vm)).toBe(snapB);
    expect(await c.call('VM.get_parent', snapB)).toBe(snapA);
    const snapVbd = (await c.call<string[]>('VM.get_VBDs', snapA))[0]!;
    expect(await c.call('VBD.get_other_config', snapVbd)).toEqual({ owner: '' });
    const a0 = await diskOf(c, snapA, '0');
    const b0 = await diskOf(c, snapB, '0');
    expect(await c.call('VDI.get_other_config', a0)).toEqual({ tag: 'd0' }); // the source's whole map
    expect(await c.call('VDI.get_snapshot_of', a0)).toBe(d0);

    log = since();
    await c.callAsync('VM.revert', snapA);
    const calls = log();
    const uuidOf = async (ref: string) => (await c.call<Record<string, Rec>>('VDI.get_all_records_where', `field "uuid" <> ""`))[ref]?.uuid;
    expect(calls.map((e) => e.cmd)).toEqual([
      'vdi_deactivate',
      'vdi_detach',
      'vdi_deactivate',
      'vdi_detach',
      'vdi_epoch_end',
      'vdi_epoch_end',
      'vdi_delete',
      'vdi_delete',
      'vdi_clone',
      'vdi_update',
      'vdi_clone',
      'vdi_update',
    ]);
    expect([member(calls[6]!, 'vdi_ref'), member(calls[7]!, 'vdi_ref')]).toEqual([d0, d1]);
    expect(member(calls[8]!, 'vdi_ref')).toBe(a0);
    expect(await c.call('VM.get_power_state', vm)).toBe('Halted');
    const n0 = await diskOf(c, vm, '0');
    expect(n0).not.toBe(d0);
    expect(await uuidOf(n0)).toBeDefined();
    // every VDI whose snapshot_of was the deleted disk now points at the clone, siblings included
    expect(await c.call('VDI.get_snapshot_of', a0)).toBe(n0);
    expect(await c.call('VDI.get_snapshot_of', b0)).toBe(n0);
    expect(await c.call('VDI.get_is_a_snapshot', n0)).toBe(false);
    expect(await c.call('VM.get_parent', vm)).toBe(snapA);
    await expect(c.call('VDI.get_record', d0)).rejects.toMatchObject({ description: ['HANDLE_INVALID', 'VDI', d0] });
  });

  it('keeps dangling snapshot_of refs after VDI.destroy', async () => {
    const d = await env.mkdisk('dangle');
    const s = await c.callAsync<string>('VDI.snapshot', d, {});
    await c.callAsync('VDI.destroy', d);
    expect(await c.call('VDI.get_snapshot_of', s)).toBe(d);
    await expect(c.call('VDI.get_record', d)).rejects.toMatchObject({ code: 'HANDLE_INVALID' });
    const where = await c.call<Rec>('VDI.get_all_records_where', `field "snapshot_of" = "${d}"`);
    expect(Object.keys(where)).toEqual([s]);
    const r = (await c.call<Rec>('VDI.get_record', s)) as { snapshot_of: string; is_a_snapshot: boolean };
    expect(r).toMatchObject({ snapshot_of: d, is_a_snapshot: true });
  });

  it('refuses destroying an attached VDI with VDI_IN_USE and needs VM halted to destroy', async () => {
    const d = await env.mkdisk('busy');
    const vm = await env.mkvm('busy', [d]);
    await c.callAsync('VM.start', vm, false, false);
    await expect(c.callAsync('VDI.destroy', d)).rejects.toMatchObject({ description: ['VDI_IN_USE', d, 'destroy'] });
    await expect(c.callAsync('VM.destroy', vm)).rejects.toMatchObject({ description: ['VM_BAD_POWER_STATE', vm, 'halted', 'running'] });
    await expect(c.callAsync('VM.start', vm, false, false)).rejects.toMatchObject({ code: 'VM_BAD_POWER_STATE' });
    await c.callAsync('VM.clean_shutdown', vm);
    await c.callAsync('VM.destroy', vm);
    expect(await c.call('VDI.get_VBDs', d)).toEqual([]); // VM.destroy keeps the disks
  });

  it('checkpoints a running VM: suspend image created, snapshotted, then deleted', async () => {
    const d = await env.mkdisk('cp');
    const vm = await env.mkvm('cp', [d]);
    await c.callAsync('VM.start', vm, false, false);
    const log = since();
    const cp = await c.callAsync<string>('VM.checkpoint', vm, 'cp1');
    expect(log().map((e) => e.cmd)).toEqual([
      'vdi_create',
      'vdi_deactivate',
      'vdi_detach',
      'vdi_epoch_end',
      'vdi_snapshot',
      'vdi_update',
      'vdi_snapshot',
      'vdi_update',
      'vdi_epoch_begin',
      'vdi_attach',
      'vdi_activate',
      'vdi_delete',
    ]);
    expect(member(log()[0]!, 'vdi_type')).toBe('suspend');
    expect(await c.call('VM.get_power_state', cp)).toBe('Suspended');
    expect(await c.call('VM.get_power_state', vm)).toBe('Running');
    const sv = await c.call<string>('VM.get_suspend_VDI', cp);
    expect(await c.call('VDI.get_type', sv)).toBe('suspend');
    await c.callAsync('VM.hard_shutdown', vm);
  });

  it('clones, copies and resizes disks; clone and copy of a VM', async () => {
    const d = await env.mkdisk('src');
    const file = (v: string) => c.call<string>('VDI.get_location', v).then((l) => path.join(sim.dir, 'sr', `${l}.img`));
    const buf = Buffer.alloc(1 << 20);
    buf.write('hello', 4096);
    fs.writeFileSync(await file(d), buf);
    let log = since();
    const cl = await c.callAsync<string>('VDI.clone', d, {});
    expect(log().map((e) => e.cmd)).toEqual(['vdi_clone', 'vdi_update']);
    expect(await c.call('VDI.get_is_a_snapshot', cl)).toBe(false);
    log = since();
    const cp = await c.callAsync<string>('VDI.copy', d, env.sr);
    expect(log().map((e) => e.cmd)).toEqual(['vdi_create', 'vdi_attach', 'vdi_activate', 'vdi_attach', 'vdi_activate', 'vdi_deactivate', 'vdi_detach', 'vdi_deactivate', 'vdi_detach']);
    expect(member(log()[1]!, 'vdi_ref')).toBe(d);
    expect(log()[1]!.argv1).toContain('<value>false</value>'); // source read-only
    expect(fs.readFileSync(await file(cp))).toEqual(buf);
    // the source's map, plus the content_id xapi sets when a RW attach ends
    expect(await c.call('VDI.get_other_config', cp)).toEqual({ tag: 'src', content_id: expect.stringMatching(/^[0-9a-f-]{36}$/) });
    await c.callAsync('VDI.resize', cp, String(2 << 20));
    expect(await c.call('VDI.get_virtual_size', cp)).toBe(String(2 << 20));
    const vm = await env.mkvm('cl', [d]);
    log = since();
    const vmc = await c.callAsync<string>('VM.clone', vm, 'clone');
    expect(log().map((e) => e.cmd)).toEqual(['vdi_clone', 'vdi_update']);
    expect(await c.call<Rec>('VM.get_record', vmc)).toMatchObject({ is_a_snapshot: false, snapshot_of: 'OpaqueRef:NULL', name_label: 'clone' });
    const vmcp = await c.callAsync<string>('VM.copy', vm, 'copy', 'OpaqueRef:NULL');
    expect(await diskOf(c, vmcp, '0')).not.toBe(d);
  });

  it('set_on_boot reset clones then deletes the clone', async () => {
    const d = await env.mkdisk('reset');
    const log = since();
    await c.call('VDI.set_on_boot', d, 'reset');
    expect(log().map((e) => e.cmd)).toEqual(['vdi_clone', 'vdi_delete']);
    expect(await c.call('VDI.get_on_boot', d)).toBe('reset');
    const vm = await env.mkvm('reset', [d]);
    await expect(c.callAsync('VM.snapshot', vm, 'x')).rejects.toMatchObject({ code: 'VDI_ON_BOOT_MODE_INCOMPATIBLE_WITH_OPERATION' });
  });

  it('scans to a fixed point and counts an out-of-band file in two rounds', async () => {
    const loc = '0a0b0c0d-0000-4000-8000-000000000001';
    fs.writeFileSync(path.join(sim.dir, 'sr', `${loc}.img`), Buffer.alloc(4096));
    const log = since();
    await c.callAsync('SR.scan', env.sr);
    expect(log().map((e) => e.cmd)).toEqual(['sr_scan', 'sr_update', 'sr_scan', 'sr_update']);
    const vdi = await c.call<string>('VDI.get_by_uuid', loc);
    expect(await c.call('VDI.get_location', vdi)).toBe(loc);
    const all = await c.call<Record<string, { virtual_size: string }>>('VDI.get_all_records_where', `field "SR" = "${env.sr}"`);
    const va = Object.values(all).reduce((s, r) => s + Number(r.virtual_size), 0);
    expect(Number(await c.call('SR.get_virtual_allocation', env.sr))).toBe(va);
  });

  it('hides the VDI.revert API in the classic (XCP-ng 8.3) mode', async () => {
    await expect(c.call('VDI.revert', 'OpaqueRef:x')).rejects.toMatchObject({ code: 'MESSAGE_METHOD_UNKNOWN' });
  });

  it('keeps its state across a restart and re-attaches plugged SRs', async () => {
    const state = JSON.parse(fs.readFileSync(sim.state, 'utf8')) as { version: number };
    expect(state.version).toBe(1);
    const before = await c.call<string[]>('VDI.get_all');
    await sim.stop();
    const again = await startSim({ dir: sim.dir });
    sim = again;
    const c2 = new Client(sim.url);
    c2.session = c.session; // sessions survive, as in xapi's DB
    expect((await c2.call<string[]>('VDI.get_all')).sort()).toEqual(before.sort());
    expect(readSmLog(sim.smLog).slice(-2).map((e) => e.cmd)).toEqual(['sr_get_driver_info', 'sr_attach']);
    c = c2;
  });

  it('destroys an SR: sr_attach, sr_delete (SR_NOT_EMPTY while VDIs remain), forget', async () => {
    const pbd = (await c.call<string[]>('SR.get_PBDs', env.sr))[0]!;
    await c.callAsync('PBD.unplug', pbd);
    await expect(c.callAsync('SR.destroy', env.sr)).rejects.toMatchObject({ description: ['SR_NOT_EMPTY'] });
    expect(await c.call('PBD.get_currently_attached', pbd)).toBe(false);
    await c.callAsync('SR.forget', env.sr);
    expect(await c.call('SR.get_all')).toEqual([]);
    expect(await c.call('VDI.get_all')).toEqual([]);
  });
});

describe('SR.scan retry limit', () => {
  it('fails with INTERNAL_ERROR after 10 retries when the plugin keeps changing the SR', async () => {
    const sim = await startSim();
    try {
      const c = await new Client(sim.url).login();
      const env = await setup(c, sim.dir, 'filefixture', { 'scan-mode': 'churn' });
      const n = readSmLog(sim.smLog).length;
      await expect(c.callAsync('SR.scan', env.sr)).rejects.toEqual(new ApiFailure(['INTERNAL_ERROR', 'SR.scan retry limit exceeded']));
      const cmds = readSmLog(sim.smLog).slice(n).map((e) => e.cmd);
      expect(cmds.filter((x) => x === 'sr_scan')).toHaveLength(11);
      expect(cmds.filter((x) => x === 'sr_update')).toHaveLength(11);
    } finally {
      await sim.stop();
      removeDir(sim.dir);
    }
  });
});

describe('VM.revert with VDI.revert (xapi >= 26.16)', () => {
  it('uses vdi_revert when the SR advertises VDI_REVERT, keeping the disk', async () => {
    const sim = await startSim({ smDir: path.join(ROOT, 'test/fixtures/filesr-revert'), extraArgs: ['--revert-flow', 'vdi-revert'] });
    try {
      const c = await new Client(sim.url).login();
      const env = await setup(c, sim.dir, 'revfixture');
      const d = await env.mkdisk('d');
      const vm = await env.mkvm('v', [d]);
      const snap = await c.callAsync<string>('VM.snapshot', vm, 's');
      const sd = await diskOf(c, snap, '0');
      const n = readSmLog(sim.smLog).length;
      await c.callAsync('VM.revert', snap);
      const calls = readSmLog(sim.smLog).slice(n);
      expect(calls.map((e) => e.cmd)).toEqual(['vdi_revert']);
      expect(member(calls[0]!, 'vdi_ref')).toBe(sd);
      expect(calls[0]!.argv1).toContain(`<member><name>args</name><value><array><data><value>${d}</value></data></array></value></member>`);
      expect(await diskOf(c, vm, '0')).toBe(d);
      expect(await c.call('VDI.get_snapshot_of', sd)).toBe(d);
    } finally {
      await sim.stop();
      removeDir(sim.dir);
    }
  });

  it('falls back to delete + clone when the SR lacks VDI_REVERT', async () => {
    const sim = await startSim({ extraArgs: ['--revert-flow', 'vdi-revert'] });
    try {
      const c = await new Client(sim.url).login();
      const env = await setup(c, sim.dir);
      const vm = await env.mkvm('v', [await env.mkdisk('d')]);
      const snap = await c.callAsync<string>('VM.snapshot', vm, 's');
      const n = readSmLog(sim.smLog).length;
      await c.callAsync('VM.revert', snap);
      expect(readSmLog(sim.smLog).slice(n).map((e) => e.cmd)).toEqual(['vdi_delete', 'vdi_clone', 'vdi_update']);
    } finally {
      await sim.stop();
      removeDir(sim.dir);
    }
  });
});

describe('callbacks restricted to the SM session (--strict-sm-callbacks)', () => {
  it('refuses hidden calls from a user session but serves the plugin', async () => {
    const sim = await startSim({ extraArgs: ['--strict-sm-callbacks'] });
    try {
      const c = await new Client(sim.url).login();
      const env = await setup(c, sim.dir);
      const d = await env.mkdisk('d'); // the plugin's db_introduce went through
      await c.callAsync('VDI.snapshot', d, {});
      await expect(c.call('VDI.set_virtual_size', d, '1')).rejects.toMatchObject({ code: 'RBAC_PERMISSION_DENIED' });
      await expect(c.call('VDI.db_forget', d)).rejects.toMatchObject({ code: 'RBAC_PERMISSION_DENIED' });
    } finally {
      await sim.stop();
      removeDir(sim.dir);
    }
  });
});
