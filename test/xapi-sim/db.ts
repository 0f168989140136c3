// The simulator's database: one in-memory table per class, persisted as a
// single JSON file written atomically (temp file, fsync, rename, fsync dir).
// Every write bumps a global generation, which is what event.from tokens count.
// Deleting a row never rewrites other rows' refs to it (xapi keeps dangling
// refs such as VDI.snapshot_of); only computed reverse fields change.
import { randomUUID } from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { SCHEMA, classOf, defaultOf, HIDDEN_FIELDS, type ClassSpec } from './schema.js';
import { ApiError, DateTimeValue, I64, NULL_REF, type Wire, type WireStruct } from './wire.js';

export type Row = Record<string, unknown>;
interface Stored {
  f: Row;
  c: number; // generation of creation
  m: number; // generation of last modification
}
interface Tomb {
  cls: string;
  ref: string;
  gen: number;
  snap: Row;
}
interface State {
  version: 1;
  gen: number;
  tables: Record<string, Record<string, Stored>>;
  tombs: Tomb[];
  /** generation below which deletions are no longer known (EVENTS_LOST) */
  horizon: number;
}

const MAX_TOMBS = 20000;

export const newRef = (): string => `OpaqueRef:${randomUUID()}`;

// "C.F" -> [target class, reverse field name]
const REVERSE = new Map<string, { cls: string; field: string }>();
for (const c of Object.values(SCHEMA)) {
  for (const f of c.fields) {
    if (f.type.t === 'rev') REVERSE.set(`${f.type.cls}.${f.type.field}`, { cls: c.name, field: f.name });
  }
}

export class Db {
  private state: State;
  private dirty = false;
  private waiters: Array<() => void> = [];

  constructor(private readonly file: string) {
    this.state = { version: 1, gen: 0, tables: {}, tombs: [], horizon: 0 };
    if (fs.existsSync(file)) {
      const loaded = JSON.parse(fs.readFileSync(file, 'utf8')) as State;
      if (loaded.version !== 1) throw new Error(`${file}: unknown state version`);
      this.state = loaded;
    }
    for (const c of Object.keys(SCHEMA)) this.state.tables[c] ??= {};
  }

  get generation(): number {
    return this.state.gen;
  }
  get horizon(): number {
    return this.state.horizon;
  }

  private table(cls: string): Record<string, Stored> {
    const t = this.state.tables[cls];
    if (!t) throw new Error(`no table ${cls}`);
    return t;
  }

  private bump(): number {
    this.dirty = true;
    this.state.gen += 1;
    const ws = this.waiters;
    this.waiters = [];
    queueMicrotask(() => ws.forEach((w) => w()));
    return this.state.gen;
  }

  /** Resolves at the next write (or never, if none): event.from blocks on it. */
  nextChange(): Promise<void> {
    return new Promise((resolve) => this.waiters.push(resolve));
  }

  has(cls: string, ref: string): boolean {
    return Object.hasOwn(this.table(cls), ref);
  }

  /** The stored fields; throws HANDLE_INVALID like xapi for unknown refs. */
  get(cls: string, ref: string): Row {
    const s = this.table(cls)[ref];
    if (!s) throw new ApiError('HANDLE_INVALID', [cls, ref]);
    return s.f;
  }

  field<T = unknown>(cls: string, ref: string, field: string): T {
    return this.get(cls, ref)[field] as T;
  }

  all(cls: string): string[] {
    return Object.keys(this.table(cls));
  }

  where(cls: string, pred: (row: Row, ref: string) => boolean): string[] {
    return Object.entries(this.table(cls))
      .filter(([ref, s]) => pred(s.f, ref))
      .map(([ref]) => ref);
  }

  byUuid(cls: string, uuid: string): string {
    const r = this.where(cls, (row) => row.uuid === uuid)[0];
    if (r === undefined) throw new ApiError('UUID_INVALID', [cls, uuid]);
    return r;
  }

  create(cls: string, fields: Row, ref: string = newRef()): string {
    const spec = classOf(cls)!;
    const row: Row = {};
    for (const f of spec.fields) {
      if (f.type.t === 'rev') continue;
      const v = fields[f.name];
      row[f.name] = v === undefined ? structuredClone(defaultOf(f)) : v;
    }
    if (!row.uuid) row.uuid = randomUUID();
    if (this.where(cls, (r) => r.uuid === row.uuid).length > 0) throw new ApiError('UUID_ALREADY_EXISTS', [cls, String(row.uuid)]);
    const gen = this.bump();
    this.table(cls)[ref] = { f: row, c: gen, m: gen };
    for (const f of spec.fields) if (f.type.t === 'ref') this.touchReverse(cls, f.name, row[f.name] as string);
    return ref;
  }

  set(cls: string, ref: string, field: string, value: unknown): void {
    const s = this.table(cls)[ref];
    if (!s) throw new ApiError('HANDLE_INVALID', [cls, ref]);
    const old = s.f[field];
    s.f[field] = value;
    s.m = this.bump();
    const spec = classOf(cls)!.byName.get(field);
    if (spec?.type.t === 'ref' && old !== value) {
      this.touchReverse(cls, field, old as string);
      this.touchReverse(cls, field, value as string);
    }
  }

  update(cls: string, ref: string, fields: Row): void {
    for (const [k, v] of Object.entries(fields)) this.set(cls, ref, k, v);
  }

  /** Marks a row modified without changing it (event.inject). */
  touch(cls: string, ref: string): number {
    const s = this.table(cls)[ref];
    if (!s) throw new ApiError('HANDLE_INVALID', [cls, ref]);
    s.m = this.bump();
    return s.m;
  }

  destroy(cls: string, ref: string): void {
    const t = this.table(cls);
    const s = t[ref];
    if (!s) throw new ApiError('HANDLE_INVALID', [cls, ref]);
    const snap = this.record(cls, ref);
    delete t[ref];
    const gen = this.bump();
    this.state.tombs.push({ cls, ref, gen, snap });
    if (this.state.tombs.length > MAX_TOMBS) {
      const dropped = this.state.tombs.splice(0, this.state.tombs.length - MAX_TOMBS);
      this.state.horizon = dropped[dropped.length - 1]!.gen;
    }
    const spec = classOf(cls)!;
    for (const f of spec.fields) if (f.type.t === 'ref') this.touchReverse(cls, f.name, s.f[f.name] as string);
  }

  private touchReverse(cls: string, field: string, target: string | undefined): void {
    const rev = REVERSE.get(`${cls}.${field}`);
    if (!rev || !target || target === NULL_REF) return;
    const s = this.table(rev.cls)[target];
    if (s) s.m = this.bump();
  }

  /** The full record, reverse fields included (internal representation). */
  record(cls: string, ref: string): Row {
    const spec = classOf(cls)!;
    const row = this.get(cls, ref);
    const out: Row = {};
    const hidden = HIDDEN_FIELDS[cls];
    for (const f of spec.fields) {
      if (hidden?.has(f.name)) continue;
      if (f.type.t === 'rev') {
        const { cls: rc, field: rf } = f.type;
        out[f.name] = this.where(rc, (r) => r[rf] === ref);
      } else {
        out[f.name] = structuredClone(row[f.name]);
      }
    }
    return out;
  }

  wireRecord(cls: string, ref: string): WireStruct {
    return toWire(classOf(cls)!, this.record(cls, ref));
  }

  /** Rows changed after `since`, and rows deleted after it. */
  changesSince(since: number): { live: Array<{ cls: string; ref: string; created: boolean; gen: number }>; dead: Tomb[] } {
    const live: Array<{ cls: string; ref: string; created: boolean; gen: number }> = [];
    for (const [cls, t] of Object.entries(this.state.tables)) {
      for (const [ref, s] of Object.entries(t)) if (s.m > since) live.push({ cls, ref, created: s.c > since, gen: s.m });
    }
    const dead = this.state.tombs.filter((d) => d.gen > since);
    return { live, dead };
  }

  flush(): void {
    if (!this.dirty) return;
    this.dirty = false;
    const dir = path.dirname(this.file);
    const tmp = path.join(dir, `.${path.basename(this.file)}.${process.pid}.tmp`);
    const fd = fs.openSync(tmp, 'w', 0o600);
    try {
      fs.writeSync(fd, JSON.stringify(this.state));
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, this.file);
    try {
      const dfd = fs.openSync(dir, 'r');
      fs.fsyncSync(dfd);
      fs.closeSync(dfd);
    } catch {
      /* directory fsync is best effort */
    }
  }
}

/** Internal representation -> wire values, by schema. */
export function toWire(spec: ClassSpec, rec: Row): WireStruct {
  const out: WireStruct = {};
  for (const [k, v] of Object.entries(rec)) {
    const f = spec.byName.get(k);
    if (!f) continue;
    out[k] = fieldToWire(f.type.t, v);
  }
  return out;
}

export function fieldToWire(t: string, v: unknown): Wire {
  switch (t) {
    case 'int':
      return new I64(Number(v));
    case 'float':
      return Number(v);
    case 'bool':
      return Boolean(v);
    case 'datetime':
      return new DateTimeValue(String(v));
    case 'map':
      return { ...(v as Record<string, string>) };
    case 'intmap':
      return Object.fromEntries(Object.entries(v as Record<string, number>).map(([k, n]) => [k, new I64(n)]));
    case 'set':
    case 'refset':
    case 'rev':
      return [...(v as string[])];
    default:
      return String(v);
  }
}

/** Rendering of a field for the query language and the CLI: xapi's DB string form. */
export function fieldToString(v: unknown): string {
  if (typeof v === 'boolean') return v ? 'true' : 'false';
  if (Array.isArray(v)) return `(${v.map((x) => `'${String(x)}'`).join(' ')})`;
  if (v && typeof v === 'object') return `(${Object.entries(v).map(([k, x]) => `('${k}' '${String(x)}')`).join(' ')})`;
  return String(v);
}
