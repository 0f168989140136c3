// Version 2 sidecars (object records), the version 1 upgrade, image names.
import {
  RECORD_VERSION,
  SIDECAR_FORMAT,
  decodeRecord,
  encodeRecord,
  encodeSidecar,
  metaProblem,
  type ObjectRecord,
} from '../../src/backends/reflink/sidecar.js';
import { objectName, parseObjectName, parseSwapName, swapPath } from '../../src/backends/reflink/names.js';
import type { VdiMeta } from '../../src/backends/backend.js';

const A = '3f2504e0-4f89-41d3-9a0c-0305e82c3301';
const B = '7c9e6679-7425-40de-944b-e07fc1f90ae7';

const meta: VdiMeta = {
  name_label: 'root',
  name_description: 'with "quotes"\nand lines',
  vdi_type: 'user',
  is_a_snapshot: false,
  snapshot_time: '19700101T00:00:00Z',
  snapshot_of: '',
  read_only: false,
};

const vol: ObjectRecord = { id: A, kind: 'volume', vdi: A, created: 1764035249123, deleted: false, meta };

describe('object names', () => {
  test('a VDI object is <vdi>, anything else <id>.hidden; both parse back', () => {
    expect(objectName(A, A)).toBe(A);
    expect(objectName(B, A)).toBe(A);
    expect(objectName(A)).toBe(`${A}.hidden`);
    expect(parseObjectName(A)).toEqual({ uuid: A, hidden: false });
    expect(parseObjectName(`${A}.hidden`)).toEqual({ uuid: A, hidden: true });
    for (const bad of [`${A}.json`, `${A}.hidden.json`, A.toUpperCase(), `../${A}`, '.flatsnap-sr.json', `${A}.Hidden`]) {
      expect(parseObjectName(bad)).toBeUndefined();
    }
    expect(() => objectName('../etc')).toThrow(/lower-case uuid/);
    expect(() => objectName(A, 'x')).toThrow(/lower-case uuid/);
    expect(parseSwapName(swapPath('/sr', A).slice(4))).toBe(A);
    expect(parseSwapName('.flatsnap-swap.x.json')).toBeUndefined();
  });
});

describe('object records', () => {
  test('round-trip: volume, snapshot VDI, internal snapshot, hidden clone, tombstone', () => {
    const recs: Array<[ObjectRecord, string]> = [
      [vol, A],
      [{ id: B, kind: 'snapshot', vdi: B, parent: A, created: 1764035249124, deleted: false, meta: { ...meta, is_a_snapshot: true, snapshot_of: A } }, B],
      [{ id: B, kind: 'internal-snapshot', parent: A, created: 5, deleted: false }, `${B}.hidden`],
      [{ id: B, kind: 'volume', parent: A, created: 7, deleted: true }, `${B}.hidden`],
      [{ ...vol, deleted: true }, A],
      [{ ...vol, id: B, vdi: A }, A], // after a revert: object B answers for VDI A
    ];
    for (const [r, name] of recs) {
      const text = encodeRecord(r, name);
      expect(JSON.parse(text)).toMatchObject({ format: SIDECAR_FORMAT, version: RECORD_VERSION });
      expect(decodeRecord(text, name)).toEqual({ ok: true, record: r, version: 2 });
    }
  });

  test('a record must belong to its image name', () => {
    expect(() => encodeRecord(vol, `${A}.hidden`)).toThrow(/does not belong/);
    expect(() => encodeRecord({ ...vol, vdi: B }, A)).toThrow(/does not belong/);
    const { vdi: _v, ...hidden } = vol;
    expect(() => encodeRecord(hidden, A)).toThrow(/does not belong/);
    expect(() => encodeRecord({ ...hidden, id: B }, `${A}.hidden`)).toThrow(/does not belong/);
  });

  test.each<[string, Record<string, unknown>, RegExp]>([
    ['a bad kind', { kind: 'zvol' }, /kind/],
    ['a path as id', { id: '../x' }, /id is not/],
    ['a snapshot whose vdi is not its id', { kind: 'snapshot', vdi: A, id: B }, /vdi === id/],
    ['an internal snapshot with a vdi', { kind: 'internal-snapshot' }, /internal snapshot backs no VDI/],
    ['a fractional time', { created: 1.5 }, /created/],
    ['a string deleted', { deleted: 'no' }, /deleted/],
    ['itself as parent', { parent: A }, /parent is the object itself/],
    ['bad meta', { meta: { ...meta, snapshot_of: 'x' } }, /snapshot_of/],
    ['meta without read_only', { meta: { ...meta, read_only: undefined } }, /read_only/],
  ])('rejects %s', (_what, over, problem) => {
    const doc = { format: SIDECAR_FORMAT, version: 2, ...vol, ...over };
    const d = decodeRecord(JSON.stringify(doc), doc.vdi === undefined ? `${String(doc.id)}.hidden` : String(doc.vdi));
    expect(d.ok).toBe(false);
    if (!d.ok) expect(d.problem).toMatch(problem);
  });

  test('newer versions and other formats are refused; unknown keys ignored', () => {
    const doc = { format: SIDECAR_FORMAT, version: 2, ...vol };
    expect(decodeRecord(JSON.stringify({ ...doc, version: 3 }), A)).toMatchObject({ ok: false, problem: expect.stringMatching(/newer flatsnap/) });
    expect(decodeRecord(JSON.stringify({ ...doc, format: 'x' }), A)).toMatchObject({ ok: false });
    expect(decodeRecord(JSON.stringify({ ...doc, future: 1 }), A)).toEqual({ ok: true, record: vol, version: 2 });
    expect(decodeRecord('{', A)).toMatchObject({ ok: false, problem: expect.stringMatching(/not JSON/) });
  });

  test('version 1 sidecars are upgraded', () => {
    const v1 = encodeSidecar({ uuid: B, nameLabel: 'snap', nameDescription: '', parent: A, isSnapshot: true, snapshotTime: '20261125T01:02:03Z', type: 'user' });
    const d = decodeRecord(v1, B);
    expect(d).toEqual({
      ok: true,
      version: 1,
      record: {
        id: B,
        kind: 'snapshot',
        vdi: B,
        parent: A,
        created: Date.UTC(2026, 10, 25, 1, 2, 3),
        deleted: false,
        meta: { name_label: 'snap', name_description: '', vdi_type: 'user', is_a_snapshot: true, snapshot_time: '20261125T01:02:03Z', snapshot_of: A, read_only: false },
      },
    });
    expect(decodeRecord(v1, `${B}.hidden`)).toMatchObject({ ok: false });
    expect(decodeRecord(v1, A)).toMatchObject({ ok: false });
  });

  test('metaProblem', () => {
    expect(metaProblem(meta)).toBeUndefined();
    expect(metaProblem({ ...meta, vdi_type: 'User Disk' })).toMatch(/vdi_type/);
    expect(metaProblem({ ...meta, snapshot_time: '2026-01-01' })).toMatch(/snapshot_time/);
    expect(metaProblem(null)).toMatch(/not an object/);
  });
});
