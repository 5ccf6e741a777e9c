/**
 * Telling Teams about a decision: the requester reads it in their chat with
 * the bot, and the approval card shows it. Decisions made on the card itself
 * are answered inside the invoke (./actions.ts); those made in the portal or
 * the API arrive here through `announceDecision`.
 */
import type { Decision, RequestRow } from '../core/db/schema.ts';
import { refreshApprovalCard } from './approvers.ts';
import { requestStatusCard, statusLabel } from './cards.ts';
import { cardActivity } from './conversations.ts';
import { referenceOfPointer, type BotDeps } from './deps.ts';

/** Tells the requester, in their chat with the bot, how their request was decided. */
export async function tellRequester(
  deps: BotDeps,
  request: RequestRow,
  decision: Decision,
): Promise<void> {
  const pointer = request.requester_conversation;
  if (!pointer) return;
  try {
    const reference = await referenceOfPointer(deps, pointer);
    if (!reference) return;
    const verdict = decision.decision === 'approve' ? 'approved' : 'rejected';
    const note = `${decision.approver_name} ${verdict} your request: "${decision.comment}"`;
    const activity = cardActivity(requestStatusCard(request, note));
    activity.text = `Request ${request.id} is ${statusLabel(request.status)}.`;
    await deps.outbox.send(reference, activity);
  } catch (error) {
    deps.log.error({ err: error, requestId: request.id }, 'requester_notice_failed');
  }
}

/**
 * Updates the approval card after a decision taken outside Teams and, once the
 * request is settled, tells the requester. A request still waiting for more
 * approvals keeps its buttons, showing the approvals given so far.
 */
export async function announceDecision(
  deps: BotDeps,
  request: RequestRow,
  decision: Decision,
): Promise<void> {
  await refreshApprovalCard(deps, request);
  if (request.status !== 'pending') await tellRequester(deps, request, decision);
}
