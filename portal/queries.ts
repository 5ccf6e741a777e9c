/**
 * The portal's read queries. Every one takes the viewer's customer filter
 * (undefined for provider staff), so that scoping happens in SQL and a
 * customer's page can never list another customer's rows.
 */
import { sql } from 'kysely';
import type { Db } from '../core/db/database.ts';
import type { AuditEntry, Decision, RequestRow } from '../core/db/schema.ts';
import { clip, QUOTE_LENGTH } from '../core/clip.ts';
import { notFound } from '../core/errors.ts';
import type { AuditFilter } from './audit-filter.ts';

export interface CustomerSummary {
  id: string;
  name: string;
  items: number;
  restorePoints: number;
  lastRestorePointAt: Date | null;
  pendingRequests: number;
}

/** One line per visible customer, for the overview. */
export async function listCustomerSummaries(
  db: Db,
  customerId?: string,
): Promise<CustomerSummary[]> {
  let query = db
    .selectFrom('customers as c')
    .select((eb) => [
      'c.id',
      'c.name',
      eb
        .selectFrom('protected_items as i')
        .whereRef('i.customer_id', '=', 'c.id')
        .select((e) => e.fn.countAll<string>().as('n'))
        .as('items'),
      eb
        .selectFrom('restore_points as r')
        .whereRef('r.customer_id', '=', 'c.id')
        .select((e) => e.fn.countAll<string>().as('n'))
        .as('restore_points'),
      eb
        .selectFrom('restore_points as r')
        .whereRef('r.customer_id', '=', 'c.id')
        .select((e) => e.fn.max('r.created_at').as('t'))
        .as('last_restore_point_at'),
      eb
        .selectFrom('requests as q')
        .whereRef('q.customer_id', '=', 'c.id')
        .where('q.status', '=', 'pending')
        .select((e) => e.fn.countAll<string>().as('n'))
        .as('pending'),
    ])
    .orderBy('c.name');
  if (customerId) query = query.where('c.id', '=', customerId);

  const rows = await query.execute();
  return rows.map((r) => ({
    id: r.id,
    name: r.name,
    items: Number(r.items ?? 0),
    restorePoints: Number(r.restore_points ?? 0),
    lastRestorePointAt: r.last_restore_point_at
      ? new Date(r.last_restore_point_at as Date | string)
      : null,
    pendingRequests: Number(r.pending ?? 0),
  }));
}

export interface ItemOption {
  id: string;
  name: string;
  customerName: string;
}

/** Protected items the viewer may filter restore points by. */
export async function listItems(db: Db, customerId?: string): Promise<ItemOption[]> {
  let query = db
    .selectFrom('protected_items as i')
    .innerJoin('customers as c', 'c.id', 'i.customer_id')
    .select(['i.id', 'i.name', 'c.name as customerName'])
    .orderBy('c.name')
    .orderBy('i.name');
  if (customerId) query = query.where('i.customer_id', '=', customerId);
  return query.execute();
}

export async function customerNames(db: Db): Promise<Map<string, string>> {
  const rows = await db.selectFrom('customers').select(['id', 'name']).execute();
  return new Map(rows.map((r) => [r.id, r.name]));
}

/** Requests, newest first. */
export async function listRequests(
  db: Db,
  filter: { customerId?: string; status?: string; limit?: number },
): Promise<RequestRow[]> {
  let query = db
    .selectFrom('requests')
    .selectAll()
    .orderBy('created_at', 'desc')
    .orderBy('id', 'desc');
  if (filter.customerId) query = query.where('customer_id', '=', filter.customerId);
  if (filter.status) query = query.where('status', '=', filter.status as RequestRow['status']);
  return query.limit(filter.limit ?? 200).execute();
}

/** A request with all its decisions, oldest decision first; not found when outside the viewer's scope. */
export async function getRequestWithDecisions(
  db: Db,
  id: string,
  customerId?: string,
): Promise<{ request: RequestRow; decisions: Decision[] }> {
  let query = db.selectFrom('requests').selectAll().where('id', '=', id);
  if (customerId) query = query.where('customer_id', '=', customerId);
  // Ids are short printable text; anything else names no request and would only upset the database.
  const plausible = id.length <= 100 && !/[\u0000-\u001f]/.test(id);
  const request = plausible ? await query.executeTakeFirst() : undefined;
  // Another customer's request is reported as missing, so its existence does not leak.
  if (!request) {
    throw notFound(
      `There is no request ${clip(id, QUOTE_LENGTH)}. Check the link, or open the list of requests.`,
      {
        id: clip(id, QUOTE_LENGTH),
      },
    );
  }

  const decisions = await db
    .selectFrom('decisions')
    .selectAll()
    .where('request_id', '=', id)
    .orderBy('created_at')
    .execute();
  return { request, decisions };
}

export interface AuditPage {
  entries: AuditEntry[];
  /** Sequence number to pass as `before` for the next (older) page, when there is one. */
  olderBefore?: string;
}

/**
 * One page of the audit log, newest first. A customer's view holds the entries
 * about that customer (details.customerId) and those its own staff caused that
 * concern no other customer: a refused look at another customer's request is
 * recorded with that customer's id, and showing it to the one who tried would
 * tell them the request exists and whose it is.
 */
export async function listAudit(
  db: Db,
  filter: AuditFilter & { scopeCustomerId?: string; tenantId?: string; pageSize: number },
): Promise<AuditPage> {
  let query = db
    .selectFrom('audit_log')
    .selectAll()
    .orderBy('seq', 'desc')
    .limit(filter.pageSize + 1);
  if (filter.before) query = query.where('seq', '<', filter.before as never);
  if (filter.scopeCustomerId) {
    const customerId = filter.scopeCustomerId;
    const tenantId = filter.tenantId ?? '';
    query = query.where((eb) =>
      eb.or([
        eb(sql`details->>'customerId'`, '=', customerId),
        eb.and([eb('actor_tenant_id', '=', tenantId), eb(sql`details->>'customerId'`, 'is', null)]),
      ]),
    );
  }
  if (filter.customerId) query = query.where(sql`details->>'customerId'`, '=', filter.customerId);
  if (filter.from) query = query.where('at', '>=', filter.from);
  if (filter.to) query = query.where('at', '<', filter.to);
  if (filter.outcome) query = query.where('outcome', '=', filter.outcome);
  if (filter.actor) {
    const actor = filter.actor;
    query = query.where((eb) =>
      eb.or([
        eb('actor_object_id', '=', actor),
        eb(sql`lower(actor_name)`, '=', actor.toLowerCase()),
      ]),
    );
  }
  if (filter.kind) {
    // "request" matches request.create, request.approve, ...; "request.approve" only itself.
    const family = `${filter.kind.replace(/[\\%_]/g, (c) => `\\${c}`)}.%`;
    const kind = filter.kind;
    query = query.where((eb) => eb.or([eb('action', '=', kind), eb('action', 'like', family)]));
  }

  const rows = await query.execute();
  const entries = rows.slice(0, filter.pageSize);
  const more = rows.length > filter.pageSize;
  return { entries, olderBefore: more ? String(entries.at(-1)?.seq) : undefined };
}
