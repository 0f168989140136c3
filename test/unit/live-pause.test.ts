// Live snapshots on a shared SR (src/sr/live-pause.ts) and the host keys behind them
// (src/sr/host-tags.ts), against the in-memory backend and xapi: every other host a
// VDI is active on is paused before storage is touched and unpaused after, whatever
// happened in between; a host that cannot be paused refuses the command with storage
// unchanged; activation backs off while a VDI is paused.
import { SmError } from '../../src/errors.js';
import type { SmCommand } from '../../src/smapi/request.js';
import type { XmlRpcStruct } from '../../src/smapi/xmlrpc.js';
import '../../src/sr/commands.js';
import { SrContext } from '../../src/sr/context.js';
import { activeHosts, addHostTag, removeHostTag, retryWhilePaused } from '../../src/sr/host-tags.js';
import { TAPDISK_PLUGIN } from '../../src/sr/live-pause.js';
import { lookup } from '../../src/sr/registry.js';
import { XapiError } from '../../src/xapi/errors.js';
import { FakeBackend, FakeXapi, smReq, useHandlerEnv, type ReqOptions } from './sr-fakes.js';

// This host has no tapdisk of its own (the direct datapath): only the other hosts' are paused here.
useHandlerEnv('live-pause');

const THIS_HOST = 'OpaqueRef:host-1'; // smReq's host_ref: the SR master
const SLAVE = 'OpaqueRef:host-2';
const SLAVE3 = 'OpaqueRef:host-3';

class Pool {
  backend = new FakeBackend();
  xapi = new FakeXapi();
  /** What happened, in order: plugin calls and the storage calls between them. */
  timeline: string[] = [];
  private n = 0;
  newUuid = (): string => `aaaaaaaa-0000-4000-8000-${(++this.n).toString(16).padStart(12, '0')}`;

  constructor(shared = true) {
    this.xapi.sr.shared = shared;
    const plugin = this.xapi.plugin;
    this.xapi.plugin = (host, p, fn, args) => {
      this.timeline.push(`${fn} ${host}`);
      return plugin(host, p, fn, args);
    };
    const failOn = this.backend.failOn;
    this.backend.failOn = (op, id) => {
      if (op !== 'inventory') this.timeline.push(`storage ${op}`);
      return failOn(op, id);
    };
  }

  async run(command: SmCommand, o: ReqOptions = {}) {
    const spec = await lookup(command);
    return spec!.run(new SrContext(smReq(command, o), { backend: this.backend, xapi: this.xapi, newUuid: this.newUuid }));
  }

  vdi(uuid: string) {
    return { uuid, ref: this.xapi.byUuid(uuid)![0] };
  }

  sm(uuid: string) {
    return this.xapi.byUuid(uuid)![1].sm_config;
  }

  async create(): Promise<string> {
    const r = (await this.run('vdi_create', { args: [String(1 << 20), 'd', '', '', 'false', '19700101T00:00:00Z', '', 'false'], extra: { vdi_type: 'user', vdi_sm_config: {} } })) as XmlRpcStruct;
    return r.uuid as string;
  }

  /** The VDI active on `hosts` (their vdi_activate's host keys). */
  activeOn(uuid: string, ...hosts: string[]) {
    for (const h of hosts) this.sm(uuid)[`host_${h}`] = 'RW';
  }
}

async function fault(p: Promise<unknown>): Promise<SmError> {
  const e = await p.then(
    () => undefined,
    (x: unknown) => x,
  );
  if (e instanceof SmError) return e;
  throw new Error(`expected an SmError, got ${String(e)}`);
}

describe('vdi_snapshot / vdi_clone / vdi_revert on a shared SR', () => {
  test('every other host the VDI is active on is paused before the copy and unpaused after; this host is not called', async () => {
    const p = new Pool();
    const v = await p.create();
    p.activeOn(v, SLAVE, THIS_HOST, SLAVE3);
    p.timeline = [];
    const s = ((await p.run('vdi_snapshot', { vdi: p.vdi(v) })) as XmlRpcStruct).uuid as string;
    expect(p.timeline).toEqual([`pause ${SLAVE}`, `pause ${SLAVE3}`, 'storage snapshot', `unpause ${SLAVE3}`, `unpause ${SLAVE}`]);
    expect(p.xapi.pluginCalls.map(([h, plugin, fn, args]) => [h, plugin, fn, args])).toEqual(
      [
        [SLAVE, 'pause'],
        [SLAVE3, 'pause'],
        [SLAVE3, 'unpause'],
        [SLAVE, 'unpause'],
      ].map(([h, fn]) => [h, TAPDISK_PLUGIN, fn, { sr_uuid: '11111111-2222-4333-8444-555555555555', vdi_uuid: v }]),
    );
    // paused went in before the first plugin call and is gone; the host keys stay; the snapshot has none
    const calls = p.xapi.calls;
    expect(calls.indexOf('VDI.add_to_sm_config')).toBeLessThan(calls.indexOf('host.call_plugin'));
    expect(p.sm(v)).not.toHaveProperty('paused');
    expect(activeHosts(p.sm(v))).toEqual([SLAVE, THIS_HOST, SLAVE3].sort());
    expect(activeHosts(p.sm(s))).toEqual([]);

    p.timeline = [];
    await p.run('vdi_clone', { vdi: p.vdi(v) });
    expect(p.timeline).toEqual([`pause ${SLAVE}`, `pause ${SLAVE3}`, 'storage clone', `unpause ${SLAVE3}`, `unpause ${SLAVE}`]);

    // revert: the TARGET is held (its image is replaced under its tapdisks)
    p.timeline = [];
    await p.run('vdi_revert', { vdi: p.vdi(s), args: [p.vdi(v).ref] });
    expect(p.timeline[0]).toBe(`pause ${SLAVE}`);
    expect(p.timeline.slice(-2)).toEqual([`unpause ${SLAVE3}`, `unpause ${SLAVE}`]);
    expect(p.timeline.some((x) => x.startsWith('storage '))).toBe(true);
    expect(p.sm(v)).not.toHaveProperty('paused');
  });

  test('storage failing in the middle: every paused host is unpaused, `paused` removed, nothing made', async () => {
    const p = new Pool();
    const v = await p.create();
    p.activeOn(v, SLAVE);
    const before = [...p.backend.objects.keys()];
    p.backend.failOn = ((f) => (op, id) => f(op, id) ?? (op === 'snapshot' ? new SmError('EIO', 'disk on fire') : undefined))(p.backend.failOn);
    p.timeline = [];
    const e = await fault(p.run('vdi_snapshot', { vdi: p.vdi(v) }));
    expect(e.kind).toBe('EIO');
    expect(p.timeline).toEqual([`pause ${SLAVE}`, 'storage snapshot', `unpause ${SLAVE}`]);
    expect(p.sm(v)).not.toHaveProperty('paused');
    expect([...p.backend.objects.keys()]).toEqual(before);
  });

  test('a host that cannot be reached: refused with the command’s fault, storage untouched, the others unpaused', async () => {
    const p = new Pool();
    const v = await p.create();
    p.activeOn(v, SLAVE, SLAVE3);
    const before = [...p.backend.objects.keys()];
    const plugin = p.xapi.plugin;
    p.xapi.plugin = (host, pl, fn, args) => {
      if (host === SLAVE3) throw new XapiError('host.call_plugin', 'CANNOT_CONTACT_HOST', [host]);
      return plugin(host, pl, fn, args);
    };
    p.timeline = [];
    const mark = p.xapi.calls.length;
    const e = await fault(p.run('vdi_snapshot', { vdi: p.vdi(v) }));
    expect(e.code).toBe(82); // VDISnapshot
    expect(e.message).toMatch(/could not pause the VDI's tapdisk on host OpaqueRef:host-3, storage was not touched: .*CANNOT_CONTACT_HOST/);
    expect(p.timeline).toEqual([`pause ${SLAVE}`, `unpause ${SLAVE}`]);
    expect(p.xapi.pluginCalls.map(([h, , fn]) => `${fn} ${h}`)).toEqual([`pause ${SLAVE}`, `pause ${SLAVE3}`, `unpause ${SLAVE}`]);
    expect(p.sm(v)).not.toHaveProperty('paused');
    expect([...p.backend.objects.keys()]).toEqual(before);
    expect(p.xapi.calls.slice(mark)).not.toContain('VDI.db_introduce');
    // and for a clone, its own fault
    expect((await fault(p.run('vdi_clone', { vdi: p.vdi(v) }))).code).toBe(81);
  });

  test('an unpause that fails fails the command (a guest is frozen) and leaves `paused`; the next snapshot clears it', async () => {
    const p = new Pool();
    const v = await p.create();
    p.activeOn(v, SLAVE);
    const before = [...p.backend.objects.keys()];
    const plugin = p.xapi.plugin;
    p.xapi.plugin = (host, pl, fn, args) => {
      if (fn === 'unpause') throw new XapiError('host.call_plugin', 'XENAPI_PLUGIN_EXCEPTION', ['unpause', 'TapdiskFailed', 'tap-ctl unpause failed']);
      return plugin(host, pl, fn, args);
    };
    const e = await fault(p.run('vdi_snapshot', { vdi: p.vdi(v) }));
    expect(e.code).toBe(82);
    expect(e.message).toMatch(/resuming the VDI failed .*host OpaqueRef:host-2.*tap-ctl unpause/);
    expect(p.sm(v).paused).toBe('true');
    expect([...p.backend.objects.keys()]).toEqual(before); // the snapshot was undone
    // The host is back: the next snapshot takes the leftover key over, and removes it.
    p.xapi.plugin = plugin;
    await p.run('vdi_snapshot', { vdi: p.vdi(v) });
    expect(p.sm(v)).not.toHaveProperty('paused');
  });

  test('on a local SR nothing of this runs: no `paused`, no plugin call', async () => {
    const p = new Pool(false);
    const v = await p.create();
    p.activeOn(v, SLAVE);
    await p.run('vdi_snapshot', { vdi: p.vdi(v) });
    expect(p.xapi.pluginCalls).toEqual([]);
    expect(p.xapi.calls).not.toContain('VDI.add_to_sm_config');
  });
});

describe('host keys (vdi_activate / vdi_deactivate)', () => {
  const setup = async () => {
    const p = new Pool();
    const v = await p.create();
    return { p, v, ref: p.vdi(v).ref };
  };

  test('added as RW/RO, replaced on a replay that changes the mode, removed', async () => {
    const { p, v, ref } = await setup();
    expect(await addHostTag(p.xapi.VDI, ref, SLAVE, false)).toBe(true);
    expect(p.sm(v)[`host_${SLAVE}`]).toBe('RO');
    expect(await addHostTag(p.xapi.VDI, ref, SLAVE, false)).toBe(true); // replay: no MAP_DUPLICATE_KEY
    expect(await addHostTag(p.xapi.VDI, ref, SLAVE, true)).toBe(true);
    expect(p.sm(v)[`host_${SLAVE}`]).toBe('RW');
    await removeHostTag(p.xapi.VDI, ref, SLAVE);
    await removeHostTag(p.xapi.VDI, ref, SLAVE); // none: fine
    expect(activeHosts(p.sm(v))).toEqual([]);
  });

  test('paused before: no key; paused between the two looks: the key is taken back', async () => {
    const { p, v, ref } = await setup();
    p.sm(v).paused = 'true';
    expect(await addHostTag(p.xapi.VDI, ref, SLAVE, true)).toBe(false);
    expect(activeHosts(p.sm(v))).toEqual([]);
    delete p.sm(v).paused;
    // The master sets `paused` right after this host's first look.
    const get = p.xapi.VDI.get_sm_config;
    let looks = 0;
    p.xapi.VDI.get_sm_config = async (r: string) => {
      const sm = await get(r);
      if (++looks === 1) p.sm(v).paused = 'true';
      return sm;
    };
    expect(await addHostTag(p.xapi.VDI, ref, SLAVE, true)).toBe(false);
    expect(activeHosts(p.sm(v))).toEqual([]);
  });

  test('activation waits while paused, then goes on; or gives up with VDIUnavailable naming the key', async () => {
    const { p, v, ref } = await setup();
    p.sm(v).paused = 'true';
    const waits: number[] = [];
    await retryWhilePaused(v, () => addHostTag(p.xapi.VDI, ref, SLAVE, true), {
      waitMs: 1000,
      sleep: async (ms) => {
        waits.push(ms);
        if (waits.length === 3) delete p.sm(v).paused;
      },
    });
    expect(waits).toEqual([1000, 1000, 1000]);
    expect(activeHosts(p.sm(v))).toEqual([SLAVE]);

    p.sm(v).paused = 'true';
    const e = await fault(retryWhilePaused(v, () => addHostTag(p.xapi.VDI, ref, SLAVE3, true), { attempts: 3, waitMs: 1, sleep: async () => undefined }));
    expect(e.kind).toBe('VDIUnavailable');
    expect(e.message).toContain(`xe vdi-param-remove uuid=${v} param-name=sm-config param-key=paused`);
  });

  test('only host_<OpaqueRef> keys name hosts', () => {
    expect(activeHosts({ host_OpaqueRef_x: 'RW', 'host_OpaqueRef:ab-12': 'RW', 'read-caching-enabled-on-u': 'true', hostname: 'x', 'host_OpaqueRef:a b': 'RW' })).toEqual(['OpaqueRef:ab-12']);
  });
});
