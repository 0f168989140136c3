// flatsnap end to end on the ZFS backend: the built plugin under the XAPI simulator, on
// a real pool (zfs-fuse here: the raw-file layout; OpenZFS: zvols), once through XenAPI
// calls and once through the xe command line (see flatsnap-flow.ts).
// Needs root and ZFS: skipped locally without them, failing under CI=true.
import { execa } from 'execa';
import { describeZfs, type ZfsTestContext } from '../integration/harness/zfs-pool.js';
import { DRIVERS, lifecycleFlow, vdiRevertFlow, type FlowStorage } from './flatsnap-flow.js';

async function zfsNames(root: string): Promise<string[] | undefined> {
  const r = await execa('zfs', ['list', '-H', '-o', 'name', '-t', 'all', '-r', root], { reject: false, stdin: 'ignore' });
  if (r.exitCode !== 0) return undefined;
  return r.stdout.split('\n').filter((n) => n !== '' && n !== root).sort();
}

function zfsStorage(z: ZfsTestContext, name: string): () => FlowStorage {
  return () => {
    const root = `${z.pool.name}/${name}`;
    return {
      dc: { dataset: root },
      dependent: true,
      objects: async () => (await zfsNames(root)) ?? [],
      rootExists: async () => (await zfsNames(root)) !== undefined,
    };
  };
}

for (const kind of DRIVERS) {
  describeZfs(`flatsnap ZFS SR through the XAPI simulator (${kind})`, (z) => lifecycleFlow(zfsStorage(z, 'lifecycle'), kind), { tag: `e2e${kind}`, sizeMiB: 1024 });

  describeZfs(
    `flatsnap VDI.revert on ZFS through the XAPI simulator (--revert-flow vdi-revert, ${kind})`,
    (z) => vdiRevertFlow(zfsStorage(z, 'revert'), kind),
    { tag: `e2erev${kind}`, sizeMiB: 512 },
  );
}
