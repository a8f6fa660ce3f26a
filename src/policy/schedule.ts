/**
 * Time-of-day schedules for policy rules. Pure: the clock and the time zone are inputs.
 *
 * A range `{days, start, end}` is local time in the policy time zone, start inclusive and end
 * exclusive. `end < start` crosses midnight and the part after midnight belongs to the day the
 * range started on (`fri 22:00-06:00` matches Saturday 03:00, not Friday 03:00).
 * `start == end` means the whole day.
 */
export const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
export type Weekday = (typeof WEEKDAYS)[number];

export interface ScheduleRange {
  days: Weekday[];
  start: string; // HH:MM
  end: string; // HH:MM
}

export interface LocalTime {
  /** 0 = Monday ... 6 = Sunday */
  dayIndex: number;
  minuteOfDay: number;
}

export const HHMM = /^([01][0-9]|2[0-3]):[0-5][0-9]$/;

export function parseHhmm(s: string): number {
  if (!HHMM.test(s)) throw new RangeError(`'${s}' is not a time of day HH:MM (00:00-23:59)`);
  return Number(s.slice(0, 2)) * 60 + Number(s.slice(3, 5));
}

const formatters = new Map<string, Intl.DateTimeFormat>();
const SHORT_DAYS: Record<string, number> = { Mon: 0, Tue: 1, Wed: 2, Thu: 3, Fri: 4, Sat: 5, Sun: 6 };

/** Throws RangeError for a time zone the runtime does not know. */
export function localTime(at: Date, timeZone: string): LocalTime {
  let fmt = formatters.get(timeZone);
  if (!fmt) {
    fmt = new Intl.DateTimeFormat('en-US', {
      timeZone,
      weekday: 'short',
      hour: '2-digit',
      minute: '2-digit',
      hourCycle: 'h23',
    });
    formatters.set(timeZone, fmt);
  }
  let day = 0;
  let hour = 0;
  let minute = 0;
  for (const part of fmt.formatToParts(at)) {
    if (part.type === 'weekday') day = SHORT_DAYS[part.value] ?? 0;
    else if (part.type === 'hour') hour = Number(part.value) % 24;
    else if (part.type === 'minute') minute = Number(part.value);
  }
  return { dayIndex: day, minuteOfDay: hour * 60 + minute };
}

export function isValidTimeZone(timeZone: string): boolean {
  try {
    localTime(new Date(0), timeZone);
    return true;
  } catch {
    return false;
  }
}

export interface CompiledRange {
  days: boolean[]; // by dayIndex
  startMin: number;
  endMin: number;
}

export function compileRange(r: ScheduleRange): CompiledRange {
  const days = WEEKDAYS.map((d) => r.days.includes(d));
  return { days, startMin: parseHhmm(r.start), endMin: parseHhmm(r.end) };
}

export function rangeMatches(r: CompiledRange, t: LocalTime): boolean {
  const { dayIndex: d, minuteOfDay: m } = t;
  if (r.startMin === r.endMin) return r.days[d]!;
  if (r.startMin < r.endMin) return r.days[d]! && m >= r.startMin && m < r.endMin;
  const yesterday = (d + 6) % 7;
  return (r.days[d]! && m >= r.startMin) || (r.days[yesterday]! && m < r.endMin);
}
