// The simulator core: DB bootstrap (pool, host, dom0), plugin registration,
// the method table, Async task runs and xapi's background SR auto-scan.
import { Db } from './db.js';
import { dispatch, registerGenerated, registerSession, Registry, type Ctx, type MethodDef, type Settings, type SimCore } from './api.js';
import { registerEvents } from './events.js';
import { registerHost } from './flows/host.js';
import { registerSr, pbdPlug, srScan } from './flows/sr.js';
import { registerVdi, registerVdiRevert } from './flows/vdi.js';
import { registerVm } from './flows/vm.js';
import { discoverPlugins } from './sm-exec.js';
import { createTask, finishTask, registerTasks } from './tasks.js';
import { ApiError, NULL_REF, type Wire } from './wire.js';
import { randomUUID } from 'node:crypto';

export class Sim implements SimCore {
  readonly methods: Map<string, MethodDef>;
  private readonly reg = new Registry();
  host = NULL_REF;
  pool = NULL_REF;
  dom0 = NULL_REF;
  private scanTimer: NodeJS.Timeout | undefined;
  private readonly running = new Set<Promise<unknown>>();

  constructor(
    readonly db: Db,
    readonly settings: Settings,
    readonly log: (s: string) => void = () => undefined,
  ) {
    registerGenerated(this.reg);
    registerSession(this.reg);
    registerEvents(this.reg);
    registerTasks(this.reg);
    registerSr(this.reg);
    registerVdi(this.reg);
    registerVm(this.reg);
    registerHost(this.reg);
    if (settings.revertFlow === 'vdi-revert') registerVdiRevert(this.reg);
    this.reg.add('system.listMethods', { params: [], noSession: true, fn: () => this.reg.listMethods() });
    this.reg.add('pool.get_master', { params: [['self', 'ref']], fn: (c, self: string) => c.db.field<string>('pool', self, 'master') });
    this.methods = this.reg.methods;
  }

  internalCtx(method: string): Ctx {
    return { sim: this, db: this.db, session: NULL_REF, task: `DummyRef:|${randomUUID()}|${method}`, method };
  }

  async boot(): Promise<void> {
    const db = this.db;
    const pool0 = db.all('pool')[0];
    this.host = pool0 !== undefined ? db.field<string>('pool', pool0, 'master') : (db.all('host')[0] ?? '');
    if (this.host === '') this.host = this.createHost('xapi-sim', '127.0.0.1');
    this.pool = pool0 ?? db.create('pool', { name_label: '', master: this.host });
    this.dom0 = this.controlDomain(this.host, 'xapi-sim');
    // --hosts N: the other members of the pool, each with its own control domain.
    for (let n = db.all('host').length + 1; n <= (this.settings.hosts ?? 1); n++) this.joinHost(`xapi-sim-${n}`, `127.0.0.${n}`);
    // sessions from before a restart stay valid (xapi keeps them in its DB); SM sessions do not
    for (const s of db.where('session', (r) => r.auth_user_name === '__sm__backend')) db.destroy('session', s);
    await discoverPlugins(this.internalCtx('sm_register'), this.log);
    db.flush();
  }

  private createHost(name: string, address: string): string {
    return this.db.create('host', {
      name_label: name,
      hostname: name,
      address,
      software_version: { product_brand: 'XCP-ng', product_version: '8.3.0', xapi: '26.4', platform_name: 'XCP', xapi_build: 'sim' },
      API_version_vendor_implementation: {},
      enabled: true,
      local_cache_sr: NULL_REF,
    });
  }

  private controlDomain(host: string, name: string): string {
    const db = this.db;
    // A state file from before hosts had their own control domain: its only one is the master's.
    const found = db.where('VM', (v) => v.is_control_domain === true && (v.resident_on === host || db.all('host').length === 1))[0];
    return (
      found ??
      db.create('VM', {
        name_label: `Control domain on host: ${name}`,
        is_control_domain: true,
        power_state: 'Running',
        resident_on: host,
        domid: 0,
        domain_type: 'pv',
      })
    );
  }

  /**
   * A host joining the pool (Pool.join): its record, its control domain, and a PBD for
   * every shared SR with the master's device_config, unplugged until someone plugs it.
   */
  private joinHost(name: string, address: string): string {
    const db = this.db;
    const host = this.createHost(name, address);
    this.controlDomain(host, name);
    for (const sr of db.where('SR', (r) => r.shared === true)) {
      const model = db.where('PBD', (p) => p.SR === sr && p.host === this.host)[0];
      if (model === undefined) continue;
      db.create('PBD', { host, SR: sr, device_config: { ...db.field<Record<string, string>>('PBD', model, 'device_config') }, currently_attached: false });
    }
    return host;
  }

  /** After a restart xapi re-plugs the PBDs that were attached (sr_attach again), each on its host. */
  async replug(): Promise<void> {
    for (const pbd of this.db.where('PBD', (p) => p.currently_attached === true)) {
      this.db.set('PBD', pbd, 'currently_attached', false);
      try {
        await pbdPlug(this.internalCtx('PBD.plug'), pbd);
      } catch (e) {
        this.log(`re-plugging ${pbd} failed: ${e instanceof ApiError ? e.description.join(' ') : String(e)}`);
      }
    }
    this.db.flush();
  }

  call(method: string, params: unknown[]): Promise<Wire> {
    return dispatch(this, method, params);
  }

  startAsync(ctx: Ctx, method: string, run: (ctx: Ctx) => Promise<Wire | void>): string {
    const task = createTask(this.db, this.host, method, '', ctx.session);
    const c: Ctx = { ...ctx, task };
    const p = (async () => {
      try {
        finishTask(this.db, task, { ok: true, value: await run(c) });
      } catch (e) {
        finishTask(this.db, task, { ok: false, error: e });
      } finally {
        this.db.flush();
      }
    })();
    this.running.add(p);
    void p.finally(() => this.running.delete(p));
    return task;
  }

  /**
   * xapi's scanning thread: SRs with other_config dirty or auto-scan=true, every 30 s
   * (host other_config auto-scan-interval). The interval is looked at every second rather
   * than once per sleep, so a test that raises it right after start-up is not caught by
   * the first 30 s sleep on a slow machine.
   */
  startAutoScan(): void {
    let last = Date.now();
    const interval = (): number => {
      const oc = this.db.has('host', this.host) ? this.db.field<Record<string, string>>('host', this.host, 'other_config') : {};
      const secs = Number(oc['auto-scan-interval'] ?? 30);
      return (Number.isFinite(secs) && secs > 0 ? secs : 30) * 1000;
    };
    const tick = async () => {
      if (Date.now() - last >= interval()) {
        for (const sr of this.db.all('SR')) {
          const oc = this.db.field<Record<string, string>>('SR', sr, 'other_config');
          const plugged = this.db.where('PBD', (p) => p.SR === sr && p.currently_attached === true).length > 0;
          if (!plugged || !(oc['auto-scan'] === 'true' || Object.hasOwn(oc, 'dirty'))) continue;
          await srScan(this.internalCtx('SR.scan'), sr).catch((e) => this.log(`auto-scan of ${sr}: ${String(e)}`));
          this.db.flush();
        }
        last = Date.now();
      }
      schedule();
    };
    const schedule = () => {
      this.scanTimer = setTimeout(() => void tick(), 1000);
      this.scanTimer.unref();
    };
    schedule();
  }

  async stop(): Promise<void> {
    if (this.scanTimer) clearTimeout(this.scanTimer);
    await Promise.allSettled([...this.running]);
    this.db.flush();
  }
}
