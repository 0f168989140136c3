// How a user-property value is stored. `zfs get -H` prints values raw and
// separates fields with tabs and records with newlines, so a name label with a
// tab or a newline would corrupt the whole scan (zfs-fuse and OpenZFS both
// accept such values). zfs-fuse also refuses an empty value ("missing value in
// property=value argument"). So every user-property value we write is encoded:
// printable ASCII except '%' stays as is (uuids, times, booleans are readable
// with `zfs get`), every other UTF-8 byte becomes %XX, and the empty string is
// the lone "%" (never produced otherwise).

/**
 * Longest encoded value we write, in bytes. libzfs refuses values of
 * ZFS_MAXPROPLEN (4096) bytes or more; zfs-fuse aborts at 8192 ("internal
 * error: Argument list too long"). 4095 is safe on both.
 */
export const MAX_USER_VALUE_BYTES = 4095;

const EMPTY = '%';

export function encodeUserValue(s: string): string {
  if (s === '') return EMPTY;
  let out = '';
  for (const b of Buffer.from(s, 'utf8')) {
    if (b >= 0x20 && b <= 0x7e && b !== 0x25) out += String.fromCharCode(b);
    else out += `%${b.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}

/** Inverse of encodeUserValue. A '%' not followed by two hex digits (a value set by hand) stays literal. */
export function decodeUserValue(v: string): string {
  if (v === EMPTY) return '';
  if (!v.includes('%')) return v;
  const bytes: number[] = [];
  for (let i = 0; i < v.length; ) {
    const c = v.charCodeAt(i);
    if (c === 0x25 && /^[0-9A-Fa-f]{2}$/.test(v.slice(i + 1, i + 3))) {
      bytes.push(parseInt(v.slice(i + 1, i + 3), 16));
      i += 3;
    } else {
      // Keep non-ASCII text typed by hand as its UTF-8 bytes.
      const ch = String.fromCodePoint(v.codePointAt(i) ?? 0xfffd);
      for (const b of Buffer.from(ch, 'utf8')) bytes.push(b);
      i += ch.length;
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

/** Bytes the encoded value takes. */
export function encodedLength(s: string): number {
  return encodeUserValue(s).length;
}

/**
 * The longest prefix of `s` (whole code points) whose encoding fits in
 * `maxBytes`; for labels and descriptions that may exceed a property's room.
 */
export function truncateForUserValue(s: string, maxBytes = MAX_USER_VALUE_BYTES): string {
  if (encodedLength(s) <= maxBytes) return s;
  let n = 0;
  let out = '';
  for (const ch of s) {
    const len = encodedLength(ch);
    if (n + len > maxBytes) break;
    n += len;
    out += ch;
  }
  return out;
}
