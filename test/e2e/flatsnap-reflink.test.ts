// flatsnap end to end on the reflink backend: the built plugin under the XAPI
// simulator, on a real XFS (reflink=1) loop filesystem, once through XenAPI calls and
// once through the xe command line (see flatsnap-flow.ts).
// Needs root, losetup and mkfs.xfs: skipped locally without them, failing under CI=true.
import { afterAll, beforeAll } from '@jest/globals';
import { existsSync, readdirSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import * as path from 'node:path';
import { createLoopFs, describeLoopFs, type LoopFs } from '../integration/harness/loopfs.js';
import { DRIVERS, lifecycleFlow, vdiRevertFlow, type FlowStorage } from './flatsnap-flow.js';

const MARKER = '.flatsnap-sr.json';

function reflinkStorage(title: string, sizeMiB: number): () => FlowStorage {
  let fs: LoopFs | undefined;
  let dir = '';
  beforeAll(async () => {
    fs = await createLoopFs('xfs', { sizeMiB });
    dir = path.join(fs.mountpoint, title);
    await mkdir(dir);
  }, 120_000);
  afterAll(async () => {
    await fs?.teardown();
  });
  return () => ({
    dc: { path: dir },
    dependent: false,
    objects: async () => readdirSync(dir).filter((n) => n !== MARKER).sort(),
    rootExists: async () => existsSync(path.join(dir, MARKER)),
  });
}

for (const kind of DRIVERS) {
  describeLoopFs(`flatsnap reflink SR through the XAPI simulator (real XFS, ${kind})`, ['xfs'], () => {
    lifecycleFlow(reflinkStorage('lifecycle', 512), kind);
  });

  describeLoopFs(`flatsnap VDI.revert through the XAPI simulator (--revert-flow vdi-revert, real XFS, ${kind})`, ['xfs'], () => {
    vdiRevertFlow(reflinkStorage('revert', 320), kind);
  });
}
