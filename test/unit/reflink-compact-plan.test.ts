// The compaction's pure planning (src/backends/reflink/compact-plan.ts): which physical
// pieces only immutable objects hold, which windows of the device to empty, where each
// piece goes in the dense copy, and what each holder gets cloned back.
import { describe, expect, test } from '@jest/globals';
import { batches, clonesFor, mapsAt, physicalRuns, pinnedPieces, placeDensely, planCompaction, type Piece } from '../../src/backends/reflink/compact-plan.js';
import { FIEMAP_EXTENT, type Extent } from '../../src/backends/reflink/extent-map.js';

const K = 1024;
const M = K * K;
const B = 2 * K; // filesystem block
const e = (logical: number, physical: number, length: number, flags = 0): Extent => ({ logical, physical, length, flags });
const S = FIEMAP_EXTENT.SHARED;
const opts = (...sizes: number[]) => ({ block: B, sizes });

describe('pinnedPieces', () => {
  test('what only the members hold, cut where the holders change, minus the blockers', () => {
    // Member 0 (older snapshot) holds [0, 128K) at physical 1M; member 1 only its first 64K
    // (the guest rewrote the second half between the two snapshots). The live image (blocker)
    // shares physical 1M + [32K, 48K).
    const m0 = [e(0, M, 128 * K, S)];
    const m1 = [e(0, M, 64 * K, S), e(64 * K, 9 * M, 64 * K, S)];
    const live = [e(32 * K, M + 32 * K, 16 * K, S)];
    const pieces = pinnedPieces([m0, m1], [live], opts(128 * K, 128 * K));
    expect(pieces).toEqual([
      { physical: M, length: 32 * K, holders: [{ member: 0, logical: 0 }, { member: 1, logical: 0 }] },
      { physical: M + 48 * K, length: 16 * K, holders: [{ member: 0, logical: 48 * K }, { member: 1, logical: 48 * K }] },
      { physical: M + 64 * K, length: 64 * K, holders: [{ member: 0, logical: 64 * K }] },
      { physical: 9 * M, length: 64 * K, holders: [{ member: 1, logical: 64 * K }] },
    ]);
    expect(physicalRuns(pieces)).toBe(3);
  });

  test('adjacent pieces with the same holders merge, however FIEMAP split them', () => {
    const m0 = [e(0, M, 64 * K, S), e(64 * K, M + 64 * K, 64 * K)];
    expect(pinnedPieces([m0], [], opts(128 * K))).toEqual([{ physical: M, length: 128 * K, holders: [{ member: 0, logical: 0 }] }]);
    // physically adjacent but not at consecutive offsets: two pieces, one run
    const m1 = [e(0, M, 64 * K), e(512 * K, M + 64 * K, 64 * K)];
    const p = pinnedPieces([m1], [], opts(M));
    expect(p).toHaveLength(2);
    expect(physicalRuns(p)).toBe(1);
  });

  test('left out: a block held at two different offsets, unwritten extents, what lies past the last whole block', () => {
    expect(pinnedPieces([[e(0, M, 64 * K)], [e(64 * K, M, 64 * K)]], [], opts(M, M))).toEqual([]);
    expect(pinnedPieces([[e(0, M, 64 * K, FIEMAP_EXTENT.UNWRITTEN)]], [], opts(M))).toEqual([]);
    // size 65K + 1 byte: only the first 64K are whole blocks of the file
    expect(pinnedPieces([[e(0, M, 66 * K)]], [], opts(65 * K + 1))).toEqual([{ physical: M, length: 64 * K, holders: [{ member: 0, logical: 0 }] }]);
  });

  test('a blocker covering everything leaves nothing', () => {
    const m = [e(0, M, 256 * K, S)];
    expect(pinnedPieces([m, m], [[e(0, M - 4 * K, 512 * K)]], opts(M, M))).toEqual([]);
  });
});

/** `count` pinned 64 KiB blocks spread over [base, base + span), one member, scattered offsets. */
function scattered(base: number, span: number, count: number, member = 0): Piece[] {
  const step = Math.floor(span / count / B) * B;
  return Array.from({ length: count }, (_, i) => ({ physical: base + i * step, length: 64 * K, holders: [{ member, logical: i * 2 * M }] }));
}

describe('planCompaction', () => {
  const W = 16 * M;
  test('windows where the pinned blocks form many runs are emptied; a dense one (an earlier compaction) is not', () => {
    const sparse = scattered(0, 2 * W, 64); // 32 runs in each of two windows
    const dense = [{ physical: 4 * W, length: 8 * M, holders: [{ member: 0, logical: 0 }] }];
    const few = scattered(6 * W, W, 3);
    const plan = planCompaction([...sparse, ...dense, ...few], { window: W, minRuns: 8, maxBytes: 1 << 30 });
    expect(plan.selected.map((w) => w.start)).toEqual([0, W]);
    expect(plan.selected.map((w) => w.runs)).toEqual([32, 32]);
    expect(plan.copyBytes).toBe(64 * 64 * K);
    expect(plan.windows).toBe(4);
    expect(plan.pinnedRuns).toBe(64 + 1 + 3);
    expect(plan.pinnedBytes).toBe(67 * 64 * K + 8 * M);
    expect(plan.deferred).toBe(0);
  });

  test('a piece across a window border is cut there; the budget defers windows to a later run', () => {
    const p = [
      ...scattered(0, W - 64 * K, 10),
      { physical: W - 32 * K, length: 64 * K, holders: [{ member: 1, logical: 100 * M }] },
      ...scattered(W + M, W - M, 10),
    ];
    const plan = planCompaction(p, { window: W, minRuns: 8, maxBytes: 11 * 64 * K });
    expect(plan.selected).toHaveLength(1);
    expect(plan.deferred).toBe(1);
    const last = plan.selected[0]!.pieces.at(-1)!;
    expect(last).toEqual({ physical: W - 32 * K, length: 32 * K, holders: [{ member: 1, logical: 100 * M }] });
    const all = planCompaction(p, { window: W, minRuns: 8, maxBytes: 1 << 30 });
    expect(all.selected[1]!.pieces[0]).toEqual({ physical: W, length: 32 * K, holders: [{ member: 1, logical: 100 * M + 32 * K }] });
    expect(all.pinnedRuns).toBe(21);
  });

  test('batches keep whole windows under the byte bound (at least one window each)', () => {
    const plan = planCompaction(scattered(0, 4 * W, 128), { window: W, minRuns: 8, maxBytes: 1 << 30 });
    expect(plan.selected).toHaveLength(4);
    const bs = batches(plan.selected, 2 * 32 * 64 * K);
    expect(bs.map((b) => b.length)).toEqual([2, 2]);
    expect(batches(plan.selected, 1).map((b) => b.length)).toEqual([1, 1, 1, 1]);
  });
});

describe('dense placement and the clones back', () => {
  test('pieces one after the other; each holder gets its own offsets, merged where both sides continue', () => {
    const pieces: Piece[] = [
      { physical: M, length: 64 * K, holders: [{ member: 0, logical: 256 * K }, { member: 2, logical: 256 * K }] },
      { physical: M + 128 * K, length: 64 * K, holders: [{ member: 0, logical: 320 * K }] },
      { physical: 3 * M, length: 32 * K, holders: [{ member: 2, logical: 0 }] },
    ];
    const placed = placeDensely(pieces, 4 * M);
    expect(placed.map((p) => p.dense)).toEqual([4 * M, 4 * M + 64 * K, 4 * M + 128 * K]);
    const yes = () => true;
    // member 0: offsets 256K and 320K continue, and so do their places in the copy
    expect(clonesFor(placed, 0, yes)).toEqual([{ src: 4 * M, dst: 256 * K, length: 128 * K }]);
    // member 2: in file order
    expect(clonesFor(placed, 2, yes)).toEqual([
      { src: 4 * M + 128 * K, dst: 0, length: 32 * K },
      { src: 4 * M, dst: 256 * K, length: 64 * K },
    ]);
    expect(clonesFor(placed, 1, yes)).toEqual([]);
    // a holder that no longer maps the block (remapped meanwhile) gets nothing there
    expect(clonesFor(placed, 0, (logical) => logical !== 320 * K)).toEqual([{ src: 4 * M, dst: 256 * K, length: 64 * K }]);
  });

  test('mapsAt: the range maps to exactly these blocks, across split extents', () => {
    const map = [e(0, 5 * M, 64 * K), e(64 * K, 5 * M + 64 * K, 32 * K, S), e(96 * K, 7 * M, 32 * K), e(256 * K, 8 * M, 64 * K, FIEMAP_EXTENT.UNWRITTEN)];
    expect(mapsAt(map, 0, 5 * M, 96 * K)).toBe(true);
    expect(mapsAt(map, 32 * K, 5 * M + 32 * K, 48 * K)).toBe(true);
    expect(mapsAt(map, 0, 5 * M, 128 * K)).toBe(false); // 96K.. is elsewhere
    expect(mapsAt(map, 96 * K, 7 * M, 32 * K)).toBe(true);
    expect(mapsAt(map, 96 * K, 7 * M, 64 * K)).toBe(false); // a hole after
    expect(mapsAt(map, 256 * K, 8 * M, 64 * K)).toBe(false); // unwritten
    expect(mapsAt([], 0, M, 4 * K)).toBe(false);
  });
});
