// plugin/install.sh into a scratch root: files in place, shebang naming an
// absolute Node, sm-plugins restating the host's whole list, idempotent, and
// the installed plugin answering xapi's discovery call in xapi's environment.
import { execa } from 'execa';
import { mkdirSync, mkdtempSync, readFileSync, readlinkSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pyLoads } from '../helpers/python.js';
import { XAPI_ENV } from '../helpers/driver.js';
import { smRequest } from '../helpers/requests.js';

const XCPNG_LIST = 'ext nfs iscsi lvmoiscsi dummy file hba rawhba udev iso lvm lvmohba lvmofcoe shm smb cephfs glusterfs xfs zfs largeblock';
let root: string;
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'flatsnap-install-'));
  mkdirSync(join(root, 'etc'), { recursive: true });
  writeFileSync(join(root, 'etc/xapi.conf'), `# xapi.conf\nsm-plugins=${XCPNG_LIST}\n`);
});
afterAll(() => rmSync(root, { recursive: true, force: true }));

const install = () => execa('plugin/install.sh', ['--root', root, '--node', process.execPath]);

test('installs the plugin with an absolute shebang and restates sm-plugins', async () => {
  await install();
  const sr = readFileSync(join(root, 'opt/xensource/sm/FlatSnapSR'), 'utf8');
  expect(sr.split('\n')[0]).toBe(`#!${process.execPath}`);
  expect(readFileSync(join(root, 'etc/xapi.conf.d/flatsnap.conf'), 'utf8')).toContain(`sm-plugins=${XCPNG_LIST} flatsnap\n`);
});

test('the installed plugin answers sr_get_driver_info in xapi environment', async () => {
  const r = await execa(join(root, 'opt/xensource/sm/FlatSnapSR'), [smRequest('sr_get_driver_info')], {
    env: { ...XAPI_ENV, FLATSNAP_SMLOG: '/dev/null' },
    extendEnv: false,
  });
  const parsed = await pyLoads(r.stdout);
  expect((parsed.params![0] as { name: string }).name).toBe('flatsnap');
});

test('links the flatsnap-tapdisk host plugin into /etc/xapi.d/plugins, where xapi looks for it', async () => {
  const link = join(root, 'etc/xapi.d/plugins/flatsnap-tapdisk');
  expect(readlinkSync(link)).toBe('../../../opt/xensource/sm/flatsnap-tapdisk');
  expect(realpathSync(link)).toBe(realpathSync(join(root, 'opt/xensource/sm/flatsnap-tapdisk')));
  expect(readFileSync(link, 'utf8').split('\n')[0]).toBe(`#!${process.execPath}`);
  // run through the link, as xapi does: the launcher finds flatsnap-lib beside its real path
  const call = '<methodCall><methodName>nope</methodName><params><param><value>OpaqueRef:s</value></param><param><value><struct/></value></param></params></methodCall>';
  const r = await execa(link, [call], { env: { ...XAPI_ENV, FLATSNAP_SMLOG: '/dev/null' }, extendEnv: false });
  expect((await pyLoads(r.stdout)).params![0]).toEqual({ Status: 'Failure', ErrorDescription: ['UNKNOWN_XENAPI_PLUGIN_FUNCTION', 'nope'] });
});

test('running it again changes nothing', async () => {
  await install();
  const conf = readFileSync(join(root, 'etc/xapi.conf.d/flatsnap.conf'), 'utf8');
  expect(conf.match(/flatsnap/g)!.length).toBe(2); // the comment and the list entry
});

test('installs the hourly relayout job in /etc/cron.d; --no-relayout-cron removes it', async () => {
  const cron = join(root, 'etc/cron.d/flatsnap-relayout');
  const text = readFileSync(cron, 'utf8');
  const jobs = text.split('\n').filter((l) => /^[0-9*]/.test(l));
  expect(jobs).toHaveLength(1);
  // minute hour day month weekday user command: hourly, as root, niced, SMlog for what it prints on stderr
  expect(jobs[0]).toMatch(/^\d+ \* \* \* \* root flock -n \S+ nice -n 19 ionice -c 2 -n 7 \/opt\/xensource\/sm\/flatsnap relayout --all-srs 2>&1 >\/dev\/null \| logger -p local2\.\w+ -t flatsnap-relayout$/);
  expect(text).toMatch(/^PATH=\/sbin:\/usr\/sbin:\/bin:\/usr\/bin$/m);
  await execa('plugin/install.sh', ['--root', root, '--node', process.execPath, '--no-relayout-cron']);
  expect(() => readFileSync(cron)).toThrow(/ENOENT/);
  await install();
  expect(readFileSync(cron, 'utf8')).toBe(text);
});
