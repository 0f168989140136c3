// sr_attach clearing what a crash left in the VDIs' sm_config (src/sr/reset-vdis.ts),
// as the stock resetvdis.reset_sr does: this host's host_<ref> keys on every host, and
// `paused` on the SR master only; other hosts' keys, other SRs' VDIs and the rest of
// sm_config untouched; one read for the SR and a write only per key removed; a XenAPI
// failure logged, never failing the attach. With blktap (a fake tap-ctl), a key whose
// tapdisk still runs here is kept, and all of them when tap-ctl cannot answer.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import '../../src/sr/commands.js';
import { SrContext } from '../../src/sr/context.js';
import { lookup } from '../../src/sr/registry.js';
import { staleKeys } from '../../src/sr/reset-vdis.js';
import { XapiError } from '../../src/xapi/errors.js';
import { installFakeTapCtl } from '../helpers/fake-tap-ctl.js';
import { FakeBackend, FakeXapi, SR_REF, SR_UUID, smReq, useHandlerEnv, vdiRecord } from './sr-fakes.js';

useHandlerEnv('reset-vdis');

const THIS_HOST = 'OpaqueRef:host-1'; // smReq's host_ref
const OTHER = 'OpaqueRef:host-2';
const OTHER_SR = 'OpaqueRef:sr-2';

test('staleKeys: this host’s key anywhere, `paused` only for the master', () => {
  const sm = { [`host_${THIS_HOST}`]: 'RW', [`host_${OTHER}`]: 'RO', paused: 'true', vhd_parent: 'x' };
  expect(staleKeys(sm, THIS_HOST, false)).toEqual([`host_${THIS_HOST}`]);
  expect(staleKeys(sm, THIS_HOST, true)).toEqual([`host_${THIS_HOST}`, 'paused']);
  expect(staleKeys(sm, OTHER, false)).toEqual([`host_${OTHER}`]);
  expect(staleKeys({ vhd_parent: 'x' }, THIS_HOST, true)).toEqual([]);
  // A key is a key whatever its value (the stock script tests truthiness; "" would stay).
  expect(staleKeys({ [`host_${THIS_HOST}`]: '', paused: '' }, THIS_HOST, true)).toEqual([`host_${THIS_HOST}`, 'paused']);
  // Inherited names are no keys.
  expect(staleKeys(Object.create({ paused: 'true' }) as Record<string, string>, THIS_HOST, true)).toEqual([]);
});

function pool() {
  const xapi = new FakeXapi();
  const row = (uuid: string, sm: Record<string, string>, sr = SR_REF) =>
    xapi.add(vdiRecord({ uuid, location: uuid, SR: sr, sm_config: { ...sm } }));
  const refs = {
    mine: row('aaaaaaaa-0000-4000-8000-000000000001', { [`host_${THIS_HOST}`]: 'RW', flatsnap_object: 'o1' }),
    both: row('aaaaaaaa-0000-4000-8000-000000000002', { [`host_${THIS_HOST}`]: 'RO', [`host_${OTHER}`]: 'RO' }),
    paused: row('aaaaaaaa-0000-4000-8000-000000000003', { paused: 'true', [`host_${OTHER}`]: 'RW' }),
    clean: row('aaaaaaaa-0000-4000-8000-000000000004', { flatsnap_object: 'o4' }),
    otherSr: row('aaaaaaaa-0000-4000-8000-000000000005', { [`host_${THIS_HOST}`]: 'RW', paused: 'true' }, OTHER_SR),
  };
  const sm = (k: keyof typeof refs) => xapi.vdis.get(refs[k])!.sm_config;
  const attach = async (master: boolean) => {
    const backend = new FakeBackend();
    xapi.calls.length = 0;
    await (await lookup('sr_attach'))!.run(new SrContext(smReq('sr_attach', { master }), { backend, xapi }));
    expect(backend.attached).toBe(true);
  };
  return { xapi, sm, attach };
}

test('a slave’s attach drops its own host keys from the SR’s VDIs, nothing else', async () => {
  const p = pool();
  await p.attach(false);
  expect(p.sm('mine')).toEqual({ flatsnap_object: 'o1' });
  expect(p.sm('both')).toEqual({ [`host_${OTHER}`]: 'RO' });
  expect(p.sm('paused')).toEqual({ paused: 'true', [`host_${OTHER}`]: 'RW' }); // not the master: a pause may be running
  expect(p.sm('clean')).toEqual({ flatsnap_object: 'o4' });
  expect(p.sm('otherSr')).toEqual({ [`host_${THIS_HOST}`]: 'RW', paused: 'true' }); // another SR's row
  // One read for the whole SR, one write per key removed, no per-VDI read.
  expect(p.xapi.calls).toEqual(['VDI.get_all_records_where', 'VDI.remove_from_sm_config', 'VDI.remove_from_sm_config']);
  // Nothing left: the next attach only reads.
  await p.attach(false);
  expect(p.xapi.calls).toEqual(['VDI.get_all_records_where']);
});

test('the master’s attach also drops `paused` left by an interrupted command, and keeps other hosts’ keys', async () => {
  const p = pool();
  await p.attach(true);
  expect(p.sm('mine')).toEqual({ flatsnap_object: 'o1' });
  expect(p.sm('both')).toEqual({ [`host_${OTHER}`]: 'RO' });
  expect(p.sm('paused')).toEqual({ [`host_${OTHER}`]: 'RW' });
  expect(p.sm('otherSr')).toEqual({ [`host_${THIS_HOST}`]: 'RW', paused: 'true' });
  expect(p.xapi.calls.filter((c) => c.startsWith('VDI.'))).toEqual([
    'VDI.get_all_records_where',
    'VDI.remove_from_sm_config',
    'VDI.remove_from_sm_config',
    'VDI.remove_from_sm_config',
  ]);
  expect(p.xapi.sr.other_config.dirty).toBe('');
});

test('a XenAPI failure is logged and the attach goes on: a failed removal does not stop the others', async () => {
  const p = pool();
  p.xapi.failOn = (m, args) =>
    m === 'VDI.remove_from_sm_config' && (args as string[])[1] === `host_${THIS_HOST}` && p.xapi.vdis.get((args as string[])[0]!)!.uuid.endsWith('1')
      ? new XapiError(m, 'HANDLE_INVALID', ['VDI', (args as string[])[0]!])
      : undefined;
  await p.attach(true);
  expect(p.sm('mine')).toEqual({ [`host_${THIS_HOST}`]: 'RW', flatsnap_object: 'o1' });
  expect(p.sm('both')).toEqual({ [`host_${OTHER}`]: 'RO' });
  expect(p.sm('paused')).toEqual({ [`host_${OTHER}`]: 'RW' });

  const q = pool();
  q.xapi.failOn = (m) => (m === 'VDI.get_all_records_where' ? new XapiError(m, 'SESSION_INVALID', ['x']) : undefined);
  await q.attach(false);
  expect(q.sm('mine')).toEqual({ [`host_${THIS_HOST}`]: 'RW', flatsnap_object: 'o1' });
});

test('with blktap: a key whose tapdisk still runs here is kept (a replayed attach), the others go; tap-ctl failing keeps all', async () => {
  const root = mkdtempSync(join(tmpdir(), 'flatsnap-reset-vdis-dp-'));
  const sbin = join(root, 'usr', 'sbin');
  installFakeTapCtl(sbin);
  const phy = join(root, 'dev', 'sm', 'phy', SR_UUID);
  mkdirSync(phy, { recursive: true });
  const running = 'aaaaaaaa-0000-4000-8000-000000000001'; // p.sm('mine')
  const gone = 'aaaaaaaa-0000-4000-8000-000000000002'; // p.sm('both')
  symlinkSync(`/srv/shared/${running}`, join(phy, running));
  symlinkSync(`/srv/shared/${gone}`, join(phy, gone));
  writeFileSync(join(sbin, 'state.json'), JSON.stringify({ next: 1, taps: [{ minor: 0, pid: 40001, args: `aio:/srv/shared/${running}` }], log: [], events: [] }));
  process.env.FLATSNAP_DATAPATH = 'tapdisk';
  process.env.FLATSNAP_DATAPATH_ROOT = root;
  try {
    const p = pool();
    await p.attach(false);
    expect(p.sm('mine')).toEqual({ [`host_${THIS_HOST}`]: 'RW', flatsnap_object: 'o1' });
    expect(p.sm('both')).toEqual({ [`host_${OTHER}`]: 'RO' });

    const q = pool();
    writeFileSync(join(sbin, 'fail-list'), '');
    await q.attach(true);
    expect(q.sm('mine')).toEqual({ [`host_${THIS_HOST}`]: 'RW', flatsnap_object: 'o1' });
    expect(q.sm('both')).toEqual({ [`host_${THIS_HOST}`]: 'RO', [`host_${OTHER}`]: 'RO' });
    expect(q.sm('paused')).toEqual({ [`host_${OTHER}`]: 'RW' }); // `paused` does not depend on this host's tapdisks
  } finally {
    process.env.FLATSNAP_DATAPATH = 'direct';
    delete process.env.FLATSNAP_DATAPATH_ROOT;
    rmSync(root, { recursive: true, force: true });
  }
});
