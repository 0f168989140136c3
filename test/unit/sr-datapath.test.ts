// The datapath module: mode selection, the direct mode, and the tapdisk mode run
// against a fake tap-ctl (a small script keeping blktap's state in a JSON file) in
// a scratch /dev and /run tree (test/helpers/fake-tap-ctl.ts). The tapdisk part needs
// root (mknod).
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DirectDatapath, selectDatapath } from '../../src/datapath/index.js';
import { TapdiskDatapath, parseTapList, splitDev } from '../../src/datapath/tapdisk.js';
import { SmError } from '../../src/errors.js';
import { FAKE_TAP_CTL } from '../helpers/fake-tap-ctl.js';

beforeAll(() => {
  process.env.FLATSNAP_SMLOG = '/dev/null';
});

const T = { srUuid: '11111111-2222-4333-8444-555555555555', vdiUuid: 'aaaaaaaa-0000-4000-8000-000000000001' };

test('mode selection: FLATSNAP_DATAPATH wins, else tap-ctl decides', () => {
  expect(selectDatapath({ env: { FLATSNAP_DATAPATH: 'direct' }, tapdisk: { tapCtl: '/x/tap-ctl' } }).mode).toBe('direct');
  expect(selectDatapath({ env: {}, tapdisk: { tapCtl: '/x/tap-ctl' } }).mode).toBe('tapdisk');
  expect(selectDatapath({ env: { FLATSNAP_DATAPATH: 'tapdisk' } }).mode).toBe('tapdisk');
});

test('FLATSNAP_DATAPATH_ROOT stands for "/" in every datapath path (a simulated host)', () => {
  const r = mkdtempSync(join(tmpdir(), 'flatsnap-dproot-'));
  try {
    expect(selectDatapath({ env: { FLATSNAP_DATAPATH_ROOT: r } }).mode).toBe('direct'); // no tap-ctl under it
    mkdirSync(join(r, 'usr/sbin'), { recursive: true });
    writeFileSync(join(r, 'usr/sbin/tap-ctl'), '');
    const dp = selectDatapath({ env: { FLATSNAP_DATAPATH_ROOT: r } }) as TapdiskDatapath;
    expect(dp.mode).toBe('tapdisk');
    expect(dp.phyLink(T)).toBe(join(r, 'dev/sm/phy', T.srUuid, T.vdiUuid));
    expect(dp.nbdLink(T)).toBe(join(r, 'run/blktap-control/nbd', T.srUuid, T.vdiUuid));
  } finally {
    rmSync(r, { recursive: true, force: true });
  }
});

test('direct mode answers the image path and an empty params_nbd', async () => {
  const r = await new DirectDatapath().attach({ ...T, path: '/srv/sr/x' }, true);
  expect(r).toMatchObject({ params: '/srv/sr/x', params_nbd: '', o_direct: true });
});

test('tap-ctl list parsing and dev_t splitting', () => {
  expect(parseTapList('pid=12 minor=3 state=0 args=aio:/srv/a\nminor=4 state=2\n\n')).toEqual([
    { pid: 12, minor: 3, state: '0', args: 'aio:/srv/a' },
    { minor: 4, state: '2' },
  ]);
  // makedev(254, 3) and makedev(259, 300000)
  expect(splitDev(BigInt((254 << 8) | 3))).toEqual({ major: 254, minor: 3 });
  const big = (BigInt(300000 & ~0xff) << 12n) | BigInt(300000 & 0xff) | (BigInt(259) << 8n);
  expect(splitDev(big)).toEqual({ major: 259, minor: 300000 });
});


const root = process.getuid?.() === 0;
(root ? describe : describe.skip)('tapdisk mode (fake tap-ctl)', () => {
  let dir: string;
  let dp: TapdiskDatapath;
  const state = () => JSON.parse(readFileSync(join(dir, 'bin', 'state.json'), 'utf8')) as { taps: Array<{ pid?: number; minor: number; args?: string; ro?: boolean }>; log: string[] };

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'flatsnap-tapdisk-'));
    const bin = join(dir, 'bin');
    mkdirSync(bin);
    writeFileSync(join(bin, 'tap-ctl'), FAKE_TAP_CTL);
    chmodSync(join(bin, 'tap-ctl'), 0o755);
    writeFileSync(join(dir, 'image'), '');
    dp = new TapdiskDatapath({ tapCtl: join(bin, 'tap-ctl'), smDev: join(dir, 'dev-sm'), blktapRun: join(dir, 'run'), tapdevDir: join(bin, 'tapdevs') });
  });
  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
    delete process.env.FAKE_TAP_FAIL_OPEN;
  });

  test('attach, activate (idempotent), deactivate (idempotent), detach', async () => {
    const image = join(dir, 'image');
    const r = await dp.attach({ ...T, path: image }, true);
    expect(r).toEqual({
      params: join(dir, 'dev-sm', 'backend', T.srUuid, T.vdiUuid),
      params_nbd: `nbd:unix:${join(dir, 'run', 'nbd', T.srUuid, T.vdiUuid)}:exportname=${T.vdiUuid}`,
      o_direct: true,
      o_direct_reason: 'SR_NOT_SUPPORTED',
      xenstore_data: { 'storage-type': 'flatsnap', 'vdi-uuid': T.vdiUuid },
    });
    expect(readlinkSync(dp.phyLink(T))).toBe(image);
    await dp.attach({ ...T, path: image }, true); // again: same link

    await dp.activate(T, false);
    expect(state().taps).toEqual([{ minor: 0, pid: 40001, args: `aio:${image}`, ro: true }]);
    const node = lstatSync(dp.backendNode(T), { bigint: true });
    expect(node.isBlockDevice()).toBe(true);
    expect(splitDev(node.rdev)).toEqual({ major: 254, minor: 0 });
    expect(readlinkSync(dp.nbdLink(T))).toBe(join(dir, 'run', 'nbd40001.0'));

    await dp.activate(T, false);
    expect(state().log.filter((l) => l === 'allocate')).toHaveLength(1);

    await dp.deactivate(T);
    expect(state().taps).toEqual([]);
    expect(state().log.slice(-3)).toEqual(['close -p 40001 -m 0 -t 120', 'detach -p 40001 -m 0', 'free -m 0']);
    expect(existsSync(dp.backendNode(T))).toBe(false);
    expect(existsSync(dp.nbdLink(T))).toBe(false);
    await dp.deactivate(T);

    await dp.detach(T);
    expect(existsSync(dp.phyLink(T))).toBe(false);
    await dp.detach(T);
  });

  test('a failing open gives the minor back and faults TapdiskFailed (453)', async () => {
    await dp.attach({ ...T, path: join(dir, 'image') }, true);
    process.env.FAKE_TAP_FAIL_OPEN = '1';
    const e = await dp.activate(T, true).catch((x: unknown) => x);
    expect(e).toBeInstanceOf(SmError);
    expect((e as SmError).code).toBe(453);
    expect(state().taps).toEqual([]);
    expect(state().log.slice(-2)).toEqual(['detach -p 40001 -m 0', 'free -m 0']);
  });

  test('pause and unpause find the VDI\'s tapdisk; unpause names the image again; none running: false', async () => {
    const image = join(dir, 'image');
    expect(await dp.pause(T)).toBe(false); // not attached: nothing to hold
    await dp.attach({ ...T, path: image }, true);
    expect(await dp.pause(T)).toBe(false); // attached, no tapdisk yet
    await dp.activate(T, true);
    expect(await dp.pause(T)).toBe(true);
    expect(state().taps[0]).toMatchObject({ paused: true });
    expect(await dp.unpause(T)).toBe(true);
    expect(state().taps[0]!).not.toHaveProperty('paused');
    expect(state().log.filter((l) => /^(pause|unpause)/.test(l))).toEqual(['pause -p 40001 -m 0', `unpause -p 40001 -m 0 -a aio:${image}`]);
    // quiesce: unpause runs when fn fails
    const e = await dp.quiesce(T, async () => Promise.reject(new Error('storage failed'))).catch((x: unknown) => x);
    expect((e as Error).message).toBe('storage failed');
    expect(state().log.filter((l) => /^(pause|unpause)/.test(l))).toHaveLength(4);
    expect(state().taps[0]!).not.toHaveProperty('paused');
  });

  test('activate without attach: VDIUnavailable', async () => {
    expect(((await dp.activate(T, true).catch((x: unknown) => x)) as SmError).kind).toBe('VDIUnavailable');
  });
});
