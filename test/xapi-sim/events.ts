// event.from / event.inject with xapi's token format "%020Ld,%020Ld"
// (generation, message generation), valid_ref_counts and blocking timeouts.
import type { Db } from './db.js';
import type { Registry } from './api.js';
import { classByLower, SCHEMA } from './schema.js';
import { ApiError, I32, I64, type Wire, type WireStruct } from './wire.js';

const pad = (n: number) => String(Math.max(0, n)).padStart(20, '0');
export const tokenOf = (gen: number): string => `${pad(gen)},${pad(0)}`;

function parseToken(token: string): number {
  if (token === '') return 0;
  const m = /^(\d+),(\d+)$/.exec(token) ?? /^(\d+)$/.exec(token);
  if (!m) throw new ApiError('EVENT_FROM_TOKEN_PARSE_FAILURE', [token]);
  return Number(m[1]);
}

interface Filter {
  classes: Set<string>; // canonical class names
  objects: Map<string, Set<string>>; // class -> refs (task/<ref>)
}

function parseClasses(classes: string[]): Filter {
  const f: Filter = { classes: new Set(), objects: new Map() };
  for (const c of classes) {
    if (c === '*') {
      for (const s of Object.values(SCHEMA)) if (s.listed) f.classes.add(s.name);
      continue;
    }
    const slash = c.indexOf('/');
    const spec = classByLower(slash < 0 ? c : c.slice(0, slash));
    if (!spec) continue; // xapi ignores unknown classes
    if (slash < 0) f.classes.add(spec.name);
    else {
      const set = f.objects.get(spec.name) ?? new Set();
      set.add(c.slice(slash + 1));
      f.objects.set(spec.name, set);
    }
  }
  return f;
}

const wanted = (f: Filter, cls: string, ref: string) => f.classes.has(cls) || f.objects.get(cls)?.has(ref) === true;

function collect(db: Db, f: Filter, since: number): WireStruct[] {
  const { live, dead } = db.changesSince(since);
  const evs: Array<{ gen: number; ev: WireStruct }> = [];
  const ts = (Date.now() / 1000).toFixed(6);
  for (const l of live) {
    if (!wanted(f, l.cls, l.ref)) continue;
    evs.push({
      gen: l.gen,
      ev: {
        id: new I64(l.gen),
        timestamp: ts,
        class: l.cls.toLowerCase(),
        operation: l.created ? 'add' : 'mod',
        ref: l.ref,
        snapshot: db.wireRecord(l.cls, l.ref),
      },
    });
  }
  for (const d of dead) {
    if (!wanted(f, d.cls, d.ref)) continue;
    evs.push({ gen: d.gen, ev: { id: new I64(d.gen), timestamp: ts, class: d.cls.toLowerCase(), operation: 'del', ref: d.ref } });
  }
  return evs.sort((a, b) => a.gen - b.gen).map((e) => e.ev);
}

export async function eventFrom(db: Db, classes: string[], token: string, timeout: number): Promise<Wire> {
  const since = parseToken(token);
  if (since < db.horizon) throw new ApiError('EVENTS_LOST', []);
  const f = parseClasses(classes);
  const deadline = Date.now() + Math.max(0, timeout) * 1000;
  for (;;) {
    const gen = db.generation;
    const events = collect(db, f, since);
    const left = deadline - Date.now();
    if (events.length > 0 || left <= 0) {
      const counts: WireStruct = {};
      for (const c of new Set([...f.classes, ...f.objects.keys()])) counts[c.toLowerCase()] = new I32(db.all(c).length);
      return { events, valid_ref_counts: counts, token: tokenOf(gen) };
    }
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([db.nextChange(), new Promise<void>((r) => (timer = setTimeout(r, left)))]);
    clearTimeout(timer);
  }
}

export function registerEvents(reg: Registry): void {
  reg.add('event.from', {
    params: [
      ['classes', 'set'],
      ['token', 'string'],
      ['timeout', 'float'],
    ],
    fn: (c, classes: string[], token: string, timeout: number) => eventFrom(c.db, classes, token, timeout),
  });
  reg.add('event.inject', {
    params: [
      ['class', 'string'],
      ['ref', 'string'],
    ],
    fn: (c, cls: string, ref: string) => {
      const spec = classByLower(cls);
      if (!spec) throw new ApiError('HANDLE_INVALID', [cls, ref]);
      const gen = c.db.touch(spec.name, ref);
      return tokenOf(gen - 1);
    },
  });
  reg.add('event.get_current_id', { params: [], fn: (c) => new I64(c.db.generation) });
}
