// Shared-SR policy (src/sr/shared-sr.ts): master-only commands are refused off the
// SR master before anything is touched; every command has a decided cross-host lock
// mode; a reader that finds an interrupted swap takes the lock exclusively; the
// mount check that refuses OCFS2's localflocks (src/backends/reflink/mounts.ts).
import { execa } from 'execa';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clusterFlockProblem, mountOf, parseMounts } from '../../src/backends/reflink/mounts.js';
import { SmError } from '../../src/errors.js';
import type { SmCommand, SmRequest } from '../../src/smapi/request.js';
import { dispatch } from '../../src/sr/dispatch.js';
import { declaredCommands } from '../../src/sr/registry.js';
import {
  clusterLockDir,
  clusterLockMode,
  clusterLockPath,
  refuseOffMaster,
  SR_MASTER_ONLY,
  withClusterLock,
  withSrDirLock,
} from '../../src/sr/shared-sr.js';

const SR = '11111111-2222-4333-8444-555555555555';
const VDI = '66666666-7777-4888-8999-aaaaaaaaaaaa';

function request(command: SmCommand, master: boolean, dc: Record<string, string> = { path: '/nonexistent/flatsnap-sr' }): SmRequest {
  return {
    command,
    host_ref: 'OpaqueRef:host-2',
    session_ref: 'OpaqueRef:session',
    device_config: { SRmaster: String(master), ...dc },
    sr_master: master,
    sr_ref: 'OpaqueRef:sr',
    sr_uuid: SR,
    vdi_ref: 'OpaqueRef:vdi',
    vdi_uuid: VDI,
    vdi_location: VDI,
    args: { kind: 'none' },
    raw_args: [],
  };
}

/** Every declared command's decided mode: a new command fails here until someone decides. */
const MODES: Record<string, 'shared' | 'exclusive' | undefined> = {
  sr_attach: 'exclusive',
  sr_create: undefined,
  sr_delete: 'exclusive',
  sr_detach: undefined,
  sr_probe: undefined,
  sr_scan: 'exclusive',
  sr_update: 'shared',
  sr_get_driver_info: undefined,
  vdi_attach: 'shared',
  vdi_detach: undefined,
  vdi_activate: undefined,
  vdi_deactivate: undefined,
  vdi_clone: 'exclusive',
  vdi_create: 'exclusive',
  vdi_delete: 'exclusive',
  vdi_epoch_begin: undefined,
  vdi_epoch_end: undefined,
  vdi_introduce: 'shared',
  vdi_resize: 'exclusive',
  vdi_revert: 'exclusive',
  vdi_snapshot: 'exclusive',
  vdi_update: 'exclusive',
};

describe('which command runs where, under which lock', () => {
  test('every declared command has a decided cross-host lock mode', () => {
    for (const cmd of declaredCommands()) {
      expect(Object.hasOwn(MODES, cmd) ? cmd : `${cmd} (undecided)`).toBe(cmd);
      expect([cmd, clusterLockMode(cmd)]).toEqual([cmd, MODES[cmd]]);
    }
  });

  test('sm.ml srmaster_only commands are master-only here too (plus vdi_revert)', () => {
    for (const c of ['sr_scan', 'vdi_create', 'vdi_delete', 'vdi_snapshot', 'vdi_clone', 'vdi_resize', 'vdi_compose', 'vdi_revert'] as const) {
      expect(SR_MASTER_ONLY.has(c)).toBe(true);
    }
    for (const c of ['sr_attach', 'sr_detach', 'vdi_attach', 'vdi_activate', 'vdi_update', 'sr_update', 'vdi_introduce'] as const) {
      expect(SR_MASTER_ONLY.has(c)).toBe(false);
    }
  });

  test('refuseOffMaster: a clear SM fault off the master, nothing on it', () => {
    const e = (() => {
      try {
        refuseOffMaster(request('vdi_snapshot', false));
      } catch (x) {
        return x;
      }
      return undefined;
    })();
    expect(e).toBeInstanceOf(SmError);
    expect((e as SmError).kind).toBe('SMGeneral');
    expect((e as SmError).message).toMatch(/vdi_snapshot runs on the SR master only/);
    expect(() => refuseOffMaster(request('vdi_snapshot', true))).not.toThrow();
    expect(() => refuseOffMaster(request('vdi_attach', false))).not.toThrow();
  });

  test('dispatch refuses every declared master-only command on a slave before touching storage', async () => {
    const masterOnly = declaredCommands().filter((c) => SR_MASTER_ONLY.has(c));
    expect(masterOnly.sort()).toEqual(['sr_scan', 'vdi_clone', 'vdi_create', 'vdi_delete', 'vdi_resize', 'vdi_revert', 'vdi_snapshot']);
    for (const cmd of masterOnly) {
      const e = await dispatch(request(cmd, false)).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(SmError);
      expect([cmd, (e as SmError).kind, (e as SmError).message]).toEqual([cmd, 'SMGeneral', expect.stringContaining('SR master only')]);
    }
  });

  test('only the reflink backend has a cross-host lock: the SR marker', () => {
    expect(clusterLockDir({ path: '/srv/sr' })).toBe('/srv/sr');
    expect(clusterLockPath('/srv/sr')).toBe('/srv/sr/.flatsnap-sr.json');
    expect(clusterLockDir({ dataset: 'tank/sr' })).toBeUndefined();
    expect(clusterLockDir({ path: 'relative' })).toBeUndefined(); // the handler refuses it
  });
});

describe('the lock on a real directory', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'flatsnap-shared-'));
    writeFileSync(clusterLockPath(dir), '{}\n');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const flockTry = async (flag: '-x' | '-s'): Promise<number> =>
    (await execa('/usr/bin/flock', ['-n', flag, clusterLockPath(dir), '/bin/true'], { reject: false })).exitCode ?? -1;

  test('a reader holds it shared, a writer exclusive, commands without a mode not at all', async () => {
    await withClusterLock(request('vdi_attach', false, { path: dir }), async () => {
      expect(await flockTry('-s')).toBe(0);
      expect(await flockTry('-x')).toBe(1);
    });
    await withClusterLock(request('vdi_snapshot', true, { path: dir }), async () => {
      expect(await flockTry('-s')).toBe(1);
    });
    await withClusterLock(request('vdi_activate', false, { path: dir }), async () => {
      expect(await flockTry('-x')).toBe(0);
    });
    expect(await flockTry('-x')).toBe(0); // released
  });

  test('a reader that finds an interrupted swap takes the lock exclusively', async () => {
    writeFileSync(join(dir, `.flatsnap-swap.${VDI}.json`), '{}\n');
    await withSrDirLock(dir, 'shared', 'vdi_attach', async () => {
      expect(await flockTry('-s')).toBe(1);
    });
  });

  test('a writer waits for a reader on another host (here: another process), up to the bound', async () => {
    const holder = execa('/usr/bin/flock', ['-s', clusterLockPath(dir), '/bin/sh', '-c', 'echo held; cat >/dev/null'], { stdin: 'pipe' });
    await new Promise<void>((resolve, reject) => {
      holder.stdout!.once('data', () => resolve());
      holder.catch(reject);
    });
    const e = await withClusterLock(request('vdi_delete', true, { path: dir }), async () => 'ran', 200).catch((x: unknown) => x);
    expect((e as SmError).kind).toBe('LockErr');
    setTimeout(() => holder.stdin!.end(), 150);
    expect(await withClusterLock(request('vdi_delete', true, { path: dir }), async () => 'ran', 20_000)).toBe('ran');
    await holder;
  });

  test('no marker, no SR: the command runs unlocked and reports that itself', async () => {
    rmSync(clusterLockPath(dir));
    expect(await withClusterLock(request('sr_attach', false, { path: dir }), async () => 'ran', 100)).toBe('ran');
  });
});

describe('mounts: the localflocks check', () => {
  const MOUNTS = [
    'sysfs /sys sysfs rw,nosuid 0 0',
    '/dev/vda1 / ext4 rw,relatime 0 0',
    '/dev/sdb /srv/ocfs2 ocfs2 rw,relatime,_netdev,heartbeat=local,nointr,data=ordered,errors=remount-ro,atime_quantum=60,localflocks,,cluster_stack=o2cb,coherency=full,user_xattr,noacl 0 0',
    '/dev/sdc /srv/ocfs2/inner ocfs2 rw,relatime,_netdev,heartbeat=global,nointr,data=ordered,cluster_stack=o2cb 0 0',
    '/dev/sdd /srv/local\\040ocfs2 ocfs2 rw,relatime,heartbeat=none,localflocks,,coherency=full 0 0',
    '/dev/loop0 /mnt/x xfs rw,relatime 0 0',
    '/dev/loop1 /mnt/x xfs rw,relatime,nouuid 0 0',
  ].join('\n');
  const entries = parseMounts(MOUNTS);

  test('parses options (dropping the empty ones OCFS2 prints) and octal escapes', () => {
    expect(entries).toHaveLength(7);
    expect(entries[2]!.options).toContain('localflocks');
    expect(entries[2]!.options).not.toContain('');
    expect(entries[4]!.mountpoint).toBe('/srv/local ocfs2');
  });

  test('finds the deepest mount, and the top one of a stack', () => {
    expect(mountOf(entries, '/srv/ocfs2/sr')!.source).toBe('/dev/sdb');
    expect(mountOf(entries, '/srv/ocfs2/inner/sr')!.source).toBe('/dev/sdc');
    expect(mountOf(entries, '/srv/ocfs2inner')!.source).toBe('/dev/vda1');
    expect(mountOf(entries, '/mnt/x/sr')!.source).toBe('/dev/loop1');
  });

  test('a clustered OCFS2 mount with localflocks is a problem; local OCFS2 and other filesystems are not', () => {
    expect(clusterFlockProblem(mountOf(entries, '/srv/ocfs2/sr')!)).toMatch(/localflocks/);
    expect(clusterFlockProblem(mountOf(entries, '/srv/ocfs2/inner/sr')!)).toBeUndefined();
    expect(clusterFlockProblem(mountOf(entries, '/srv/local ocfs2/sr')!)).toBeUndefined();
    expect(clusterFlockProblem(mountOf(entries, '/mnt/x/sr')!)).toBeUndefined();
  });
});
