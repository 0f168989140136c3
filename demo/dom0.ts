// dom0's access to a VDI's bytes, as xapi's dom0 VBD plug does it: the installed
// plugin's vdi_attach (vdi_detach when done with the VDI), and the attach result's
// `params` path read or written directly. There is no blktap under the simulator, so this is the
// driver's direct datapath, the same one test/e2e/flatsnap-flow.ts uses.
import { execa } from 'execa';
import { open, type FileHandle } from 'node:fs/promises';
import { decodeMethodResponse, encodeMethodCall, isStruct, type XmlRpcStruct } from '../src/smapi/xmlrpc.js';
import { timed } from './profile.js';
import { type DiskState, changedRegions, identify, patternBytes, regions, sha256Of } from './data.js';

export interface VdiRef {
  ref: string;
  uuid: string;
  location: string;
}

export interface SrTarget {
  host: string;
  sr: string;
  srUuid: string;
  dc: Record<string, string>;
}

const XAPI_ENV = { PATH: '/sbin:/usr/sbin:/bin:/usr/bin', ORIGINATOR: 'SM' };

export interface ReadBack {
  sha256: string;
  /** Region name to what it holds, for regions that differ from the expected state. */
  wrong: string[];
}

export class Dom0 {
  constructor(
    readonly plugin: string,
    readonly sr: SrTarget,
  ) {}

  private async smCall(command: 'vdi_attach' | 'vdi_detach', vdi: VdiRef, args: string[]): Promise<unknown> {
    const req = encodeMethodCall(command, [
      {
        host_ref: this.sr.host,
        command,
        args,
        device_config: { SRmaster: 'true', ...this.sr.dc },
        session_ref: 'OpaqueRef:unused-by-the-datapath',
        sr_ref: this.sr.sr,
        sr_uuid: this.sr.srUuid,
        vdi_ref: vdi.ref,
        vdi_location: vdi.location,
        vdi_uuid: vdi.uuid,
      },
    ]);
    const r = await timed(command, () => execa(this.plugin, [req], { env: XAPI_ENV, extendEnv: false, reject: false, stdin: 'ignore', timeout: 120_000 }));
    if (r.exitCode !== 0) throw new Error(`${command} of VDI ${vdi.uuid}: plugin exit ${String(r.exitCode ?? r.signal)}: ${r.stderr}`);
    const res = decodeMethodResponse(r.stdout);
    if (!res.ok) throw new Error(`${command} of VDI ${vdi.uuid}: fault ${res.faultCode}: ${res.faultString}`);
    return res.value;
  }

  /** VDIs dom0 has attached: uuid -> [the VDI, the params path, writable]. */
  private readonly attached = new Map<string, { vdi: VdiRef; path: string; writable: boolean }>();

  /** Plugin executions made (vdi_attach + vdi_detach). */
  calls = 0;

  /**
   * The VDI's params path: vdi_attach on first use, then kept attached, like the VBD of a
   * running VM, until release(). Disks are attached read-write, snapshots read-only.
   */
  async path(vdi: VdiRef, writable: boolean): Promise<string> {
    const a = this.attached.get(vdi.uuid);
    if (a !== undefined) {
      if (writable && !a.writable) throw new Error(`VDI ${vdi.uuid} is attached read-only`);
      return a.path;
    }
    this.calls++;
    const v = (await this.smCall('vdi_attach', vdi, [writable ? 'true' : 'false'])) as XmlRpcStruct;
    if (!isStruct(v) || typeof v.params !== 'string' || v.params === '') throw new Error(`vdi_attach of VDI ${vdi.uuid} gave no params path`);
    this.attached.set(vdi.uuid, { vdi, path: v.params, writable });
    return v.params;
  }

  /** vdi_detach of an attached VDI (before xapi may delete it: a plugged VDI would be VDI_IN_USE). */
  async release(vdi: { uuid: string }): Promise<void> {
    const a = this.attached.get(vdi.uuid);
    if (a === undefined) return;
    this.attached.delete(vdi.uuid);
    this.calls++;
    await this.smCall('vdi_detach', a.vdi, []);
  }

  async releaseAll(): Promise<void> {
    for (const a of [...this.attached.values()]) await this.release(a.vdi);
  }

  isAttached(uuid: string): boolean {
    return this.attached.has(uuid);
  }

  private async withPath<T>(vdi: VdiRef, writable: boolean, fn: (path: string) => Promise<T>): Promise<T> {
    const p = await this.path(vdi, writable);
    return timed(writable ? 'write io' : 'read io', () => fn(p));
  }

  /** Writes the regions that differ between `from` and `to`, then fsync. */
  async write(vdi: VdiRef, from: DiskState, to: DiskState): Promise<{ path: string; bytes: number }> {
    return this.withPath(vdi, true, async (path) => {
      const fh = await open(path, 'r+');
      let bytes = 0;
      try {
        for (const r of changedRegions(from, to)) {
          const b = patternBytes(r.tag, r.length);
          await writeFully(fh, b, r.offset);
          bytes += b.length;
        }
        await fh.sync();
      } finally {
        await fh.close();
      }
      return { path, bytes };
    });
  }

  /** Reads every known region; the sha256 over them and the regions that are not as `expect`. */
  async read(vdi: VdiRef, writable: boolean, expect: DiskState, candidates: readonly string[]): Promise<ReadBack & { path: string }> {
    return this.withPath(vdi, writable, async (path) => {
      const fh = await open(path, 'r');
      const parts: Buffer[] = [];
      const wrong: string[] = [];
      try {
        for (const r of regions(expect)) {
          const b = Buffer.alloc(r.length);
          const { bytesRead } = await fh.read(b, 0, r.length, r.offset);
          if (bytesRead < r.length) b.fill(0, bytesRead); // past the end reads as a short image
          parts.push(b);
          if (!b.equals(patternBytes(r.tag, r.length))) wrong.push(`${r.name}: expected ${r.tag ?? 'zeros'}, holds ${identify(b, candidates) ?? 'unknown data'}`);
        }
      } finally {
        await fh.close();
      }
      return { path, sha256: sha256Of(parts), wrong };
    });
  }

  /** The first and last 512 bytes of the image behind the VDI (format sniffing) and its path. */
  async sniff(vdi: VdiRef, writable: boolean): Promise<{ path: string; head: Buffer; tail: Buffer; size: number }> {
    return this.withPath(vdi, writable, async (path) => {
      const fh = await open(path, 'r');
      try {
        const size = await imageSize(fh, path);
        const head = Buffer.alloc(512);
        const tail = Buffer.alloc(512);
        await fh.read(head, 0, 512, 0);
        if (size >= 512) await fh.read(tail, 0, 512, size - 512);
        return { path, head, tail, size };
      } finally {
        await fh.close();
      }
    });
  }
}

async function writeFully(fh: FileHandle, b: Buffer, offset: number): Promise<void> {
  let done = 0;
  while (done < b.length) {
    const { bytesWritten } = await fh.write(b, done, b.length - done, offset + done);
    if (bytesWritten <= 0) throw new Error(`short write at ${offset + done}`);
    done += bytesWritten;
  }
}

async function imageSize(fh: FileHandle, path: string): Promise<number> {
  const st = await fh.stat();
  if (st.isFile()) return st.size;
  // a block device (OpenZFS zvol): its size is where reading ends
  const r = await execa('blockdev', ['--getsize64', path], { reject: false, stdin: 'ignore' });
  return r.exitCode === 0 ? Number(r.stdout.trim()) : 0;
}
