// With a syslog socket present, log lines go to facility local2 with ident SM,
// which is what /var/log/SMlog collects on a XenServer host.
import { execa } from 'execa';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runDriver } from '../helpers/driver.js';
import { smRequest } from '../helpers/requests.js';

const LISTEN = `
import socket, sys, os
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("ready", flush=True)
s.settimeout(5)
out = []
try:
    while True:
        out.append(s.recv(65536).decode())
        if "ok in" in out[-1] or "failed in" in out[-1]: break
except socket.timeout:
    pass
print("\\n".join(out))
`;

let dir: string;
beforeAll(() => (dir = mkdtempSync(join(tmpdir(), 'flatsnap-syslog-'))));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

async function capture(request: string): Promise<string[]> {
  const sock = join(dir, `log-${Math.random().toString(16).slice(2)}`);
  const listener = execa('/usr/bin/python3', ['-c', LISTEN, sock]);
  await new Promise<void>((resolve) => listener.stdout!.once('data', () => resolve()));
  const r = await runDriver([request], { FLATSNAP_SYSLOG_SOCKET: sock, FLATSNAP_LOCK_DIR: join(dir, 'lock') });
  expect(r.exitCode).toBe(0);
  const { stdout } = await listener;
  return stdout.split('\n').filter((l) => l && l !== 'ready');
}

test('requests and outcomes are sent as local2.info lines with ident SM', async () => {
  const lines = await capture(smRequest('sr_get_driver_info'));
  expect(lines[0]).toMatch(/^<150>\w{3} [ \d]\d \d\d:\d\d:\d\d SM: \[\d+\] sr_get_driver_info$/);
  expect(lines[1]).toMatch(/^<150>.* SM: \[\d+\] sr_get_driver_info ok in [\d.]+ ms$/);
});

test('failures are sent as local2.err', async () => {
  const lines = await capture(smRequest('vdi_generate_config', { vdi: true }));
  expect(lines.some((l) => /^<147>.*vdi_generate_config failed in .* fault 38/.test(l))).toBe(true);
});
