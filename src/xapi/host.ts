// host and task calls: running a dom0 plugin on a (possibly other) host, and
// reporting progress on the task xapi created for the current operation.
import type { XapiTransport } from './transport.js';
import { XapiFloat, readRef, readString, type StringMap } from './wire.js';

export class HostCalls {
  constructor(private readonly t: XapiTransport) {}

  async get_by_uuid(uuid: string): Promise<string> {
    return readRef('host.get_by_uuid', 'the result', await this.t.call('host.get_by_uuid', [uuid]));
  }

  /** Runs /etc/xapi.d/plugins/<plugin> fn(args) on `host`; returns what it printed. */
  async call_plugin(host: string, plugin: string, fn: string, args: StringMap): Promise<string> {
    const m = 'host.call_plugin';
    return readString(m, 'the result', await this.t.call(m, [host, plugin, fn, args]));
  }
}

export class TaskCalls {
  constructor(private readonly t: XapiTransport) {}

  /** progress in [0, 1]. */
  async set_progress(task: string, progress: number): Promise<void> {
    await this.t.call('task.set_progress', [task, new XapiFloat(progress)]);
  }
}
