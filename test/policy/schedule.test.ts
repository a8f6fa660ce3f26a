import { describe, expect, it } from 'vitest';
import {
  compileRange,
  isValidTimeZone,
  localTime,
  parseHhmm,
  rangeMatches,
  type ScheduleRange,
} from '../../src/policy/schedule.js';

const at = (iso: string) => new Date(iso);

describe('localTime', () => {
  it('reads weekday and minute in the given zone', () => {
    // 2026-11-30 is a Monday.
    expect(localTime(at('2026-11-30T23:30:00Z'), 'UTC')).toEqual({ dayIndex: 0, minuteOfDay: 23 * 60 + 30 });
    // Berlin is UTC+1 in winter: Monday 23:30Z is Tuesday 00:30 local.
    expect(localTime(at('2026-11-30T23:30:00Z'), 'Europe/Berlin')).toEqual({ dayIndex: 1, minuteOfDay: 30 });
    // New York is UTC-5 in winter: Monday 03:00Z is Sunday 22:00 local.
    expect(localTime(at('2026-11-30T03:00:00Z'), 'America/New_York')).toEqual({
      dayIndex: 6,
      minuteOfDay: 22 * 60,
    });
  });

  it('follows daylight saving time', () => {
    // Berlin summer time (UTC+2): 2026-07-01 is a Wednesday.
    expect(localTime(at('2026-07-01T06:00:00Z'), 'Europe/Berlin')).toEqual({
      dayIndex: 2,
      minuteOfDay: 8 * 60,
    });
  });

  it('knows valid and invalid zones', () => {
    expect(isValidTimeZone('Asia/Shanghai')).toBe(true);
    expect(isValidTimeZone('Mars/Olympus')).toBe(false);
  });
});

describe('parseHhmm', () => {
  it('parses and rejects', () => {
    expect(parseHhmm('00:00')).toBe(0);
    expect(parseHhmm('23:59')).toBe(1439);
    for (const bad of ['24:00', '7:00', '12:60', '12-00', ''])
      expect(() => parseHhmm(bad)).toThrow(RangeError);
  });
});

describe('rangeMatches', () => {
  const m = (r: ScheduleRange, day: number, hhmm: string) =>
    rangeMatches(compileRange(r), { dayIndex: day, minuteOfDay: parseHhmm(hhmm) });
  const office: ScheduleRange = { days: ['mon', 'tue', 'wed', 'thu', 'fri'], start: '08:00', end: '18:00' };
  const night: ScheduleRange = { days: ['fri'], start: '22:00', end: '06:00' };
  const allDay: ScheduleRange = { days: ['sun'], start: '00:00', end: '00:00' };

  it.each([
    [office, 0, '08:00', true, 'start is inclusive'],
    [office, 0, '07:59', false, 'before start'],
    [office, 0, '17:59', true, 'last minute'],
    [office, 0, '18:00', false, 'end is exclusive'],
    [office, 5, '12:00', false, 'Saturday not listed'],
    [night, 4, '22:00', true, 'Friday evening'],
    [night, 4, '23:59', true, 'Friday before midnight'],
    [night, 5, '00:00', true, 'Saturday after midnight belongs to Friday'],
    [night, 5, '05:59', true, 'Saturday early morning'],
    [night, 5, '06:00', false, 'end exclusive after midnight'],
    [night, 4, '03:00', false, 'Friday early morning belongs to Thursday (not listed)'],
    [night, 5, '22:30', false, 'Saturday evening not listed'],
    [allDay, 6, '00:00', true, 'start == end is the whole day'],
    [allDay, 6, '23:59', true, 'whole day end'],
    [allDay, 0, '00:00', false, 'other day'],
  ] as [ScheduleRange, number, string, boolean, string][])('case %#', (range, day, hhmm, want) =>
    expect(m(range, day, hhmm)).toBe(want),
  );

  it('wraps Sunday night into Monday', () => {
    const sunNight: ScheduleRange = { days: ['sun'], start: '23:00', end: '01:00' };
    expect(m(sunNight, 0, '00:30')).toBe(true);
    expect(m(sunNight, 6, '00:30')).toBe(false);
  });
});
