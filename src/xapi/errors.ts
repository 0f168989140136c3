// What can go wrong calling back into xapi, split the way SM reports it:
// xapi answered with a Failure (APIFailure), xapi could not be reached
// (APISession), or what came back was not a XenAPI response (APIProtocolError).
// src/errors.ts toFault() maps each to its SM code.

/** xapi answered `{Status: "Failure", ErrorDescription: [code, ...params]}`. */
export class XapiError extends Error {
  constructor(
    readonly method: string,
    readonly code: string,
    readonly params: readonly string[],
  ) {
    super(`${method}: ${code}${params.length ? ` [${params.map((p) => JSON.stringify(p)).join(', ')}]` : ''}`);
    this.name = 'XapiError';
  }
}

/** The request never got an answer: no socket, refused, reset, aborted. */
export class XapiTransportError extends Error {
  constructor(
    readonly method: string,
    detail: string,
    /** The Node system error code (ECONNREFUSED, ENOENT, ...), when there is one. */
    readonly errno?: string,
  ) {
    super(`${method}: cannot reach xapi: ${detail}`);
    this.name = 'XapiTransportError';
  }
}

/** Something answered, but not with a XenAPI response we can use; or the request could not be encoded. */
export class XapiProtocolError extends Error {
  constructor(
    readonly method: string,
    detail: string,
  ) {
    super(`${method}: ${detail}`);
    this.name = 'XapiProtocolError';
  }
}
