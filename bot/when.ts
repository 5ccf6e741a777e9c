/**
 * Restore times as people type them: `2026-12-01 14:00`, `2026-12-01`,
 * `2026-12-01T14:00:00Z`. A time with Z or an offset means exactly that; a
 * time without one is read in the user's Teams time zone (the activity's
 * localTimezone or its clientInfo entity), UTC when Teams did not say. A bare
 * date means the end of that day, so that day's last backup is found.
 */
import type { Activity } from 'botbuilder';

/** The user's IANA time zone from the activity, if Teams sent a valid one. */
export function timeZoneOf(activity: Partial<Activity>): string | undefined {
  const entities: unknown[] = Array.isArray(activity.entities) ? activity.entities : [];
  const fromEntities = entities.find(
    (e) => (e as { type?: unknown } | null)?.type === 'clientInfo',
  ) as { timezone?: unknown } | undefined;
  const local = (activity as { localTimezone?: unknown }).localTimezone;
  const zone = typeof local === 'string' && local !== '' ? local : fromEntities?.timezone;
  if (typeof zone !== 'string' || zone === '') return undefined;
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: zone });
    return zone;
  } catch {
    return undefined;
  }
}

/** What the wall clock in `zone` shows at the instant t, field by field. */
function wallClock(
  zone: string,
  t: number,
): Record<'year' | 'month' | 'day' | 'hour' | 'minute' | 'second', number> {
  const parts = new Intl.DateTimeFormat('en-US', {
    timeZone: zone,
    hourCycle: 'h23',
    year: 'numeric',
    month: '2-digit',
    day: '2-digit',
    hour: '2-digit',
    minute: '2-digit',
    second: '2-digit',
  }).formatToParts(new Date(t));
  const get = (type: string) => Number(parts.find((p) => p.type === type)?.value);
  return {
    year: get('year'),
    month: get('month'),
    day: get('day'),
    hour: get('hour'),
    minute: get('minute'),
    second: get('second'),
  };
}

/** Milliseconds the zone is ahead of UTC at the instant t. */
function zoneOffsetMs(zone: string, t: number): number {
  const c = wallClock(zone, t);
  const asUtc = Date.UTC(c.year, c.month - 1, c.day, c.hour, c.minute, c.second);
  return asUtc - Math.floor(t / 1000) * 1000;
}

/** The instant at which the wall clock in `zone` shows the given time. */
function wallTimeToUtc(fields: number[], zone: string | undefined): number {
  const [y, mo, d, h, mi, s] = fields as [number, number, number, number, number, number];
  const wall = Date.UTC(y, mo - 1, d, h, mi, s);
  if (!zone) return wall;
  let t = wall;
  // Two rounds settle the offset, also next to a daylight-saving change.
  for (let i = 0; i < 2; i++) t = wall - zoneOffsetMs(zone, t);
  return t;
}

export type ParsedTime = { ok: true; at: Date; dateOnly: boolean } | { ok: false; message: string };

const pattern =
  /^(\d{4})-(\d{1,2})-(\d{1,2})(?:[ T](\d{1,2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?)?\s*(z|utc|[+-]\d{2}:?\d{2})?$/i;

export function parseRestoreTime(text: string, zone: string | undefined): ParsedTime {
  const match = pattern.exec(text.trim());
  const help = 'Write the time as 2026-12-01 14:00, 2026-12-01, or 2026-12-01T14:00:00Z.';
  if (!match) return { ok: false, message: `I could not read "${text.trim()}" as a time. ${help}` };

  const [, y, mo, d, h, mi, s, suffix] = match;
  const dateOnly = h === undefined;
  const fields = [
    Number(y),
    Number(mo),
    Number(d),
    dateOnly ? 23 : Number(h),
    dateOnly ? 59 : Number(mi),
    dateOnly ? 59 : Number(s ?? 0),
  ];
  const check = new Date(
    Date.UTC(fields[0]!, fields[1]! - 1, fields[2]!, fields[3]!, fields[4]!, fields[5]!),
  );
  if (
    check.getUTCMonth() !== fields[1]! - 1 ||
    check.getUTCDate() !== fields[2] ||
    fields[3]! > 23 ||
    fields[4]! > 59 ||
    fields[5]! > 59
  ) {
    return { ok: false, message: `"${text.trim()}" is not a real date and time. ${help}` };
  }

  let at: number;
  if (suffix === undefined) {
    at = wallTimeToUtc(fields, zone);
  } else if (/^(z|utc)$/i.test(suffix)) {
    at = wallTimeToUtc(fields, undefined);
  } else {
    const sign = suffix.startsWith('-') ? -1 : 1;
    const digits = suffix.slice(1).replace(':', '');
    const offset = sign * (Number(digits.slice(0, 2)) * 60 + Number(digits.slice(2))) * 60_000;
    at = wallTimeToUtc(fields, undefined) - offset;
  }
  return { ok: true, at: new Date(dateOnly ? at + 999 : at), dateOnly };
}

/**
 * The instant as a wall-clock time in the zone, like formatUtc: `2026-12-01 15:00 Europe/Berlin`,
 * or `2026-12-01 14:00 UTC` when the zone is UTC.
 */
export function formatInZone(at: Date, zone: string): string {
  const c = wallClock(zone, at.getTime());
  const two = (n: number) => String(n).padStart(2, '0');
  return `${c.year}-${two(c.month)}-${two(c.day)} ${two(c.hour)}:${two(c.minute)} ${zone}`;
}
