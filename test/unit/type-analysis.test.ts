import { SmError } from '../../src/errors.js';
import { ReflinkBackend } from '../../src/backends/reflink/backend.js';
import { ZfsBackend } from '../../src/backends/zfs/backend.js';
import { analyseDeviceConfig, backendFor, openBackend, requireDatasetConfig } from '../../src/backends/type-analysis.js';
import { configurationKeys } from '../../src/sr/registry.js';

function fault(fn: () => unknown): SmError {
  try {
    fn();
  } catch (e) {
    if (e instanceof SmError) return e;
    throw e;
  }
  throw new Error('expected an SmError');
}

describe('analyseDeviceConfig', () => {
  test('path= selects reflink, allow-copy defaults to false', () => {
    expect(analyseDeviceConfig({ SRmaster: 'true', path: '/srv/flatsnap/' })).toEqual({ kind: 'reflink', path: '/srv/flatsnap', allowCopy: false });
    expect(analyseDeviceConfig({ path: '/srv/a', 'allow-copy': 'true' })).toEqual({ kind: 'reflink', path: '/srv/a', allowCopy: true });
    expect(analyseDeviceConfig({ path: '/srv/a', 'allow-copy': 'false' })).toMatchObject({ allowCopy: false });
  });

  test('dataset= selects ZFS', () => {
    expect(analyseDeviceConfig({ SRmaster: 'true', dataset: 'tank/flatsnap' })).toEqual({ kind: 'zfs', dataset: 'tank/flatsnap' });
    expect(analyseDeviceConfig({ dataset: 'tank/a/b_c.d:e-f' })).toEqual({ kind: 'zfs', dataset: 'tank/a/b_c.d:e-f' });
  });

  test('neither key: ConfigParamsMissing listing both keys', () => {
    const e = fault(() => analyseDeviceConfig({ SRmaster: 'true' }));
    expect(e.kind).toBe('ConfigParamsMissing');
    expect(e.code).toBe(115);
    expect(e.message).toMatch(/dataset=POOL\/PATH/);
    expect(e.message).toMatch(/path=\/absolute\/dir/);
    expect(e.message).toMatch(/allow-copy/);
  });

  test('both keys: InvalidArg naming both', () => {
    const e = fault(() => analyseDeviceConfig({ dataset: 'tank/x', path: '/srv/x' }));
    expect(e.kind).toBe('InvalidArg');
    expect(e.message).toMatch(/both dataset and path/);
  });

  test.each([
    ['relative', 'srv/x'],
    ['dot-dot', '/srv/../etc'],
    ['dot', '/srv/./x'],
    ['control character', '/srv/a\nb'],
    ['root', '/'],
    ['empty', ''],
  ])('path refused: %s', (_name, path) => {
    const e = fault(() => analyseDeviceConfig({ path }));
    expect(e.kind).toBe('InvalidArg');
    expect(e.message).toMatch(/device-config:path/);
  });

  test('allow-copy must be true or false, and only with path', () => {
    expect(fault(() => analyseDeviceConfig({ path: '/srv/x', 'allow-copy': 'yes' })).message).toMatch(/allow-copy must be "true" or "false"/);
    expect(fault(() => analyseDeviceConfig({ dataset: 'tank/x', 'allow-copy': 'true' })).message).toMatch(/applies to the reflink backend/);
  });
});

describe('requireDatasetConfig', () => {
  test.each([
    ['', /empty/],
    ['/tank/x', /must not start with "\/"/],
    ['tank/x@snap', /snapshot/],
    ['tank', /whole pool/],
    ['tank//x', /empty component/],
    ['tank/x/', /empty component/],
    ['1tank/x', /invalid pool name/],
    ['mirror/x', /invalid pool name/],
    ['tank/-x', /invalid component/],
    ['tank/.x', /invalid component/],
    ['tank/a b', /invalid component/],
    ['tank/a#b', /invalid component/],
    ['tank/a%b', /invalid component/],
    [`tank/${'a'.repeat(260)}`, /longer than 255/],
  ])('refuses %j', (v, msg) => {
    const e = fault(() => requireDatasetConfig(v));
    expect(e.kind).toBe('InvalidArg');
    expect(e.message).toMatch(msg);
  });

  test('accepts POOL/PATH', () => {
    expect(requireDatasetConfig('rpool/data/flatsnap')).toBe('rpool/data/flatsnap');
  });
});

describe('openBackend', () => {
  test('reflink: a ReflinkBackend on the directory', async () => {
    const b = await openBackend({ path: '/srv/flatsnap', 'allow-copy': 'true' });
    expect(b).toBeInstanceOf(ReflinkBackend);
    expect(b.kind).toBe('reflink');
    expect((b as ReflinkBackend).dir).toBe('/srv/flatsnap');
    expect(b.capabilities.dependent).toBe(false);
  });

  test('ZFS: a ZfsBackend on the dataset (dependent lineage)', async () => {
    const b = await backendFor({ kind: 'zfs', dataset: 'tank/flatsnap' });
    expect(b).toBeInstanceOf(ZfsBackend);
    expect(b.kind).toBe('zfs');
    expect(b.capabilities.dependent).toBe(true);
  });

  test('a bad device_config never builds a backend', async () => {
    await expect(openBackend({})).rejects.toMatchObject({ kind: 'ConfigParamsMissing' });
    await expect(openBackend({ dataset: '/tank/x' })).rejects.toMatchObject({ kind: 'InvalidArg' });
  });
});

test('the configuration keys are registered for sr_get_driver_info', () => {
  const keys = configurationKeys().map((c) => c.key);
  expect(keys).toEqual(expect.arrayContaining(['dataset', 'path', 'allow-copy']));
  for (const c of configurationKeys()) expect(c.description.length).toBeGreaterThan(20);
});
