// The pure parts of the unshare (src/backends/reflink/unshare-plan.ts; its setting,
// device-config:unshare, is in reflink-relayout-plan.test.ts): which ranges are shared, range arithmetic, and where two
// buffers hold equal whole blocks (what a dedupe onto the previous snapshot may remap).
import { FIEMAP_EXTENT } from '../../src/backends/reflink/extent-map.js';
import { equalRuns, pieces, sharedRanges, subtract, union } from '../../src/backends/reflink/unshare-plan.js';

const ext = (logical: number, length: number, flags = 0, physical = 1_000_000 + logical) => ({ logical, physical, length, flags });
const S = FIEMAP_EXTENT.SHARED;

describe('unshare planning', () => {
  test('shared ranges: plain shared extents only, neighbours merged', () => {
    expect(
      sharedRanges([ext(0, 10, S), ext(10, 5, S), ext(20, 5), ext(30, 5, S | FIEMAP_EXTENT.UNWRITTEN), ext(40, 5, S | FIEMAP_EXTENT.LAST)]),
    ).toEqual([
      { start: 0, end: 15 },
      { start: 40, end: 45 },
    ]);
    expect(sharedRanges([])).toEqual([]);
  });

  test('subtract and union', () => {
    const a = [
      { start: 0, end: 100 },
      { start: 200, end: 300 },
    ];
    const b = [
      { start: 10, end: 20 },
      { start: 90, end: 210 },
      { start: 250, end: 260 },
    ];
    expect(subtract(a, b)).toEqual([
      { start: 0, end: 10 },
      { start: 20, end: 90 },
      { start: 210, end: 250 },
      { start: 260, end: 300 },
    ]);
    expect(subtract(a, [])).toEqual(a);
    expect(subtract(a, [{ start: 0, end: 1000 }])).toEqual([]);
    expect(union(a, b)).toEqual([
      { start: 0, end: 300 },
    ]);
    expect(union([{ start: 0, end: 5 }], [{ start: 10, end: 15 }])).toEqual([
      { start: 0, end: 5 },
      { start: 10, end: 15 },
    ]);
  });

  test('pieces cut long ranges only', () => {
    expect(pieces([{ start: 0, end: 10 }, { start: 20, end: 22 }], 4)).toEqual([
      { start: 0, end: 4 },
      { start: 4, end: 8 },
      { start: 8, end: 10 },
      { start: 20, end: 22 },
    ]);
  });

  test('equal runs are whole blocks, counted from offset 0', () => {
    const x = Buffer.alloc(16, 1);
    const y = Buffer.alloc(16, 1);
    y[5] = 9; // block [4, 8) differs
    // The buffers start at file offset 100: blocks of 4 are [100,104), [104,108) ...
    expect(equalRuns(x, y, 100, 4)).toEqual([
      { start: 100, end: 104 },
      { start: 108, end: 116 },
    ]);
    // An unaligned start: the partial first block is not a run; nor a partial last one.
    expect(equalRuns(x.subarray(0, 10), y.subarray(0, 10), 102, 4)).toEqual([{ start: 108, end: 112 }]);
    // A shorter donor: only what both hold.
    expect(equalRuns(x, Buffer.alloc(4, 1), 0, 4)).toEqual([{ start: 0, end: 4 }]);
  });
});

