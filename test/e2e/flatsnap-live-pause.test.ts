// Live snapshots of a shared SR's VDI that is active on ANOTHER host (docs/shared-srs.md,
// "Live snapshots"): the built driver and the built flatsnap-tapdisk host plugin under
// the XAPI simulator with --hosts 2 on one real XFS (reflink) filesystem, each simulated
// host with its own fake tap-ctl (test/helpers/two-host-sr.ts).
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
import { readdirSync } from 'node:fs';
import * as path from 'node:path';
import { TwoHostSr } from '../helpers/two-host-sr.js';
import { describeLoopFs } from '../integration/harness/loopfs.js';
import { ApiFailure } from './sim-helpers.js';

describeLoopFs('live snapshots of a shared SR with the VDI active on another host', ['xfs'], () => {
  const h = new TwoHostSr();
  const { uuids, tap, sm, runs, logLength, newDisk, vmWith } = h;
  let base = '';
  let vm = '';

  const listing = () => readdirSync(h.dir).sort();
  const pluginRuns = (from: number) => runs(from, ['vdi_snapshot', 'vdi_clone']);
  /** What VDI.snapshot of `vdi` fails with (undefined: it did not), `undo` run once it has ended. */
  async function snapshotFailure(vdi: string, undo: () => Promise<unknown>): Promise<unknown> {
    let err: unknown;
    try {
      await h.c.callAsync('VDI.snapshot', vdi, {});
    } catch (e) {
      err = e;
    } finally {
      await undo();
    }
    return err;
  }

  beforeAll(() => h.start('flatsnap-live-pause-'), 120_000);
  afterAll(async () => {
    await execa('chattr', ['-i', h.dir], { reject: false });
    await h.stop();
  });

  it('a VM started on the slave runs a tapdisk there, and the VDI says so: host_<slave>=RW', async () => {
    base = await newDisk('base');
    vm = await vmWith('on-slave', base);
    await h.c.callAsync('VM.start_on', vm, h.slave, false, false);
    const baseUuid = await h.c.call<string>('VDI.get_uuid', base);
    expect(tap(h.slave).taps).toEqual([expect.objectContaining({ args: `aio:${path.join(h.dir, baseUuid)}`, ro: false })]);
    expect(tap(h.master).taps).toEqual([]);
    expect(await sm(base)).toMatchObject({ [`host_${h.slave}`]: 'RW' });
    expect(Object.keys(await sm(base)).filter((k) => k.startsWith('host_'))).toEqual([`host_${h.slave}`]);
  });

  it('VDI.snapshot on the master pauses the slave’s tapdisk before storage changes and unpauses it after', async () => {
    const n = logLength();
    const before = listing();
    const events = tap(h.slave).events.length;
    const snap = await h.c.callAsync<string>('VDI.snapshot', base, {});
    const after = listing();
    expect(after.length).toBeGreaterThan(before.length);

    // On the slave: pause saw the directory as it was, unpause as it is now.
    const ev = tap(h.slave).events.slice(events);
    expect(ev.map((e) => [e.cmd, e.seen])).toEqual([
      ['pause', before],
      ['unpause', after],
    ]);
    const t = tap(h.slave).taps[0]!;
    expect(tap(h.slave).log.filter((l) => /^(un)?pause/.test(l))).toEqual([`pause -p ${t.pid} -m ${t.minor}`, `unpause -p ${t.pid} -m ${t.minor} -a ${t.args}`]);
    expect(t.paused).toBeUndefined();
    // The plugin ran on the slave, from the master's vdi_snapshot (logged when it ended).
    expect(pluginRuns(n)).toEqual([
      ['plugin:flatsnap-tapdisk/pause', uuids.get(h.slave), 0],
      ['plugin:flatsnap-tapdisk/unpause', uuids.get(h.slave), 0],
      ['vdi_snapshot', uuids.get(h.master), 0],
    ]);
    expect(await sm(base)).not.toHaveProperty('paused');
    expect(await sm(base)).toMatchObject({ [`host_${h.slave}`]: 'RW' });
    expect(Object.keys(await sm(snap)).filter((k) => k.startsWith('host_') || k === 'paused')).toEqual([]);

    const m = logLength();
    await h.c.callAsync<string>('VDI.clone', base, {});
    expect(pluginRuns(m)).toEqual([
      ['plugin:flatsnap-tapdisk/pause', uuids.get(h.slave), 0],
      ['plugin:flatsnap-tapdisk/unpause', uuids.get(h.slave), 0],
      ['vdi_clone', uuids.get(h.master), 0],
    ]);
  });

  it('storage failing in the middle of the snapshot: the slave’s tapdisk is unpaused all the same, nothing changed', async () => {
    const before = listing();
    const events = tap(h.slave).events.length;
    await execa('chattr', ['+i', h.dir]);
    const err = await snapshotFailure(base, () => execa('chattr', ['-i', h.dir]));
    expect(err).toBeInstanceOf(ApiFailure);
    expect((err as ApiFailure).code).toMatch(/^SR_BACKEND_FAILURE_/);
    expect((err as ApiFailure).description[2]).toMatch(/EPERM|not permitted/i); // storage itself refused
    expect(tap(h.slave).events.slice(events).map((e) => e.cmd)).toEqual(['pause', 'unpause']);
    expect(tap(h.slave).taps[0]!.paused).toBeUndefined();
    expect(listing()).toEqual(before);
    expect(await sm(base)).not.toHaveProperty('paused');
  });

  it('the slave unreachable: the snapshot is refused (SM fault 82), nothing paused, storage unchanged', async () => {
    const before = listing();
    const events = tap(h.slave).events.length;
    const vdis = (await h.c.call<string[]>('SR.get_VDIs', h.sr)).length;
    await h.c.call('host.add_to_other_config', h.slave, 'xapi-sim-unreachable', 'true');
    const err = await snapshotFailure(base, () => h.c.call('host.remove_from_other_config', h.slave, 'xapi-sim-unreachable'));
    expect(err).toBeInstanceOf(ApiFailure);
    const f = err as ApiFailure;
    expect(f.code).toBe('SR_BACKEND_FAILURE_82');
    expect(f.description[2]).toMatch(/could not pause the VDI's tapdisk on host .*CANNOT_CONTACT_HOST/);
    expect(tap(h.slave).events.length).toBe(events);
    expect(listing()).toEqual(before);
    expect((await h.c.call<string[]>('SR.get_VDIs', h.sr)).length).toBe(vdis);
    expect(await sm(base)).not.toHaveProperty('paused');
  });

  it('a VM start waits while its VDI is paused; a shutdown stops the tapdisk and removes the host key', async () => {
    const disk = await newDisk('waits');
    const other = await vmWith('waits', disk);
    await h.c.call('VDI.add_to_sm_config', disk, 'paused', 'true');
    const t0 = Date.now();
    const start = h.c.callAsync('VM.start_on', other, h.slave, false, false);
    await new Promise((r) => setTimeout(r, 1500));
    expect(await sm(disk)).not.toHaveProperty(`host_${h.slave}`);
    await h.c.call('VDI.remove_from_sm_config', disk, 'paused');
    await start;
    expect(Date.now() - t0).toBeGreaterThanOrEqual(1500);
    expect(await sm(disk)).toMatchObject({ [`host_${h.slave}`]: 'RW' });
    expect(tap(h.slave).taps).toHaveLength(2);

    await h.c.callAsync('VM.hard_shutdown', other);
    await h.c.callAsync('VM.hard_shutdown', vm);
    expect(tap(h.slave).taps).toEqual([]);
    expect(Object.keys(await sm(base)).filter((k) => k.startsWith('host_'))).toEqual([]);
    expect(Object.keys(await sm(disk)).filter((k) => k.startsWith('host_'))).toEqual([]);
  }, 60_000);
});
