// Sidecar format: what is written is what is read, and what is read is checked.
import {
  SIDECAR_FORMAT,
  SIDECAR_VERSION,
  decodeSidecar,
  encodeSidecar,
  isXapiTime,
  toXapiTime,
  validateVdiMeta,
  type VdiMeta,
} from '../../src/backends/reflink/sidecar.js';
import { SmError } from '../../src/errors.js';

const U1 = '3f2504e0-4f89-41d3-9a0c-0305e82c3301';
const U2 = '7c9e6679-7425-40de-944b-e07fc1f90ae7';

const base: VdiMeta = {
  uuid: U1,
  nameLabel: 'root disk',
  nameDescription: 'with "quotes", üñíçødé and\nnewlines',
  parent: null,
  isSnapshot: false,
  snapshotTime: null,
};

const doc = (over: Record<string, unknown> = {}): Record<string, unknown> => ({
  format: SIDECAR_FORMAT,
  version: SIDECAR_VERSION,
  ...base,
  ...over,
});

describe('sidecar encode/decode', () => {
  test('round-trips, with and without the optional type', () => {
    const snap: VdiMeta = { ...base, uuid: U2, parent: U1, isSnapshot: true, snapshotTime: '20261125T01:02:03Z', type: 'suspend' };
    for (const m of [base, snap]) {
      const text = encodeSidecar(m);
      expect(text.endsWith('\n')).toBe(true);
      expect(JSON.parse(text)).toMatchObject({ format: 'flatsnap-vdi', version: 1 });
      expect(decodeSidecar(text, m.uuid)).toEqual({ ok: true, meta: m });
    }
  });

  test('unknown keys are ignored and not carried into the metadata', () => {
    const d = validateVdiMeta(doc({ futureOptional: 42 }), U1);
    expect(d).toEqual({ ok: true, meta: base });
  });

  test.each<[string, Record<string, unknown> | unknown, RegExp]>([
    ['an array', [], /not a JSON object/],
    ['null', null, /not a JSON object/],
    ['another format', doc({ format: 'qcow2' }), /format is "qcow2"/],
    ['a missing version', doc({ version: undefined }), /version is not an integer/],
    ['a newer version', doc({ version: 3 }), /newer flatsnap/],
    ['an object record', doc({ version: 2 }), /object record/],
    ['version 0', doc({ version: 0 }), /unknown version 0/],
    ['an upper-case uuid', doc({ uuid: U1.toUpperCase() }), /lower-case uuid/],
    ['a path as uuid', doc({ uuid: '../../etc/passwd' }), /lower-case uuid/],
    ['a uuid that is not the file name', doc({ uuid: U2 }), /does not match the file name/],
    ['a numeric name', doc({ nameLabel: 7 }), /nameLabel/],
    ['a missing description', doc({ nameDescription: undefined }), /nameDescription/],
    ['a bad parent', doc({ parent: 'nope' }), /parent/],
    ['itself as parent', doc({ parent: U1 }), /parent is the VDI itself/],
    ['a string isSnapshot', doc({ isSnapshot: 'true' }), /isSnapshot/],
    ['an ISO-extended time', doc({ snapshotTime: '2026-11-25T01:02:03Z' }), /snapshotTime/],
    ['an impossible date', doc({ snapshotTime: '20261345T01:02:03Z' }), /snapshotTime/],
    ['a snapshot without time', doc({ isSnapshot: true, snapshotTime: null }), /snapshot without snapshotTime/],
    ['a bad type', doc({ type: 'User Disk' }), /type/],
  ])('rejects %s', (_what, value, problem) => {
    const d = validateVdiMeta(value, U1);
    expect(d.ok).toBe(false);
    if (!d.ok) expect(d.problem).toMatch(problem);
  });

  test('rejects text that is not JSON, and truncated JSON', () => {
    expect(decodeSidecar('', U1)).toMatchObject({ ok: false, problem: expect.stringMatching(/not JSON/) });
    const text = encodeSidecar(base);
    expect(decodeSidecar(text.slice(0, text.length / 2), U1)).toMatchObject({ ok: false });
  });

  test('refuses to encode what it could not read back', () => {
    expect(() => encodeSidecar({ ...base, isSnapshot: true })).toThrow(SmError);
    expect(() => encodeSidecar({ ...base, uuid: 'x' })).toThrow(/InvalidArg|Invalid argument/);
  });

  test('xapi DateTime helpers', () => {
    expect(toXapiTime(new Date('2026-11-25T01:02:03.456Z'))).toBe('20261125T01:02:03Z');
    expect(isXapiTime('19700101T00:00:00Z')).toBe(true);
    expect(isXapiTime('20260230T00:00:00Z')).toBe(false);
    expect(isXapiTime('20261125T24:00:00Z')).toBe(false);
    expect(isXapiTime(toXapiTime(new Date()))).toBe(true);
  });
});
