// The relayout's pure parts: extent-map arithmetic, the window plan, the family of a
// disk, and device-config:relayout.
import { describe, expect, test } from '@jest/globals';
import {
  FIEMAP_EXTENT,
  alignRanges,
  dataRanges,
  extentsFrom,
  intersect,
  planRelayout,
  sameBlocks,
  windows,
  type Extent,
} from '../../src/backends/reflink/extent-map.js';
import type { VdiEntry } from '../../src/backends/reflink/listing.js';
import { DEFAULT_RELAYOUT_THRESHOLD, UNSHARE_DEFAULT, unshareArgs, unshareMargin } from '../../src/backends/reflink/relayout-policy.js';
import { familyOf } from '../../src/backends/reflink/relayout.js';
import type { ObjectRecord } from '../../src/backends/reflink/sidecar.js';
import { analyseDeviceConfig, parseRelayout, parseUnshare } from '../../src/backends/type-analysis.js';
import { SmError } from '../../src/errors.js';

const K = 1024;
const e = (logical: number, physical: number, length: number, flags = 0): Extent => ({ logical, physical, length, flags });
const S = FIEMAP_EXTENT.SHARED;

describe('extent maps', () => {
  test('extentsFrom reads the addon’s flat array', () => {
    expect(extentsFrom([0, 100, 10, S, 10, 500, 5, 1])).toEqual([e(0, 100, 10, S), e(10, 500, 5, 1)]);
    expect(extentsFrom([])).toEqual([]);
  });

  test('sameBlocks: same physical block at the same offset, split extents on either side', () => {
    const a = [e(0, 1000, 64 * K, S), e(64 * K, 9000, 64 * K, S), e(128 * K, 1000 + 128 * K, 64 * K, S)];
    const b = [e(0, 1000, 32 * K, S), e(32 * K, 1000 + 32 * K, 32 * K), e(64 * K, 1000 + 64 * K, 128 * K, S)];
    expect(sameBlocks(a, b)).toEqual([
      { start: 0, end: 64 * K },
      { start: 128 * K, end: 192 * K },
    ]);
    expect(sameBlocks(a, b, { shared: true })).toEqual([
      { start: 0, end: 32 * K },
      { start: 128 * K, end: 192 * K },
    ]);
    // same physical, different offset: not the same data at that offset
    expect(sameBlocks([e(0, 5000, 10)], [e(10, 5000, 10)])).toEqual([]);
  });

  test('sameBlocks ignores extents without a plain block address', () => {
    for (const f of [FIEMAP_EXTENT.UNWRITTEN, FIEMAP_EXTENT.DELALLOC, FIEMAP_EXTENT.UNKNOWN, FIEMAP_EXTENT.ENCODED, FIEMAP_EXTENT.DATA_INLINE]) {
      expect(sameBlocks([e(0, 100, 10, f)], [e(0, 100, 10)])).toEqual([]);
    }
    expect(sameBlocks([e(0, 100, 10, FIEMAP_EXTENT.LAST | S)], [e(0, 100, 10, S)], { shared: true })).toEqual([{ start: 0, end: 10 }]);
  });

  test('intersect', () => {
    const a = [
      { start: 0, end: 10 },
      { start: 20, end: 30 },
      { start: 40, end: 50 },
    ];
    const b = [
      { start: 5, end: 25 },
      { start: 45, end: 100 },
    ];
    expect(intersect(a, b)).toEqual([
      { start: 5, end: 10 },
      { start: 20, end: 25 },
      { start: 45, end: 50 },
    ]);
    expect(intersect([], b)).toEqual([]);
  });

  test('alignRanges keeps whole blocks, and an unaligned end only at the end of file', () => {
    expect(alignRanges([{ start: 100, end: 9000 }], 2048, 1 << 20)).toEqual([{ start: 2048, end: 8192 }]);
    expect(alignRanges([{ start: 0, end: 5000 }], 2048, 4608)).toEqual([{ start: 0, end: 4608 }]);
    expect(alignRanges([{ start: 10, end: 2000 }], 2048, 1 << 20)).toEqual([]);
  });

  test('dataRanges: the written data inside a window', () => {
    const m = [e(0, 100, 10), e(10, 300, 10, FIEMAP_EXTENT.UNWRITTEN), e(30, 500, 20)];
    expect(dataRanges(m, { start: 5, end: 40 })).toEqual([
      { start: 5, end: 10 },
      { start: 30, end: 40 },
    ]);
  });
});

describe('the window plan', () => {
  const W = 16;
  // 64 bytes in windows of 16: window 0 one extent, window 1 sixteen, window 2 a hole, window 3 four
  const map: Extent[] = [e(0, 1000, 16), ...Array.from({ length: 16 }, (_, i) => e(16 + i, 5000 + 7 * i, 1)), ...Array.from({ length: 4 }, (_, i) => e(48 + 4 * i, 9000 + 11 * i, 4))];

  test('windows counts extents and data per window', () => {
    const ws = windows(map, 64, W);
    expect(ws.map((w) => [w.start, w.end, w.extents, w.dataBytes])).toEqual([
      [0, 16, 1, 16],
      [16, 32, 16, 16],
      [32, 48, 0, 0],
      [48, 64, 4, 16],
    ]);
    // neighbours contiguous on disk are one run, whatever their flags (XFS splits where sharing changes)
    expect(windows([e(0, 100, 4, S), e(4, 104, 4), e(8, 108, 4, S), e(12, 500, 4)], 16, W)[0]!.extents).toBe(2);
    // an extent across a border counts in both windows
    expect(windows([e(8, 0, 16)], 32, W).map((w) => w.extents)).toEqual([1, 1]);
    // the last window is cut at the end of file
    expect(windows([], 40, W).map((w) => w.end)).toEqual([16, 32, 40]);
  });

  test('only windows dense in extents are rewritten', () => {
    const p = planRelayout(map, 64, { window: W, minExtents: 4 });
    expect(p.selected.map((w) => w.start)).toEqual([16, 48]);
    expect(p.extentsBefore).toBe(21);
    expect(p.extentsAfter).toBe(21 - 15 - 3);
    expect(p.copyBytes).toBe(32);
    expect(planRelayout(map, 64, { window: W, minExtents: 17 }).selected).toEqual([]);
  });
});

describe('the family of a disk', () => {
  const rec = (id: string, over: Partial<ObjectRecord>): VdiEntry => ({
    uuid: id,
    name: id,
    hidden: false,
    path: `/sr/${id}`,
    size: 1,
    allocated: 1,
    meta: null,
    record: { id, kind: 'volume', created: 1, deleted: false, ...over } as ObjectRecord,
  });
  test('snapshots, internal snapshots, tombstones and hidden volumes connected by parent links; never another VDI’s disk', () => {
    const all = [
      rec('live', { vdi: 'live', parent: 'base-snap' }),
      rec('base', { vdi: 'base', deleted: true }),
      rec('base-snap', { kind: 'snapshot', vdi: 'base-snap', parent: 'base' }),
      rec('s1', { kind: 'snapshot', vdi: 's1', parent: 'live' }),
      rec('i1', { kind: 'internal-snapshot', parent: 'live' }),
      rec('other-disk', { vdi: 'other-disk', parent: 'i1' }),
      rec('other-snap', { kind: 'snapshot', vdi: 'other-snap', parent: 'other-disk' }),
      rec('hidden', { parent: 's1' }),
      rec('stranger', { vdi: 'stranger' }),
      rec('stranger-snap', { kind: 'snapshot', vdi: 'stranger-snap', parent: 'stranger' }),
    ];
    expect(
      familyOf(all[0]!, all)
        .map((f) => f.record!.id)
        .sort(),
    ).toEqual(['base', 'base-snap', 'hidden', 'i1', 'other-snap', 's1']);
  });
});

describe('device-config:relayout', () => {
  test('values', () => {
    expect(parseRelayout('auto')).toEqual({ enabled: true, threshold: DEFAULT_RELAYOUT_THRESHOLD });
    expect(parseRelayout('')).toEqual({ enabled: true, threshold: DEFAULT_RELAYOUT_THRESHOLD });
    expect(parseRelayout('off')).toEqual({ enabled: false });
    expect(parseRelayout('false')).toEqual({ enabled: false });
    expect(parseRelayout('50000')).toEqual({ enabled: true, threshold: 50000 });
    for (const bad of ['0', '-1', '1e5', '12 ', 'sometimes', '01'])
      expect(() => parseRelayout(bad)).toThrow(SmError);
  });
  test('in the device-config of a reflink SR only', () => {
    expect(analyseDeviceConfig({ path: '/srv/a' })).toEqual({ kind: 'reflink', path: '/srv/a', allowCopy: false });
    expect(analyseDeviceConfig({ path: '/srv/a', relayout: 'off' })).toEqual({ kind: 'reflink', path: '/srv/a', allowCopy: false, relayout: { enabled: false } });
    expect(() => analyseDeviceConfig({ dataset: 'tank/sr', relayout: 'off' })).toThrow(/applies to the reflink backend/);
  });
});

describe('device-config:unshare', () => {
  test('values: auto (the default), on, off', () => {
    expect(UNSHARE_DEFAULT).toBe('auto');
    expect(parseUnshare('')).toBe('auto');
    expect(parseUnshare('auto')).toBe('auto');
    expect(parseUnshare('on')).toBe('on');
    expect(parseUnshare('true')).toBe('on');
    expect(parseUnshare('off')).toBe('off');
    expect(parseUnshare('false')).toBe('off');
    for (const bad of ['yes', 'ON ', '1', 'sometimes']) expect(() => parseUnshare(bad)).toThrow(/must be "auto", "on" or "off"/);
    expect(analyseDeviceConfig({ path: '/srv/a', unshare: 'off' })).toEqual({ kind: 'reflink', path: '/srv/a', allowCopy: false, unshare: 'off' });
    expect(() => analyseDeviceConfig({ dataset: 'tank/sr', unshare: 'on' })).toThrow(/applies to the reflink backend/);
  });
  test('auto keeps a fifth of the filesystem free; on only the relayout margin', () => {
    const GiB = 1024 ** 3;
    expect(unshareMargin(true, 100 * GiB, 256 * 1024 ** 2)).toBe(20 * GiB);
    expect(unshareMargin(false, 100 * GiB, 256 * 1024 ** 2)).toBe(256 * 1024 ** 2);
    // Never below the relayout's own margin.
    expect(unshareMargin(true, 1000, 500)).toBe(500);
  });
  test('the flags the trigger passes to flatsnap relayout', () => {
    expect(unshareArgs('auto')).toEqual(['--unshare', '--if-room']);
    expect(unshareArgs('on')).toEqual(['--unshare']);
    expect(unshareArgs('off')).toEqual([]);
  });
});
