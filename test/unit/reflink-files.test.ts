// The reflink layer's plain-file parts on whatever filesystem the temp directory
// is (no root, no reflink needed): atomic writes, sparse files, listing.
import { mkdtemp, readdir, rm, writeFile, chmod } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { publish, writeFileAtomic } from '../../src/backends/reflink/atomic.js';
import { listVdis } from '../../src/backends/reflink/listing.js';
import { TEMP_PREFIX, tempPath, volumePath } from '../../src/backends/reflink/names.js';
import { readSidecar, writeSidecar } from '../../src/backends/reflink/sidecar.js';
import { createSparse, growFile, volumeSize } from '../../src/backends/reflink/volume.js';
import { identifyFs } from '../../src/backends/reflink/fsinfo.js';
import { SmError } from '../../src/errors.js';

const U1 = '3f2504e0-4f89-41d3-9a0c-0305e82c3301';
const U2 = '7c9e6679-7425-40de-944b-e07fc1f90ae7';
let dir: string;

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'flatsnap-unit-reflink-'));
});
afterEach(async () => {
  await chmod(dir, 0o755).catch(() => undefined);
  await rm(dir, { recursive: true, force: true });
});

async function rejectKind(p: Promise<unknown>): Promise<string> {
  try {
    await p;
  } catch (e) {
    if (e instanceof SmError) return e.kind;
    throw e;
  }
  throw new Error('resolved');
}

test('writeFileAtomic replaces content and leaves only the target', async () => {
  const p = join(dir, 'f');
  await writeFileAtomic(p, 'one');
  await writeFileAtomic(p, 'two');
  expect(await readdir(dir)).toEqual(['f']);
});

test('writeFileAtomic into a missing directory fails without leftovers', async () => {
  await expect(writeFileAtomic(join(dir, 'nope', 'f'), 'x')).rejects.toMatchObject({ code: 'ENOENT' });
  expect(await readdir(dir)).toEqual([]);
});

test('publish without replace refuses an existing target and keeps it', async () => {
  const tmp = tempPath(dir, 'x');
  await writeFile(tmp, 'new');
  await writeFile(join(dir, 'target'), 'old');
  await expect(publish(tmp, join(dir, 'target'), { replace: false })).rejects.toMatchObject({ code: 'EEXIST' });
  await publish(tmp, join(dir, 'other'), { replace: false });
  expect((await readdir(dir)).sort()).toEqual(['other', 'target']);
});

test('createSparse, growFile and volumeSize', async () => {
  const p = volumePath(dir, U1);
  await createSparse(p, 1 << 30);
  expect(await volumeSize(p)).toEqual({ size: 1 << 30, allocated: 0 });
  expect(await growFile(p, 2 ** 31)).toBe(1 << 30);
  expect((await volumeSize(p)).size).toBe(2 ** 31);
  expect(await rejectKind(growFile(p, 1))).toBe('VDISize');
  expect(await rejectKind(createSparse(p, 1))).toBe('VDIExists');
  expect(await rejectKind(createSparse(volumePath(dir, U2), -1))).toBe('VDISize');
  expect(await rejectKind(createSparse(volumePath(dir, U2), 1.5))).toBe('VDISize');
  expect(await rejectKind(createSparse(volumePath(join(dir, 'missing'), U2), 1))).toBe('SRUnavailable');
  expect(await rejectKind(volumeSize(volumePath(dir, U2)))).toBe('VolNotFound');
  expect((await readdir(dir)).filter((n) => n.startsWith(TEMP_PREFIX))).toEqual([]);
});

test('sidecar round trip and listing in a plain directory', async () => {
  await createSparse(volumePath(dir, U1), 4096);
  await writeSidecar(dir, { uuid: U1, nameLabel: 'a', nameDescription: '', parent: null, isSnapshot: false, snapshotTime: null });
  expect((await readSidecar(dir, U1)).nameLabel).toBe('a');
  const l = await listVdis(dir);
  expect(l.vdis).toHaveLength(1);
  expect(l.vdis[0]).toMatchObject({ uuid: U1, size: 4096, meta: { nameLabel: 'a' } });
  expect(await rejectKind(listVdis(join(dir, 'missing')))).toBe('SRUnavailable');
});

test('identifyFs of a missing path is SRUnavailable', () => {
  expect(() => identifyFs(join(dir, 'missing'))).toThrow(expect.objectContaining({ kind: 'SRUnavailable' }));
  expect(identifyFs(dir).totalBytes).toBeGreaterThan(0);
});
