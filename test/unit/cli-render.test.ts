// The pure parts of `flatsnap` output: the object forest (order, drawing, dangling parents,
// cycles), a VDI's lineage, aligned tables, sizes, and the xapi comparison of `check`.
import { describe, expect, test } from '@jest/globals';
import type { StoredObject } from '../../src/backends/backend.js';
import { compareWithXapi } from '../../src/cli/check.js';
import { findVdi, forest, lineageOf, markers } from '../../src/cli/objects.js';
import { formatBytes, table } from '../../src/cli/output.js';
import type { SrView } from '../../src/cli/storage.js';
import { LineageTree, REFLINK_CAPABILITIES, ZFS_CAPABILITIES } from '../../src/lineage/index.js';
import type { VdiRecord } from '../../src/xapi/records.js';

const u = (n: number): string => `00000000-0000-4000-8000-${n.toString(16).padStart(12, '0')}`;
const H = 3600_000;

function obj(n: number, kind: StoredObject['kind'], created: number, extra: Partial<StoredObject> = {}): StoredObject {
  const vdi = kind === 'internal-snapshot' ? undefined : u(n);
  return {
    id: u(n),
    kind,
    created,
    deleted: false,
    virtual_size: 1 << 20,
    physical_utilisation: 4096,
    handle: `/sr/${u(n)}`,
    ...(vdi === undefined ? {} : { vdi }),
    ...extra,
  };
}

// disk 1 with snapshots 2 (t=2h), 3 (t=1h, older), tombstone 4 (3h), internal 5 (4h);
// clone 6 of snapshot 3; a copy 7 whose origin 99 is gone.
const OBJECTS: StoredObject[] = [
  obj(6, 'volume', 5 * H, { parent: u(3) }),
  obj(2, 'snapshot', 2 * H, { parent: u(1) }),
  obj(4, 'snapshot', 3 * H, { parent: u(1), deleted: true }),
  obj(1, 'volume', 0),
  obj(5, 'internal-snapshot', 4 * H, { parent: u(1) }),
  obj(3, 'snapshot', 1 * H, { parent: u(1) }),
  obj(7, 'volume', 6 * H, { parent: u(99) }),
];

describe('forest', () => {
  test('roots and children by time, pre-order, with tree drawing', () => {
    const f = forest(OBJECTS);
    expect(f.map((n) => [n.prefix, n.obj.id])).toEqual([
      ['', u(1)],
      ['├── ', u(3)],
      ['│   └── ', u(6)],
      ['├── ', u(2)],
      ['├── ', u(4)],
      ['└── ', u(5)],
      ['', u(7)],
    ]);
    expect(f.map((n) => n.depth)).toEqual([0, 1, 2, 1, 1, 1, 0]);
    expect(f.find((n) => n.obj.id === u(7))!.parentGone).toBe(true);
    expect(f.filter((n) => n.parentGone)).toHaveLength(1);
  });

  test('markers: [deleted], [internal], [hidden]', () => {
    expect(markers(OBJECTS.find((o) => o.id === u(4))!)).toEqual(['deleted']);
    expect(markers(OBJECTS.find((o) => o.id === u(5))!)).toEqual(['internal']);
    const { vdi: _v, ...hidden } = obj(8, 'volume', 0);
    expect(markers(hidden)).toEqual(['hidden']);
    expect(markers({ ...hidden, deleted: true })).toEqual(['deleted']);
  });

  test('a parent cycle is shown once from its smallest id, the repeat marked and cut', () => {
    const a = obj(11, 'volume', 0, { parent: u(12) });
    const b = obj(12, 'volume', 0, { parent: u(11) });
    const f = forest([b, a]);
    expect(f.map((n) => [n.obj.id, n.cycle])).toEqual([
      [u(11), false],
      [u(12), false],
      [u(11), true],
    ]);
  });

  test("a VDI's lineage: ancestors and descendants only", () => {
    expect([...lineageOf(OBJECTS, u(3))].sort()).toEqual([u(1), u(3), u(6)]);
    const f = forest(OBJECTS, lineageOf(OBJECTS, u(6)));
    expect(f.map((n) => n.prefix + n.obj.id)).toEqual([u(1), `└── ${u(3)}`, `    └── ${u(6)}`]);
  });

  test('findVdi: the visible object, else a tombstone that backed it, else an object id', () => {
    const tree = new LineageTree(REFLINK_CAPABILITIES, OBJECTS);
    expect(findVdi(OBJECTS, tree, u(6))?.id).toBe(u(6));
    expect(findVdi(OBJECTS, tree, u(4))?.id).toBe(u(4)); // tombstone
    expect(findVdi(OBJECTS, tree, u(5))?.id).toBe(u(5)); // internal: by id
    expect(findVdi(OBJECTS, tree, u(42))).toBeUndefined();
  });
});

describe('output helpers', () => {
  test('table: columns aligned, right alignment, last column unpadded, trailing space trimmed', () => {
    expect(table([['a', '1', 'x'], ['bbb', '22', '']], ['left', 'right'], ['H', 'N', 'NAME'])).toEqual(['H     N  NAME', 'a     1  x', 'bbb  22']);
    // Box-drawing characters count as one column each.
    expect(table([['├── a', 'k'], ['b', 'k']])).toEqual(['├── a  k', 'b      k']);
  });
  test.each([
    [0, '0 B'],
    [1023, '1023 B'],
    [1024, '1.0 KiB'],
    [1536, '1.5 KiB'],
    [16 << 20, '16.0 MiB'],
    [200 * 2 ** 30, '200 GiB'],
    [-1, '?'],
  ])('formatBytes(%d) = %s', (n, s) => {
    expect(formatBytes(n)).toBe(s);
  });
});

describe('check against xapi', () => {
  const objects = OBJECTS.filter((o) => o.id !== u(7));
  const view = (caps = ZFS_CAPABILITIES): SrView => {
    const tree = new LineageTree(caps, objects);
    return {
      backend: { kind: 'zfs', capabilities: caps } as SrView['backend'],
      srUuid: u(1000),
      where: 'zfs dataset tank/sr',
      objects,
      byId: new Map(objects.map((o) => [o.id, o])),
      tree,
    };
  };
  const rec = (uuid: string, is_a_snapshot: boolean, virtual_size = 1 << 20, name_label = 'x'): VdiRecord =>
    ({ uuid, is_a_snapshot, virtual_size, name_label }) as VdiRecord;

  test('in step: nothing to report', () => {
    const r = compareWithXapi(view(), [rec(u(1), false), rec(u(2), true), rec(u(3), true), rec(u(6), false)], 'local');
    expect(r.findings).toEqual([]);
    expect(r.view).toEqual({ where: 'local', sr_known: true, vdis_in_xapi: 4, visible_on_storage: 4, missing_on_storage: [], unknown_to_xapi: [] });
  });

  test('missing either side; a tombstone xapi still shows; flag and size mismatches', () => {
    const r = compareWithXapi(view(), [rec(u(1), true), rec(u(2), true, 2 << 20), rec(u(4), true, 1 << 20, 'old'), rec(u(50), false, 1, 'ghost')], 'local');
    expect(r.view.missing_on_storage).toEqual([u(4), u(50)]);
    expect(r.view.unknown_to_xapi).toEqual([u(3), u(6)]);
    expect(r.findings.map((f) => [f.severity, f.code, f.vdi])).toEqual([
      ['warning', 'snapshot-flag-mismatch', u(1)],
      ['warning', 'size-mismatch', u(2)],
      ['error', 'missing-on-storage', u(4)],
      ['error', 'missing-on-storage', u(50)],
      ['warning', 'unknown-to-xapi', u(3)],
      ['warning', 'unknown-to-xapi', u(6)],
    ]);
    expect(r.findings[2]!.message).toMatch(/only as a tombstone/);
    expect(r.findings[3]!.message).toMatch(/"ghost", but storage has no object for it/);
  });

  test('an SR xapi does not know', () => {
    const r = compareWithXapi(view(), undefined, 'local');
    expect(r.view.sr_known).toBe(false);
    expect(r.findings).toEqual([expect.objectContaining({ severity: 'warning', code: 'sr-not-in-xapi' })]);
  });
});
