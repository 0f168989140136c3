// Xen Orchestra's own XenAPI client against the simulator, over XML-RPC and
// JSON-RPC: login, event watching, VM.snapshot -> VM.revert -> snapshot destroy
// through Async.* calls whose tasks it follows with event.from.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { createClient } from 'xen-api';
import { Client, readSmLog, removeDir, startSim, type SimProc } from './sim-helpers.js';

let sim: SimProc;
let vm: string;
let disk: string;

beforeAll(async () => {
  sim = await startSim();
  const c = await new Client(sim.url).login();
  const host = (await c.call<string[]>('host.get_all'))[0]!;
  const sr = await c.callAsync<string>('SR.create', host, { path: path.join(sim.dir, 'sr') }, '0', 'fixture SR', '', 'filefixture', 'user', false, {});
  disk = await c.callAsync<string>('VDI.create', {
    name_label: 'disk0',
    name_description: '',
    SR: sr,
    virtual_size: String(4 << 20),
    type: 'user',
    sharable: false,
    read_only: false,
    other_config: {},
    xenstore_data: {},
    sm_config: {},
    tags: [],
  });
  vm = await c.call<string>('VM.create', { name_label: 'vm0' });
  await c.call('VBD.create', { VM: vm, VDI: disk, userdevice: '0', bootable: true, mode: 'RW', type: 'Disk', empty: false, other_config: {} });
  await c.call('session.logout');
});

afterAll(async () => {
  await sim?.stop();
  if (sim) removeDir(sim.dir);
});

describe.each(['xml-rpc', 'json-rpc'] as const)('xen-api over %s', (transport) => {
  it('snapshots, reverts and destroys the snapshot through Async calls and events', async () => {
    const xapi = createClient({
      url: sim.url,
      auth: { user: 'root', password: 'whatever' },
      allowUnauthorized: true,
      transport,
      eventPollDelay: 50,
      debounce: 20,
    });
    try {
      await xapi.connect();
      await xapi.objectsFetched;
      expect(xapi.pool).toBeDefined();
      const vmObj = xapi.getObjectByRef(vm);
      expect(vmObj.name_label).toBe('vm0');

      const before = readSmLog(sim.smLog).length;
      const snap: string = await xapi.callAsync('VM.snapshot', vm, `snap-${transport}`);
      expect(snap).toMatch(/^OpaqueRef:/);
      await xapi.call('VM.set_is_a_template', snap, false);
      const snapRec = await xapi.getRecord('VM', snap);
      expect(snapRec.is_a_snapshot).toBe(true);
      expect(snapRec.snapshot_of).toBe(vm);
      expect(snapRec.snapshot_info['power-state-at-snapshot']).toBe('Halted');
      // the event loop brings the new objects into the cache
      await xapi.barrier();
      expect(xapi.getObjectByRef(snap).name_label).toBe(`snap-${transport}`);
      expect(xapi.getObjectByRef(vm).snapshots).toContain(snap);

      // write a marker on the VM's disk, then revert: the disk comes back from the snapshot
      const vmDisk = (await xapi.getRecord('VBD', (await xapi.getRecord('VM', vm)).VBDs[0])).VDI as string;
      const diskPath = path.join(sim.dir, 'sr', `${(await xapi.getRecord('VDI', vmDisk)).location}.img`);
      fs.writeFileSync(diskPath, 'dirty');
      await xapi.callAsync('VM.revert', snap);
      const newDisk = (await xapi.getRecord('VBD', (await xapi.getRecord('VM', vm)).VBDs[0])).VDI as string;
      expect(newDisk).not.toBe(vmDisk);
      const newPath = path.join(sim.dir, 'sr', `${(await xapi.getRecord('VDI', newDisk)).location}.img`);
      expect(fs.readFileSync(newPath).subarray(0, 5).toString()).not.toBe('dirty');
      const snapDisk = (await xapi.getRecord('VBD', snapRec.VBDs[0])).VDI as string;
      expect((await xapi.getRecord('VDI', snapDisk)).snapshot_of).toBe(newDisk);

      // snapshot-uninstall as XenCenter does it: VM.destroy, then the owned disks
      await xapi.callAsync('VM.destroy', snap);
      await xapi.callAsync('VDI.destroy', snapDisk);
      await xapi.barrier();
      expect(xapi.getObjectByRef(snap, undefined)).toBeUndefined();

      const cmds = readSmLog(sim.smLog).slice(before).map((e) => e.cmd);
      expect(cmds).toEqual(['vdi_snapshot', 'vdi_update', 'vdi_delete', 'vdi_clone', 'vdi_update', 'vdi_delete']);
      // tasks were destroyed once settled
      await xapi.barrier();
      expect(await xapi.call('task.get_all')).toEqual([]);
    } finally {
      await xapi.disconnect();
    }
  });
});
