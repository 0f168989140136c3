import { encodeFault, encodeResponse, decodeMethodResponse, DateTimeValue } from '../../src/smapi/xmlrpc.js';
import { pyLoads } from '../helpers/python.js';

describe('responses re-parsed by Python xmlrpc.client', () => {
  test('a {uuid, location} struct', async () => {
    const doc = encodeResponse({ uuid: 'u', location: 'l' });
    expect(await pyLoads(doc)).toEqual({ params: [{ uuid: 'u', location: 'l' }], method: null });
  });

  test('unit results are <nil/>', async () => {
    const doc = encodeResponse(null);
    expect(doc).toContain('<value><nil/></value>');
    expect((await pyLoads(doc)).params).toEqual([null]);
  });

  test('strings with markup, non-ASCII and empty values; nested arrays and structs', async () => {
    const v = {
      s: 'a & <b> "c" é 磁盘 🙂',
      empty: '',
      n: 42,
      t: true,
      f: false,
      list: ['x', { k: 'v' }, []],
      nested: { inner: {} },
    };
    expect((await pyLoads(encodeResponse(v))).params).toEqual([v]);
  });

  test('control characters are dropped so the document stays well-formed', async () => {
    expect((await pyLoads(encodeResponse('a\u0001b\tc\nd'))).params).toEqual(['ab\tc\nd']);
  });

  test('dates and binary', async () => {
    const parsed = await pyLoads(encodeResponse([new DateTimeValue('20261125T01:02:03Z'), Buffer.from('hi')]));
    expect(parsed.params).toEqual([[{ $datetime: '20261125T01:02:03Z' }, { $bytes: '6869' }]]);
  });

  test('faults carry the numeric code and message', async () => {
    const doc = encodeFault(46, 'The VDI is not available [opterr=x & y]');
    expect(await pyLoads(doc)).toEqual({ fault: { code: 46, string: 'The VDI is not available [opterr=x & y]' } });
    expect(decodeMethodResponse(doc)).toEqual({ ok: false, faultCode: 46, faultString: 'The VDI is not available [opterr=x & y]' });
  });

  test('our own decoder round-trips what we encode', () => {
    const v = { a: ['1', 2, false, null], b: { c: '' } };
    expect(decodeMethodResponse(encodeResponse(v))).toEqual({ ok: true, value: v });
  });
});
