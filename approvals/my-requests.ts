/**
 * A person's own requests, for "my requests" in the bot. Ownership is the
 * requester's Entra object id and tenant, as the workflow checks it when a
 * requester starts or cancels a request, so nobody sees a colleague's here.
 */
import type { Db } from '../core/db/database.ts';
import type { RequestRow } from '../core/db/schema.ts';
import type { Actor } from './approvals.ts';

/** The actor's newest `limit` requests, newest first, and whether there are older ones. */
export async function listOwnRequests(
  db: Db,
  actor: Actor,
  limit: number,
): Promise<{ requests: RequestRow[]; more: boolean }> {
  const rows = await db
    .selectFrom('requests')
    .selectAll()
    .where('requester_object_id', '=', actor.objectId)
    .where('requester_tenant_id', '=', actor.tenantId)
    .orderBy('created_at', 'desc')
    .limit(limit + 1)
    .execute();
  return { requests: rows.slice(0, limit), more: rows.length > limit };
}
