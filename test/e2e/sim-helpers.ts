// Starting the XAPI simulator as a child process for tests, and a minimal
// XML-RPC client for it.
import { spawn, type ChildProcess } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { decodeMethodResponse, encodeMethodCall, isStruct, PYTHON_STYLE, type XmlRpcValue } from '../../src/smapi/xmlrpc.js';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const TSX = path.join(ROOT, 'node_modules/.bin/tsx');
export const XE = path.join(ROOT, 'test/xapi-sim/xe');

export interface SimProc {
  url: string;
  port: number;
  dir: string;
  smLog: string;
  state: string;
  child: ChildProcess;
  stderr: () => string;
  stop(): Promise<void>;
}

export interface SimOpts {
  smDir?: string;
  extraArgs?: string[];
  dir?: string;
  /** Own process group: a terminal's ^C reaches only the caller, which can still clean up through it (make demo). */
  detached?: boolean;
}

export async function startSim(opts: SimOpts = {}): Promise<SimProc> {
  const dir = opts.dir ?? fs.mkdtempSync(path.join(os.tmpdir(), 'xapi-sim-'));
  const state = path.join(dir, 'state.json');
  const smLog = path.join(dir, 'sm.log');
  const args = [
    path.join(ROOT, 'test/xapi-sim/main.ts'),
    '--listen',
    '127.0.0.1:0',
    '--state',
    state,
    '--sm-dir',
    opts.smDir ?? path.join(ROOT, 'test/fixtures/filesr'),
    '--socket',
    path.join(dir, 'xapi.sock'),
    '--sm-log',
    smLog,
    ...(opts.extraArgs ?? []),
  ];
  const child = spawn(TSX, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], detached: opts.detached ?? false });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  const started = new Promise<string>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`simulator did not start: ${err}`)), 30000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening (\S+)/.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m[1]!);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`simulator exited ${code}: ${err}`));
    });
  });
  let url: string;
  try {
    url = await started;
  } catch (e) {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    if (opts.dir === undefined) removeDir(dir);
    throw e;
  }
  const port = Number(new URL(url).port);
  return {
    url,
    port,
    dir,
    smLog,
    state,
    child,
    stderr: () => err,
    stop: async () => {
      if (child.exitCode === null && child.signalCode === null) {
        const done = new Promise((r) => child.once('exit', r));
        child.kill('SIGTERM');
        await done;
      }
    },
  };
}

export function removeDir(dir: string): void {
  fs.rmSync(dir, { recursive: true, force: true });
}

export class ApiFailure extends Error {
  constructor(readonly description: string[]) {
    super(description.join(' '));
  }
  get code(): string {
    return this.description[0] ?? '';
  }
}

/** Raw XML-RPC call; returns the response body and the decoded envelope. */
export async function rawCall(url: string, method: string, params: XmlRpcValue[], urlPath = '/'): Promise<{ body: string; contentType: string | null; value: XmlRpcValue }> {
  const res = await fetch(new URL(urlPath, url), { method: 'POST', headers: { 'Content-Type': 'text/xml' }, body: encodeMethodCall(method, params, PYTHON_STYLE) });
  const body = await res.text();
  const r = decodeMethodResponse(body);
  if (!r.ok) throw new Error(`fault ${r.faultCode}`);
  return { body, contentType: res.headers.get('content-type'), value: r.value };
}

export class Client {
  session = '';
  constructor(readonly url: string) {}

  async login(): Promise<this> {
    this.session = (await this.raw('session.login_with_password', ['root', 'any'])) as string;
    return this;
  }

  async raw(method: string, params: XmlRpcValue[]): Promise<XmlRpcValue> {
    const { value } = await rawCall(this.url, method, params);
    if (!isStruct(value)) return value; // system.listMethods
    if (value.Status === 'Success') return value.Value ?? null;
    throw new ApiFailure((value.ErrorDescription as string[]) ?? []);
  }

  call<T = XmlRpcValue>(method: string, ...params: XmlRpcValue[]): Promise<T> {
    return this.raw(method, [this.session, ...params]) as Promise<T>;
  }

  /** Async.<method>, then polls the task like XenCenter's TaskPoller. */
  async callAsync<T = XmlRpcValue>(method: string, ...params: XmlRpcValue[]): Promise<T> {
    const task = await this.call<string>(`Async.${method}`, ...params);
    for (;;) {
      const rec = await this.call<Record<string, XmlRpcValue>>('task.get_record', task);
      if (rec.status === 'success') {
        await this.call('task.destroy', task);
        const m = /^<value>(.*)<\/value>$/s.exec(String(rec.result));
        return (m ? m[1] : rec.result) as T;
      }
      if (rec.status === 'failure' || rec.status === 'cancelled') {
        await this.call('task.destroy', task);
        throw new ApiFailure(rec.error_info as string[]);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

export interface SmLogEntry {
  cmd: string;
  argv1: string;
  exe: string;
  code: number | null;
  stdout: string;
  stderr: string;
}

export function readSmLog(file: string): SmLogEntry[] {
  if (!fs.existsSync(file)) return [];
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as SmLogEntry);
}
