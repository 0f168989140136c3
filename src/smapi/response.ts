// The one write to stdout a driver call makes. xapi parses stdout as a single
// methodResponse, so the write is synchronous (nothing lost at exit) and guarded
// so that a second write is a bug we log, never a corrupt response.
import { writeSync } from 'node:fs';
import { encodeFault, encodeResponse, type XmlRpcValue } from './xmlrpc.js';

let written = false;

function emit(doc: string): void {
  if (written) throw new Error('a response was already written');
  written = true;
  writeSync(1, doc);
}

export function writeResponse(value: XmlRpcValue): void {
  emit(encodeResponse(value));
}

export function writeFault(code: number, message: string): void {
  emit(encodeFault(code, message));
}
