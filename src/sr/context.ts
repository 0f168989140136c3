// The per-call context every handler works from: the validated request, the
// backend (built lazily from device_config), the XenAPI client (built lazily from
// the request's session), and the SR's lineage loaded from ONE backend inventory
// per call, or for a per-VDI command only the part of it that command's decisions
// need (Backend.family), so that its cost does not grow with the SR. Tests construct
// it with their own backend and XenAPI stand-ins.
import { randomUUID } from 'node:crypto';
import { SmError } from '../errors.js';
import type { Backend, StoredObject, VdiHint } from '../backends/backend.js';
import { openBackend } from '../backends/type-analysis.js';
import { LineageTree } from '../lineage/index.js';
import { log } from '../log.js';
import type { SmRequest } from '../smapi/request.js';
import type { SrRecord, VdiRecord } from '../xapi/records.js';
import type { SrCalls } from '../xapi/sr.js';
import type { HostCalls } from '../xapi/host.js';
import type { VdiCalls } from '../xapi/vdi.js';
import type { CommandContext } from './registry.js';
import { SM_OBJECT_KEY, SM_VOLUME_KEY, virtualAllocation } from './xapi-sync.js';

/** The XenAPI calls the handlers make (XapiClient has them all; tests pass an in-memory fake). */
export interface XapiPort {
  VDI: Pick<
    VdiCalls,
    | 'db_introduce'
    | 'db_forget'
    | 'get_by_uuid'
    | 'get_record'
    | 'get_all_records_where'
    | 'get_sm_config'
    | 'set_virtual_size'
    | 'set_physical_utilisation'
    | 'set_read_only'
    | 'add_to_sm_config'
    | 'remove_from_sm_config'
    | 'add_to_other_config'
    | 'remove_from_other_config'
  >;
  SR: Pick<SrCalls, 'get_record' | 'set_physical_size' | 'set_physical_utilisation' | 'set_virtual_allocation' | 'add_to_other_config'>;
  /** Pausing a VDI's tapdisk on the other hosts of a shared SR (live-pause.ts). */
  host: Pick<HostCalls, 'call_plugin'>;
}

/** The SR's objects as storage reported them, and the lineage tree built from them. */
export interface Lineage {
  tree: LineageTree;
  /** Object id -> what storage said about it; kept in step by the plan runner. */
  objects: Map<string, StoredObject>;
  /**
   * false: only the family of the VDIs a per-VDI command works on, not every object of
   * the SR (an inventory: true or absent); SR-wide sums cannot be taken from it then,
   * only what changed.
   */
  complete?: boolean;
  /** Σ virtual sizes of the visible VDIs among `objects` when loaded (for that change). */
  loadedAllocation?: number;
}

function lineageOf(backend: Backend, objs: readonly StoredObject[], complete: boolean): Lineage {
  const tree = new LineageTree(backend.capabilities, objs);
  const objects = new Map(objs.map((o) => [o.id, o] as const));
  return { tree, objects, complete, loadedAllocation: virtualAllocation(tree, objects) };
}

export interface ContextDeps {
  backend?: Backend;
  xapi?: XapiPort;
  /** Clock, ms since the epoch (tests pin it). */
  now?: () => number;
  newUuid?: () => string;
}

export class SrContext implements CommandContext {
  private readonly backendValue: Backend | undefined;
  private backendPromise: Promise<Backend> | undefined;
  private xapiValue: XapiPort | undefined;
  private lineagePromise: Promise<Lineage> | undefined;
  private readonly records = new Map<string, Promise<VdiRecord>>();
  private srRecordPromise: Promise<SrRecord> | undefined;
  readonly now: () => number;
  readonly newUuid: () => string;

  constructor(
    readonly req: SmRequest,
    deps: ContextDeps = {},
  ) {
    this.backendValue = deps.backend;
    this.xapiValue = deps.xapi;
    this.now = deps.now ?? Date.now;
    this.newUuid = deps.newUuid ?? randomUUID;
  }

  /** The handler's view of dispatch's context (dispatch passes a bare `{ req }`). */
  static of(ctx: CommandContext): SrContext {
    return ctx instanceof SrContext ? ctx : new SrContext(ctx.req);
  }

  /**
   * The backend device_config selects, loaded on first use (each backend's code is only
   * evaluated by the calls that need it); a bad device_config faults here, before any
   * storage is touched.
   */
  backend(): Promise<Backend> {
    this.backendPromise ??= this.backendValue ? Promise.resolve(this.backendValue) : openBackend(this.req.device_config);
    return this.backendPromise;
  }

  get xapi(): XapiPort {
    this.xapiValue ??= lazyXapi(this.req);
    return this.xapiValue;
  }

  /**
   * The SR's row, read once per call: live-pause.ts needs `shared` before the storage
   * step and updateSrSizes the sizes after it. No other writer changes them in between:
   * both run under the SR's locks.
   */
  srRecord(): Promise<SrRecord> {
    this.srRecordPromise ??= this.xapi.SR.get_record(this.srRef);
    return this.srRecordPromise;
  }

  get srUuid(): string {
    const u = this.req.sr_uuid;
    if (u === undefined) throw new SmError('BadRequest', `${this.req.command} needs sr_uuid`);
    return u;
  }

  get srRef(): string {
    const r = this.req.sr_ref;
    if (r === undefined) throw new SmError('BadRequest', `${this.req.command} needs sr_ref`);
    return r;
  }

  /** The VDI the request names: its location, which is its uuid for every flatsnap VDI. */
  get vdi(): string {
    const loc = this.req.vdi_location;
    if (loc === undefined) throw new SmError('BadRequest', `${this.req.command} needs vdi_location`);
    return loc.toLowerCase();
  }

  get vdiRef(): string {
    const r = this.req.vdi_ref;
    if (r === undefined) throw new SmError('BadRequest', `${this.req.command} needs vdi_ref`);
    return r;
  }

  /** Master-only commands (sm.ml srmaster_only): refused unless device_config SRmaster=true. */
  requireMaster(): void {
    if (!this.req.sr_master) {
      throw new SmError(
        'SMGeneral',
        `${this.req.command} runs on the SR master only, and this host is not it (device_config SRmaster is not "true")`,
      );
    }
  }

  /** The SR's lineage from one inventory; later calls in the same request reuse it. */
  lineage(): Promise<Lineage> {
    this.lineagePromise ??= (async () => {
      const backend = await this.backend();
      return lineageOf(backend, await backend.inventory(), true);
    })();
    return this.lineagePromise;
  }

  /** xapi's row of a VDI of this request, read once per request. */
  vdiRecord(ref: string): Promise<VdiRecord> {
    let p = this.records.get(ref);
    if (p === undefined) {
      p = this.xapi.VDI.get_record(ref);
      this.records.set(ref, p);
      p.catch(() => this.records.delete(ref));
    }
    return p;
  }

  /**
   * The lineage a command on these VDIs (uuid and ref) needs: their family (Backend.family,
   * located through the hints in their xapi rows) where the backend can read it on its own,
   * else, or if it says it cannot, the whole SR's. Plans and lineage stamps are the same
   * either way (see Backend.family); SR sizes then change by what the command changed.
   * A VDI given without a ref is looked for without hints (no XenAPI call: vdi_attach).
   * `stamps`: the command takes the lineage stamp of these VDIs' existing objects
   * (vdi_update), so their ancestors must be there too; `retires`: it may destroy or
   * tombstone (vdi_delete, vdi_revert), which is decided on everything below them.
   */
  async lineageFor(vdis: ReadonlyArray<{ vdi: string; ref?: string }>, opts: { stamps?: boolean; retires?: boolean } = {}): Promise<Lineage> {
    if (this.lineagePromise !== undefined) return this.lineagePromise;
    const backend = await this.backend();
    if (backend.family === undefined) return this.lineage();
    const hints: VdiHint[] = [];
    for (const { vdi, ref } of vdis) {
      if (ref === undefined) {
        hints.push({ vdi });
        continue;
      }
      const sm = await this.vdiRecord(ref).then(
        (r) => r.sm_config,
        (e: unknown) => {
          log().debug(`${this.req.command}: no xapi row for the hints of VDI ${vdi}: ${e instanceof Error ? e.message : String(e)}`);
          return {} as Record<string, string>;
        },
      );
      const h: VdiHint = { vdi };
      if (sm[SM_OBJECT_KEY] !== undefined) h.object = sm[SM_OBJECT_KEY].toLowerCase();
      if (sm[SM_VOLUME_KEY] !== undefined) h.volume = sm[SM_VOLUME_KEY].toLowerCase();
      hints.push(h);
    }
    const objs = await backend.family(hints, { ancestors: opts.stamps === true, descendants: opts.retires === true });
    if (objs === undefined) {
      log().debug(`${this.req.command}: the family of ${vdis.map((v) => v.vdi).join(', ')} needs the whole SR: full inventory`);
      return this.lineage();
    }
    log().debug(`${this.req.command}: family of ${vdis.map((v) => v.vdi).join(', ')}: ${objs.length} object(s)`);
    return lineageOf(backend, objs, false);
  }
}

/**
 * The request's XapiClient, loaded on the first call: the XML-RPC client is the heaviest
 * part of the bundle and sr_get_driver_info, attach and detach never call xapi.
 */
function lazyXapi(req: SmRequest): XapiPort {
  let client: Promise<XapiPort> | undefined;
  const load = (): Promise<XapiPort> => (client ??= import('../xapi/client.js').then((m) => m.XapiClient.forRequest(req)));
  const group = <G extends keyof XapiPort>(g: G): XapiPort[G] =>
    new Proxy({} as XapiPort[G], {
      get: (_target, name) => {
        if (typeof name !== 'string' || name === 'then') return undefined;
        return async (...args: unknown[]): Promise<unknown> => {
          const calls = (await load())[g] as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>;
          const fn = calls[name];
          if (typeof fn !== 'function') throw new TypeError(`XenAPI ${g}.${name} is not available`);
          return fn.apply(calls, args);
        };
      },
    });
  return { VDI: group('VDI'), SR: group('SR'), host: group('host') };
}
