// The datapath module: mode selection, the direct mode, and the tapdisk mode run
// against a fake tap-ctl (a small script keeping blktap's state in a JSON file) in
// a scratch /dev and /run tree. The tapdisk part needs root (mknod).
import { chmodSync, existsSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DirectDatapath, selectDatapath } from '../../src/datapath/index.js';
import { TapdiskDatapath, parseTapList, splitDev } from '../../src/datapath/tapdisk.js';
import { SmError } from '../../src/errors.js';

beforeAll(() => {
  process.env.FLATSNAP_SMLOG = '/dev/null';
});

const T = { srUuid: '11111111-2222-4333-8444-555555555555', vdiUuid: 'aaaaaaaa-0000-4000-8000-000000000001' };

test('mode selection: FLATSNAP_DATAPATH wins, else tap-ctl decides', () => {
  expect(selectDatapath({ env: { FLATSNAP_DATAPATH: 'direct' }, tapdisk: { tapCtl: '/x/tap-ctl' } }).mode).toBe('direct');
  expect(selectDatapath({ env: {}, tapdisk: { tapCtl: '/x/tap-ctl' } }).mode).toBe('tapdisk');
  expect(selectDatapath({ env: { FLATSNAP_DATAPATH: 'tapdisk' } }).mode).toBe('tapdisk');
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

const FAKE_TAP_CTL = `#!${process.execPath}
// A fake tap-ctl: blktap's state in state.json next to this script.
const fs = require('fs'); const path = require('path'); const cp = require('child_process');
const dir = path.dirname(process.argv[1]);
const file = path.join(dir, 'state.json');
const st = fs.existsSync(file) ? JSON.parse(fs.readFileSync(file, 'utf8')) : { next: 0, taps: [], log: [] };
const [cmd, ...rest] = process.argv.slice(2);
const opt = (k) => { const i = rest.indexOf(k); return i < 0 ? undefined : rest[i + 1]; };
st.log.push([cmd, ...rest].join(' '));
const save = () => fs.writeFileSync(file, JSON.stringify(st));
const tap = () => st.taps.find((t) => t.minor === Number(opt('-m')));
switch (cmd) {
  case 'list':
    for (const t of st.taps) console.log([t.pid !== undefined ? 'pid=' + t.pid : '', 'minor=' + t.minor, 'state=0', t.args ? 'args=' + t.args : ''].filter(Boolean).join(' '));
    break;
  case 'allocate': {
    const m = st.next++;
    const dev = path.join(dir, 'tapdevs', 'tapdev' + m);
    fs.mkdirSync(path.dirname(dev), { recursive: true });
    cp.execFileSync('mknod', [dev, 'b', '254', String(m)]);
    st.taps.push({ minor: m });
    console.log(dev);
    break;
  }
  case 'spawn': console.log(String(40000 + st.next)); break;
  case 'attach': tap().pid = Number(opt('-p')); break;
  case 'open':
    if (process.env.FAKE_TAP_FAIL_OPEN) { save(); console.error('open failed'); process.exit(1); }
    tap().args = opt('-a'); tap().ro = rest.includes('-R'); break;
  case 'close': delete tap().args; break;
  case 'detach': delete tap().pid; break;
  case 'free': st.taps = st.taps.filter((t) => t.minor !== Number(opt('-m'))); break;
  default: console.error('unknown ' + cmd); process.exit(2);
}
save();
`;

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

  test('activate without attach: VDIUnavailable', async () => {
    expect(((await dp.activate(T, true).catch((x: unknown) => x)) as SmError).kind).toBe('VDIUnavailable');
  });
});
