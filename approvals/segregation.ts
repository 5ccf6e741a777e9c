/**
 * Segregation of duties: who may decide a written request. The approval
 * workflow calls assertMayDecide before every decision; the engine and the
 * portal call assertApproverEligible to re-check a stored decision, so the rule
 * lives in one place.
 */
import type { Db } from '../core/db/database.ts';
import type { Decision, Principal, RequestRow } from '../core/db/schema.ts';
import { conflict, forbidden } from '../core/errors.ts';
import { checkComment, formatUtc } from './rules.ts';

/** The person deciding, as far as the rules care. */
export interface Decider {
  objectId: string;
  tenantId: string;
}

/**
 * Throws forbidden unless the person may decide this request: they are not its
 * requester, they sign in to the provider's tenant, and they hold the role
 * 'approver' there. Returns their principal row.
 */
export async function assertApproverEligible(
  db: Db,
  providerTenantId: string,
  decider: Decider,
  request: RequestRow,
): Promise<Principal> {
  // Entra object ids are GUIDs, which may arrive in either case.
  if (decider.objectId.toLowerCase() === request.requester_object_id.toLowerCase()) {
    throw forbidden(
      `You asked for request ${request.id} yourself, so you cannot decide it. Another approver of the provider must decide it.`,
      { rule: 'no_self_approval' },
    );
  }
  if (decider.tenantId !== providerTenantId || request.requester_tenant_id === decider.tenantId) {
    throw forbidden(
      `Only the provider's approvers can decide requests; you are signed in to tenant ${decider.tenantId}, which is not the provider's. Ask the provider to decide request ${request.id}.`,
      { rule: 'provider_tenant_only' },
    );
  }

  const principal = await db
    .selectFrom('principals')
    .selectAll()
    .where('tenant_id', '=', decider.tenantId)
    .where('object_id', '=', decider.objectId)
    .where('role', '=', 'approver')
    .executeTakeFirst();
  if (!principal) {
    throw forbidden(
      `You do not hold the approver role, so you cannot decide request ${request.id}. An operator can grant the role in the portal.`,
      { rule: 'approver_role' },
    );
  }
  return principal;
}

/** The decision that settled a request, if any, for messages that say who decided. */
export async function settlingDecision(db: Db, requestId: string): Promise<Decision | undefined> {
  return db
    .selectFrom('decisions')
    .selectAll()
    .where('request_id', '=', requestId)
    .orderBy('created_at', 'desc')
    .limit(1)
    .executeTakeFirst();
}

const pastTense = { approve: 'approved', reject: 'rejected' } as const;

/**
 * Every rule a new decision must pass: an eligible approver (see above), one
 * decision per approver, a request still pending and not expired, and a
 * written comment. Throws forbidden, conflict or bad_input; an expired request
 * throws conflict with details.expired set, so the caller can mark it.
 */
export async function assertMayDecide(
  db: Db,
  providerTenantId: string,
  decider: Decider,
  request: RequestRow,
  comment: string | undefined,
  now = new Date(),
): Promise<{ principal: Principal; comment: string }> {
  const principal = await assertApproverEligible(db, providerTenantId, decider, request);

  const own = await db
    .selectFrom('decisions')
    .selectAll()
    .where('request_id', '=', request.id)
    .where('approver_object_id', '=', decider.objectId)
    .executeTakeFirst();
  if (own) {
    throw conflict(
      `You already ${pastTense[own.decision]} request ${request.id} at ${formatUtc(own.created_at)}. Each approver decides once.`,
      { rule: 'one_decision_per_approver', sameApprover: true },
    );
  }

  if (request.status !== 'pending') {
    const settled = await settlingDecision(db, request.id);
    const by = settled ? ` by ${settled.approver_name} at ${formatUtc(settled.created_at)}` : '';
    const what =
      settled &&
      (request.status === 'approved' ||
        request.status === 'rejected' ||
        ['running', 'completed', 'failed'].includes(request.status))
        ? pastTense[settled.decision]
        : request.status;
    throw conflict(
      `Request ${request.id} was already ${what}${by}; it is now ${request.status} and takes no further decisions.`,
      { rule: 'pending_only', status: request.status },
    );
  }
  if (request.expires_at.getTime() <= now.getTime()) {
    throw conflict(
      `Request ${request.id} expired at ${formatUtc(request.expires_at)} without a decision. The requester can ask again.`,
      { rule: 'not_expired', expired: true },
    );
  }

  return { principal, comment: checkComment(comment) };
}
