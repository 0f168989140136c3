// A QEMU guest agent client: runs programs in the kernel tier's guests over the
// agent's virtio-serial channel (a unix socket on the host). No custom agent in the
// guest, only Debian's qemu-guest-agent and the standard protocol:
//   guest-sync-delimited  (re)synchronise the stream (the answer follows a 0xFF byte)
//   guest-exec            start a program: path + argument array (no shell), captured output
//   guest-exec-status     poll it
//   guest-shutdown        power off (the image's /sbin/shutdown)
// One command is in flight at a time: the protocol's answers carry no id, so they are
// matched to commands by order, and a command that times out marks the stream dirty
// (the next command resynchronises first).
import net from 'node:net';

export interface GuestResult {
  /** Exit code, or 128 + signal when the program was killed. */
  code: number;
  stdout: string;
  stderr: string;
}

export interface GuestExecOptions {
  /** Bytes for the program's stdin. */
  input?: string | Buffer;
  /** Extra environment (PATH, LC_ALL=C and HOME=/root are always set). */
  env?: Record<string, string>;
  timeoutMs?: number;
}

/** A started program (guest-exec without waiting): poll it with wait(). */
export interface GuestProcess {
  readonly pid: number;
  wait(timeoutMs?: number): Promise<GuestResult>;
  /** The result if it has exited, else undefined. */
  poll(): Promise<GuestResult | undefined>;
}

const BASE_ENV = {
  PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
  LC_ALL: 'C',
  LANG: 'C',
  HOME: '/root',
};

type Json = Record<string, unknown>;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class QgaError extends Error {}

export class Qga {
  private sock: net.Socket | undefined;
  private buf = Buffer.alloc(0);
  private readers: Array<(v: Json) => void> = [];
  private chain: Promise<unknown> = Promise.resolve();
  private dirty = true;
  private closed = false;

  constructor(readonly socketPath: string) {}

  /**
   * Connects and synchronises; retries until the agent answers (the guest is still
   * booting) or `timeoutMs` passes. `alive` is asked between tries: false aborts (qemu died).
   */
  async connect(timeoutMs: number, alive: () => string | undefined = () => undefined): Promise<void> {
    const t0 = Date.now();
    for (;;) {
      const dead = alive();
      if (dead) throw new QgaError(`the VM is gone before its guest agent answered: ${dead}`);
      try {
        await this.open();
        await this.sync(3000);
        return;
      } catch (e) {
        this.drop();
        if (Date.now() - t0 > timeoutMs) throw new QgaError(`the guest agent at ${this.socketPath} did not answer within ${timeoutMs} ms: ${String(e)}`);
        await sleep(500);
      }
    }
  }

  private open(): Promise<void> {
    return new Promise((resolve, reject) => {
      const s = net.connect(this.socketPath);
      s.once('connect', () => {
        s.off('error', reject);
        s.on('error', () => this.drop());
        s.on('close', () => this.drop());
        s.on('data', (d: Buffer) => this.onData(d));
        this.sock = s;
        resolve();
      });
      s.once('error', reject);
    });
  }

  private drop(): void {
    this.sock?.destroy();
    this.sock = undefined;
    this.buf = Buffer.alloc(0);
    this.dirty = true;
    const rs = this.readers;
    this.readers = [];
    for (const r of rs) r({ error: { class: 'Disconnected', desc: 'guest agent connection closed' } });
  }

  private onData(d: Buffer): void {
    this.buf = Buffer.concat([this.buf, d]);
    for (;;) {
      const i = this.buf.indexOf(0x0a);
      if (i < 0) return;
      // 0xFF is guest-sync-delimited's marker: everything before it is stale.
      let line = this.buf.subarray(0, i);
      this.buf = this.buf.subarray(i + 1);
      const ff = line.lastIndexOf(0xff);
      if (ff >= 0) line = line.subarray(ff + 1);
      const text = line.toString('utf8').trim();
      if (!text) continue;
      let msg: Json;
      try {
        msg = JSON.parse(text) as Json;
      } catch {
        continue;
      }
      const r = this.readers.shift();
      if (r) r(msg);
    }
  }

  private send(execute: string, args: Json | undefined, timeoutMs: number): Promise<Json> {
    const s = this.sock;
    if (!s) return Promise.reject(new QgaError('guest agent not connected'));
    return new Promise<Json>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.readers = this.readers.filter((r) => r !== reader);
        this.dirty = true;
        reject(new QgaError(`${execute}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      const reader = (v: Json) => {
        clearTimeout(timer);
        resolve(v);
      };
      this.readers.push(reader);
      s.write(`${JSON.stringify(args ? { execute, arguments: args } : { execute })}\n`);
    });
  }

  /** guest-sync-delimited until the agent echoes our id: anything stale is skipped. */
  private async sync(timeoutMs: number): Promise<void> {
    const id = Math.floor(Math.random() * 2 ** 31);
    this.readers = [];
    this.sock?.write(Buffer.from([0xff]));
    const t0 = Date.now();
    const first = this.send('guest-sync-delimited', { id }, timeoutMs);
    let r = await first;
    while (r.return !== id) {
      if (Date.now() - t0 > timeoutMs) throw new QgaError('guest-sync: the agent answered with the wrong id');
      r = await new Promise<Json>((resolve, reject) => {
        const t = setTimeout(() => reject(new QgaError('guest-sync timed out')), timeoutMs);
        this.readers.push((v) => {
          clearTimeout(t);
          resolve(v);
        });
      });
    }
    this.dirty = false;
  }

  /** One command, serialised behind the others. */
  command(execute: string, args?: Json, timeoutMs = 30_000): Promise<Json> {
    const run = async (): Promise<Json> => {
      if (this.closed) throw new QgaError('guest agent client closed');
      if (!this.sock) throw new QgaError('guest agent not connected');
      if (this.dirty) await this.sync(10_000);
      const r = await this.send(execute, args, timeoutMs);
      const err = r.error as { class?: string; desc?: string } | undefined;
      if (err) throw new QgaError(`${execute}: ${err.class ?? 'error'}: ${err.desc ?? JSON.stringify(err)}`);
      return r;
    };
    const p = this.chain.then(run, run);
    this.chain = p.catch(() => undefined);
    return p;
  }

  /** Starts `path args...` in the guest and returns at once. */
  async spawn(path: string, args: readonly string[], opts: GuestExecOptions = {}): Promise<GuestProcess> {
    const a: Json = {
      path,
      arg: [...args],
      'capture-output': true,
      env: Object.entries({ ...BASE_ENV, ...opts.env }).map(([k, v]) => `${k}=${v}`),
    };
    if (opts.input !== undefined) a['input-data'] = Buffer.from(opts.input).toString('base64');
    const r = await this.command('guest-exec', a);
    const pid = (r.return as { pid: number }).pid;
    const poll = async (): Promise<GuestResult | undefined> => {
      const s = (await this.command('guest-exec-status', { pid })).return as {
        exited: boolean;
        exitcode?: number;
        signal?: number;
        'out-data'?: string;
        'err-data'?: string;
        'out-truncated'?: boolean;
        'err-truncated'?: boolean;
      };
      if (!s.exited) return undefined;
      const dec = (x: string | undefined) => (x ? Buffer.from(x, 'base64').toString('utf8') : '');
      const trunc = (t: boolean | undefined) => (t ? '\n[guest agent: output truncated]' : '');
      return {
        code: s.exitcode ?? 128 + (s.signal ?? 0),
        stdout: dec(s['out-data']) + trunc(s['out-truncated']),
        stderr: dec(s['err-data']) + trunc(s['err-truncated']),
      };
    };
    const wait = async (timeoutMs = 600_000): Promise<GuestResult> => {
      const t0 = Date.now();
      let delay = 5;
      for (;;) {
        const res = await poll();
        if (res) return res;
        if (Date.now() - t0 > timeoutMs) throw new QgaError(`${path} ${args.join(' ')}: still running after ${timeoutMs} ms (guest pid ${pid})`);
        await sleep(delay);
        delay = Math.min(delay * 2, 200);
      }
    };
    return { pid, wait, poll };
  }

  /** Runs `path args...` in the guest and waits for it. */
  async exec(path: string, args: readonly string[], opts: GuestExecOptions = {}): Promise<GuestResult> {
    return (await this.spawn(path, args, opts)).wait(opts.timeoutMs);
  }

  /** Asks the guest to power off; the answer never comes (the agent dies with it). */
  async shutdown(): Promise<void> {
    if (!this.sock) return;
    try {
      if (this.dirty) await this.sync(5000);
      this.sock.write(`${JSON.stringify({ execute: 'guest-shutdown', arguments: { mode: 'powerdown' } })}\n`);
    } catch {
      // the caller kills qemu if it does not stop
    }
  }

  close(): void {
    this.closed = true;
    this.drop();
  }
}
