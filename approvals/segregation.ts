/**
 * Segregation of duties: who may decide a written request. The rules
 * themselves live in core/approval-check.ts, shared with the engine, which
 * re-checks every stored decision before it runs anything; this module turns
 * them into errors for the approval workflow and adds the rules of a new
 * decision (one per approver, a pending request, a written comment).
 */
import {
  approverEligibility,
  type ApprovalCheckOptions,
  type Decider,
} from '../core/approval-check.ts';
import type { Db } from '../core/db/database.ts';
import type { Decision, Principal, RequestRow } from '../core/db/schema.ts';
import { conflict, forbidden } from '../core/errors.ts';
import { checkComment, formatUtc } from './rules.ts';

export type { Decider };

/**
 * Throws forbidden unless the person may decide this request: they are not its
 * requester, they sign in to the provider's tenant, they hold the role
 * 'approver' there, and they were granted it before the cooldown. Returns their
 * principal row.
 */
export async function assertApproverEligible(
  db: Db,
  options: ApprovalCheckOptions,
  decider: Decider,
  request: RequestRow,
  now = new Date(),
): Promise<Principal> {
  const eligible = await approverEligibility(db, options, decider, request, now);
  if ('principal' in eligible) return eligible.principal;
  throw forbidden(eligible.message, { rule: eligible.rule });
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
  options: ApprovalCheckOptions,
  decider: Decider,
  request: RequestRow,
  comment: string | undefined,
  now = new Date(),
): Promise<{ principal: Principal; comment: string }> {
  const principal = await assertApproverEligible(db, options, decider, request, now);

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
