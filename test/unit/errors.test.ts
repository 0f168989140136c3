import { SM_ERRORS, SmError, toFault } from '../../src/errors.js';
import { XapiError, XapiProtocolError, XapiTransportError } from '../../src/xapi/errors.js';

describe('toFault: the one table from errors to SM fault codes', () => {
  test('an SmError keeps its own code and message', () => {
    expect(toFault(new SmError('VDIInUse', 'attached to vm x'))).toEqual({
      code: 24,
      message: 'The VDI is currently in use [opterr=attached to vm x]',
    });
  });

  test('a Failure from xapi is APIFailure (153) with the xapi code and params in the detail', () => {
    const f = toFault(new XapiError('VDI.db_introduce', 'LOCATION_NOT_UNIQUE', ['OpaqueRef:sr', 'loc']));
    expect(f).toEqual({
      code: SM_ERRORS.APIFailure.code,
      message: 'A Failure occurred accessing an API object [opterr=VDI.db_introduce: LOCATION_NOT_UNIQUE ["OpaqueRef:sr", "loc"]]',
    });
    expect(f.code).toBe(153);
  });

  test('xapi unreachable is APISession (150)', () => {
    const f = toFault(new XapiTransportError('VDI.db_forget', 'connect ENOENT /var/lib/xcp/xapi', 'ENOENT'));
    expect(f).toEqual({
      code: 150,
      message: 'Failed to initialize XMLRPC connection [opterr=VDI.db_forget: cannot reach xapi: connect ENOENT /var/lib/xcp/xapi]',
    });
  });

  test('a reply that is not XenAPI is APIProtocolError (154)', () => {
    const f = toFault(new XapiProtocolError('SR.get_record', 'not an XML-RPC response (HTTP 500, Unknown XML-RPC tag \'H1\')'));
    expect(f.code).toBe(154);
    expect(f.message).toBe(
      "A protocol error was received when accessing the API [opterr=SR.get_record: not an XML-RPC response (HTTP 500, Unknown XML-RPC tag 'H1')]",
    );
  });

  test('anything else is GenericException (1200)', () => {
    expect(toFault(new TypeError('boom'))).toEqual({ code: 1200, message: 'SM has thrown a generic exception [opterr=boom]' });
    expect(toFault('a string')).toEqual({ code: 1200, message: 'SM has thrown a generic exception [opterr=a string]' });
  });
});
