// The built plugin under the XAPI simulator, for benchmarks: the same simulator and
// client the e2e tests use (test/e2e/sim-helpers.ts), with four additions:
//   - the plugin run is a private copy of plugin/ taken at start (a `make build` elsewhere
//     rewrites flatsnap.node in place, which kills a running plugin with SIGSEGV);
//   - the simulator's sm-dir is a wrapper directory whose FlatSnapSR is a two-line sh
//     script exec'ing that copy with FLATSNAP_SMLOG set, so the plugin's own log
//     ("vdi_snapshot ok in 12.3 ms", and with debug every zfs command) lands in a file
//     we parse; optionally FLATSNAP_LOG_LEVEL=debug and FLATSNAP_XAPI_URL pointing at a
//     counting proxy (xapi-proxy.mjs). The sh exec costs ~1 ms per plugin run.
//   - xapi's background auto-scan is kept out of the measurements: the simulator's first
//     auto-scan tick is scheduled at start with the default 30 s, so the simulator is
//     started once, host.other_config:auto-scan-interval is set to a day, and it is
//     restarted on the same state (the restart reads the interval). Every measured phase
//     also checks that no unexpected sr_scan ran.
//   - state, sm-log and plugin log live on /dev/shm (tmpfs) when it exists: the simulator
//     rewrites and fsyncs its whole JSON database before every answer, a cost of the
//     simulator, not of the driver.
// All API calls are SYNCHRONOUS XenAPI calls (no task polling), so the client's wall
// time is the call's time without a polling interval.
import { execa } from 'execa';
import http from 'node:http';
import { chmodSync, cpSync, closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { PLUGIN, loadTs, now, pluginIdentity } from './common.mjs';
import { startProxy } from './xapi-proxy.mjs';

const helpers = await loadTs('test/e2e/sim-helpers.ts');
const xmlrpc = await loadTs('src/smapi/xmlrpc.ts');
export const { ApiFailure, readSmLog } = helpers;

const SM_ENV = { PATH: '/sbin:/usr/sbin:/bin:/usr/bin', ORIGINATOR: 'SM' };
const shq = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;

/** Parses the plugin's log (FLATSNAP_SMLOG format `<date> <time> SM: [pid] message`). */
export class PluginLog {
  constructor(file) {
    this.file = file;
    this.offset = 0;
  }

  /** Byte offset of the end of the log now: pass it to runsSince(). */
  mark() {
    return existsSync(this.file) ? statSync(this.file).size : 0;
  }

  /**
   * The plugin runs logged after `mark`, in order: { pid, cmd, ms (in-process time, from
   * "<cmd> ok in N ms"), ok, zfs (zfs/zpool commands run, with debug logging), zfsArgs, lines }.
   */
  runsSince(mark) {
    if (!existsSync(this.file)) return [];
    const size = statSync(this.file).size;
    const buf = Buffer.alloc(Math.max(0, size - mark));
    const fd = openSync(this.file, 'r');
    try {
      readSync(fd, buf, 0, buf.length, mark);
    } finally {
      closeSync(fd);
    }
    const runs = new Map();
    for (const line of buf.toString('utf8').split('\n')) {
      const m = /^\S+ \S+ SM: \[(\d+)\] (.*)$/.exec(line);
      if (!m) continue;
      const pid = Number(m[1]);
      const msg = m[2];
      let r = runs.get(pid);
      if (!r) {
        r = { pid, cmd: msg.split(' ')[0], ms: undefined, ok: undefined, zfs: 0, zfsArgs: [], lines: [] };
        runs.set(pid, r);
      }
      r.lines.push(msg);
      const done = /^(\S+) (ok|failed) in ([\d.]+) ms/.exec(msg);
      if (done) {
        r.ms = Number(done[3]);
        r.ok = done[2] === 'ok';
      }
      const z = /^(?:DEBUG: |WARN: )?zfs: (\[.*\])$/.exec(msg);
      if (z) {
        r.zfs++;
        try {
          const a = JSON.parse(z[1]);
          // compact: the binary's base name and the arguments, long property lists elided
          r.zfsArgs.push([a[0].split('/').pop(), ...a.slice(1).map((x) => (x.length > 40 ? `<${x.split(',').length} props>` : x))].join(' '));
        } catch {
          r.zfsArgs.push('?');
        }
      }
      if (/zfs: flavor /.test(msg)) {
        r.zfs++; // the `zfs version` of feature detection
        r.zfsArgs.push('zfs version');
      }
    }
    return [...runs.values()];
  }
}

export class BenchSim {
  /**
   * @param cleanup Cleanup stack (common.mjs)
   * @param o.debug  plugin log level debug (counts zfs commands); FLATSNAP_BENCH_DEBUG=1 forces it
   * @param o.proxy  route the plugin's XenAPI calls through a counting proxy
   */
  static async start(cleanup, o = {}) {
    const s = new BenchSim();
    await s.#start(cleanup, o);
    return s;
  }

  async #start(cleanup, { debug = process.env.FLATSNAP_BENCH_DEBUG === '1', proxy = false } = {}) {
    const base = existsSync('/dev/shm') ? '/dev/shm' : tmpdir();
    this.dir = mkdtempSync(join(base, `flatsnap-bench-sim-${process.pid}-`));
    cleanup.add(`remove ${this.dir}`, () => {
      // FLATSNAP_BENCH_KEEP=DIR keeps the simulator's state, sm-log and plugin log for a post-mortem
      if (process.env.FLATSNAP_BENCH_KEEP) cpSync(this.dir, join(process.env.FLATSNAP_BENCH_KEEP, basename(this.dir)), { recursive: true });
      rmSync(this.dir, { recursive: true, force: true });
    });
    this.smDir = join(this.dir, 'sm');
    mkdirSync(this.smDir);
    this.log = new PluginLog(join(this.dir, 'plugin.log'));
    if (proxy) {
      this.proxy = await startProxy();
      cleanup.add('stop the XAPI proxy', () => this.proxy.stop());
    }
    // A private copy of the built plugin: `make build` elsewhere rewrites
    // plugin/flatsnap-lib/flatsnap.node IN PLACE (copyFileSync), which crashes (SIGSEGV)
    // any plugin run that has it loaded; a long scan must not depend on nobody building.
    cpSync(dirname(PLUGIN), join(this.dir, 'plugin'), { recursive: true, filter: (src) => !src.endsWith('.tmp') });
    this.plugin = join(this.dir, 'plugin', basename(PLUGIN));
    this.build = pluginIdentity(join(this.dir, 'plugin'));
    const env = { FLATSNAP_SMLOG: this.log.file, ...(debug ? { FLATSNAP_LOG_LEVEL: 'debug' } : {}), ...(proxy ? { FLATSNAP_XAPI_URL: this.proxy.url } : {}) };
    const wrapper = join(this.smDir, 'FlatSnapSR');
    writeFileSync(wrapper, `#!/bin/sh\n${Object.entries(env).map(([k, v]) => `export ${k}=${shq(v)}`).join('\n')}\nexec ${shq(this.plugin)} "$@"\n`);
    chmodSync(wrapper, 0o755);
    this.pluginEnv = { ...SM_ENV, ...env };

    // Boot once to set the auto-scan interval, then restart on the same state (see top).
    let sim = await helpers.startSim({ smDir: this.smDir, dir: this.dir });
    try {
      const c = await new helpers.Client(sim.url).login();
      const host = (await c.call('host.get_all'))[0];
      await c.call('host.add_to_other_config', host, 'auto-scan-interval', '86400');
    } finally {
      await sim.stop();
    }
    sim = await helpers.startSim({ smDir: this.smDir, dir: this.dir });
    this.sim = sim;
    cleanup.add('stop the simulator', () => sim.stop());
    this.proxy?.setUpstream(sim.url);
    this.c = await new helpers.Client(sim.url).login();
    this.host = (await this.c.call('host.get_all'))[0];
  }

  call(method, ...params) {
    return this.c.call(method, ...params);
  }

  /**
   * [result, wall ms] of a synchronous XenAPI call, over node:http with no timeout (fetch
   * gives up on an answer after 300 s, and a first scan of thousands of VDIs can take longer).
   */
  async timed(method, ...params) {
    const body = xmlrpc.encodeMethodCall(method, [this.c.session, ...params], xmlrpc.PYTHON_STYLE);
    const t0 = now();
    const text = await new Promise((resolve, reject) => {
      const req = http.request(this.sim.url, { method: 'POST', headers: { 'Content-Type': 'text/xml', 'Content-Length': Buffer.byteLength(body) } }, (res) => {
        const chunks = [];
        res.on('data', (c) => chunks.push(c));
        res.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
        res.on('error', reject);
      });
      req.on('error', reject);
      req.end(body);
    });
    const ms = now() - t0;
    const r = xmlrpc.decodeMethodResponse(text);
    if (!r.ok) throw new Error(`${method}: XML-RPC fault ${r.faultCode}: ${r.faultString}`);
    if (r.value.Status !== 'Success') throw new ApiFailure(r.value.ErrorDescription ?? []);
    return [r.value.Value ?? null, ms];
  }

  /** Entries of the simulator's sm-log (one per plugin run) so far. */
  smLog() {
    return readSmLog(this.sim.smLog);
  }

  async createSr(dc, name = 'flatsnap-bench') {
    this.sr = await this.call('SR.create', this.host, dc, '0', name, '', 'flatsnap', 'user', false, {});
    this.srUuid = await this.call('SR.get_uuid', this.sr);
    this.dc = dc;
    return this.sr;
  }

  /** sr-introduce + pbd-create + pbd-plug of an SR that exists on storage (no scan). */
  async introduceSr(srUuid, dc, name = 'flatsnap-bench') {
    this.sr = await this.call('SR.introduce', srUuid, name, '', 'flatsnap', 'user', false, {});
    this.srUuid = srUuid;
    this.dc = dc;
    const pbd = await this.call('PBD.create', { host: this.host, SR: this.sr, device_config: dc, other_config: {} });
    await this.call('PBD.plug', pbd);
    return this.sr;
  }

  /** Unplugs every PBD of the SR (before the storage under it goes away). */
  async unplugSr() {
    if (!this.sr) return;
    for (const pbd of await this.call('SR.get_PBDs', this.sr)) {
      if (await this.call('PBD.get_currently_attached', pbd)) await this.call('PBD.unplug', pbd);
    }
  }

  createVdi(name, size) {
    return this.call('VDI.create', {
      name_label: name,
      name_description: '',
      SR: this.sr,
      virtual_size: String(size),
      type: 'user',
      sharable: false,
      read_only: false,
      other_config: {},
      xenstore_data: {},
      sm_config: {},
      tags: [],
    });
  }

  /** The plugin's own vdi_attach (what xapi's dom0 attach runs): the datapath of the VDI. */
  async attachPath(vdi) {
    const rec = await this.call('VDI.get_record', vdi);
    const req = xmlrpc.encodeMethodCall('vdi_attach', [
      {
        host_ref: this.host,
        command: 'vdi_attach',
        args: ['true'],
        device_config: { SRmaster: 'true', ...this.dc },
        session_ref: 'OpaqueRef:unused-by-attach',
        sr_ref: this.sr,
        sr_uuid: this.srUuid,
        vdi_ref: vdi,
        vdi_location: rec.location,
        vdi_uuid: rec.uuid,
      },
    ]);
    const r = await execa(this.plugin, [req], { env: { ...SM_ENV, FLATSNAP_SMLOG: this.log.file }, extendEnv: false, reject: false });
    const res = xmlrpc.decodeMethodResponse(r.stdout);
    if (r.exitCode !== 0 || !res.ok) throw new Error(`vdi_attach of ${rec.uuid} failed: ${res.faultString ?? r.stderr}`);
    return res.value.params;
  }
}
