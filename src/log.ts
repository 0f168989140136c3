// SMlog-style logging: one line per event, `<time> SM: [pid] message`, like the
// Python stack's util.SMlog. Destination, in order of preference: syslog facility
// local2 (what /var/log/SMlog collects on a host) when a syslog socket and the
// native helper exist, else the file named by FLATSNAP_SMLOG, else stderr.
// stdout is never a destination: it carries the XML-RPC response alone.
//
// winston's index eagerly loads its File and Http transports, and with them
// zlib, http and https: tens of milliseconds on every xapi exec. So only the
// logger core and the Stream transport are imported. A log file is written
// line by line with appending writeSync, like the syslog datagrams: an fs write
// stream would load Node's stream, fs/promises and readline modules on every exec
// (a fifth of bare Node's own start-up), and a synchronous line cannot be lost at
// exit.
import type { Logger, transport } from 'winston';
import createLogger from 'winston/lib/winston/create-logger.js';
import StreamTransport from 'winston/lib/winston/transports/stream.js';
import printf from 'logform/printf.js';
import Transport from 'winston-transport';
import { existsSync, openSync, writeSync } from 'node:fs';
import { loadNative } from './native.js';

const pid = process.pid;

const smlogLine = printf((info) => {
  const t = new Date().toISOString().replace('T', ' ').replace('Z', '');
  const lvl = info.level === 'info' ? '' : `${String(info.level).toUpperCase()}: `;
  return `${t} SM: [${pid}] ${lvl}${String(info.message)}`;
});

// winston-transport puts the formatted line under this symbol (triple-beam's MESSAGE).
const MESSAGE = Symbol.for('message');

class FileTransport extends Transport {
  constructor(private readonly fd: number) {
    super({ format: smlogLine });
  }
  override log(info: Record<string | symbol, unknown>, next: () => void): void {
    writeSync(this.fd, `${String(info[MESSAGE])}\n`);
    next();
  }
}

class SyslogTransport extends Transport {
  constructor(private readonly send: (line: string, err: boolean) => boolean) {
    super();
  }
  override log(info: Record<string | symbol, unknown>, next: () => void): void {
    // syslog adds its own time and ident: send only the `[pid] message` part.
    const lvl = info.level === 'info' ? '' : `${String(info.level).toUpperCase()}: `;
    const line = `[${pid}] ${lvl}${String(info.message)}`;
    // A syslog daemon that went away must not lose the line: stderr is captured by xapi.
    if (!this.send(line, info.level === 'error')) process.stderr.write(`SM: ${line}\n`);
    next();
  }
}

function pickTransport(): transport {
  const file = process.env.FLATSNAP_SMLOG;
  if (file) {
    try {
      return new FileTransport(openSync(file, 'a'));
    } catch (e) {
      // An unwritable log file must not cost the call: stderr is captured by xapi.
      process.stderr.write(`SM: cannot open ${file}: ${(e as Error).message}\n`);
    }
  }
  const sock = process.env.FLATSNAP_SYSLOG_SOCKET ?? '/dev/log';
  const native = existsSync(sock) && process.env.FLATSNAP_NO_SYSLOG !== '1' ? loadNative() : undefined;
  if (native) return new SyslogTransport((line, err) => native.syslog(sock, err ? 3 : 6, line));
  return new StreamTransport({ stream: process.stderr, format: smlogLine });
}

let logger: Logger | undefined;

export function log(): Logger {
  logger ??= createLogger({ level: process.env.FLATSNAP_LOG_LEVEL ?? 'info', transports: [pickTransport()] });
  return logger;
}

/** Waits until every line has been handed to its destination (before process exit). */
export async function flushLog(): Promise<void> {
  const l = logger;
  if (!l) return;
  await new Promise<void>((resolve) => {
    l.on('finish', () => resolve());
    l.end();
    setTimeout(resolve, 500).unref();
  });
}
