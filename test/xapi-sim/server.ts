// HTTP front end on loopback TCP and a unix socket. JSON-RPC at /jsonrpc,
// XML-RPC on every other path (xapi dispatches by longest prefix and "/" is the
// XML-RPC handler). Content-Length is mandatory and bodies are capped at 300 KiB.
import * as fs from 'node:fs';
import * as http from 'node:http';
import type { Sim } from './sim.js';
import { decodeJsonCall, jsonFailure, jsonSuccess, type JsonCall } from './rpc-json.js';
import { decodeXmlCall, xmlBare, xmlFailure, xmlSuccess } from './rpc-xml.js';
import { asApiError } from './tasks.js';

const MAX_RPC = 300 * 1024;

function readBody(req: http.IncomingMessage): Promise<string | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let n = 0;
    req.on('data', (c: Buffer) => {
      n += c.length;
      if (n > MAX_RPC) {
        resolve(null);
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: http.ServerResponse, status: number, type: string, body: string): void {
  res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(body) });
  res.end(body);
}

const ERROR_PAGE = (code: number, msg: string) => `<html><body><h1>HTTP ${code} ${msg}</h1></body></html>`;

export function makeHandler(sim: Sim): http.RequestListener {
  return (req, res) => {
    void (async () => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      if (req.method !== 'POST') {
        send(res, 404, 'text/html', ERROR_PAGE(404, 'Not Found'));
        return;
      }
      if (req.headers['content-length'] === undefined) {
        send(res, 411, 'text/html', ERROR_PAGE(411, 'Length Required'));
        return;
      }
      const body = await readBody(req);
      if (body === null) {
        send(res, 413, 'text/html', ERROR_PAGE(413, 'Request Entity Too Large'));
        return;
      }
      if (url.pathname === '/jsonrpc') {
        let call: JsonCall;
        try {
          call = decodeJsonCall(body);
        } catch {
          send(res, 500, 'text/html', ERROR_PAGE(500, 'Internal Server Error'));
          return;
        }
        let out: string;
        try {
          out = jsonSuccess(call, await sim.call(call.method, call.params));
        } catch (e) {
          out = jsonFailure(call, asApiError(e));
        }
        sim.db.flush();
        send(res, 200, 'application/json', out);
        return;
      }
      let call;
      try {
        call = decodeXmlCall(body);
      } catch {
        send(res, 500, 'text/html', ERROR_PAGE(500, 'Internal Server Error'));
        return;
      }
      let out: string;
      try {
        const v = await sim.call(call.method, call.params);
        out = call.method === 'system.listMethods' ? xmlBare(v) : xmlSuccess(v);
      } catch (e) {
        out = xmlFailure(asApiError(e));
      }
      sim.db.flush();
      send(res, 200, 'text/xml', out);
    })().catch((e) => {
      if (!res.headersSent) send(res, 500, 'text/html', ERROR_PAGE(500, String(e)));
    });
  };
}

export interface Listening {
  tcp: http.Server;
  unix?: http.Server;
  url: string;
  close(): Promise<void>;
}

export async function listen(sim: Sim, host: string, port: number, socketPath?: string): Promise<Listening> {
  const handler = makeHandler(sim);
  const tcp = http.createServer(handler);
  tcp.keepAliveTimeout = 70_000; // event.from holds calls for up to 60 s
  tcp.requestTimeout = 0;
  await new Promise<void>((resolve, reject) => {
    tcp.once('error', reject);
    tcp.listen(port, host, () => resolve());
  });
  const addr = tcp.address();
  const actualPort = typeof addr === 'object' && addr ? addr.port : port;
  let unix: http.Server | undefined;
  if (socketPath) {
    try {
      fs.unlinkSync(socketPath);
    } catch {
      /* not there */
    }
    unix = http.createServer(handler);
    unix.requestTimeout = 0;
    await new Promise<void>((resolve, reject) => {
      unix!.once('error', reject);
      unix!.listen(socketPath, () => resolve());
    });
  }
  const h = host.includes(':') ? `[${host}]` : host;
  const close = async () => {
    for (const s of [tcp, unix]) {
      if (!s) continue;
      s.closeAllConnections();
      await new Promise<void>((r) => s.close(() => r()));
    }
  };
  return { tcp, unix, url: `http://${h}:${actualPort}/`, close };
}
