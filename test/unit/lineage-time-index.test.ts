import { type TimeEntry, TimeIndex, compareEntries } from '../../src/lineage/index.js';
import { prng, uuidOf } from './lineage-sim.js';

const e = (time: number, uuid: string): TimeEntry => ({ time, uuid });

/** Reference: a plain array, sorted after every change, searched linearly. */
class Naive {
  items: TimeEntry[] = [];
  insert(x: TimeEntry): void {
    this.items.push(x);
    this.items.sort(compareEntries);
  }
  remove(uuid: string): void {
    this.items = this.items.filter((x) => x.uuid !== uuid);
  }
  seek(t: number): TimeEntry | undefined {
    return this.items.filter((x) => x.time <= t).at(-1);
  }
  seekBefore(t: number): TimeEntry | undefined {
    return this.items.filter((x) => x.time < t).at(-1);
  }
  seekAfter(t: number): TimeEntry | undefined {
    return this.items.find((x) => x.time > t);
  }
  seekAtOrAfter(t: number): TimeEntry | undefined {
    return this.items.find((x) => x.time >= t);
  }
  range(a: number, b: number): TimeEntry[] {
    return this.items.filter((x) => x.time >= a && x.time <= b);
  }
}

describe('TimeIndex', () => {
  test('seek finds the latest entry at or before t; ties broken by uuid', () => {
    const ix = TimeIndex.from([e(30, 'c'), e(10, 'a'), e(20, 'm'), e(20, 'b'), e(20, 'z')]);
    expect(ix.toArray().map((x) => `${x.time}${x.uuid}`)).toEqual(['10a', '20b', '20m', '20z', '30c']);
    expect(ix.seek(5)).toBeUndefined();
    expect(ix.seek(10)?.uuid).toBe('a');
    expect(ix.seek(20)).toEqual(e(20, 'z'));
    expect(ix.seek(29)).toEqual(e(20, 'z'));
    expect(ix.seek(Infinity)).toEqual(e(30, 'c'));
    expect(ix.seekBefore(20)).toEqual(e(10, 'a'));
    expect(ix.seekAfter(10)).toEqual(e(20, 'b'));
    expect(ix.seekAtOrAfter(20)).toEqual(e(20, 'b'));
    expect(ix.seekAfter(30)).toBeUndefined();
    expect(ix.seekAtOrAfter(-Infinity)).toEqual(e(10, 'a'));
    expect(ix.range(15, 30).map((x) => x.uuid)).toEqual(['b', 'm', 'z', 'c']);
    expect(ix.range(31, 40)).toEqual([]);
    expect(ix.first()).toEqual(e(10, 'a'));
    expect(ix.last()).toEqual(e(30, 'c'));
  });

  test('empty index', () => {
    const ix = new TimeIndex();
    expect(ix.size).toBe(0);
    expect(ix.seek(1)).toBeUndefined();
    expect(ix.seekAfter(1)).toBeUndefined();
    expect(ix.first()).toBeUndefined();
    expect(ix.last()).toBeUndefined();
    expect(ix.range(-Infinity, Infinity)).toEqual([]);
    expect(ix.remove('x')).toBeUndefined();
  });

  test('duplicate uuids, NaN and infinite times are refused', () => {
    const ix = new TimeIndex();
    ix.insert(e(1, 'a'));
    expect(() => ix.insert(e(2, 'a'))).toThrow(/duplicate/);
    expect(() => ix.insert(e(NaN, 'b'))).toThrow(RangeError);
    expect(() => ix.insert(e(Infinity, 'b'))).toThrow(RangeError);
    expect(() => ix.seek(NaN)).toThrow(RangeError);
    expect(() => TimeIndex.from([e(1, 'a'), e(1, 'a')])).toThrow(/duplicate/);
    expect(ix.size).toBe(1);
  });

  test('remove returns the entry and keeps order', () => {
    const ix = TimeIndex.from([e(1, 'a'), e(2, 'b'), e(3, 'c')]);
    expect(ix.remove('b')).toEqual(e(2, 'b'));
    expect(ix.has('b')).toBe(false);
    expect(ix.seek(2)).toEqual(e(1, 'a'));
    expect([...ix].map((x) => x.uuid)).toEqual(['a', 'c']);
  });

  test('extra fields travel with the entries', () => {
    const ix = new TimeIndex<TimeEntry & { name: string }>();
    ix.insert({ time: 5, uuid: 'u', name: 'five' });
    expect(ix.seek(6)?.name).toBe('five');
    expect(ix.get('u')?.name).toBe('five');
  });

  test.each([1, 2, 3])('agrees with a naive sorted array under random operations (seed %i)', (seed) => {
    const rnd = prng(seed);
    const ix = new TimeIndex();
    const ref = new Naive();
    const live: string[] = [];
    // Few distinct times (many ties) and enough entries to split and merge chunks.
    const time = (): number => Math.floor(rnd() * 400) * (seed === 3 ? 1 : 17);
    for (let step = 0; step < 3000; step++) {
      const r = rnd();
      if (r < 0.55 || live.length === 0) {
        const x = e(time(), uuidOf(step));
        ix.insert(x);
        ref.insert(x);
        live.push(x.uuid);
      } else if (r < 0.8) {
        const k = Math.floor(rnd() * live.length);
        const uuid = live[k]!;
        live.splice(k, 1);
        expect(ix.remove(uuid)?.uuid).toBe(uuid);
        ref.remove(uuid);
      } else {
        const t = time() + (rnd() < 0.5 ? 0 : 0.5);
        expect(ix.seek(t)).toBe(ref.seek(t));
        expect(ix.seekBefore(t)).toBe(ref.seekBefore(t));
        expect(ix.seekAfter(t)).toBe(ref.seekAfter(t));
        expect(ix.seekAtOrAfter(t)).toBe(ref.seekAtOrAfter(t));
        const t2 = t + Math.floor(rnd() * 2000);
        expect(ix.range(t, t2)).toEqual(ref.range(t, t2));
      }
      expect(ix.size).toBe(ref.items.length);
    }
    expect(ix.toArray()).toEqual(ref.items);
    // Drain in random order: chunks shrink, merge and disappear.
    while (live.length > 0) {
      const uuid = live.splice(Math.floor(rnd() * live.length), 1)[0]!;
      ix.remove(uuid);
      ref.remove(uuid);
      if (live.length % 50 === 0) {
        const t = time();
        expect(ix.seek(t)).toBe(ref.seek(t));
        expect(ix.toArray()).toEqual(ref.items);
      }
    }
    expect(ix.size).toBe(0);
    expect(ix.first()).toBeUndefined();
  });

  test('10^5 entries: build, random inserts, seeks and removes stay fast', () => {
    const n = 100_000;
    const rnd = prng(99);
    const entries = Array.from({ length: n }, (_, i) => e(Math.floor(rnd() * 1e12), uuidOf(i)));

    let t0 = performance.now();
    const built = TimeIndex.from(entries);
    const buildMs = performance.now() - t0;

    t0 = performance.now();
    const ix = new TimeIndex();
    for (const x of entries) ix.insert(x);
    const insertMs = performance.now() - t0;

    t0 = performance.now();
    let hits = 0;
    for (let i = 0; i < n; i++) if (ix.seek(Math.floor(rnd() * 1e12)) !== undefined) hits++;
    const seekMs = performance.now() - t0;

    expect(ix.toArray()).toEqual(built.toArray());
    const sorted = built.toArray();
    let unordered = 0;
    for (let i = 1; i < sorted.length; i++) if (compareEntries(sorted[i - 1]!, sorted[i]!) >= 0) unordered++;
    expect(unordered).toBe(0);

    t0 = performance.now();
    for (let i = 0; i < n; i += 2) ix.remove(uuidOf(i));
    const removeMs = performance.now() - t0;
    expect(ix.size).toBe(n / 2);
    expect(hits).toBeGreaterThan(n * 0.9);

    // Generous bounds (a single spliced array needs ~2 s for the random inserts alone; this
    // index needs ~0.2 s for each phase on a busy machine).
    expect(buildMs).toBeLessThan(1500);
    expect(insertMs).toBeLessThan(1500);
    expect(seekMs).toBeLessThan(1500);
    expect(removeMs).toBeLessThan(1500);
  });
});
