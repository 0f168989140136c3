// XenAPI over JSON-RPC at /jsonrpc (api_server.ml jsoncallback, ocaml-rpc
// jsonrpc.ml). v1.0: {result, error: [code, ...] | null, id}; v2.0:
// {jsonrpc, result, id} or {jsonrpc, error: {code, message: CODE, data}, id}.
import { ApiError, DateTimeValue, I32, I64, type Wire } from './wire.js';

export function wireToJson(v: Wire): unknown {
  if (v instanceof I64 || v instanceof I32) return v.n;
  if (v instanceof DateTimeValue) return v.iso;
  if (Array.isArray(v)) return v.map(wireToJson);
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, wireToJson(x)]));
  return v;
}

export interface JsonCall {
  version: '1.0' | '2.0';
  method: string;
  params: unknown[];
  id: unknown;
}

export function decodeJsonCall(body: string): JsonCall {
  const msg = JSON.parse(body) as Record<string, unknown>;
  if (typeof msg !== 'object' || msg === null || typeof msg.method !== 'string') throw new Error('not a JSON-RPC request');
  const version = msg.jsonrpc === '2.0' ? '2.0' : '1.0';
  const params = msg.params === undefined ? [] : msg.params;
  if (!Array.isArray(params)) throw new Error('params must be an array');
  return { version, method: msg.method, params, id: msg.id ?? null };
}

export function jsonSuccess(call: JsonCall, value: Wire): string {
  const result = wireToJson(value);
  if (call.version === '2.0') return JSON.stringify({ jsonrpc: '2.0', result, id: call.id });
  return JSON.stringify({ result, error: null, id: call.id });
}

export function jsonFailure(call: JsonCall, e: ApiError): string {
  if (call.version === '2.0') {
    return JSON.stringify({ jsonrpc: '2.0', error: { code: 1, message: e.code, data: e.params }, id: call.id });
  }
  return JSON.stringify({ result: null, error: e.description, id: call.id });
}
