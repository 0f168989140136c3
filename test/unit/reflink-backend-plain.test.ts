// The conformance suite without root: the reflink backend on a plain temp directory
// with allow-copy (on a filesystem that cannot reflink every copy is a sparse byte
// copy; on one that can, FICLONE). No fill(): a shared /tmp cannot be filled.
import { mkdir, mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomUUID } from 'node:crypto';
import { ReflinkBackend } from '../../src/backends/reflink/backend.js';
import { SR_MARKER } from '../../src/backends/reflink/names.js';
import { backendConformance } from '../conformance/backend-conformance.js';

// Every copy here is a full copy, which the backend logs as a warning each time: keep the test output readable.
process.env.FLATSNAP_LOG_LEVEL ??= 'error';

backendConformance('reflink with allow-copy on a plain temp directory', async () => {
  const root = await mkdtemp(join(tmpdir(), 'flatsnap-backend-'));
  const dir = join(root, 'sr');
  await mkdir(dir);
  return {
    backend: new ReflinkBackend(dir, { allowCopy: true }),
    reopen: () => new ReflinkBackend(dir, { allowCopy: true }),
    listRoot: async () => (await readdir(dir)).filter((n) => n !== SR_MARKER).sort(),
    teardown: () => rm(root, { recursive: true, force: true }),
    foreign: async () => {
      const f = join(root, `foreign-${randomUUID()}`);
      await mkdir(f);
      await writeFile(join(f, 'notes.txt'), 'not flatsnap');
      return new ReflinkBackend(f, { allowCopy: true });
    },
  };
}, { skip: ['fill'] });
