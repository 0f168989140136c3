// Domain errors and the one table that maps them to SM error codes.
// Codes and descriptions are those of XE_SR_ERRORCODES.xml, so xapi shows
// SR_BACKEND_FAILURE_<code> with the text administrators already know; xapi maps
// 16, 24, 38, 39 and 144 to its own named errors (SR_DEVICE_IN_USE, VDI_IN_USE, ...).
import { XapiError, XapiProtocolError, XapiTransportError } from './xapi/errors.js';

export const SM_ERRORS = {
  InvalidArg: { code: 1, description: 'Invalid argument' },
  SRInUse: { code: 16, description: 'The SR device is currently in use' },
  VDIInUse: { code: 24, description: 'The VDI is currently in use' },
  LockErr: { code: 37, description: 'The lock/unlock request failed' },
  Unimplemented: { code: 38, description: 'The requested method is not supported/implemented' },
  SRNotEmpty: { code: 39, description: 'The SR is not empty' },
  SRScan: { code: 40, description: 'The SR scan failed' },
  SRExists: { code: 42, description: 'The SR already exists' },
  VDIExists: { code: 43, description: 'The VDI already exists' },
  SRNoSpace: { code: 44, description: 'There is insufficient space' },
  VDIUnavailable: { code: 46, description: 'The VDI is not available' },
  SRUnavailable: { code: 47, description: 'The SR is not available' },
  SRUnknownType: { code: 48, description: 'Unknown repository type' },
  VDIRemove: { code: 64, description: 'Failed to remove VDI' },
  VDIType: { code: 66, description: 'Invalid VDI type' },
  VDICreate: { code: 78, description: 'VDI Creation failed' },
  VDISize: { code: 79, description: 'VDI Invalid size' },
  VDIDelete: { code: 80, description: 'Failed to mark VDI hidden' },
  VDIClone: { code: 81, description: 'Failed to clone VDI' },
  VDISnapshot: { code: 82, description: 'Failed to snapshot VDI' },
  VolNotFound: { code: 92, description: 'The volume cannot be found' },
  VDIResize: { code: 110, description: 'VDI resize failed' },
  ConfigParamsMissing: { code: 115, description: 'Not all required parameters specified.' },
  BadRequest: { code: 143, description: 'Failed to parse the request' },
  VDIMissing: { code: 144, description: 'VDI could not be found' },
  APISession: { code: 150, description: 'Failed to initialize XMLRPC connection' },
  APIFailure: { code: 153, description: 'A Failure occurred accessing an API object' },
  APIProtocolError: { code: 154, description: 'A protocol error was received when accessing the API' },
  EIO: { code: 200, description: 'General IO error' },
  SMGeneral: { code: 202, description: 'General backend error' },
  IllegalXMLChar: { code: 447, description: 'Illegal XML character.' },
  TapdiskFailed: { code: 453, description: 'tapdisk experienced an error' },
  SharedFileSystemNoWrite: { code: 461, description: 'The file system for SR cannot be written to.' },
  GenericException: { code: 1200, description: 'SM has thrown a generic exception' },
} as const;

export type SmErrorKind = keyof typeof SM_ERRORS;

/** An error the driver means to report: it becomes an XML-RPC fault with the table's code. */
export class SmError extends Error {
  constructor(
    readonly kind: SmErrorKind,
    readonly detail?: string,
  ) {
    super(formatFaultString(kind, detail));
    this.name = 'SmError';
  }

  get code(): number {
    return SM_ERRORS[this.kind].code;
  }
}

// Same shape as the Python stack's XenError: "<description> [opterr=<detail>]".
export function formatFaultString(kind: SmErrorKind, detail?: string): string {
  const d = SM_ERRORS[kind].description;
  return detail ? `${d} [opterr=${detail}]` : d;
}

/**
 * What a failed command's fault should be: SmErrors keep theirs; a failed callback
 * into xapi gets the API code for how it failed (xapi said Failure, xapi could not
 * be reached, the reply was not XenAPI); anything else is generic.
 */
export function toFault(e: unknown): { code: number; message: string } {
  if (e instanceof SmError) return { code: e.code, message: e.message };
  if (e instanceof XapiError) return apiFault('APIFailure', e);
  if (e instanceof XapiTransportError) return apiFault('APISession', e);
  if (e instanceof XapiProtocolError) return apiFault('APIProtocolError', e);
  const msg = e instanceof Error ? e.message : String(e);
  return { code: SM_ERRORS.GenericException.code, message: formatFaultString('GenericException', msg) };
}

function apiFault(kind: SmErrorKind, e: Error): { code: number; message: string } {
  return { code: SM_ERRORS[kind].code, message: formatFaultString(kind, e.message) };
}

export const badRequest = (detail: string): SmError => new SmError('BadRequest', detail);
