/**
 * The audit trail: an append-only log in which every entry carries the hash
 * of the entry before it. Anyone holding the entries can recompute the chain
 * and find the first place where an entry was altered, removed or inserted.
 *
 * Appends are serialized with a transaction-scoped advisory lock, so two
 * writers at once never fork the chain. PostgreSQL triggers (see the initial
 * migration) refuse UPDATE, DELETE and TRUNCATE on the table.
 */
import { createHash } from 'node:crypto';
import { sql } from 'kysely';
import { canonicalJson } from './canonical-json.ts';
import { clip, clipDeep } from './clip.ts';
import type { Db } from './db/database.ts';
import type { AuditChannel, AuditEntry, AuditOutcome } from './db/schema.ts';

/** Who did something: a person (Entra object id and tenant) or the service itself. */
export interface AuditActor {
  objectId: string;
  tenantId: string;
  name: string;
  role: string;
}

/** The service acting on its own (scheduler, engine workers). */
export const serviceActor: AuditActor = {
  objectId: 'acba-service',
  tenantId: 'acba',
  name: 'ACBA service',
  role: 'service',
};

export interface AuditEvent {
  actor: AuditActor;
  channel: AuditChannel;
  /** What happened, as a dotted verb: 'request.create', 'request.approve', 'restore.refuse', ... */
  action: string;
  /** The object acted on, e.g. 'request/4c1e...' or 'vm/contoso/web-01'. */
  resource: string;
  outcome: AuditOutcome;
  /** Further facts; include customerId when the event concerns a customer. Never secrets. */
  details?: Record<string, unknown>;
}

/**
 * The longest string an entry keeps in one field. Long enough for any reason or
 * comment the workflow accepts (6,000 characters as typed, and a ticket); what
 * someone sends beyond that, in an attempt that is refused anyway, is cut.
 */
export const MAX_AUDIT_TEXT = 6500;
/** The longest actor id, name or resource an entry keeps. */
export const MAX_AUDIT_NAME = 300;

/** The hash that starts the chain. */
export const GENESIS_HASH = '0'.repeat(64);

// Any fixed 64-bit number: the advisory lock that serializes appends.
const APPEND_LOCK = 0x41434241;

/** The fields an entry's hash covers, in a stable form. */
export function auditEntryHash(entry: {
  prevHash: string;
  at: Date | string;
  actorObjectId: string;
  actorTenantId: string;
  actorName: string;
  actorRole: string;
  channel: string;
  action: string;
  resource: string;
  outcome: string;
  details: unknown;
}): string {
  const at = entry.at instanceof Date ? entry.at.toISOString() : new Date(entry.at).toISOString();
  return createHash('sha256')
    .update(canonicalJson({ ...entry, at }))
    .digest('hex');
}

/** Appends one event to the chain and returns the stored entry. */
export async function appendAudit(db: Db, event: AuditEvent): Promise<AuditEntry> {
  return db.transaction().execute(async (trx) => {
    await sql`select pg_advisory_xact_lock(${APPEND_LOCK})`.execute(trx);

    const last = await trx
      .selectFrom('audit_log')
      .select('hash')
      .orderBy('seq', 'desc')
      .limit(1)
      .executeTakeFirst();
    const prevHash = last?.hash ?? GENESIS_HASH;
    // Millisecond precision, as PostgreSQL's timestamptz keeps microseconds and JS Dates keep milliseconds.
    const at = new Date();
    // Stored and hashed in the same bounded form, so that the chain verifies.
    const details = clipDeep(event.details ?? {}, MAX_AUDIT_TEXT);
    const fields = {
      prevHash,
      at,
      actorObjectId: clip(event.actor.objectId, MAX_AUDIT_NAME),
      actorTenantId: clip(event.actor.tenantId, MAX_AUDIT_NAME),
      actorName: clip(event.actor.name, MAX_AUDIT_NAME),
      actorRole: event.actor.role,
      channel: event.channel,
      action: event.action,
      resource: clip(event.resource, MAX_AUDIT_NAME),
      outcome: event.outcome,
      details,
    };

    return trx
      .insertInto('audit_log')
      .values({
        at,
        actor_object_id: fields.actorObjectId,
        actor_tenant_id: fields.actorTenantId,
        actor_name: fields.actorName,
        actor_role: fields.actorRole,
        channel: fields.channel,
        action: fields.action,
        resource: fields.resource,
        outcome: fields.outcome,
        details: JSON.stringify(details),
        prev_hash: prevHash,
        hash: auditEntryHash(fields),
      })
      .returningAll()
      .executeTakeFirstOrThrow();
  });
}

export { verifyAuditChain, type ChainVerification } from './audit-verify.ts';
