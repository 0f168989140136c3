// The XenAPI dispatcher: method table, parameter checking and coercion as
// xapi's generated server does it, sessions, and the generated per-class
// accessors (get_record, get_all_records_where, set_*, add_to_*, ...).
import { randomUUID } from 'node:crypto';
import type { XmlRpcValue } from '../../src/smapi/xmlrpc.js';
import { Db, fieldToWire, type Row } from './db.js';
import { compileWhere } from './query.js';
import { SCHEMA, type ClassSpec, type FieldSpec } from './schema.js';
import { ApiError, DateTimeValue, NULL_REF, parseDate, xapiDate, type Wire } from './wire.js';

export type PType = 'string' | 'int' | 'float' | 'bool' | 'datetime' | 'ref' | 'map' | 'set' | 'struct' | 'any';
export type Param = [name: string, type: PType];

export interface Settings {
  smDir: string;
  smPlugins?: string[];
  revertFlow: 'classic' | 'vdi-revert';
  url: string;
  smLog?: string;
  /** Hidden (_R_LOCAL_ROOT_ONLY) calls only from the __sm__backend session. */
  strictSmCallbacks: boolean;
  /** Hosts in the pool, the first one its master (default 1: a pool of one). */
  hosts?: number;
  /** Each host's plugin runs get FLATSNAP_LOCK_DIR=<lockRoot>/<host uuid>: per-host SM locks. */
  lockRoot?: string;
  /** The hosts' /etc/xapi.d/plugins: where host.call_plugin finds plugins. */
  xapiPluginsDir?: string;
  /** Each host's plugin runs get FLATSNAP_DATAPATH_ROOT=<datapathRoot>/<host uuid>: per-host tap-ctl, /dev/sm, /run. */
  datapathRoot?: string;
}

export interface Ctx {
  sim: SimCore;
  db: Db;
  session: string;
  /** The task ref of this call: a real task for Async calls, else a DummyRef. */
  task: string;
  method: string;
  /** The host the call runs on (xapi forwards work to a host); the pool master when absent. */
  host?: string;
}

/** The host `ctx` runs on. */
export function hostOf(ctx: Ctx): string {
  return ctx.host ?? ctx.sim.host;
}

/** `ctx` forwarded to `host`, as message_forwarding.ml does (same task and session). */
export function onHost(ctx: Ctx, host: string): Ctx {
  return host === hostOf(ctx) ? ctx : { ...ctx, host };
}

export interface MethodDef {
  params: Param[];
  /** number of trailing params that may be omitted (versioned defaults) */
  optional?: number;
  noSession?: boolean;
  /** also served as Async.<name>, with a task */
  async?: boolean;
  /** _R_LOCAL_ROOT_ONLY */
  localRoot?: boolean;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  fn: (ctx: Ctx, ...args: any[]) => Wire | void | Promise<Wire | void>;
}

export interface SimCore {
  db: Db;
  settings: Settings;
  methods: Map<string, MethodDef>;
  host: string;
  pool: string;
  dom0: string;
  /** runs fn as an Async task and returns the task ref immediately */
  startAsync(ctx: Ctx, method: string, run: (ctx: Ctx) => Promise<Wire | void>): string;
}

export const SM_USER = '__sm__backend';

// ---------------------------------------------------------------------------
// Coercion of decoded parameters (XML-RPC values or JSON values)

function typeError(name: string): ApiError {
  return new ApiError('FIELD_TYPE_ERROR', [name]);
}

export function coerce(name: string, t: PType, v: unknown): unknown {
  switch (t) {
    case 'any':
      return v;
    case 'string':
    case 'ref':
      if (typeof v !== 'string') throw typeError(name);
      return v;
    case 'int': {
      if (typeof v === 'number' && Number.isInteger(v)) return v;
      if (typeof v === 'string' && /^-?\d+$/.test(v.trim())) return Number(v.trim());
      throw typeError(name);
    }
    case 'float': {
      if (typeof v === 'number') return v;
      if (typeof v === 'string' && v.trim() !== '' && !Number.isNaN(Number(v))) return Number(v);
      throw typeError(name);
    }
    case 'bool':
      if (typeof v === 'boolean') return v;
      if (v === 'true' || v === 'false') return v === 'true';
      throw typeError(name);
    case 'datetime':
      if (v instanceof DateTimeValue) return parseDate(v.iso);
      if (typeof v === 'string') return parseDate(v);
      throw typeError(name);
    case 'map': {
      if (typeof v !== 'object' || v === null || Array.isArray(v) || v instanceof DateTimeValue) throw typeError(name);
      const out: Record<string, string> = {};
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        if (typeof x !== 'string') throw typeError(name);
        out[k] = x;
      }
      return out;
    }
    case 'set':
      if (!Array.isArray(v) || v.some((x) => typeof x !== 'string')) throw typeError(name);
      return [...(v as string[])];
    case 'struct':
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw typeError(name);
      return v;
  }
}

/** Value for a DB field from a client value, by the field's schema type. */
export function coerceField(f: FieldSpec, v: unknown): unknown {
  switch (f.type.t) {
    case 'string':
    case 'ref':
      return coerce(f.name, 'string', v);
    case 'enum': {
      const s = coerce(f.name, 'string', v) as string;
      if (!f.type.values.includes(s)) throw new ApiError('ENUM_VALUE_INVALID', [f.name, s]);
      return s;
    }
    case 'int':
      return coerce(f.name, 'int', v);
    case 'float':
      return coerce(f.name, 'float', v);
    case 'bool':
      return coerce(f.name, 'bool', v);
    case 'datetime':
      return coerce(f.name, 'datetime', v);
    case 'map':
      return coerce(f.name, 'map', v);
    case 'intmap':
      return Object.fromEntries(Object.entries(coerce(f.name, 'struct', v) as object).map(([k, x]) => [k, coerce(k, 'int', x)]));
    case 'set':
    case 'refset':
      return coerce(f.name, 'set', v);
    case 'rev':
      throw new ApiError('FIELD_TYPE_ERROR', [f.name]);
  }
}

// ---------------------------------------------------------------------------

export class Registry {
  readonly methods = new Map<string, MethodDef>();

  add(name: string, def: MethodDef): void {
    this.methods.set(name, def);
  }

  listMethods(): string[] {
    const out: string[] = [];
    for (const [name, def] of this.methods) {
      out.push(name);
      if (def.async) out.push(`Async.${name}`);
    }
    return out.sort();
  }
}

export async function dispatch(sim: SimCore, method: string, raw: Array<XmlRpcValue | unknown>): Promise<Wire> {
  const isAsync = method.startsWith('Async.');
  const name = isAsync ? method.slice('Async.'.length) : method;
  const def = sim.methods.get(name);
  if (!def || (isAsync && !def.async)) throw new ApiError('MESSAGE_METHOD_UNKNOWN', [method]);
  const nSession = def.noSession ? 0 : 1;
  const max = def.params.length + nSession;
  const min = max - (def.optional ?? 0);
  if (raw.length < min || raw.length > max) {
    throw new ApiError('MESSAGE_PARAMETER_COUNT_MISMATCH', [method, String(max), String(raw.length)]);
  }
  let session = '';
  if (!def.noSession) {
    session = typeof raw[0] === 'string' ? raw[0] : '';
    if (!sim.db.has('session', session)) throw new ApiError('SESSION_INVALID', [session]);
    if (def.localRoot) assertLocalRoot(sim, session, name);
  }
  const args = def.params.map(([pname, t], i) => {
    const v = raw[i + nSession];
    return v === undefined ? undefined : coerce(pname, t, v);
  });
  const ctx: Ctx = { sim, db: sim.db, session, task: `DummyRef:|${randomUUID()}|${name}`, method: name };
  if (isAsync) {
    return sim.startAsync(ctx, method, async (c) => (await def.fn(c, ...args)) ?? '');
  }
  const result = await def.fn(ctx, ...args);
  return result ?? '';
}

function assertLocalRoot(sim: SimCore, session: string, method: string): void {
  const s = sim.db.get('session', session);
  const ok = sim.settings.strictSmCallbacks ? s.auth_user_name === SM_USER : s.is_local_superuser === true;
  if (!ok) throw new ApiError('RBAC_PERMISSION_DENIED', [method.toLowerCase(), 'No permission in user session']);
}

// ---------------------------------------------------------------------------
// Generated accessors

function mapKeyTable(spec: ClassSpec): string {
  return spec.name;
}

export function registerGenerated(reg: Registry): void {
  for (const spec of Object.values(SCHEMA)) {
    if (!spec.listed) continue;
    const C = spec.name;
    reg.add(`${C}.get_record`, { params: [['self', 'ref']], fn: (c, self: string) => c.db.wireRecord(C, self) });
    reg.add(`${C}.get_all`, { params: [], fn: (c) => c.db.all(C) });
    reg.add(`${C}.get_all_records`, {
      params: [],
      fn: (c) => Object.fromEntries(c.db.all(C).map((r) => [r, c.db.wireRecord(C, r)])),
    });
    reg.add(`${C}.get_all_records_where`, {
      params: [['expr', 'string']],
      fn: (c, expr: string) => {
        const pred = compileWhere(expr);
        return Object.fromEntries(c.db.where(C, pred).map((r) => [r, c.db.wireRecord(C, r)]));
      },
    });
    reg.add(`${C}.get_by_uuid`, { params: [['uuid', 'string']], fn: (c, uuid: string) => c.db.byUuid(C, uuid) });
    if (spec.hasNameLabel) {
      reg.add(`${C}.get_by_name_label`, {
        params: [['label', 'string']],
        fn: (c, label: string) => c.db.where(C, (r) => r.name_label === label),
      });
    }
    for (const f of spec.fields) {
      reg.add(`${C}.get_${f.name}`, {
        params: [['self', 'ref']],
        fn: (c, self: string) => {
          const rec = c.db.record(C, self);
          return fieldToWire(f.type.t, rec[f.name]);
        },
      });
      if (!f.rw) continue;
      reg.add(`${C}.set_${f.name}`, {
        params: [['self', 'ref'], ['value', 'any']],
        fn: (c, self: string, value: unknown) => {
          c.db.get(C, self);
          c.db.set(C, self, f.name, coerceField(f, value));
        },
      });
      if (f.type.t === 'map') {
        reg.add(`${C}.add_to_${f.name}`, {
          params: [['self', 'ref'], ['key', 'string'], ['value', 'string']],
          fn: (c, self: string, key: string, value: string) => {
            const m = { ...(c.db.get(C, self)[f.name] as Record<string, string>) };
            if (Object.hasOwn(m, key)) {
              throw new ApiError('MAP_DUPLICATE_KEY', [mapKeyTable(spec), f.name, self, key]);
            }
            m[key] = value;
            c.db.set(C, self, f.name, m);
          },
        });
        reg.add(`${C}.remove_from_${f.name}`, {
          params: [['self', 'ref'], ['key', 'string']],
          fn: (c, self: string, key: string) => {
            const m = { ...(c.db.get(C, self)[f.name] as Record<string, string>) };
            if (!Object.hasOwn(m, key)) return; // no error if absent (XO relies on it)
            delete m[key];
            c.db.set(C, self, f.name, m);
          },
        });
      }
      if (f.type.t === 'set') {
        reg.add(`${C}.add_${f.name}`, {
          params: [['self', 'ref'], ['value', 'string']],
          fn: (c, self: string, value: string) => {
            const s = c.db.get(C, self)[f.name] as string[];
            if (!s.includes(value)) c.db.set(C, self, f.name, [...s, value]);
          },
        });
        reg.add(`${C}.remove_${f.name}`, {
          params: [['self', 'ref'], ['value', 'string']],
          fn: (c, self: string, value: string) => {
            const s = c.db.get(C, self)[f.name] as string[];
            if (s.includes(value)) c.db.set(C, self, f.name, s.filter((x) => x !== value));
          },
        });
      }
    }
  }
}

/** A hidden/explicit setter that writes a field as-is (after type coercion). */
export function rawSetter(reg: Registry, cls: string, field: string, opts: { localRoot?: boolean } = {}): void {
  const f = SCHEMA[cls]!.byName.get(field)!;
  reg.add(`${cls}.set_${field}`, {
    params: [['self', 'ref'], ['value', 'any']],
    localRoot: opts.localRoot,
    fn: (c, self: string, value: unknown) => {
      c.db.get(cls, self);
      c.db.set(cls, self, field, coerceField(f, value));
    },
  });
}

// ---------------------------------------------------------------------------
// Sessions

export function newSession(db: Db, host: string, fields: Row): string {
  const now = xapiDate();
  return db.create('session', {
    this_host: host,
    this_user: NULL_REF,
    last_active: now,
    validation_time: now,
    subject: NULL_REF,
    parent: NULL_REF,
    ...fields,
  });
}

export function registerSession(reg: Registry): void {
  reg.add('session.login_with_password', {
    params: [
      ['uname', 'string'],
      ['pwd', 'string'],
      ['version', 'string'],
      ['originator', 'string'],
    ],
    optional: 2,
    noSession: true,
    fn: (c, uname: string, _pwd: string, _version?: string, originator?: string) => {
      if (uname !== 'root') throw new ApiError('SESSION_AUTHENTICATION_FAILED', [uname, 'Authentication failure']);
      return newSession(c.db, c.sim.host, {
        is_local_superuser: true,
        auth_user_name: uname,
        originator: originator ?? '',
      });
    },
  });
  reg.add('session.logout', {
    params: [],
    fn: (c) => {
      destroySession(c.db, c.session);
    },
  });
  reg.add('session.get_this_host', {
    params: [['self', 'ref']],
    fn: (c, self: string) => {
      if (!c.db.has('session', self)) throw new ApiError('SESSION_INVALID', [self]);
      return c.db.field<string>('session', self, 'this_host');
    },
  });
  reg.add('session.get_this_user', {
    params: [['self', 'ref']],
    fn: (c, self: string) => c.db.field<string>('session', self, 'this_user'),
  });
  reg.add('session.get_uuid', { params: [['self', 'ref']], fn: (c, self: string) => c.db.field<string>('session', self, 'uuid') });
  reg.add('session.get_record', { params: [['self', 'ref']], fn: (c, self: string) => c.db.wireRecord('session', self) });
  reg.add('session.get_is_local_superuser', {
    params: [['self', 'ref']],
    fn: (c, self: string) => c.db.field<boolean>('session', self, 'is_local_superuser'),
  });
  reg.add('session.get_other_config', {
    params: [['self', 'ref']],
    fn: (c, self: string) => ({ ...c.db.field<Record<string, string>>('session', self, 'other_config') }),
  });
}

export function destroySession(db: Db, session: string): void {
  if (!db.has('session', session)) return;
  db.destroy('session', session);
}
