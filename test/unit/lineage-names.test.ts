import {
  MAX_TIME,
  formatInternalSnapshotName,
  formatName,
  formatSnapshotName,
  formatTimestamp,
  isSnapshotName,
  parseSnapshotName,
  parseTimestamp,
} from '../../src/lineage/index.js';
import { prng, uuidOf } from './lineage-sim.js';

const U = '3f2c8a1e-0b7d-4c55-9d41-6a2f1b0c9e77';
const T = Date.UTC(2026, 10, 25, 1, 47, 29, 123);

describe('timestamps', () => {
  test('fixed width UTC, millisecond precision', () => {
    expect(formatTimestamp(T)).toBe('20261125T014729.123Z');
    expect(formatTimestamp(0)).toBe('19700101T000000.000Z');
    expect(formatTimestamp(MAX_TIME)).toBe('99991231T235959.999Z');
    expect(parseTimestamp('20261125T014729.123Z')).toBe(T);
  });

  test('out-of-range or non-integer times are refused', () => {
    for (const t of [-1, MAX_TIME + 1, 1.5, NaN, Infinity]) expect(() => formatTimestamp(t)).toThrow(RangeError);
  });

  test('anything not canonical is rejected', () => {
    for (const s of [
      '',
      '20261125T014729.123',
      '20261125T014729.12Z',
      '20261125t014729.123Z',
      '2026-11-25T01:47:29.123Z',
      '20261325T014729.123Z', // month 13
      '20260230T014729.123Z', // 30 February
      '20261125T244729.123Z', // hour 24
      '20261125T016029.123Z', // minute 60
      '19691231T235959.999Z', // before the epoch
      '00991231T235959.999Z',
      ' 20261125T014729.123Z',
      '２0261125T014729.123Z',
    ]) {
      expect(parseTimestamp(s)).toBeUndefined();
    }
  });

  test('round trip on random times', () => {
    const rnd = prng(42);
    for (let i = 0; i < 2000; i++) {
      const t = Math.floor(rnd() * MAX_TIME);
      expect(parseTimestamp(formatTimestamp(t))).toBe(t);
    }
  });
});

describe('snapshot names', () => {
  test('time first, then the VDI uuid; internal ones tagged', () => {
    expect(formatSnapshotName(T, U)).toBe(`20261125T014729.123Z-${U}`);
    expect(formatInternalSnapshotName(T, U)).toBe(`20261125T014729.123Z-int-${U}`);
    expect(parseSnapshotName(`20261125T014729.123Z-${U}`)).toEqual({ kind: 'vdi', time: T, uuid: U });
    expect(parseSnapshotName(`20261125T014729.123Z-int-${U}`)).toEqual({ kind: 'internal', time: T, uuid: U });
  });

  test('valid ZFS snapshot names and file names, fixed length', () => {
    const names = [formatSnapshotName(T, U), formatInternalSnapshotName(T, U)];
    for (const n of names) expect(n).toMatch(/^[A-Za-z0-9_.:-]+$/);
    expect(names.map((n) => n.length)).toEqual([57, 61]);
  });

  test('string order is time order, across both kinds', () => {
    const rnd = prng(7);
    const items = Array.from({ length: 3000 }, (_, i) => ({
      time: Date.UTC(2020, 0, 1) + Math.floor(rnd() * 1e10) * (rnd() < 0.1 ? 0 : 1),
      uuid: uuidOf(Math.floor(rnd() * 1e9), i),
      kind: rnd() < 0.5 ? ('vdi' as const) : ('internal' as const),
    }));
    const byName = [...items].sort((a, b) => (formatName(a) < formatName(b) ? -1 : 1));
    for (let i = 1; i < byName.length; i++) expect(byName[i - 1]!.time).toBeLessThanOrEqual(byName[i]!.time);
  });

  test('an internal snapshot sorts after VDI snapshots of the same millisecond', () => {
    const vdi = formatSnapshotName(T, 'ffffffff-ffff-4fff-bfff-ffffffffffff');
    const int = formatInternalSnapshotName(T, '00000000-0000-4000-8000-000000000000');
    expect(vdi < int).toBe(true);
    expect(int < formatSnapshotName(T + 1, '00000000-0000-4000-8000-000000000000')).toBe(true);
  });

  test('malformed names are rejected', () => {
    const good = formatSnapshotName(T, U);
    for (const s of [
      '',
      'snap1',
      good.slice(0, -1),
      `${good}0`,
      good.toUpperCase(),
      good.replace('-3f2c', '_3f2c'),
      `20261125T014729.123Z-${U.toUpperCase()}`,
      `20261125T014729.123Z-INT-${U}`,
      `20261125T014729.123Z-tmp-${U}`,
      `20261125T014729.123Z-int-int-${U}`,
      `20261125T014729.123Z--${U}`,
      `20261125T014729.123Z-${U.replace(/-/g, '')}`,
      `20260230T014729.123Z-${U}`,
      `fs-int-20261125T014729.123Z-${U}`,
      `20261125T014729.123Z-${U}@x`,
    ]) {
      expect(parseSnapshotName(s)).toBeUndefined();
      expect(isSnapshotName(s)).toBe(false);
    }
  });

  test('formatting refuses what could not be parsed back', () => {
    expect(() => formatSnapshotName(T, U.toUpperCase())).toThrow(RangeError);
    expect(() => formatSnapshotName(T, 'not-a-uuid')).toThrow(RangeError);
    expect(() => formatInternalSnapshotName(-5, U)).toThrow(RangeError);
  });

  test('format(parse(s)) === s on random names', () => {
    const rnd = prng(3);
    for (let i = 0; i < 2000; i++) {
      const n = {
        kind: rnd() < 0.5 ? ('vdi' as const) : ('internal' as const),
        time: Math.floor(rnd() * MAX_TIME),
        uuid: uuidOf(Math.floor(rnd() * 2 ** 40), Math.floor(rnd() * 2 ** 31)),
      };
      const s = formatName(n);
      expect(parseSnapshotName(s)).toEqual(n);
    }
  });
});
