/**
 * The filters an auditor sets on the audit trail, read from a query string in
 * the portal and the API alike. Each value is checked here, once, with a
 * message that names the field; the query itself (./queries.ts) only ever
 * sees typed values, and a customer's viewer can never widen its scope.
 */
import type { AuditOutcome } from '../core/db/schema.ts';
import { badInput } from '../core/errors.ts';

export const AUDIT_OUTCOMES: readonly AuditOutcome[] = ['success', 'refused', 'failed'];

export interface AuditFilter {
  /** Entries at or after this instant. */
  from?: Date;
  /** Entries before this instant. */
  to?: Date;
  /** An Entra object id, or a display name (any case). */
  actor?: string;
  /** A customer id; only provider staff choose it, a customer's view is always its own. */
  customerId?: string;
  /** An action such as `request.approve`, or a family such as `request`. */
  kind?: string;
  outcome?: AuditOutcome;
  /** Entries older than this sequence number (the next page). */
  before?: string;
}

/** The filter as query parameters, for links to further pages and for the form. */
export type AuditFilterQuery = Partial<Record<keyof AuditFilter, string>>;

const MAX_TEXT = 200;
const DATE_ONLY = /^\d{4}-\d{2}-\d{2}$/;
/** A date, or a date and time with optional seconds, fraction and zone, as ISO 8601 writes them. */
const ISO_TIME = /^(\d{4}-\d{2}-\d{2})(T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})?)?$/;
/** Years the database stores and people mean. */
const FIRST_YEAR = 1970;
const LAST_YEAR = 9998;

function text(query: Record<string, unknown>, field: string): string | undefined {
  const value = query[field];
  if (value === undefined) return undefined;
  if (typeof value !== 'string') {
    throw badInput(`Give "${field}" once, as plain text.`, { field });
  }
  const trimmed = value.trim();
  if (trimmed === '') return undefined;
  if (trimmed.length > MAX_TEXT || /[\u0000-\u001f]/.test(trimmed)) {
    throw badInput(
      `"${field}" is longer than ${MAX_TEXT} characters or holds control characters.`,
      { field },
    );
  }
  return trimmed;
}

/**
 * A date (`2026-12-01`, the whole day in UTC) or an ISO 8601 time. For `to`,
 * a date means up to the end of that day.
 */
function instant(query: Record<string, unknown>, field: 'from' | 'to'): Date | undefined {
  const value = text(query, field);
  if (value === undefined) return undefined;
  const dateOnly = DATE_ONLY.test(value);
  const match = ISO_TIME.exec(value);
  const parsed = new Date(dateOnly ? `${value}T00:00:00Z` : value);
  // The calendar day must exist as written: 2026-02-30 is not read as 2026-03-02.
  const day = match ? new Date(`${match[1]}T00:00:00Z`) : undefined;
  const real =
    match !== null &&
    !Number.isNaN(parsed.getTime()) &&
    day !== undefined &&
    !Number.isNaN(day.getTime()) &&
    day.toISOString().slice(0, 10) === match[1];
  if (!real) {
    throw badInput(
      `"${field}" must be a date such as 2026-12-01 or a time such as 2026-12-01T14:00:00Z; "${value.slice(0, 40)}" is neither.`,
      { field },
    );
  }
  const year = parsed.getUTCFullYear();
  if (year < FIRST_YEAR || year > LAST_YEAR) {
    throw badInput(`"${field}" must lie between the years ${FIRST_YEAR} and ${LAST_YEAR}.`, {
      field,
    });
  }
  if (dateOnly && field === 'to') parsed.setUTCDate(parsed.getUTCDate() + 1);
  return parsed;
}

/** Reads and checks the filter; throws bad_input naming the first wrong field. */
export function parseAuditFilter(query: Record<string, unknown>): AuditFilter {
  const before = text(query, 'before');
  // Sequence numbers are bigints: at most 18 digits keeps the value in range.
  if (before !== undefined && !/^\d{1,18}$/.test(before)) {
    throw badInput('"before" is an audit sequence number: digits only.', { field: 'before' });
  }
  const outcome = text(query, 'outcome');
  if (outcome !== undefined && !AUDIT_OUTCOMES.includes(outcome as AuditOutcome)) {
    throw badInput(`"outcome" is one of ${AUDIT_OUTCOMES.join(', ')}.`, { field: 'outcome' });
  }
  const filter: AuditFilter = {
    from: instant(query, 'from'),
    to: instant(query, 'to'),
    actor: text(query, 'actor'),
    customerId: text(query, 'customer'),
    kind: text(query, 'kind'),
    outcome: outcome as AuditOutcome | undefined,
    before,
  };
  if (filter.from && filter.to && filter.from >= filter.to) {
    throw badInput('"from" must come before "to".', { field: 'from' });
  }
  return filter;
}

/** The filter as it was given, for the form's fields and the links to other pages. */
export function auditFilterQuery(filter: AuditFilter): AuditFilterQuery {
  const day = (d: Date | undefined, end = false) => {
    if (!d) return undefined;
    const iso = d.toISOString();
    if (!iso.endsWith('T00:00:00.000Z')) return iso;
    const shown = end ? new Date(d.getTime() - 86_400_000) : d;
    return shown.toISOString().slice(0, 10);
  };
  return {
    from: day(filter.from),
    to: day(filter.to, true),
    actor: filter.actor,
    customerId: filter.customerId,
    kind: filter.kind,
    outcome: filter.outcome,
  };
}

/** A query string for the filter (without `before`), starting with `?` when not empty. */
export function auditFilterSearch(filter: AuditFilter, extra: Record<string, string> = {}): string {
  const { customerId, ...rest } = auditFilterQuery(filter);
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries({ ...rest, customer: customerId, ...extra })) {
    if (value !== undefined) params.set(key, value);
  }
  const search = params.toString();
  return search ? `?${search}` : '';
}
