// The tapdisk datapath, the way blktap2.py runs it for a raw ("aio") VDI:
//
//   attach      /dev/sm/phy/<sr>/<vdi> -> the image (a symlink)
//   activate    tap-ctl allocate -> minor N; tap-ctl spawn -> pid;
//               tap-ctl attach -p pid -m N; tap-ctl open -p pid -m N -a aio:<image> [-R];
//               /dev/sm/backend/<sr>/<vdi>: a block node with tapdev N's device number;
//               /run/blktap-control/nbd/<sr>/<vdi> -> /run/blktap-control/nbd<pid>.<N>
//   deactivate  tap-ctl close -t 120, detach, free; the node and the NBD link go
//   detach      the phy link goes
//
// The attach result names the backend node and the NBD socket (both exist from
// activate on, which xapi always runs before the VBD is plugged). Every step is
// idempotent: an activate finds a tapdisk already serving the image through
// `tap-ctl list` and reuses it; a deactivate with nothing running just tidies up.
// Programs run with argument arrays only.
import { execa } from 'execa';
import { lstat, mkdir, readlink, stat, symlink, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { SmError } from '../errors.js';
import { log } from '../log.js';
import type { XmlRpcStruct } from '../smapi/xmlrpc.js';
import { O_DIRECT_REASON, xenstoreData, type AttachTarget, type Datapath, type VdiTarget } from './common.js';

export interface TapdiskPaths {
  tapCtl: string;
  /** /dev/sm: phy/ and backend/ live below it. */
  smDev: string;
  /** /run/blktap-control: the NBD sockets and nbd/ links. */
  blktapRun: string;
  /** /dev/xen/blktap-2: tapdev<N>. */
  tapdevDir: string;
  mknod: string;
}

const DEFAULTS: Omit<TapdiskPaths, 'tapCtl'> = {
  smDev: '/dev/sm',
  blktapRun: '/run/blktap-control',
  tapdevDir: '/dev/xen/blktap-2',
  mknod: 'mknod',
};

/** One line of `tap-ctl list`: `pid=123 minor=0 state=0 args=aio:/path`. */
export interface TapListEntry {
  pid?: number;
  minor?: number;
  state?: string;
  args?: string;
}

export function parseTapList(out: string): TapListEntry[] {
  const entries: TapListEntry[] = [];
  for (const line of out.split('\n')) {
    if (line.trim() === '') continue;
    const e: TapListEntry = {};
    for (const field of line.trim().split(/\s+/)) {
      const eq = field.indexOf('=');
      if (eq < 0) continue;
      const k = field.slice(0, eq);
      const v = field.slice(eq + 1);
      if (k === 'pid' && /^\d+$/.test(v)) e.pid = Number(v);
      else if (k === 'minor' && /^\d+$/.test(v)) e.minor = Number(v);
      else if (k === 'state') e.state = v;
      else if (k === 'args') e.args = v;
    }
    entries.push(e);
  }
  return entries;
}

function isNotFound(e: unknown): boolean {
  return (e as { code?: unknown }).code === 'ENOENT';
}

async function removeIfThere(path: string): Promise<void> {
  try {
    await unlink(path);
  } catch (e) {
    if (!isNotFound(e)) throw e;
  }
}

/** Linux dev_t -> (major, minor), as glibc's gnu_dev_major/minor. */
export function splitDev(rdev: bigint): { major: number; minor: number } {
  const major = ((rdev >> 8n) & 0xfffn) | ((rdev >> 32n) & ~0xfffn);
  const minor = (rdev & 0xffn) | ((rdev >> 12n) & ~0xffn);
  return { major: Number(major), minor: Number(minor) };
}

export class TapdiskDatapath implements Datapath {
  readonly mode = 'tapdisk' as const;
  private readonly p: TapdiskPaths;

  constructor(paths: Partial<TapdiskPaths> & { tapCtl: string }) {
    this.p = { ...DEFAULTS, ...paths };
  }

  phyLink(t: VdiTarget): string {
    return join(this.p.smDev, 'phy', t.srUuid, t.vdiUuid);
  }

  backendNode(t: VdiTarget): string {
    return join(this.p.smDev, 'backend', t.srUuid, t.vdiUuid);
  }

  nbdLink(t: VdiTarget): string {
    return join(this.p.blktapRun, 'nbd', t.srUuid, t.vdiUuid);
  }

  private async tapCtl(args: string[]): Promise<string> {
    const r = await execa(this.p.tapCtl, args, { reject: false, stdin: 'ignore' });
    if (r.exitCode !== 0 || r.failed) {
      const out = `${r.stderr}\n${r.stdout}`.trim().replace(/\s+/g, ' ');
      throw new SmError('TapdiskFailed', `tap-ctl ${args.join(' ')} failed (${r.exitCode ?? r.signal ?? 'no exit code'}): ${out}`);
    }
    return r.stdout.trim();
  }

  async list(): Promise<TapListEntry[]> {
    return parseTapList(await this.tapCtl(['list']));
  }

  async attach(t: AttachTarget, writable: boolean): Promise<XmlRpcStruct> {
    const phy = this.phyLink(t);
    await mkdir(dirname(phy), { recursive: true, mode: 0o755 });
    const current = await readlink(phy).catch((e: unknown) => {
      if (isNotFound(e)) return undefined;
      throw e;
    });
    if (current !== t.path) {
      if (current !== undefined) await unlink(phy);
      await symlink(t.path, phy);
    }
    log().info(`tapdisk datapath: attached VDI ${t.vdiUuid} (${writable ? 'RW' : 'RO'}) via ${phy} -> ${t.path}`);
    return {
      params: this.backendNode(t),
      params_nbd: `nbd:unix:${this.nbdLink(t)}:exportname=${t.vdiUuid}`,
      o_direct: true,
      o_direct_reason: O_DIRECT_REASON,
      xenstore_data: xenstoreData(t),
    };
  }

  private async imageOf(t: VdiTarget): Promise<string | undefined> {
    return readlink(this.phyLink(t)).catch((e: unknown) => {
      if (isNotFound(e)) return undefined;
      throw e;
    });
  }

  async activate(t: VdiTarget, writable: boolean): Promise<void> {
    const image = await this.imageOf(t);
    if (image === undefined) throw new SmError('VDIUnavailable', `VDI ${t.vdiUuid} is not attached on this host (no ${this.phyLink(t)})`);
    const args = `aio:${image}`;
    let tap = (await this.list()).find((e) => e.args === args && e.pid !== undefined && e.minor !== undefined);
    if (tap === undefined) {
      const dev = await this.tapCtl(['allocate']);
      const m = /(\d+)\s*$/.exec(dev);
      if (!m) throw new SmError('TapdiskFailed', `tap-ctl allocate printed ${JSON.stringify(dev)}`);
      const minor = Number(m[1]);
      let pid: number | undefined;
      let attached = false;
      try {
        const spawned = await this.tapCtl(['spawn']);
        if (!/^\d+$/.test(spawned)) throw new SmError('TapdiskFailed', `tap-ctl spawn printed ${JSON.stringify(spawned)}`);
        pid = Number(spawned);
        await this.tapCtl(['attach', '-p', String(pid), '-m', String(minor)]);
        attached = true;
        await this.tapCtl(['open', '-p', String(pid), '-m', String(minor), '-a', args, ...(writable ? [] : ['-R'])]);
      } catch (e) {
        // Take back what was set up, newest first; the original error is what counts.
        if (attached && pid !== undefined) await this.tapCtl(['detach', '-p', String(pid), '-m', String(minor)]).catch(() => undefined);
        await this.tapCtl(['free', '-m', String(minor)]).catch(() => undefined);
        throw e;
      }
      tap = { pid, minor, args };
      log().info(`tapdisk datapath: tapdisk ${pid} serves ${args} on minor ${minor} (${writable ? 'RW' : 'RO'})`);
    } else {
      log().info(`tapdisk datapath: tapdisk ${tap.pid} already serves ${args} on minor ${tap.minor}`);
    }
    await this.ensureBackendNode(t, tap.minor!);
    await this.ensureNbdLink(t, tap.pid!, tap.minor!);
  }

  private async ensureBackendNode(t: VdiTarget, minor: number): Promise<void> {
    const tapdev = join(this.p.tapdevDir, `tapdev${minor}`);
    const want = splitDev((await stat(tapdev, { bigint: true })).rdev);
    const node = this.backendNode(t);
    await mkdir(dirname(node), { recursive: true, mode: 0o755 });
    const have = await lstat(node, { bigint: true }).catch((e: unknown) => {
      if (isNotFound(e)) return undefined;
      throw e;
    });
    if (have !== undefined) {
      const h = splitDev(have.rdev);
      if (have.isBlockDevice() && h.major === want.major && h.minor === want.minor) return;
      await unlink(node);
    }
    const r = await execa(this.p.mknod, ['-m', '0660', node, 'b', String(want.major), String(want.minor)], { reject: false, stdin: 'ignore' });
    if (r.exitCode !== 0 || r.failed) throw new SmError('TapdiskFailed', `mknod ${node}: ${r.stderr.trim()}`);
  }

  private async ensureNbdLink(t: VdiTarget, pid: number, minor: number): Promise<void> {
    const link = this.nbdLink(t);
    const target = join(this.p.blktapRun, `nbd${pid}.${minor}`);
    await mkdir(dirname(link), { recursive: true, mode: 0o755 });
    const current = await readlink(link).catch(() => undefined);
    if (current === target) return;
    await removeIfThere(link);
    await symlink(target, link);
  }

  async deactivate(t: VdiTarget): Promise<void> {
    const image = await this.imageOf(t);
    let minor: number | undefined;
    try {
      const st = await stat(this.backendNode(t), { bigint: true });
      if (st.isBlockDevice()) minor = splitDev(st.rdev).minor;
    } catch (e) {
      if (!isNotFound(e)) throw e;
    }
    const taps = await this.list();
    const tap = taps.find((e) => e.pid !== undefined && e.minor !== undefined && ((image !== undefined && e.args === `aio:${image}`) || e.minor === minor));
    if (tap !== undefined) {
      const pm = ['-p', String(tap.pid), '-m', String(tap.minor)];
      await this.tapCtl(['close', ...pm, '-t', '120']);
      await this.tapCtl(['detach', ...pm]);
      await this.tapCtl(['free', '-m', String(tap.minor)]);
      log().info(`tapdisk datapath: stopped tapdisk ${tap.pid} (minor ${tap.minor}) of VDI ${t.vdiUuid}`);
    }
    await removeIfThere(this.backendNode(t));
    await removeIfThere(this.nbdLink(t));
  }

  /** The tapdisk serving the VDI on this host, and the image it serves, if one runs. */
  private async tapOf(t: VdiTarget): Promise<{ tap: TapListEntry; image: string } | undefined> {
    const image = await this.imageOf(t);
    if (image === undefined) return undefined;
    const tap = (await this.list()).find((e) => e.args === `aio:${image}` && e.pid !== undefined && e.minor !== undefined);
    return tap === undefined ? undefined : { tap, image };
  }

  /**
   * tap-ctl pause: the tapdisk serving the VDI here drains the guest's I/O and holds
   * new requests. false when no tapdisk serves it on this host (nothing to hold).
   */
  async pause(t: VdiTarget): Promise<boolean> {
    const found = await this.tapOf(t);
    if (found === undefined) return false;
    const { tap } = found;
    await this.tapCtl(['pause', '-p', String(tap.pid), '-m', String(tap.minor)]);
    log().info(`tapdisk datapath: paused tapdisk ${tap.pid} (minor ${tap.minor}) of VDI ${t.vdiUuid}`);
    return true;
  }

  /**
   * tap-ctl unpause, naming the image again (-a) as blktap2 does: the tapdisk reopens it,
   * so after a revert swapped a new file in under the same name it serves the new one.
   * false when no tapdisk serves the VDI here.
   */
  async unpause(t: VdiTarget): Promise<boolean> {
    const found = await this.tapOf(t);
    if (found === undefined) return false;
    const { tap, image } = found;
    await this.tapCtl(['unpause', '-p', String(tap.pid), '-m', String(tap.minor), '-a', `aio:${image}`]);
    log().info(`tapdisk datapath: unpaused tapdisk ${tap.pid} (minor ${tap.minor}) of VDI ${t.vdiUuid}`);
    return true;
  }

  /**
   * pause around `fn`, then unpause, when a tapdisk on this host serves the VDI; otherwise
   * just `fn`. Unpause runs whatever `fn` did: a guest must never stay frozen.
   */
  async quiesce<T>(t: VdiTarget, fn: () => Promise<T>): Promise<T> {
    if (!(await this.pause(t))) return fn();
    try {
      return await fn();
    } finally {
      await this.unpause(t);
    }
  }

  async detach(t: VdiTarget): Promise<void> {
    await removeIfThere(this.phyLink(t));
  }
}
