// A shared SR on two simulated hosts, for the live-snapshot e2e tests
// (test/e2e/flatsnap-live-pause*.test.ts): the built driver and the built flatsnap-tapdisk
// host plugin under the XAPI simulator with --hosts 2 on one real XFS (reflink)
// filesystem. Each host has its own blktap: a fake tap-ctl under its own datapath root
// (--datapath-root, fake-tap-ctl.ts), so the driver runs its tapdisk datapath there;
// host.call_plugin runs the plugin from --xapi-plugins on the host it names, as xapi does.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Client, readSmLog, ROOT, startSim, type SimProc, type SmLogEntry } from '../e2e/sim-helpers.js';
import { createLoopFs, type LoopFs } from '../integration/harness/loopfs.js';
import { fakeTapState, installFakeTapCtl } from './fake-tap-ctl.js';

const PLUGIN_DIR = path.join(ROOT, 'plugin');
const SIZE = 8 << 20;

export class TwoHostSr {
  fs: LoopFs | undefined;
  work = '';
  /** The SR's directory on the shared filesystem. */
  dir = '';
  sim: SimProc | undefined;
  c!: Client;
  master = '';
  slave = '';
  /** Host ref -> host uuid. */
  readonly uuids = new Map<string, string>();
  sr = '';

  /** For a beforeAll. Whatever it started before failing, `stop` cleans up. */
  async start(workPrefix: string, extraArgs: readonly string[] = []): Promise<void> {
    this.fs = await createLoopFs('xfs', { sizeMiB: 400 });
    this.dir = path.join(this.fs.mountpoint, 'shared');
    await mkdir(this.dir);
    this.work = mkdtempSync(path.join(tmpdir(), workPrefix));
    // The hosts' /etc/xapi.d/plugins, as plugin/install.sh links it.
    const plugins = path.join(this.work, 'xapi.d', 'plugins');
    mkdirSync(plugins, { recursive: true });
    symlinkSync(path.join(PLUGIN_DIR, 'flatsnap-tapdisk'), path.join(plugins, 'flatsnap-tapdisk'));
    this.sim = await startSim({
      smDir: PLUGIN_DIR,
      extraArgs: ['--hosts', '2', '--xapi-plugins', plugins, '--datapath-root', path.join(this.work, 'hosts'), ...extraArgs],
    });
    const c = (this.c = await new Client(this.sim.url).login());
    this.master = await c.call<string>('pool.get_master', (await c.call<string[]>('pool.get_all'))[0]!);
    this.slave = (await c.call<string[]>('host.get_all')).find((h) => h !== this.master)!;
    for (const h of [this.master, this.slave]) {
      this.uuids.set(h, await c.call<string>('host.get_uuid', h));
      installFakeTapCtl(this.tapDir(h));
    }
    this.sr = await c.callAsync<string>('SR.create', this.master, { path: this.dir }, '0', 'shared flatsnap', '', 'flatsnap', 'user', true, {});
  }

  /** For an afterAll. */
  async stop(): Promise<void> {
    if (this.sim) {
      await this.sim.stop();
      rmSync(this.sim.dir, { recursive: true, force: true });
    }
    await this.fs?.teardown();
    if (this.work) rmSync(this.work, { recursive: true, force: true });
  }

  // Arrow functions, so that a test can take them out of the object.
  /** The host's <root>/usr/sbin, where its fake tap-ctl is. */
  readonly tapDir = (host: string): string => path.join(this.work, 'hosts', this.uuids.get(host)!, 'usr', 'sbin');
  readonly tap = (host: string) => fakeTapState(this.tapDir(host));
  readonly sm = async (vdi: string) => this.c.call<Record<string, string>>('VDI.get_sm_config', vdi);
  /** The uuid of the host an SM log entry ran on: its own, or the host_ref of its call. */
  readonly hostOf = (e: SmLogEntry & { host?: string }) => e.host ?? this.uuids.get(/<member><name>host_ref<\/name><value>([^<]*)</.exec(e.argv1)?.[1] ?? '');
  /** Plugin runs and the SM commands named, with the host they ran on, since log entry `from`. */
  readonly runs = (from: number, cmds: readonly string[]) =>
    readSmLog(this.sim!.smLog)
      .slice(from)
      .filter((e) => e.cmd.startsWith('plugin:') || cmds.includes(e.cmd))
      .map((e) => [e.cmd, this.hostOf(e), e.code]);
  readonly logLength = () => readSmLog(this.sim!.smLog).length;

  readonly newDisk = (name: string) =>
    this.c.callAsync<string>('VDI.create', {
      name_label: name, name_description: '', SR: this.sr, virtual_size: String(SIZE), type: 'user',
      sharable: false, read_only: false, other_config: {}, xenstore_data: {}, sm_config: {}, tags: [],
    });

  readonly vmWith = async (name: string, vdi: string): Promise<string> => {
    const v = await this.c.call<string>('VM.create', { name_label: name });
    await this.c.call('VBD.create', { VM: v, VDI: vdi, userdevice: '0', bootable: true, mode: 'RW', type: 'Disk', empty: false, other_config: {} });
    return v;
  };
}
