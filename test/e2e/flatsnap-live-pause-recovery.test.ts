// What a crash leaves behind on a shared SR's VDIs, and a revert of a VDI whose tapdisk
// runs on another host (docs/shared-srs.md, "Live snapshots"): the built driver and the
// built flatsnap-tapdisk host plugin under the XAPI simulator with --hosts 2 on one real
// XFS (reflink) filesystem, each host with its own fake tap-ctl (test/helpers/two-host-sr.ts).
//
// - The slave crashes with a VM running: its tapdisks die with it, xapi resets the VM
//   (VM.power_state_reset, no SM call), and sm_config host_<slave> stays. The master can
//   no longer snapshot the VDI (it would have to pause a host it cannot reach) until the
//   slave's PBD is plugged again: its sr_attach removes the slave's own keys and no
//   other, and the snapshot then runs without calling the slave at all.
// - A `paused` key left by a command the master did not finish (it crashed between
//   setting and removing it) blocks every activation of the VDI; the slave's sr_attach
//   leaves it (a pause may be running on the master), the master's sr_attach removes it.
// - VM.revert (--revert-flow vdi-revert: VDI.revert, SM vdi_revert) of a disk whose
//   tapdisk still runs on the slave: paused there before the image is replaced and
//   unpaused after, reopening it by name. xapi reverts no disk with an attached VBD
//   (VDI_IN_USE) and VM.revert shuts the VM down first, so such a tapdisk is one xapi
//   lost track of: staged here by a power-state reset while the slave keeps running it.
// Needs root (mknod, losetup) and mkfs.xfs: skipped locally without them, failing under CI=true.
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { closeSync, openSync, readdirSync, readSync, writeFileSync, writeSync } from 'node:fs';
import * as path from 'node:path';
import { TwoHostSr } from '../helpers/two-host-sr.js';
import { describeLoopFs } from '../integration/harness/loopfs.js';
import { ApiFailure } from './sim-helpers.js';

const UNREACHABLE = 'xapi-sim-unreachable';

describeLoopFs('a shared SR after a host crash, and a revert of a disk active on another host', ['xfs'], () => {
  const h = new TwoHostSr();
  const { uuids, tapDir, tap, sm, runs, logLength, newDisk, vmWith } = h;
  const hostKeys = async (vdi: string) => Object.keys(await sm(vdi)).filter((k) => k.startsWith('host_')).sort();
  const readdirSorted = () => readdirSync(h.dir).sort();

  beforeAll(() => h.start('flatsnap-live-pause-recovery-', ['--revert-flow', 'vdi-revert']), 120_000);
  afterAll(() => h.stop());

  const pbdOf = async (host: string) => {
    for (const p of await h.c.call<string[]>('SR.get_PBDs', h.sr)) if ((await h.c.call<string>('PBD.get_host', p)) === host) return p;
    throw new Error(`no PBD of the SR on ${host}`);
  };
  /** The host's PBD unplugged and plugged again: sr_detach, then sr_attach there. */
  const replug = async (host: string) => {
    const pbd = await pbdOf(host);
    await h.c.callAsync('PBD.unplug', pbd);
    await h.c.callAsync('PBD.plug', pbd);
  };
  /** The host's blktap after a reboot: no tapdisk left. */
  const rebootBlktap = (host: string) => {
    const st = tap(host);
    writeFileSync(path.join(tapDir(host), 'state.json'), JSON.stringify({ ...st, taps: [] }));
  };

  let crashed = '';
  let crashedVm = '';
  let onMaster = '';
  let onMasterVm = '';
  let stale = '';

  it('the slave crashes with a VM running: its host key stays, and the master can no longer snapshot the disk', async () => {
    crashed = await newDisk('crashed');
    crashedVm = await vmWith('crashed', crashed);
    await h.c.callAsync('VM.start_on', crashedVm, h.slave, false, false);
    onMaster = await newDisk('on-master');
    onMasterVm = await vmWith('on-master', onMaster);
    await h.c.callAsync('VM.start', onMasterVm, false, false);
    expect(await hostKeys(crashed)).toEqual([`host_${h.slave}`]);
    expect(await hostKeys(onMaster)).toEqual([`host_${h.master}`]);

    // The crash: the slave is gone, its tapdisks with it; xapi (or the administrator,
    // xe vm-reset-powerstate) resets its VM without any SM call.
    await h.c.call('host.add_to_other_config', h.slave, UNREACHABLE, 'true');
    rebootBlktap(h.slave);
    await h.c.callAsync('VM.power_state_reset', crashedVm);
    expect(await h.c.call('VM.get_power_state', crashedVm)).toBe('Halted');
    expect(await hostKeys(crashed)).toEqual([`host_${h.slave}`]);

    const before = readdirSorted();
    let err: unknown;
    try {
      await h.c.callAsync('VDI.snapshot', crashed, {});
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ApiFailure);
    expect((err as ApiFailure).code).toBe('SR_BACKEND_FAILURE_82');
    expect((err as ApiFailure).description[2]).toMatch(/could not pause the VDI's tapdisk on host .*CANNOT_CONTACT_HOST/);
    expect(readdirSorted()).toEqual(before);
  });

  it('a `paused` key left by a master command that never finished (it blocks every activation of the disk)', async () => {
    stale = await newDisk('stale-paused');
    // What a master crashing between setting and removing it leaves (live-pause.ts step 1).
    await h.c.call('VDI.add_to_sm_config', stale, 'paused', 'true');
    expect(await sm(stale)).toMatchObject({ paused: 'true' });
  });

  it('the slave’s PBD plugged again: its sr_attach removes its own keys only, and leaves `paused`', async () => {
    const n = logLength();
    // Still unreachable for the master's plugin calls: any call to it would fail.
    await replug(h.slave);
    expect(runs(n, ['sr_detach', 'sr_attach'])).toEqual([
      ['sr_detach', uuids.get(h.slave), 0],
      ['sr_attach', uuids.get(h.slave), 0],
    ]);
    expect(await hostKeys(crashed)).toEqual([]);
    expect(await hostKeys(onMaster)).toEqual([`host_${h.master}`]); // another host's: kept
    expect(await sm(stale)).toMatchObject({ paused: 'true' }); // not the master: kept
  });

  it('the master’s snapshot of the crashed VM’s disk then runs without calling the slave', async () => {
    const n = logLength();
    const events = tap(h.slave).events.length;
    const before = readdirSorted();
    const snap = await h.c.callAsync<string>('VDI.snapshot', crashed, {});
    expect(await h.c.call('VDI.get_is_a_snapshot', snap)).toBe(true);
    expect(readdirSorted().length).toBeGreaterThan(before.length);
    expect(runs(n, ['vdi_snapshot'])).toEqual([['vdi_snapshot', uuids.get(h.master), 0]]);
    expect(tap(h.slave).events.length).toBe(events);
    expect(await sm(crashed)).not.toHaveProperty('paused');
    await h.c.call('host.remove_from_other_config', h.slave, UNREACHABLE);
  });

  it('the master’s PBD plugged again: its sr_attach removes the stale `paused`, and the VM starts on the slave', async () => {
    await h.c.callAsync('VM.hard_shutdown', onMasterVm);
    const n = logLength();
    await replug(h.master);
    expect(runs(n, ['sr_detach', 'sr_attach'])).toEqual([
      ['sr_detach', uuids.get(h.master), 0],
      ['sr_attach', uuids.get(h.master), 0],
    ]);
    expect(await sm(stale)).not.toHaveProperty('paused');

    const vm = await vmWith('was-blocked', stale);
    await h.c.callAsync('VM.start_on', vm, h.slave, false, false);
    expect(await hostKeys(stale)).toEqual([`host_${h.slave}`]);
    await h.c.callAsync('VM.hard_shutdown', vm);
    expect(await hostKeys(stale)).toEqual([]);
  }, 60_000);

  it('VM.revert of a disk whose tapdisk still runs on the slave: paused there around vdi_revert, unpaused on the new image', async () => {
    const disk = await newDisk('reverted');
    const vm = await vmWith('reverted', disk);
    await h.c.callAsync('VM.start_on', vm, h.slave, false, false);
    const diskUuid = await h.c.call<string>('VDI.get_uuid', disk);
    const image = path.join(h.dir, diskUuid);
    const t = tap(h.slave).taps.find((x) => x.args === `aio:${image}`)!;
    expect(t).toBeDefined();

    writeAt(image, 'before the snapshot');
    const snapVm = await h.c.callAsync<string>('VM.snapshot', vm, 'snap');
    writeAt(image, 'after the snapshot!');
    expect(readAt(image, 19)).toBe('after the snapshot!');

    // xapi loses track of the running datapath (VBD detached, VM halted); the slave keeps it.
    await h.c.callAsync('VM.power_state_reset', vm);
    expect(await hostKeys(disk)).toEqual([`host_${h.slave}`]);

    const n = logLength();
    const events = tap(h.slave).events.length;
    const log = tap(h.slave).log.length;
    await h.c.callAsync('VM.revert', snapVm);

    // The disk kept its ref and uuid (VDI.revert), and holds the snapshot's bytes.
    expect((await h.c.call<string[]>('VM.get_VBDs', vm)).length).toBe(1);
    expect(await h.c.call('VBD.get_VDI', (await h.c.call<string[]>('VM.get_VBDs', vm))[0]!)).toBe(disk);
    expect(readAt(image, 19)).toBe('before the snapshot');

    expect(runs(n, ['vdi_revert', 'vdi_clone', 'vdi_delete'])).toEqual([
      ['plugin:flatsnap-tapdisk/pause', uuids.get(h.slave), 0],
      ['plugin:flatsnap-tapdisk/unpause', uuids.get(h.slave), 0],
      ['vdi_revert', uuids.get(h.master), 0],
    ]);
    expect(tap(h.slave).log.slice(log).filter((l) => /^(un)?pause/.test(l))).toEqual([
      `pause -p ${t.pid} -m ${t.minor}`,
      `unpause -p ${t.pid} -m ${t.minor} -a aio:${image}`,
    ]);
    expect(tap(h.slave).events.slice(events).map((e) => e.cmd)).toEqual(['pause', 'unpause']);
    expect(tap(h.slave).taps.find((x) => x.minor === t.minor)!.paused).toBeUndefined();
    expect(await sm(disk)).not.toHaveProperty('paused');
    expect(await hostKeys(disk)).toEqual([`host_${h.slave}`]);
  }, 60_000);
});

function writeAt(file: string, text: string): void {
  const fd = openSync(file, 'r+');
  try {
    writeSync(fd, Buffer.from(text), 0, text.length, 0);
  } finally {
    closeSync(fd);
  }
}

function readAt(file: string, n: number): string {
  const fd = openSync(file, 'r');
  try {
    const b = Buffer.alloc(n);
    readSync(fd, b, 0, n, 0);
    return b.toString();
  } finally {
    closeSync(fd);
  }
}
