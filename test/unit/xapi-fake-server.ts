// A stand-in for xapi's XML-RPC endpoint: records every call exactly as it was
// decoded (our own codec, so XML-RPC types stay visible: a size sent as <int>
// decodes to a number, as a string to a string) and answers the way xapi does,
// with bare-string values inside a {Status, ...} envelope.
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { decodeMethodCall, encodeValue, XAPI_STYLE, type XmlRpcValue } from '../../src/smapi/xmlrpc.js';

export interface RecordedCall {
  method: string;
  params: XmlRpcValue[];
  headers: IncomingHttpHeaders;
  /** Header names as sent, with their case. */
  rawHeaderNames: string[];
  url: string;
  body: string;
}

export type Reply =
  | { value: XmlRpcValue }
  | { failure: string[] }
  /** Anything at all, for protocol errors. */
  | { raw: string; status?: number; contentType?: string }
  /** Close the connection without answering. */
  | { hangUp: true };

export function xapiResponse(value: XmlRpcValue): string {
  return `<methodResponse><params><param>${encodeValue(value, XAPI_STYLE)}</param></params></methodResponse>`;
}

export class FakeXapi {
  readonly calls: RecordedCall[] = [];
  /** Requests that were not valid XML-RPC, with why. */
  readonly rejected: string[] = [];
  /** Answers a call; the default is xapi's void: Success with an empty string. */
  reply: (call: RecordedCall) => Reply = () => ({ value: '' });
  private readonly server: Server;

  constructor() {
    this.server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        let decoded: ReturnType<typeof decodeMethodCall>;
        try {
          decoded = decodeMethodCall(body);
        } catch (e) {
          // As xapi does with a request it cannot parse (and never hang the client).
          this.rejected.push(`${(e as Error).message}: ${body}`);
          res.writeHead(500, { 'Content-Type': 'text/html' });
          res.end('<html><body><h1>HTTP 500 internal server error</h1></body></html>');
          return;
        }
        const { methodName, params } = decoded;
        const call: RecordedCall = {
          method: methodName,
          params,
          headers: req.headers,
          rawHeaderNames: req.rawHeaders.filter((_, i) => i % 2 === 0),
          url: req.url ?? '',
          body,
        };
        this.calls.push(call);
        const r = this.reply(call);
        if ('hangUp' in r) {
          req.socket.destroy();
          return;
        }
        let status = 200;
        let type = 'text/xml';
        let doc: string;
        if ('raw' in r) {
          doc = r.raw;
          status = r.status ?? 200;
          type = r.contentType ?? type;
        } else if ('failure' in r) {
          doc = xapiResponse({ Status: 'Failure', ErrorDescription: r.failure });
        } else {
          doc = xapiResponse({ Status: 'Success', Value: r.value });
        }
        res.writeHead(status, { 'Content-Type': type, 'Content-Length': Buffer.byteLength(doc) });
        res.end(doc);
      });
    });
  }

  /** Listens on a TCP port on 127.0.0.1, or on a Unix socket path; returns the port (0 for a socket). */
  listen(socketPath?: string): Promise<number> {
    return new Promise((resolve, reject) => {
      this.server.once('error', reject);
      const ready = (): void => {
        const a = this.server.address();
        resolve(typeof a === 'object' && a ? (a as AddressInfo).port : 0);
      };
      if (socketPath) this.server.listen(socketPath, ready);
      else this.server.listen(0, '127.0.0.1', ready);
    });
  }

  close(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  get methods(): string[] {
    return this.calls.map((c) => c.method);
  }

  last(): RecordedCall {
    const c = this.calls[this.calls.length - 1];
    if (!c) throw new Error('no call recorded');
    return c;
  }
}
