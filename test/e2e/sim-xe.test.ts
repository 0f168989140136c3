// The xe-style CLI drives the same snapshot -> revert -> uninstall cycle as a
// shell script would, argument arrays only.
import { afterAll, beforeAll, describe, expect, it } from '@jest/globals';
import { execFile } from 'node:child_process';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { readSmLog, removeDir, startSim, XE, type SimProc } from './sim-helpers.js';

const run = promisify(execFile);
let sim: SimProc;

beforeAll(async () => {
  sim = await startSim();
});
afterAll(async () => {
  await sim?.stop();
  if (sim) removeDir(sim.dir);
});

async function xe(...args: string[]): Promise<string> {
  const { stdout } = await run(XE, ['-s', '127.0.0.1', '-p', String(sim.port), '-u', 'root', '-pw', 'secret', ...args], { cwd: '/' });
  return stdout.trim();
}

async function xeFails(...args: string[]): Promise<string> {
  try {
    await xe(...args);
  } catch (e) {
    return String((e as { stderr?: string }).stderr);
  }
  throw new Error('expected xe to fail');
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

describe('xe CLI', () => {
  it('runs snapshot, revert and snapshot-uninstall on a VM', async () => {
    const sr = await xe('sr-create', 'name-label=cli', 'type=filefixture', `device-config:path=${path.join(sim.dir, 'sr')}`);
    expect(sr).toMatch(UUID);
    const vdi = await xe('vdi-create', `sr-uuid=${sr}`, 'name-label=root', 'virtual-size=1MiB');
    expect(vdi).toMatch(UUID);
    const vm = await xe('vm-create', 'name-label=web');
    await xe('vbd-create', `vm-uuid=${vm}`, `vdi-uuid=${vdi}`, 'device=0', 'bootable=true');
    await xe('vm-start', 'vm=web');
    const snap = await xe('vm-snapshot', 'vm=web', 'new-name-label=before-upgrade', 'new-name-description=nightly');
    expect(snap).toMatch(UUID);
    expect(await xe('snapshot-list', '--minimal')).toBe(snap);
    const listed = await xe('snapshot-list', `uuid=${snap}`, 'params=name-label,name-description');
    expect(listed).toMatch(/name-label \( RW\)\s*: before-upgrade/);
    expect(listed).toMatch(/name-description \( RW\)\s*: nightly/);
    const snapVdi = await xe('vdi-list', 'is-a-snapshot=true', '--minimal');
    expect(snapVdi).toMatch(UUID);
    expect(await xe('vdi-list', `uuid=${snapVdi}`, 'params=snapshot-of', '--minimal')).toBe(vdi);

    await xe('vm-shutdown', 'vm=web');
    const n = readSmLog(sim.smLog).length;
    await xe('snapshot-revert', `snapshot-uuid=${snap}`);
    expect(readSmLog(sim.smLog).slice(n).map((e) => e.cmd)).toEqual(['vdi_delete', 'vdi_clone', 'vdi_update']);
    const newDisk = await xe('vdi-list', 'is-a-snapshot=false', 'name-label=root', '--minimal');
    expect(newDisk).toMatch(UUID);
    expect(newDisk).not.toBe(vdi);
    expect(await xe('vdi-list', `uuid=${snapVdi}`, 'params=snapshot-of', '--minimal')).toBe(newDisk);
    const params = await xe('vdi-param-list', `uuid=${snapVdi}`);
    expect(params).toMatch(/is-a-snapshot \( RO\)\s*: true/);

    await xe('snapshot-uninstall', `snapshot-uuid=${snap}`, 'force=true');
    expect(await xe('snapshot-list', '--minimal')).toBe('');
    expect(await xe('vdi-list', 'is-a-snapshot=true', '--minimal')).toBe('');
    expect(await xe('vm-list', '--minimal')).toBe(vm);
  });

  it('covers the disk and VM commands', async () => {
    const sr = await xe('sr-list', 'name-label=cli', '--minimal');
    const d = await xe('vdi-create', `sr-uuid=${sr}`, 'name-label=data', 'virtual-size=2MiB');
    const s = await xe('vdi-snapshot', `uuid=${d}`);
    expect(await xe('vdi-list', `uuid=${s}`, 'params=is-a-snapshot', '--minimal')).toBe('true');
    const cl = await xe('vdi-clone', `uuid=${d}`, 'new-name-label=data-clone');
    expect(await xe('vdi-list', `uuid=${cl}`, 'params=name-label', '--minimal')).toBe('data-clone');
    const cp = await xe('vdi-copy', `uuid=${d}`, `sr-uuid=${sr}`);
    await xe('vdi-resize', `uuid=${cp}`, 'disk-size=4MiB');
    expect(await xe('vdi-list', `uuid=${cp}`, 'params=virtual-size', '--minimal')).toBe(String(4 << 20));
    await xe('vdi-update', `uuid=${cp}`);
    for (const v of [s, cl, cp]) await xe('vdi-destroy', `uuid=${v}`);
    await xe('sr-scan', `uuid=${sr}`);
    expect(await xe('sr-param-list', `uuid=${sr}`)).toMatch(/virtual-allocation \( RO\)\s*: \d+/);

    const vm = await xe('vm-create', 'name-label=db');
    await xe('vbd-create', `vm-uuid=${vm}`, `vdi-uuid=${d}`, 'device=0');
    const cp1 = await xe('vm-checkpoint', 'vm=db', 'new-name-label=cp').catch(() => 'refused');
    expect(cp1).toBe('refused'); // halted VMs cannot be checkpointed
    expect(await xeFails('vm-checkpoint', 'vm=db', 'new-name-label=cp')).toMatch(/Error code: VM_BAD_POWER_STATE/);
    const vclone = await xe('vm-clone', 'vm=db', 'new-name-label=db2');
    const vcopy = await xe('vm-copy', 'vm=db', 'new-name-label=db3', `sr-uuid=${sr}`);
    expect(vclone).toMatch(UUID);
    expect(vcopy).toMatch(UUID);
    await xe('vm-destroy', `uuid=${vclone}`);
    expect(await xe('vm-list', 'name-label=db2', '--minimal')).toBe('');
  });

  it('introduces, plugs, unplugs and destroys an SR; reports errors like xe', async () => {
    const sr = await xe('sr-create', 'name-label=second', 'type=filefixture', `device-config:path=${path.join(sim.dir, 'sr2')}`);
    const pbd = await xe('pbd-list', `sr-uuid=${sr}`, '--minimal');
    await xe('pbd-unplug', `uuid=${pbd}`);
    await xe('sr-forget', `uuid=${sr}`);
    const again = await xe('sr-introduce', `uuid=${sr}`, 'name-label=second', 'type=filefixture');
    expect(again).toBe(sr);
    const host = (await xe('pbd-list', 'params=host-uuid', '--minimal')).split(',')[0]!;
    const pbd2 = await xe('pbd-create', `sr-uuid=${sr}`, `host-uuid=${host}`, `device-config:path=${path.join(sim.dir, 'sr2')}`);
    await xe('pbd-plug', `uuid=${pbd2}`);
    const v = await xe('vdi-create', `sr-uuid=${sr}`, 'name-label=x', 'virtual-size=4096');
    await xe('pbd-unplug', `uuid=${pbd2}`);
    expect(await xeFails('sr-destroy', `uuid=${sr}`)).toMatch(/Error code: SR_NOT_EMPTY/);
    await xe('pbd-plug', `uuid=${pbd2}`);
    await xe('vdi-destroy', `uuid=${v}`);
    await xe('pbd-unplug', `uuid=${pbd2}`);
    await xe('sr-destroy', `uuid=${sr}`);
    expect(await xe('sr-list', `uuid=${sr}`, '--minimal')).toBe('');
    expect(await xeFails('vdi-destroy', 'uuid=00000000-0000-4000-8000-000000000000')).toMatch(/Error code: UUID_INVALID\nError parameters: VDI, 00000000/);
  });
});
