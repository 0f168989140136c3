// Live snapshots of a shared SR's VDI that is active on ANOTHER host (docs/shared-srs.md,
// "Live snapshots"): the built driver and the built flatsnap-tapdisk host plugin under
// the XAPI simulator with --hosts 2 on one real XFS (reflink) filesystem. Each simulated
// host has its own blktap: a fake tap-ctl under its own datapath root
// (--datapath-root, test/helpers/fake-tap-ctl.ts), so the driver runs its tapdisk
// datapath there; host.call_plugin runs the plugin from --xapi-plugins on the host it
// names, as xapi does.
//
// - A VM started on the slave: a tapdisk there, sm_config host_<slave>=RW.
// - VDI.snapshot / VDI.clone on the master: the slave's tapdisk is paused before
//   storage changes and unpaused (reopening its image) after; `paused` comes and goes.
// - Storage failing in the middle (the SR directory made immutable): the slave's tapdisk
//   is unpaused all the same, storage and sm_config unchanged.
// - The slave unreachable: the snapshot is refused, nothing paused, storage unchanged.
// - A VM start waits while the VDI is paused; a shutdown removes the tapdisk and the key.
// Needs root (mknod, losetup) and mkfs.xfs: skipped locally without them, failing under CI=true.
import { afterAll, beforeAll, expect, it } from '@jest/globals';
import { execa } from 'execa';
import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { fakeTapState, installFakeTapCtl } from '../helpers/fake-tap-ctl.js';
import { createLoopFs, describeLoopFs, type LoopFs } from '../integration/harness/loopfs.js';
import { ApiFailure, Client, readSmLog, ROOT, startSim, type SimProc, type SmLogEntry } from './sim-helpers.js';

type Rec = Record<string, unknown>;
const PLUGIN_DIR = path.join(ROOT, 'plugin');
const SIZE = 8 << 20;

describeLoopFs('live snapshots of a shared SR with the VDI active on another host', ['xfs'], () => {
  let fs: LoopFs | undefined;
  let work = '';
  let dir = '';
  let sim: SimProc | undefined;
  let c: Client;
  let master = '';
  let slave = '';
  const uuids = new Map<string, string>();
  let sr = '';
  let base = '';
  let vm = '';

  const tapDir = (host: string) => path.join(work, 'hosts', uuids.get(host)!, 'usr', 'sbin');
  const tap = (host: string) => fakeTapState(tapDir(host));
  const sm = async (vdi: string) => c.call<Record<string, string>>('VDI.get_sm_config', vdi);
  const listing = () => readdirSync(dir).sort();
  const pluginRuns = (from: number) =>
    readSmLog(sim!.smLog)
      .slice(from)
      .filter((e) => e.cmd.startsWith('plugin:') || e.cmd === 'vdi_snapshot' || e.cmd === 'vdi_clone')
      .map((e: SmLogEntry & { host?: string }) => [e.cmd, e.host ?? uuids.get(/<member><name>host_ref<\/name><value>([^<]*)</.exec(e.argv1)?.[1] ?? ''), e.code]);

  beforeAll(async () => {
    fs = await createLoopFs('xfs', { sizeMiB: 400 });
    dir = path.join(fs.mountpoint, 'shared');
    await mkdir(dir);
    work = mkdtempSync(path.join(tmpdir(), 'flatsnap-live-pause-'));
    // The hosts' /etc/xapi.d/plugins, as plugin/install.sh links it.
    const plugins = path.join(work, 'xapi.d', 'plugins');
    mkdirSync(plugins, { recursive: true });
    symlinkSync(path.join(PLUGIN_DIR, 'flatsnap-tapdisk'), path.join(plugins, 'flatsnap-tapdisk'));
    sim = await startSim({
      smDir: PLUGIN_DIR,
      extraArgs: ['--hosts', '2', '--xapi-plugins', plugins, '--datapath-root', path.join(work, 'hosts')],
    });
    c = await new Client(sim.url).login();
    master = await c.call<string>('pool.get_master', (await c.call<string[]>('pool.get_all'))[0]!);
    slave = (await c.call<string[]>('host.get_all')).find((h) => h !== master)!;
    for (const h of [master, slave]) {
      uuids.set(h, await c.call<string>('host.get_uuid', h));
      installFakeTapCtl(tapDir(h));
    }
    sr = await c.callAsync<string>('SR.create', master, { path: dir }, '0', 'shared flatsnap', '', 'flatsnap', 'user', true, {});
  }, 120_000);

  afterAll(async () => {
    await execa('chattr', ['-i', dir], { reject: false });
    if (sim) {
      await sim.stop();
      rmSync(sim.dir, { recursive: true, force: true });
    }
    await fs?.teardown();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  const newDisk = (name: string) =>
    c.callAsync<string>('VDI.create', {
      name_label: name, name_description: '', SR: sr, virtual_size: String(SIZE), type: 'user',
      sharable: false, read_only: false, other_config: {}, xenstore_data: {}, sm_config: {}, tags: [],
    });

  async function vmWith(name: string, vdi: string): Promise<string> {
    const v = await c.call<string>('VM.create', { name_label: name });
    await c.call('VBD.create', { VM: v, VDI: vdi, userdevice: '0', bootable: true, mode: 'RW', type: 'Disk', empty: false, other_config: {} });
    return v;
  }

  it('a VM started on the slave runs a tapdisk there, and the VDI says so: host_<slave>=RW', async () => {
    base = await newDisk('base');
    vm = await vmWith('on-slave', base);
    await c.callAsync('VM.start_on', vm, slave, false, false);
    const baseUuid = await c.call<string>('VDI.get_uuid', base);
    expect(tap(slave).taps).toEqual([expect.objectContaining({ args: `aio:${path.join(dir, baseUuid)}`, ro: false })]);
    expect(tap(master).taps).toEqual([]);
    expect(await sm(base)).toMatchObject({ [`host_${slave}`]: 'RW' });
    expect(Object.keys(await sm(base)).filter((k) => k.startsWith('host_'))).toEqual([`host_${slave}`]);
  });

  it('VDI.snapshot on the master pauses the slave’s tapdisk before storage changes and unpauses it after', async () => {
    const n = readSmLog(sim!.smLog).length;
    const before = listing();
    const events = tap(slave).events.length;
    const snap = await c.callAsync<string>('VDI.snapshot', base, {});
    const after = listing();
    expect(after.length).toBeGreaterThan(before.length);

    // On the slave: pause saw the directory as it was, unpause as it is now.
    const ev = tap(slave).events.slice(events);
    expect(ev.map((e) => [e.cmd, e.seen])).toEqual([
      ['pause', before],
      ['unpause', after],
    ]);
    const t = tap(slave).taps[0]!;
    expect(tap(slave).log.filter((l) => /^(un)?pause/.test(l))).toEqual([`pause -p ${t.pid} -m ${t.minor}`, `unpause -p ${t.pid} -m ${t.minor} -a ${t.args}`]);
    expect(t.paused).toBeUndefined();
    // The plugin ran on the slave, from the master's vdi_snapshot (logged when it ended).
    expect(pluginRuns(n)).toEqual([
      ['plugin:flatsnap-tapdisk/pause', uuids.get(slave), 0],
      ['plugin:flatsnap-tapdisk/unpause', uuids.get(slave), 0],
      ['vdi_snapshot', uuids.get(master), 0],
    ]);
    expect(await sm(base)).not.toHaveProperty('paused');
    expect(await sm(base)).toMatchObject({ [`host_${slave}`]: 'RW' });
    expect(Object.keys(await sm(snap)).filter((k) => k.startsWith('host_') || k === 'paused')).toEqual([]);

    const m = readSmLog(sim!.smLog).length;
    await c.callAsync<string>('VDI.clone', base, {});
    expect(pluginRuns(m)).toEqual([
      ['plugin:flatsnap-tapdisk/pause', uuids.get(slave), 0],
      ['plugin:flatsnap-tapdisk/unpause', uuids.get(slave), 0],
      ['vdi_clone', uuids.get(master), 0],
    ]);
  });

  it('storage failing in the middle of the snapshot: the slave’s tapdisk is unpaused all the same, nothing changed', async () => {
    const before = listing();
    const events = tap(slave).events.length;
    await execa('chattr', ['+i', dir]);
    let err: unknown;
    try {
      await c.callAsync('VDI.snapshot', base, {});
    } catch (e) {
      err = e;
    } finally {
      await execa('chattr', ['-i', dir]);
    }
    expect(err).toBeInstanceOf(ApiFailure);
    expect((err as ApiFailure).code).toMatch(/^SR_BACKEND_FAILURE_/);
    expect((err as ApiFailure).description[2]).toMatch(/EPERM|not permitted/i); // storage itself refused
    expect(tap(slave).events.slice(events).map((e) => e.cmd)).toEqual(['pause', 'unpause']);
    expect(tap(slave).taps[0]!.paused).toBeUndefined();
    expect(listing()).toEqual(before);
    expect(await sm(base)).not.toHaveProperty('paused');
  });

  it('the slave unreachable: the snapshot is refused (SM fault 82), nothing paused, storage unchanged', async () => {
    const before = listing();
    const events = tap(slave).events.length;
    const vdis = (await c.call<string[]>('SR.get_VDIs', sr)).length;
    await c.call('host.add_to_other_config', slave, 'xapi-sim-unreachable', 'true');
    let err: unknown;
    try {
      await c.callAsync('VDI.snapshot', base, {});
    } catch (e) {
      err = e;
    } finally {
      await c.call('host.remove_from_other_config', slave, 'xapi-sim-unreachable');
    }
    expect(err).toBeInstanceOf(ApiFailure);
    const f = err as ApiFailure;
    expect(f.code).toBe('SR_BACKEND_FAILURE_82');
    expect(f.description[2]).toMatch(/could not pause the VDI's tapdisk on host .*CANNOT_CONTACT_HOST/);
    expect(tap(slave).events.length).toBe(events);
    expect(listing()).toEqual(before);
    expect((await c.call<string[]>('SR.get_VDIs', sr)).length).toBe(vdis);
    expect(await sm(base)).not.toHaveProperty('paused');
  });

  it('a VM start waits while its VDI is paused; a shutdown stops the tapdisk and removes the host key', async () => {
    const disk = await newDisk('waits');
    const other = await vmWith('waits', disk);
    await c.call('VDI.add_to_sm_config', disk, 'paused', 'true');
    const t0 = Date.now();
    const start = c.callAsync('VM.start_on', other, slave, false, false);
    await new Promise((r) => setTimeout(r, 1500));
    expect(await sm(disk)).not.toHaveProperty(`host_${slave}`);
    await c.call('VDI.remove_from_sm_config', disk, 'paused');
    await start;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1500);
    expect(await sm(disk)).toMatchObject({ [`host_${slave}`]: 'RW' });
    expect(tap(slave).taps).toHaveLength(2);

    await c.callAsync('VM.hard_shutdown', other);
    await c.callAsync('VM.hard_shutdown', vm);
    expect(tap(slave).taps).toEqual([]);
    expect(Object.keys(await sm(base)).filter((k) => k.startsWith('host_'))).toEqual([]);
    expect(Object.keys(await sm(disk)).filter((k) => k.startsWith('host_'))).toEqual([]);
  }, 60_000);
});
