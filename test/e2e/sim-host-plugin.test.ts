// The simulator's host.call_plugin (test/xapi-sim/flows/host.ts) against small Python
// plugins written the way XenAPIPlugin.py writes them (xmlrpc.client, the Status
// envelope): the call each host's plugin receives, the session and environment of the
// host it runs on, and xapi's mapping of every kind of answer.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ApiFailure, Client, readSmLog, removeDir, startSim, type SimProc } from './sim-helpers.js';

const PY = (body: string) => `#!/usr/bin/python3
import sys, json, os, xmlrpc.client
params, fn = xmlrpc.client.loads(sys.argv[1])
def ok(v): print(xmlrpc.client.dumps(({'Status': 'Success', 'Value': v},), '', True))
def fail(*d): print(xmlrpc.client.dumps(({'Status': 'Failure', 'ErrorDescription': list(d)},), '', True))
${body}
`;

const PLUGINS: Record<string, string> = {
  echo: PY(`ok(json.dumps({'fn': fn, 'params': list(params), 'argv1': sys.argv[1], 'nargs': len(sys.argv) - 1,
  'env': {k: os.environ.get(k) for k in ('PATH', 'FLATSNAP_LOCK_DIR', 'FLATSNAP_DATAPATH_ROOT')}}))`),
  fails: PY(`fail('SOME_ERROR', 'a', fn)`),
  faults: PY(`print(xmlrpc.client.dumps(xmlrpc.client.Fault(42, 'broken'), methodresponse=True))`),
  exits: PY(`sys.stdout.write('partial'); sys.stderr.write('it hurts'); sys.exit(3)`),
  bare: PY(`print(xmlrpc.client.dumps(('just a string',), methodresponse=True))`),
  number: PY(`print(xmlrpc.client.dumps(({'Status': 'Success', 'Value': 7},), '', True))`),
  garbage: PY(`print('<methodResponse><params>')`),
};

describe('host.call_plugin in a pool of two simulated hosts', () => {
  let sim: SimProc;
  let c: Client;
  let work: string;
  let master: string;
  let slave: string;
  const uuid = new Map<string, string>();

  beforeAll(async () => {
    work = fs.mkdtempSync(path.join(os.tmpdir(), 'sim-host-plugin-'));
    const plugins = path.join(work, 'plugins');
    fs.mkdirSync(plugins);
    for (const [name, src] of Object.entries(PLUGINS)) fs.writeFileSync(path.join(plugins, name), src, { mode: 0o755 });
    sim = await startSim({ extraArgs: ['--hosts', '2', '--xapi-plugins', plugins, '--datapath-root', path.join(work, 'roots')] });
    c = await new Client(sim.url).login();
    master = await c.call<string>('pool.get_master', (await c.call<string[]>('pool.get_all'))[0]!);
    slave = (await c.call<string[]>('host.get_all')).find((h) => h !== master)!;
    for (const h of [master, slave]) uuid.set(h, await c.call<string>('host.get_uuid', h));
  });
  afterAll(async () => {
    await sim?.stop();
    if (sim) removeDir(sim.dir);
    removeDir(work);
  });

  const failure = async (p: Promise<unknown>): Promise<string[]> => {
    try {
      await p;
    } catch (e) {
      if (e instanceof ApiFailure) return e.description;
      throw e;
    }
    throw new Error('expected a XenAPI failure');
  };

  it('runs the plugin on the host named, with xapi’s call: methodCall(fn, [session, args]) as the one argument', async () => {
    const sessions: string[] = [];
    for (const host of [master, slave]) {
      const r = JSON.parse(await c.call<string>('host.call_plugin', host, 'echo', 'pause', { sr_uuid: 'x', empty: '' })) as {
        fn: string; params: [string, Record<string, string>]; argv1: string; nargs: number; env: Record<string, string | null>;
      };
      expect(r.fn).toBe('pause');
      expect(r.nargs).toBe(1);
      expect(r.params[1]).toEqual({ sr_uuid: 'x', empty: '' });
      // bare strings, <value/> for "", no header: Xml.to_string of XMLRPC.To.methodCall
      expect(r.argv1).toMatch(/^<methodCall><methodName>pause<\/methodName><params><param><value>OpaqueRef:[^<]+<\/value><\/param>/);
      expect(r.argv1).toContain('<member><name>empty</name><value/></member>');
      // the caller's session on the master; a session of that host's own elsewhere
      expect(r.params[0] === c.session).toBe(host === master);
      sessions.push(r.params[0]);
      // that host's environment: its lock directory and its datapath root
      expect(r.env.FLATSNAP_LOCK_DIR).toBe(path.join(path.dirname(sim.state), 'locks', uuid.get(host)!));
      expect(r.env.FLATSNAP_DATAPATH_ROOT).toBe(path.join(work, 'roots', uuid.get(host)!));
      expect(r.env.PATH).toBe('/sbin:/usr/sbin:/bin:/usr/bin');
    }
    // ... which lived for that call only
    expect((await failure(c.raw('pool.get_all', [sessions[1]!])))[0]).toBe('SESSION_INVALID');
    // Async too: the task's result is the string, as an XML-RPC <value> (escaped)
    expect(await c.callAsync<string>('host.call_plugin', slave, 'echo', 'x', {})).toContain('&quot;fn&quot;: &quot;x&quot;');
    const logged = readSmLog(sim.smLog).filter((e) => e.cmd === 'plugin:echo/pause') as Array<{ host?: string }>;
    expect(logged.map((e) => e.host)).toEqual([uuid.get(master), uuid.get(slave)]);
  });

  it('maps every answer as xapi_plugins.ml does', async () => {
    expect(await failure(c.call('host.call_plugin', slave, 'fails', 'pause', {}))).toEqual(['SOME_ERROR', 'a', 'pause']);
    expect(await failure(c.call('host.call_plugin', slave, 'faults', 'pause', {}))).toEqual(['XENAPI_PLUGIN_FAILURE', 'fault', '42', 'broken']);
    expect(await failure(c.call('host.call_plugin', slave, 'exits', 'pause', {}))).toEqual(['XENAPI_PLUGIN_FAILURE', 'non-zero exit', 'partial', 'it hurts']);
    expect((await failure(c.call('host.call_plugin', slave, 'garbage', 'pause', {})))[0]).toBe('XENAPI_PLUGIN_FAILURE');
    expect((await failure(c.call('host.call_plugin', slave, 'garbage', 'pause', {})))[1]).toBe('failed to parse plugin output');
    expect((await failure(c.call('host.call_plugin', slave, 'bare', 'pause', {})))[0]).toBe('INTERNAL_ERROR');
    expect((await failure(c.call('host.call_plugin', slave, 'number', 'pause', {})))[0]).toBe('INTERNAL_ERROR');
  });

  it('a plugin not in the directory, a bad host, an unreachable host', async () => {
    expect(await failure(c.call('host.call_plugin', slave, 'nope', 'pause', {}))).toEqual(['XENAPI_MISSING_PLUGIN', 'nope']);
    expect(await failure(c.call('host.call_plugin', slave, '../plugins/echo', 'pause', {}))).toEqual(['XENAPI_MISSING_PLUGIN', '../plugins/echo']);
    expect((await failure(c.call('host.call_plugin', 'OpaqueRef:nohost', 'echo', 'pause', {})))[0]).toBe('HANDLE_INVALID');
    await c.call('host.add_to_other_config', slave, 'xapi-sim-unreachable', 'true');
    expect(await failure(c.call('host.call_plugin', slave, 'echo', 'pause', {}))).toEqual(['CANNOT_CONTACT_HOST', slave]);
    await c.call('host.remove_from_other_config', slave, 'xapi-sim-unreachable');
    expect(await c.call<string>('host.call_plugin', slave, 'echo', 'pause', {})).toContain('"fn": "pause"');
  });
});
