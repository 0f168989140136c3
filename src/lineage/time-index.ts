// A timestamp index: entries kept sorted by (time, uuid) and found by binary search,
// the paper's alternative to listing every snapshot (`zfs list -t snapshot`) per lookup.
//
// Storage is a sorted array cut into chunks of at most CHUNK_MAX entries (a two-level
// sorted array): lookups binary-search the chunk boundaries, then the chunk, so they stay
// O(log n); an insert or remove moves at most one chunk's tail plus, on a split or merge,
// the chunk list, instead of half of a 10^5-entry array. Appending in time order (the
// normal case: snapshots are taken in time order) touches only the last chunk.
//
// Ties on time are ordered by uuid (UTF-16 code unit order), so every query is deterministic:
// seek(t) returns, among entries at the same latest time <= t, the one with the greatest uuid.

export interface TimeEntry {
  /** Milliseconds since the epoch, UTC (any finite number is accepted). */
  readonly time: number;
  /** Unique key of the entry within one index. */
  readonly uuid: string;
}

/** The query half of TimeIndex, for callers that must not change it. */
export interface ReadonlyTimeIndex<E extends TimeEntry = TimeEntry> extends Iterable<E> {
  readonly size: number;
  has(uuid: string): boolean;
  get(uuid: string): E | undefined;
  first(): E | undefined;
  last(): E | undefined;
  seek(t: number): E | undefined;
  seekBefore(t: number): E | undefined;
  seekAfter(t: number): E | undefined;
  seekAtOrAfter(t: number): E | undefined;
  range(from: number, to: number): E[];
  toArray(): E[];
}

/** Total order of the index: time, then uuid. */
export function compareEntries(a: TimeEntry, b: TimeEntry): number {
  if (a.time !== b.time) return a.time < b.time ? -1 : 1;
  return a.uuid < b.uuid ? -1 : a.uuid > b.uuid ? 1 : 0;
}

const CHUNK_MAX = 512;
const CHUNK_MIN = CHUNK_MAX / 4;

interface Pos {
  c: number;
  i: number;
}

function checkTime(t: number, what: string): void {
  if (Number.isNaN(t)) throw new RangeError(`${what}: time is NaN`);
}

export class TimeIndex<E extends TimeEntry = TimeEntry> implements ReadonlyTimeIndex<E> {
  private chunks: E[][] = [];
  private readonly byUuid = new Map<string, E>();

  /** Builds an index from entries in any order: O(n log n). Throws on a repeated uuid. */
  static from<E extends TimeEntry>(entries: Iterable<E>): TimeIndex<E> {
    const index = new TimeIndex<E>();
    const all: E[] = [];
    for (const e of entries) {
      index.admit(e);
      all.push(e);
    }
    all.sort(compareEntries);
    const step = CHUNK_MAX / 2;
    for (let k = 0; k < all.length; k += step) index.chunks.push(all.slice(k, k + step));
    return index;
  }

  get size(): number {
    return this.byUuid.size;
  }

  has(uuid: string): boolean {
    return this.byUuid.has(uuid);
  }

  get(uuid: string): E | undefined {
    return this.byUuid.get(uuid);
  }

  first(): E | undefined {
    return this.chunks[0]?.[0];
  }

  last(): E | undefined {
    const c = this.chunks[this.chunks.length - 1];
    return c?.[c.length - 1];
  }

  /** Adds `e` in order: O(log n) search plus one chunk's shift. Throws if its uuid is present. */
  insert(e: E): void {
    this.admit(e);
    if (this.chunks.length === 0) {
      this.chunks.push([e]);
      return;
    }
    const { c, i } = this.lowerBound(e);
    const chunk = this.chunks[c]!;
    if (i === chunk.length) chunk.push(e);
    else chunk.splice(i, 0, e);
    if (chunk.length > CHUNK_MAX) this.chunks.splice(c + 1, 0, chunk.splice(CHUNK_MAX / 2));
  }

  /** Removes the entry with this uuid and returns it (undefined if absent): O(log n) + one chunk. */
  remove(uuid: string): E | undefined {
    const e = this.byUuid.get(uuid);
    if (e === undefined) return undefined;
    const { c, i } = this.lowerBound(e);
    const chunk = this.chunks[c]!;
    if (chunk[i] !== e) throw new Error(`time index corrupted: ${uuid} not at its place`);
    chunk.splice(i, 1);
    this.byUuid.delete(uuid);
    if (chunk.length === 0) this.chunks.splice(c, 1);
    else if (chunk.length < CHUNK_MIN) this.mergeSmall(c);
    return e;
  }

  /** The latest entry with time <= t (greatest uuid among equal times). */
  seek(t: number): E | undefined {
    checkTime(t, 'seek');
    return this.at(this.prev(this.firstAfter(t, true)));
  }

  /** The latest entry with time < t. */
  seekBefore(t: number): E | undefined {
    checkTime(t, 'seekBefore');
    return this.at(this.prev(this.firstAfter(t, false)));
  }

  /** The earliest entry with time > t (smallest uuid among equal times). */
  seekAfter(t: number): E | undefined {
    checkTime(t, 'seekAfter');
    return this.at(this.firstAfter(t, true));
  }

  /** The earliest entry with time >= t. */
  seekAtOrAfter(t: number): E | undefined {
    checkTime(t, 'seekAtOrAfter');
    return this.at(this.firstAfter(t, false));
  }

  /** Entries with from <= time <= to, in order: O(log n + k). */
  range(from: number, to: number): E[] {
    checkTime(from, 'range');
    checkTime(to, 'range');
    const out: E[] = [];
    const start = this.firstAfter(from, false);
    for (let c = start.c, i = start.i; c < this.chunks.length; c++, i = 0) {
      const chunk = this.chunks[c]!;
      for (; i < chunk.length; i++) {
        const e = chunk[i]!;
        if (e.time > to) return out;
        out.push(e);
      }
    }
    return out;
  }

  *[Symbol.iterator](): Iterator<E> {
    for (const chunk of this.chunks) yield* chunk;
  }

  toArray(): E[] {
    return this.chunks.flat();
  }

  private admit(e: E): void {
    if (!Number.isFinite(e.time)) throw new RangeError(`time index: entry ${e.uuid} has time ${e.time}`);
    if (this.byUuid.has(e.uuid)) throw new Error(`time index: duplicate uuid ${e.uuid}`);
    this.byUuid.set(e.uuid, e);
  }

  // Where `e` is or would go: the first chunk whose last entry is not before e (the last
  // chunk if e sorts after everything), and the first position there not before e.
  // Needs at least one chunk.
  private lowerBound(e: TimeEntry): Pos {
    const chunks = this.chunks;
    let lo = 0;
    let hi = chunks.length - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = chunks[mid]!;
      if (compareEntries(c[c.length - 1]!, e) < 0) lo = mid + 1;
      else hi = mid;
    }
    const chunk = chunks[lo]!;
    let a = 0;
    let b = chunk.length;
    while (a < b) {
      const mid = (a + b) >>> 1;
      if (compareEntries(chunk[mid]!, e) < 0) a = mid + 1;
      else b = mid;
    }
    return { c: lo, i: a };
  }

  // Position of the first entry past t: with inclusive, the first with time > t (so
  // everything before it has time <= t); without, the first with time >= t. The end
  // position is { c: chunks.length, i: 0 }.
  private firstAfter(t: number, inclusive: boolean): Pos {
    const chunks = this.chunks;
    let lo = 0;
    let hi = chunks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      const c = chunks[mid]!;
      const x = c[c.length - 1]!.time;
      if (x > t || (!inclusive && x === t)) hi = mid;
      else lo = mid + 1;
    }
    const chunk = chunks[lo];
    if (chunk === undefined) return { c: lo, i: 0 };
    let a = 0;
    let b = chunk.length;
    while (a < b) {
      const mid = (a + b) >>> 1;
      const x = chunk[mid]!.time;
      if (x > t || (!inclusive && x === t)) b = mid;
      else a = mid + 1;
    }
    return { c: lo, i: a };
  }

  private prev(p: Pos): Pos | undefined {
    if (p.i > 0) return { c: p.c, i: p.i - 1 };
    const c = this.chunks[p.c - 1];
    return c === undefined ? undefined : { c: p.c - 1, i: c.length - 1 };
  }

  private at(p: Pos | undefined): E | undefined {
    return p === undefined ? undefined : this.chunks[p.c]?.[p.i];
  }

  private mergeSmall(c: number): void {
    const chunks = this.chunks;
    const here = chunks[c]!;
    const next = chunks[c + 1];
    if (next !== undefined && here.length + next.length <= CHUNK_MAX) {
      chunks[c] = here.concat(next);
      chunks.splice(c + 1, 1);
      return;
    }
    const before = chunks[c - 1];
    if (before !== undefined && before.length + here.length <= CHUNK_MAX) {
      chunks[c - 1] = before.concat(here);
      chunks.splice(c, 1);
    }
  }
}
