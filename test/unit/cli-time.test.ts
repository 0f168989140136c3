// `flatsnap seek --at TIME`: every accepted spelling, and clear refusals.
import { describe, expect, test } from '@jest/globals';
import { TimeSyntaxError, isoTime, parseTime } from '../../src/cli/time.js';
import { MAX_TIME, formatTimestamp } from '../../src/lineage/names.js';

const T = Date.UTC(2026, 10, 25, 1, 2, 3); // 2026-11-25T01:02:03Z

describe('accepted forms', () => {
  test.each([
    ['2026-11-25T01:02:03Z', T],
    ['2026-11-25t01:02:03z', T],
    ['2026-11-25 01:02:03Z', T],
    ['2026-11-25T01:02Z', T - 3000],
    ['2026-11-25T01:02:03.456Z', T + 456],
    ['2026-11-25T01:02:03,456Z', T + 456],
    ['2026-11-25T01:02:03.4Z', T + 400],
    ['2026-11-25T01:02:03.456999999Z', T + 456], // cut to the millisecond, never rounded up
    ['2026-11-25T02:02:03+01:00', T],
    ['2026-11-25T02:02:03+0100', T],
    ['2026-11-25T02:02:03+01', T],
    ['2026-11-24T20:32:03-04:30', T],
    ['20261125T01:02:03Z', T], // xapi's DateTime
    ['20261125T010203Z', T], // ISO 8601 basic
    ['20261125T010203.456Z', T + 456], // a snapshot name's stamp
    ['  2026-11-25T01:02:03Z  ', T],
    ['1970-01-01T00:00:00Z', 0],
    ['9999-12-31T23:59:59.999Z', MAX_TIME],
    ['2028-02-29T00:00:00Z', Date.UTC(2028, 1, 29)],
  ])('%s', (text, ms) => {
    expect(parseTime(text)).toBe(ms);
  });

  test('now comes from the clock (whole milliseconds)', () => {
    expect(parseTime('now', () => T + 0.7)).toBe(T);
  });

  test('round trip with the snapshot stamp and ISO output', () => {
    for (const t of [0, T, T + 1, MAX_TIME]) {
      expect(parseTime(formatTimestamp(t))).toBe(t);
      expect(parseTime(isoTime(t))).toBe(t);
    }
  });
});

describe('refused, with a message that says why', () => {
  test.each([
    ['', /is not a time/],
    ['yesterday', /is not a time/],
    ['1700000000', /is not a time/],
    ['2026-11-25', /no time of day/],
    ['20261125', /no time of day/],
    ['2026-11-25T01:02:03', /no time zone; add Z/],
    ['2026-11-25T01:02:03.5', /no time zone/],
    ['2026-1125T01:02:03Z', /is not a time/], // mixed date styles
    ['2026-11-25T0102:03Z', /is not a time/], // mixed time styles
    ['2026-13-01T00:00:00Z', /month 13/],
    ['2026-00-01T00:00:00Z', /month 00/],
    ['2026-02-29T00:00:00Z', /day 29 does not exist in 2026-02/],
    ['2026-04-31T00:00:00Z', /day 31/],
    ['2026-11-25T24:00:00Z', /hour 24/],
    ['2026-11-25T23:60:00Z', /minute 60/],
    ['2026-11-25T23:59:60Z', /second 60/],
    ['2026-11-25T01:02:03+24:00', /offset/],
    ['2026-11-25T01:02:03+01:60', /offset/],
    ['1969-12-31T23:59:59Z', /outside 1970/],
    ['0099-01-01T00:00:00Z', /outside 1970/], // Date.UTC would read 1999
    ['1970-01-01T00:30:00+01:00', /outside 1970/],
    ['2026-11-25T01:02:03.1234567890Z', /is not a time/],
    ['2026-11-25T01:02:03ZZ', /is not a time/],
  ])('%j', (text, msg) => {
    expect(() => parseTime(text)).toThrow(TimeSyntaxError);
    expect(() => parseTime(text)).toThrow(msg);
  });

  test('the message quotes the input, escaped and shortened', () => {
    expect(() => parseTime('bad\u001btime')).toThrow('"bad\\u001btime" is not a time');
    const long = 'x'.repeat(200);
    const msg = (() => {
      try {
        parseTime(long);
      } catch (e) {
        return (e as Error).message;
      }
      return '';
    })();
    expect(msg.length).toBeLessThan(200);
  });
});
