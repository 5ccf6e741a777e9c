/**
 * Schedule computation: when a policy's schedules are due, as pure functions
 * of an instant. Times are wall-clock times in the schedule's IANA time zone,
 * so "02:00" is the customer's 02:00 in winter and in summer.
 *
 * Every slot has a key made of its kind and its local date and time
 * (`daily@2026-03-29T02:30`). The scheduler records runs under that key, so a
 * slot runs once even when its local time happens twice.
 *
 * Rules where the calendar is awkward:
 * - a local time skipped by a spring-forward change runs at the same offset
 *   after the gap (02:30 becomes 03:30 when clocks jump from 02:00 to 03:00);
 * - a local time that happens twice at a fall-back change runs at its first
 *   occurrence, once;
 * - a monthly day past the month's end (the 31st in April) runs on the
 *   month's last day; a yearly 29 February runs on 28 February in common years.
 */
import { DateTime } from 'luxon';

export const WEEKDAYS = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;
export type Weekday = (typeof WEEKDAYS)[number];
export type ScheduleKind = 'daily' | 'weekly' | 'monthly' | 'yearly';

/** Several restore points a day, at `times` on `weekdays`. */
export interface DailyRule {
  kind: 'daily';
  times: string[];
  weekdays: Weekday[];
}

/** Once a day at `time` on `weekdays`. */
export interface WeeklyRule {
  kind: 'weekly';
  time: string;
  weekdays: Weekday[];
}

/** Once a month: on day `day` (1–31 or 'last'), or on the `week`th (1–4 or 'last') `weekday`. */
export type MonthlyRule =
  | { kind: 'monthly'; time: string; day: number | 'last' }
  | { kind: 'monthly'; time: string; weekday: Weekday; week: 1 | 2 | 3 | 4 | 'last' };

/** Once a year at `time` on `month`/`day`. */
export interface YearlyRule {
  kind: 'yearly';
  time: string;
  month: number;
  day: number;
}

export type ScheduleRule = DailyRule | WeeklyRule | MonthlyRule | YearlyRule;

export interface Slot {
  kind: ScheduleKind;
  /** Kind, local date and local time: the identity of the slot. */
  key: string;
  /** The instant it is due. */
  at: Date;
}

/** How far the search for one slot looks, in days: a yearly slot is always within this. */
const SEARCH_DAYS = 400;

/** Whether `zone` is an IANA time zone luxon knows. */
export function isValidZone(zone: string): boolean {
  return DateTime.now().setZone(zone).isValid;
}

/** The first `count` slots strictly after `after`, in time order. */
export function nextSlots(rule: ScheduleRule, zone: string, after: Date, count = 1): Slot[] {
  const slots: Slot[] = [];
  let day = DateTime.fromJSDate(after, { zone }).startOf('day');
  const days = SEARCH_DAYS * count;
  for (let i = 0; i < days && slots.length < count; i++, day = day.plus({ days: 1 })) {
    for (const slot of slotsOn(rule, zone, day)) {
      if (slot.at.getTime() > after.getTime() && slots.length < count) slots.push(slot);
    }
  }
  return slots;
}

/** The latest slot at or before `at`, or undefined when there was none in the search window. */
export function latestSlot(rule: ScheduleRule, zone: string, at: Date): Slot | undefined {
  let day = DateTime.fromJSDate(at, { zone }).startOf('day');
  for (let i = 0; i < SEARCH_DAYS; i++, day = day.minus({ days: 1 })) {
    const due = slotsOn(rule, zone, day).filter((s) => s.at.getTime() <= at.getTime());
    if (due.length > 0) return due[due.length - 1];
  }
  return undefined;
}

/** The slots of one local calendar day, in time order. */
export function slotsOn(rule: ScheduleRule, zone: string, day: DateTime): Slot[] {
  const times = timesOn(rule, day);
  return times
    .map((time) => ({
      kind: rule.kind,
      key: `${rule.kind}@${day.toISODate()}T${time}`,
      at: localInstant(day, time, zone).toJSDate(),
    }))
    .sort((a, b) => a.at.getTime() - b.at.getTime());
}

function timesOn(rule: ScheduleRule, day: DateTime): string[] {
  const weekday = WEEKDAYS[day.weekday - 1]!;
  switch (rule.kind) {
    case 'daily':
      return rule.weekdays.includes(weekday) ? [...new Set(rule.times)] : [];
    case 'weekly':
      return rule.weekdays.includes(weekday) ? [rule.time] : [];
    case 'monthly':
      return monthlyMatches(rule, day) ? [rule.time] : [];
    case 'yearly': {
      if (day.month !== rule.month) return [];
      return day.day === Math.min(rule.day, day.daysInMonth!) ? [rule.time] : [];
    }
  }
}

function monthlyMatches(rule: MonthlyRule, day: DateTime): boolean {
  const last = day.daysInMonth!;
  if ('day' in rule) return day.day === (rule.day === 'last' ? last : Math.min(rule.day, last));
  if (WEEKDAYS[day.weekday - 1] !== rule.weekday) return false;
  if (rule.week === 'last') return day.day + 7 > last;
  return Math.ceil(day.day / 7) === rule.week;
}

/** The instant of local `time` ("HH:MM") on `day` in `zone`, with the gap and overlap rules above. */
function localInstant(day: DateTime, time: string, zone: string): DateTime {
  const [hour, minute] = time.split(':').map(Number) as [number, number];
  const wall = { year: day.year, month: day.month, day: day.day, hour, minute };
  // Luxon moves a skipped time forward by the gap, and picks the later of two occurrences.
  const instant = DateTime.fromObject(wall, { zone });
  const before = DateTime.fromMillis(instant.toMillis() - 6 * 3600_000, { zone });
  const shift = before.offset - instant.offset;
  if (shift > 0) {
    const earlier = DateTime.fromMillis(instant.toMillis() - shift * 60_000, { zone });
    if (earlier.hour === hour && earlier.minute === minute && earlier.day === day.day)
      return earlier;
  }
  return instant;
}
