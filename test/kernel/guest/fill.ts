// Filling a filesystem until writes fail with ENOSPC, for the conformance suite's fill():
// 1 MiB writes, then smaller ones, until even 4 KiB writes keep failing.
import { open } from 'node:fs/promises';

const MiB = 1024 * 1024;

export async function fillFile(path: string): Promise<void> {
  const fh = await open(path, 'w');
  let chunk = MiB;
  let fails = 0;
  try {
    while (chunk >= 4096) {
      try {
        await fh.write(Buffer.alloc(chunk, 0x5a));
        fails = 0;
        continue;
      } catch (e) {
        if (!['ENOSPC', 'EDQUOT'].includes((e as { code?: string }).code ?? '')) throw e;
      }
      await fh.sync().catch(() => undefined);
      if (++fails >= 2) {
        chunk >>= 1;
        fails = 0;
      }
    }
  } finally {
    await fh.close().catch(() => undefined);
  }
}

/** A required environment variable (the host test passes the guest's storage this way). */
export function env(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set: this suite runs in the kernel tier's guest (test/kernel/README.md)`);
  return v;
}
