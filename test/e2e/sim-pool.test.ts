// The simulator as a pool of two hosts (--hosts 2), through the fixture plugin:
// a host record and a control domain per host, a shared SR with one PBD per host
// plugged on its own host (SRmaster "true" only on the master's), VM.start_on
// attaching on the chosen host, master-only SM calls sent to the SR master, and
// PBD.unplug refused only by the disks attached on that PBD's host.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ApiFailure, Client, readSmLog, removeDir, startSim, type SimProc, type SmLogEntry } from './sim-helpers.js';

type Rec = Record<string, unknown>;

function member(e: SmLogEntry, name: string): string | undefined {
  return new RegExp(`<member><name>${name}</name><value>([^<]*)</value>`).exec(e.argv1)?.[1];
}

/** [command, host_ref, SRmaster] of every plugin run from `from` on. */
function calls(sim: SimProc, from = 0): Array<[string, string | undefined, string | undefined]> {
  return readSmLog(sim.smLog)
    .slice(from)
    .map((e) => [e.cmd, member(e, 'host_ref'), member(e, 'SRmaster')]);
}

describe('a pool of two simulated hosts', () => {
  let sim: SimProc;
  let c: Client;
  let dir: string;
  let master: string;
  let slave: string;
  let sr: string;

  beforeAll(async () => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'sim-pool-'));
    sim = await startSim({ extraArgs: ['--hosts', '2'] });
    c = await new Client(sim.url).login();
  });
  afterAll(async () => {
    await sim?.stop();
    if (sim) removeDir(sim.dir);
    removeDir(dir);
  });

  it('has two hosts, the first the pool master, each with its own control domain', async () => {
    const hosts = await c.call<string[]>('host.get_all');
    expect(hosts).toHaveLength(2);
    master = await c.call<string>('pool.get_master', (await c.call<string[]>('pool.get_all'))[0]!);
    slave = hosts.find((h) => h !== master)!;
    expect(await c.call('host.get_name_label', master)).toBe('xapi-sim');
    expect(await c.call('host.get_name_label', slave)).toBe('xapi-sim-2');
    const vms = Object.values(await c.call<Record<string, Rec>>('VM.get_all_records'));
    const dom0s = vms.filter((v) => v.is_control_domain === true).map((v) => v.resident_on);
    expect(dom0s.sort()).toEqual([master, slave].sort());
  });

  it('a shared SR: one PBD per host, each plugged on its own host, SRmaster true only on the master', async () => {
    const n = readSmLog(sim.smLog).length;
    sr = await c.callAsync<string>('SR.create', master, { path: path.join(dir, 'shared') }, '0', 'shared', '', 'filefixture', 'user', true, {});
    const pbds = await c.call<string[]>('SR.get_PBDs', sr);
    expect(pbds).toHaveLength(2);
    const recs = await Promise.all(pbds.map((p) => c.call<Rec>('PBD.get_record', p)));
    expect(recs.map((r) => r.host).sort()).toEqual([master, slave].sort());
    for (const r of recs) {
      expect(r.currently_attached).toBe(true);
      expect(r.device_config).toEqual({ path: path.join(dir, 'shared') });
    }
    const seen = calls(sim, n).filter(([cmd]) => cmd !== 'sr_scan' && cmd !== 'sr_update');
    expect(seen).toEqual([
      ['sr_create', master, 'true'],
      ['sr_attach', master, 'true'],
      ['sr_attach', slave, 'false'],
    ]);
  });

  it('VM.start_on the slave attaches there; master-only calls go to the master; shutdown detaches on the slave', async () => {
    const vdi = await c.callAsync<string>('VDI.create', {
      name_label: 'd', name_description: '', SR: sr, virtual_size: String(1 << 20), type: 'user',
      sharable: false, read_only: false, other_config: {}, xenstore_data: {}, sm_config: {}, tags: [],
    });
    const vm = await c.call<string>('VM.create', { name_label: 'on-slave' });
    await c.call('VBD.create', { VM: vm, VDI: vdi, userdevice: '0', bootable: true, mode: 'RW', type: 'Disk', empty: false, other_config: {} });
    let n = readSmLog(sim.smLog).length;
    await c.callAsync('VM.start_on', vm, slave, false, false);
    expect(await c.call('VM.get_resident_on', vm)).toBe(slave);
    expect(calls(sim, n)).toEqual([
      ['vdi_epoch_begin', slave, 'false'],
      ['vdi_attach', slave, 'false'],
      ['vdi_activate', slave, 'false'],
    ]);
    const slaveUuid = await c.call<string>('host.get_uuid', slave);
    expect(Object.keys(await c.call<Rec>('VDI.get_sm_config', vdi))).toContain(`read-caching-enabled-on-${slaveUuid}`);

    n = readSmLog(sim.smLog).length;
    await c.callAsync('VM.snapshot', vm, 'snap');
    expect(calls(sim, n).filter(([cmd]) => cmd === 'vdi_snapshot')).toEqual([['vdi_snapshot', master, 'true']]);

    // The slave's PBD is busy with the VM's disk; the master's is not.
    const pbdOf = async (h: string) => {
      for (const p of await c.call<string[]>('SR.get_PBDs', sr)) if ((await c.call('PBD.get_host', p)) === h) return p;
      throw new Error('no PBD');
    };
    const e = (await c.callAsync('PBD.unplug', await pbdOf(slave)).catch((x: unknown) => x)) as ApiFailure;
    expect(e).toBeInstanceOf(ApiFailure);
    expect(e.code).toBe('VDI_IN_USE');
    n = readSmLog(sim.smLog).length;
    await c.callAsync('PBD.unplug', await pbdOf(master));
    await c.callAsync('PBD.plug', await pbdOf(master));
    expect(calls(sim, n).filter(([cmd]) => cmd.startsWith('sr_a') || cmd.startsWith('sr_d'))).toEqual([
      ['sr_detach', master, 'true'],
      ['sr_attach', master, 'true'],
    ]);

    n = readSmLog(sim.smLog).length;
    await c.callAsync('VM.hard_shutdown', vm);
    expect(calls(sim, n)).toEqual([
      ['vdi_deactivate', slave, 'false'],
      ['vdi_detach', slave, 'false'],
      ['vdi_epoch_end', slave, 'false'],
    ]);
    expect(await c.call('VM.get_resident_on', vm)).toBe('OpaqueRef:NULL');
  });

  it('SR.scan runs on the SR master', async () => {
    const n = readSmLog(sim.smLog).length;
    await c.callAsync('SR.scan', sr);
    expect(calls(sim, n).filter(([cmd]) => cmd === 'sr_scan')[0]).toEqual(['sr_scan', master, 'true']);
  });

  it('a local SR created on the slave has the slave as its SR master', async () => {
    const n = readSmLog(sim.smLog).length;
    const local = await c.callAsync<string>('SR.create', slave, { path: path.join(dir, 'local') }, '0', 'local', '', 'filefixture', 'user', false, {});
    const pbds = await c.call<string[]>('SR.get_PBDs', local);
    expect(pbds).toHaveLength(1);
    expect(await c.call('PBD.get_host', pbds[0]!)).toBe(slave);
    expect(calls(sim, n).filter(([cmd]) => cmd === 'sr_create' || cmd === 'sr_attach')).toEqual([
      ['sr_create', slave, 'true'],
      ['sr_attach', slave, 'true'],
    ]);
  });
});
