// Writing disk images for the benchmarks, through the datapath the plugin's vdi_attach
// returns (like a dom0 user of the VDI).
import { randomFillSync } from 'node:crypto';
import { open } from 'node:fs/promises';
import { MiB } from './common.mjs';

const CHUNK = 4 * MiB;

/** Writes `length` bytes of random data at `offset` (in 4 MiB writes), then fsyncs. */
export async function writeRandom(path, offset, length) {
  const fh = await open(path, 'r+');
  try {
    const buf = Buffer.allocUnsafe(Math.min(CHUNK, length));
    for (let done = 0; done < length; ) {
      const n = Math.min(buf.length, length - done);
      randomFillSync(buf, 0, n);
      await fh.write(buf, 0, n, offset + done);
      done += n;
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
}

/** Writes several [offset, length] ranges of random data, one fsync at the end. */
export async function writeRanges(path, ranges) {
  const fh = await open(path, 'r+');
  try {
    const max = Math.max(...ranges.map(([, l]) => l));
    const buf = Buffer.allocUnsafe(Math.min(CHUNK, max));
    for (const [offset, length] of ranges) {
      for (let done = 0; done < length; ) {
        const n = Math.min(buf.length, length - done);
        randomFillSync(buf, 0, n);
        await fh.write(buf, 0, n, offset + done);
        done += n;
      }
    }
    await fh.sync();
  } finally {
    await fh.close();
  }
}
