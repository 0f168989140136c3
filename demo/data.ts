// The known data of the demo's disks: what is written where, and the sha256 a disk
// must read back for a given state.
//
// Every disk is DISK_SIZE bytes. The demo only ever writes these regions:
//   header   [0, 64 KiB)            rewritten at every change (a block snapshots share)
//   base     [64 KiB, 4 MiB)        written once, before the first snapshot
//   slot i   8 MiB + i * 7 MiB, 256 KiB each, i = 0..7   (one per change)
// A region never written reads as zeros. A disk's checksum is the sha256 of these
// regions read in that order (6 MiB); the expected one is computed from the state.
import { createHash } from 'node:crypto';

export const KiB = 1024;
export const MiB = 1024 * KiB;
export const DISK_SIZE = 64 * MiB;
export const SLOTS = 8;
const HDR_LEN = 64 * KiB;
const BASE_LEN = 4 * MiB - HDR_LEN;
const SLOT_LEN = 256 * KiB;
const slotOffset = (i: number): number => 8 * MiB + i * 7 * MiB;

/** The content of one disk: each region's pattern tag (null: never written, reads as zeros). */
export interface DiskState {
  readonly hdr: string | null;
  readonly base: string | null;
  readonly slots: readonly (string | null)[];
}

export interface Region {
  readonly name: string;
  readonly offset: number;
  readonly length: number;
  /** The pattern tag, or null for zeros. */
  readonly tag: string | null;
}

/** Total bytes the checksum covers. */
export const KNOWN_BYTES = HDR_LEN + BASE_LEN + SLOTS * SLOT_LEN;

/** A new disk: nothing written. */
export function emptyState(): DiskState {
  return { hdr: null, base: null, slots: Array.from({ length: SLOTS }, () => null) };
}

/** The state right after the first write: header and base, every slot empty. */
export function initialState(): DiskState {
  return { ...emptyState(), hdr: 'hdr-0', base: 'base' };
}

/** `state` with slot `slot` written with `tag` and the header rewritten as `hdr-<tag>`. */
export function change(state: DiskState, slot: number, tag: string): DiskState {
  const slots = [...state.slots];
  slots[slot] = tag;
  return { ...state, hdr: `hdr-${tag}`, slots };
}

export function regions(s: DiskState): Region[] {
  return [
    { name: 'header', offset: 0, length: HDR_LEN, tag: s.hdr },
    { name: 'base', offset: HDR_LEN, length: BASE_LEN, tag: s.base },
    ...s.slots.map((tag, i) => ({ name: `slot ${i}`, offset: slotOffset(i), length: SLOT_LEN, tag })),
  ];
}

/** The regions that differ between `from` and `to`: what a change writes. */
export function changedRegions(from: DiskState, to: DiskState): Region[] {
  const old = regions(from);
  return regions(to).filter((r, i) => r.tag !== old[i]!.tag);
}

/** One line for the report: `hdr-v3 [v1 v2 v3 -- -- -- -- --]` (`empty` before the first write). */
export function describeState(s: DiskState): string {
  if (s.hdr === null && s.base === null && s.slots.every((t) => t === null)) return 'empty';
  return `${s.hdr ?? '--'}${s.base === null ? ' (no base)' : ''} [${s.slots.map((t) => t ?? '--').join(' ')}]`;
}

const cache = new Map<string, Buffer>();

/** `length` bytes of pseudo-random data seeded by `tag` (xorshift32; zeros for null). */
export function patternBytes(tag: string | null, length: number): Buffer {
  const key = `${tag ?? ''}\0${length}`;
  const hit = cache.get(key);
  if (hit) return hit;
  const b = Buffer.alloc(length);
  if (tag !== null) {
    let x = 2166136261;
    for (const ch of tag) x = Math.imul(x ^ ch.charCodeAt(0), 16777619) >>> 0;
    x ||= 1;
    const words = new Uint32Array(b.buffer, b.byteOffset, length >>> 2);
    for (let i = 0; i < words.length; i++) {
      x ^= x << 13;
      x >>>= 0;
      x ^= x >>> 17;
      x ^= x << 5;
      x >>>= 0;
      words[i] = x;
    }
  }
  cache.set(key, b);
  return b;
}

const sha = (parts: readonly Buffer[]): string => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest('hex');
};

export function expectedSha(s: DiskState): string {
  return sha(regions(s).map((r) => patternBytes(r.tag, r.length)));
}

export function regionSha(b: Buffer): string {
  return sha([b]);
}

/** What a region read back holds: the tag whose pattern it equals, "zeros", or undefined. */
export function identify(b: Buffer, candidates: readonly (string | null)[]): string | undefined {
  for (const t of new Set([null, ...candidates])) if (patternBytes(t, b.length).equals(b)) return t ?? 'zeros';
  return undefined;
}

export { sha as sha256Of };
