// The per-call context every handler works from: the validated request, the
// backend (built lazily from device_config), the XenAPI client (built lazily from
// the request's session), and the SR's lineage loaded from ONE backend inventory
// per call. Tests construct it with their own backend and XenAPI stand-ins.
import { randomUUID } from 'node:crypto';
import { SmError } from '../errors.js';
import type { Backend, StoredObject } from '../backends/backend.js';
import { openBackend } from '../backends/type-analysis.js';
import { LineageTree } from '../lineage/index.js';
import type { SmRequest } from '../smapi/request.js';
import type { SrCalls } from '../xapi/sr.js';
import type { VdiCalls } from '../xapi/vdi.js';
import type { CommandContext } from './registry.js';

/** The XenAPI calls the handlers make (XapiClient has them all; tests pass an in-memory fake). */
export interface XapiPort {
  VDI: Pick<
    VdiCalls,
    | 'db_introduce'
    | 'db_forget'
    | 'get_by_uuid'
    | 'get_record'
    | 'get_all_records_where'
    | 'set_virtual_size'
    | 'set_physical_utilisation'
    | 'set_read_only'
    | 'add_to_sm_config'
    | 'remove_from_sm_config'
    | 'add_to_other_config'
    | 'remove_from_other_config'
  >;
  SR: Pick<SrCalls, 'get_record' | 'set_physical_size' | 'set_physical_utilisation' | 'set_virtual_allocation' | 'add_to_other_config'>;
}

/** The SR's objects as storage reported them, and the lineage tree built from them. */
export interface Lineage {
  tree: LineageTree;
  /** Object id -> what storage said about it; kept in step by the plan runner. */
  objects: Map<string, StoredObject>;
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
      const inv = await backend.inventory();
      const objects = new Map(inv.map((o) => [o.id, o] as const));
      return { tree: new LineageTree(backend.capabilities, inv), objects };
    })();
    return this.lineagePromise;
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
  return { VDI: group('VDI'), SR: group('SR') };
}
