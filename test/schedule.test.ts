// When a policy's schedules are due: each kind, daylight-saving changes,
// month ends and leap days, in the customer's time zone.
import { describe, expect, it } from 'vitest';
import { latestSlot, nextSlots, type ScheduleRule } from '../engine/schedule.ts';

const iso = (d: Date) => d.toISOString();
const everyDay = ['mon', 'tue', 'wed', 'thu', 'fri', 'sat', 'sun'] as const;

describe('daily schedules', () => {
  const rule: ScheduleRule = {
    kind: 'daily',
    times: ['02:00', '14:00'],
    weekdays: ['mon', 'tue', 'wed', 'thu', 'fri'],
  };

  it('runs at each chosen time on chosen weekdays, in the customer zone', () => {
    // Friday 2026-12-04 03:00 in Berlin (UTC+1).
    const slots = nextSlots(rule, 'Europe/Berlin', new Date('2026-12-04T02:00:00Z'), 3);
    expect(slots.map((s) => iso(s.at))).toEqual([
      '2026-12-04T13:00:00.000Z',
      '2026-12-07T01:00:00.000Z', // Monday: the weekend is skipped
      '2026-12-07T13:00:00.000Z',
    ]);
    expect(slots[0]!.key).toBe('daily@2026-12-04T14:00');
  });

  it('02:00 stays the customer 02:00 across the spring change', () => {
    const slots = nextSlots(
      { kind: 'daily', times: ['02:00'], weekdays: [...everyDay] },
      'America/New_York',
      new Date('2026-03-06T12:00:00Z'),
      4,
    );
    expect(slots.map((s) => iso(s.at))).toEqual([
      '2026-03-07T07:00:00.000Z', // EST
      '2026-03-08T07:00:00.000Z', // 02:00 does not exist: runs at 03:00 EDT
      '2026-03-09T06:00:00.000Z', // EDT
      '2026-03-10T06:00:00.000Z',
    ]);
  });

  it('a 02:30 slot skipped by spring-forward runs once, right after the gap', () => {
    const slots = nextSlots(
      { kind: 'daily', times: ['02:30'], weekdays: [...everyDay] },
      'Europe/Berlin',
      new Date('2026-03-28T12:00:00Z'),
      2,
    );
    expect(slots.map((s) => s.key)).toEqual(['daily@2026-03-29T02:30', 'daily@2026-03-30T02:30']);
    expect(iso(slots[0]!.at)).toBe('2026-03-29T01:30:00.000Z'); // 03:30 CEST
  });

  it('a 01:30 slot that happens twice at fall-back runs once, at its first occurrence', () => {
    const rule: ScheduleRule = { kind: 'daily', times: ['01:30'], weekdays: [...everyDay] };
    const slots = nextSlots(rule, 'America/New_York', new Date('2026-10-31T12:00:00Z'), 3);
    expect(slots.map((s) => iso(s.at))).toEqual([
      '2026-11-01T05:30:00.000Z', // 01:30 EDT, the first of the two
      '2026-11-02T06:30:00.000Z',
      '2026-11-03T06:30:00.000Z',
    ]);
    // After the first occurrence the second is not a new slot.
    const after = nextSlots(rule, 'America/New_York', new Date('2026-11-01T06:00:00Z'));
    expect(iso(after[0]!.at)).toBe('2026-11-02T06:30:00.000Z');
    expect(latestSlot(rule, 'America/New_York', new Date('2026-11-01T06:45:00Z'))!.key).toBe(
      'daily@2026-11-01T01:30',
    );
  });
});

describe('weekly schedules', () => {
  it('runs once a day on the chosen weekdays', () => {
    const slots = nextSlots(
      { kind: 'weekly', time: '22:00', weekdays: ['sat'] },
      'Asia/Tokyo',
      new Date('2026-12-01T00:00:00Z'),
      2,
    );
    expect(slots.map((s) => iso(s.at))).toEqual([
      '2026-12-05T13:00:00.000Z',
      '2026-12-12T13:00:00.000Z',
    ]);
  });
});

describe('monthly schedules', () => {
  it('the 31st runs on the last day of a 30-day month and of February', () => {
    const slots = nextSlots(
      { kind: 'monthly', time: '03:00', day: 31 },
      'UTC',
      new Date('2027-01-01T00:00:00Z'),
      4,
    );
    expect(slots.map((s) => s.key)).toEqual([
      'monthly@2027-01-31T03:00',
      'monthly@2027-02-28T03:00',
      'monthly@2027-03-31T03:00',
      'monthly@2027-04-30T03:00',
    ]);
  });

  it('the last Friday of each month', () => {
    const slots = nextSlots(
      { kind: 'monthly', time: '20:00', weekday: 'fri', week: 'last' },
      'Europe/London',
      new Date('2026-12-01T00:00:00Z'),
      3,
    );
    expect(slots.map((s) => s.key)).toEqual([
      'monthly@2026-12-25T20:00',
      'monthly@2027-01-29T20:00',
      'monthly@2027-02-26T20:00',
    ]);
  });

  it('the first Monday and the "last" day', () => {
    expect(
      nextSlots(
        { kind: 'monthly', time: '01:00', weekday: 'mon', week: 1 },
        'UTC',
        new Date('2026-12-01T00:00:00Z'),
      )[0]!.key,
    ).toBe('monthly@2026-12-07T01:00');
    expect(
      nextSlots(
        { kind: 'monthly', time: '01:00', day: 'last' },
        'UTC',
        new Date('2028-02-01T00:00:00Z'),
      )[0]!.key,
    ).toBe('monthly@2028-02-29T01:00');
  });
});

describe('yearly schedules', () => {
  it('29 February runs on leap days, and on 28 February in common years', () => {
    const slots = nextSlots(
      { kind: 'yearly', time: '04:00', month: 2, day: 29 },
      'Australia/Sydney',
      new Date('2026-12-01T00:00:00Z'),
      3,
    );
    expect(slots.map((s) => s.key)).toEqual([
      'yearly@2027-02-28T04:00',
      'yearly@2028-02-29T04:00',
      'yearly@2029-02-28T04:00',
    ]);
    expect(iso(slots[1]!.at)).toBe('2028-02-28T17:00:00.000Z'); // AEDT, UTC+11
  });

  it('the latest due slot is last year when this year has not come yet', () => {
    const slot = latestSlot(
      { kind: 'yearly', time: '00:00', month: 12, day: 31 },
      'UTC',
      new Date('2026-12-03T00:00:00Z'),
    );
    expect(slot!.key).toBe('yearly@2025-12-31T00:00');
  });
});
