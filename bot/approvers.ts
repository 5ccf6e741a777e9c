/**
 * The provider's approvers' conversation: posting a new approval card there,
 * and replacing it later with the decision and the restore's outcome. Failures
 * here are logged and never undo the request: approvers also see it in the portal.
 */
import type { RequestRow } from '../core/db/schema.ts';
import { settlingDecision } from '../approvals/index.ts';
import { approvalCard, decidedCard } from './cards.ts';
import { cardActivity, pointerOf, referenceFor } from './conversations.ts';
import { customerOfRequest, referenceOfPointer, type BotDeps } from './deps.ts';

/** Posts the approval card; returns false when the approvers' conversation is not configured or unreachable. */
export async function postApprovalCard(deps: BotDeps, request: RequestRow): Promise<boolean> {
  const log = deps.log.child({ requestId: request.id });
  const { conversationId, serviceUrl } = deps.approvers;
  if (!conversationId) {
    log.warn('approvers_conversation_unset');
    return false;
  }
  const reference = await referenceFor(deps.db, conversationId, serviceUrl, deps.botAppId);
  if (!reference) {
    log.warn({ conversationId }, 'approvers_conversation_unknown');
    return false;
  }

  try {
    const customer = await customerOfRequest(deps.db, request);
    const activityId = await deps.outbox.send(
      reference,
      cardActivity(approvalCard(request, customer)),
    );
    await deps.approvals.setApprovalCard(request.id, pointerOf(reference, activityId));
    log.info({ conversationId, activityId }, 'approval_card_posted');
    return true;
  } catch (error) {
    log.error({ err: error, conversationId }, 'approval_card_failed');
    return false;
  }
}

/**
 * Replaces the request's approval card with its current state: still open with
 * the approvals given so far while pending, else the decision, then the outcome.
 */
export async function refreshApprovalCard(
  deps: BotDeps,
  request: RequestRow,
  result = '',
): Promise<void> {
  const pointer = request.approval_card;
  if (!pointer?.activityId) return;
  const log = deps.log.child({ requestId: request.id });

  try {
    const reference = await referenceOfPointer(deps, pointer);
    if (!reference) return;
    const customer = await customerOfRequest(deps.db, request);
    const card =
      request.status === 'pending'
        ? approvalCard(request, customer)
        : decidedCard(request, customer, await settlingDecision(deps.db, request.id), result);
    await deps.outbox.update(reference, pointer.activityId, cardActivity(card));
  } catch (error) {
    log.error({ err: error }, 'approval_card_update_failed');
  }
}
