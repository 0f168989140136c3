// Booting and driving the kernel tier's qemu guests.
//
// One qemu process per guest, started with execa (argument array), booted from the cached
// image (test/kernel/image/image.sh) with the root disk in snapshot mode (the image is never
// written), extra raw disks made sparse on the host, 9p shares, and the guest agent on a
// virtio-serial port. Acceleration: KVM only when the CPU has real hardware virtualisation
// (vmx/svm) and /dev/kvm is writable; otherwise TCG. A /dev/kvm without vmx/svm (PVM, nested
// setups) opens fine and then hangs the guest, so qemu's own "kvm, else tcg" fallback is
// never used.
import { execa, type ResultPromise } from 'execa';
import { accessSync, constants, existsSync, readFileSync } from 'node:fs';
import { mkdir, open, readFile, rm } from 'node:fs/promises';
import { join } from 'node:path';
import { Qga, type GuestExecOptions, type GuestProcess, type GuestResult } from './qga.js';

export interface Accel {
  kind: 'kvm' | 'tcg';
  args: string[];
  why: string;
}

/** KVM only with real vmx/svm and a writable /dev/kvm; FLATSNAP_VM_ACCEL=tcg|kvm overrides. */
export function chooseAccel(): Accel {
  const tcg: string[] = ['-accel', 'tcg,thread=multi', '-cpu', 'max'];
  const kvm: string[] = ['-accel', 'kvm', '-cpu', 'host'];
  const forced = process.env.FLATSNAP_VM_ACCEL;
  if (forced === 'tcg') return { kind: 'tcg', args: tcg, why: 'FLATSNAP_VM_ACCEL=tcg' };
  if (forced === 'kvm') return { kind: 'kvm', args: kvm, why: 'FLATSNAP_VM_ACCEL=kvm' };
  let flags = false;
  try {
    flags = /^flags\s*:.*\b(vmx|svm)\b/m.test(readFileSync('/proc/cpuinfo', 'utf8'));
  } catch {
    // no /proc: no KVM either
  }
  let dev = false;
  try {
    accessSync('/dev/kvm', constants.R_OK | constants.W_OK);
    dev = true;
  } catch {
    // none
  }
  if (flags && dev) return { kind: 'kvm', args: kvm, why: 'vmx/svm in /proc/cpuinfo and /dev/kvm writable' };
  const why = !flags
    ? `no vmx/svm CPU flag${dev ? ' (a /dev/kvm exists, but without hardware virtualisation it hangs guests)' : ''}`
    : 'no writable /dev/kvm';
  return { kind: 'tcg', args: tcg, why: `TCG: ${why}` };
}

export interface VmDisk {
  /** The guest finds it as /dev/disk/by-id/virtio-<serial>. */
  serial: string;
  /** Host file; made sparse with sizeMiB when it does not exist. */
  file: string;
  sizeMiB: number;
  /** Opened by two guests at once (the cluster's disk): no host cache, no image locking. */
  shared?: boolean;
}

export interface VmShare {
  tag: string;
  hostPath: string;
  /** Where vm.mountShares() mounts it in the guest. */
  guestPath: string;
  readonly?: boolean;
}

export interface VmOptions {
  name: string;
  /** Directory with vmlinuz, initrd.cpio.gz, root.img (image.sh path). */
  image: string;
  /** Host directory for the guest agent socket, console log, pid file. */
  workDir: string;
  smp?: number;
  memMiB?: number;
  disks?: VmDisk[];
  shares?: VmShare[];
  /** Extra qemu arguments (the cluster's socket netdev). */
  extraArgs?: string[];
  hostname?: string;
  bootTimeoutMs?: number;
}

export class GuestCommandError extends Error {
  constructor(
    readonly argv: readonly string[],
    readonly result: GuestResult,
  ) {
    super(`guest: ${argv.join(' ')} exited ${result.code}\n--- stderr\n${result.stderr.trim()}\n--- stdout\n${result.stdout.trim().slice(-4000)}`);
  }
}

const live = new Set<ResultPromise>();
let exitHook = false;

/** A running guest. */
export class Vm {
  readonly qga: Qga;
  readonly consoleLog: string;
  /** ms from starting qemu to the guest agent answering. */
  bootMs = 0;
  private t0 = Date.now();
  private exited: string | undefined;

  private constructor(
    readonly opts: VmOptions,
    readonly accel: Accel,
    private readonly proc: ResultPromise,
  ) {
    this.qga = new Qga(join(opts.workDir, `${opts.name}.qga`));
    this.consoleLog = join(opts.workDir, `${opts.name}-console.log`);
    proc.then(
      (r) => (this.exited = `qemu exited ${String(r.exitCode ?? r.signal)}`),
      (e: unknown) => (this.exited = `qemu failed: ${String((e as { shortMessage?: string }).shortMessage ?? e)}`),
    );
  }

  /** Starts the guest and waits until its guest agent answers. */
  static async boot(opts: VmOptions): Promise<Vm> {
    const vm = await Vm.start(opts);
    await vm.ready();
    return vm;
  }

  /** Starts qemu and returns at once (the guest agent socket exists when this resolves); ready() waits for the guest. */
  static async start(opts: VmOptions): Promise<Vm> {
    for (const f of ['vmlinuz', 'initrd.cpio.gz', 'root.img']) {
      if (!existsSync(join(opts.image, f))) throw new Error(`the VM image ${opts.image} has no ${f} (test/kernel/image/image.sh builds it)`);
    }
    await mkdir(opts.workDir, { recursive: true });
    const accel = chooseAccel();
    const sock = join(opts.workDir, `${opts.name}.qga`);
    const consoleLog = join(opts.workDir, `${opts.name}-console.log`);
    await rm(sock, { force: true });
    await rm(consoleLog, { force: true });
    const append = ['console=ttyS0', 'root=/dev/vda', 'rw', 'quiet', 'loglevel=4', 'panic=-1', 'mitigations=off', 'vmagent'];
    if (opts.hostname) append.push(`VMHOST=${opts.hostname}`);
    const args: string[] = [
      '-name', opts.name,
      '-nodefaults', '-no-reboot', '-display', 'none', '-vga', 'none', '-monitor', 'none',
      '-serial', `file:${consoleLog}`,
      ...accel.args,
      '-smp', String(opts.smp ?? 2),
      '-m', String(opts.memMiB ?? 2048),
      '-kernel', join(opts.image, 'vmlinuz'),
      '-initrd', join(opts.image, 'initrd.cpio.gz'),
      '-append', append.join(' '),
      // The root disk is the first virtio-blk device, so the initrd finds it as /dev/vda.
      '-drive', `if=none,id=root,file=${join(opts.image, 'root.img')},format=raw,snapshot=on`,
      '-device', 'virtio-blk-pci,drive=root,serial=ktroot',
      '-device', 'virtio-serial-pci',
      '-chardev', `socket,path=${sock},server=on,wait=off,id=qga0`,
      '-device', 'virtserialport,chardev=qga0,name=org.qemu.guest_agent.0',
      '-pidfile', join(opts.workDir, `${opts.name}.pid`),
    ];
    for (const [i, d] of (opts.disks ?? []).entries()) {
      if (!existsSync(d.file)) {
        const fh = await open(d.file, 'wx');
        await fh.truncate(d.sizeMiB * 1024 * 1024);
        await fh.close();
      }
      const cache = d.shared ? 'cache=none,file.locking=off' : 'cache=unsafe';
      args.push('-drive', `if=none,id=disk${i},file=${d.file},format=raw,${cache}`, '-device', `virtio-blk-pci,drive=disk${i},serial=${d.serial}`);
    }
    for (const s of opts.shares ?? []) {
      args.push('-virtfs', `local,path=${s.hostPath},mount_tag=${s.tag},security_model=none,id=${s.tag}${s.readonly ? ',readonly=on' : ''}`);
    }
    args.push(...(opts.extraArgs ?? []));
    const t0 = Date.now();
    const proc = execa('qemu-system-x86_64', args, { stdin: 'ignore', reject: false, cleanup: true, all: true, buffer: true });
    live.add(proc);
    void proc.finally(() => live.delete(proc));
    if (!exitHook) {
      exitHook = true;
      process.once('exit', () => {
        for (const p of live) p.kill('SIGKILL');
      });
    }
    const vm = new Vm(opts, accel, proc);
    vm.t0 = t0;
    // qemu makes the agent's socket (and a listening netdev) before the guest starts.
    while (!existsSync(sock) && !vm.exited && Date.now() - t0 < 30_000) await new Promise((r) => setTimeout(r, 50));
    return vm;
  }

  /** Waits until the guest agent answers; on failure kills qemu and throws with its output and the console. */
  async ready(): Promise<void> {
    try {
      await this.qga.connect(this.opts.bootTimeoutMs ?? 300_000, () => this.exited);
    } catch (e) {
      await this.kill();
      const out = await this.proc;
      throw new Error(
        `${this.opts.name} did not boot (${this.accel.why}): ${String(e)}\n--- qemu\n${String(out.all ?? '').slice(-2000)}\n--- console\n${await this.consoleTail()}`,
      );
    }
    this.bootMs = Date.now() - this.t0;
  }

  /** Why the guest is gone, or undefined while it runs. */
  get gone(): string | undefined {
    return this.exited;
  }

  async consoleTail(lines = 60): Promise<string> {
    try {
      return (await readFile(this.consoleLog, 'utf8')).split('\n').slice(-lines).join('\n');
    } catch {
      return '(no console output)';
    }
  }

  /** Runs a program in the guest; its result whatever the exit code. */
  exec(path: string, args: readonly string[] = [], opts: GuestExecOptions = {}): Promise<GuestResult> {
    if (this.exited) return Promise.reject(new Error(`${this.opts.name}: ${this.exited}`));
    return this.qga.exec(path, args, opts);
  }

  spawn(path: string, args: readonly string[] = [], opts: GuestExecOptions = {}): Promise<GuestProcess> {
    if (this.exited) return Promise.reject(new Error(`${this.opts.name}: ${this.exited}`));
    return this.qga.spawn(path, args, opts);
  }

  /** Runs a program in the guest; throws GuestCommandError unless it exits 0. Returns stdout. */
  async run(path: string, args: readonly string[] = [], opts: GuestExecOptions = {}): Promise<string> {
    const r = await this.exec(path, args, opts);
    if (r.code !== 0) throw new GuestCommandError([path, ...args], r);
    return r.stdout;
  }

  /** A bash script in the guest (guest-side setup steps); throws unless it exits 0. */
  sh(script: string, opts: GuestExecOptions = {}): Promise<string> {
    return this.run('/bin/bash', ['-euo', 'pipefail', '-c', script], opts);
  }

  /** Mounts every share at its guestPath (9p, read-only ones with the page cache on). */
  async mountShares(): Promise<void> {
    for (const s of this.opts.shares ?? []) {
      const o = ['trans=virtio', 'version=9p2000.L', 'msize=262144', ...(s.readonly ? ['ro', 'cache=loose'] : [])];
      await this.run('/bin/mkdir', ['-p', s.guestPath]);
      await this.run('/bin/mount', ['-t', '9p', '-o', o.join(','), s.tag, s.guestPath]);
    }
  }

  /** Powers the guest off (guest agent), then waits; kills qemu if it does not stop. */
  async shutdown(timeoutMs = 60_000): Promise<void> {
    if (!this.exited) {
      await this.qga.shutdown();
      const t0 = Date.now();
      while (!this.exited && Date.now() - t0 < timeoutMs) await new Promise((r) => setTimeout(r, 100));
    }
    await this.kill();
  }

  private async kill(): Promise<void> {
    this.qga.close();
    if (!this.exited) {
      this.proc.kill('SIGTERM');
      const t0 = Date.now();
      while (!this.exited && Date.now() - t0 < 10_000) await new Promise((r) => setTimeout(r, 100));
      if (!this.exited) this.proc.kill('SIGKILL');
    }
    await this.proc.catch(() => undefined);
  }
}
