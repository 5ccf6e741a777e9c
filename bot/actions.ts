/**
 * Adaptive Card actions (invoke `adaptiveCard/action`, Action.Execute). Every
 * action is answered inside the invoke: with a card that replaces the one the
 * person clicked, or with a message when nothing changed. A refusal is already
 * in the audit log (approvals writes it); here it only becomes words.
 */
import { TurnContext, type InvokeResponse } from 'botbuilder';
import { describeTarget, KIND_LABELS, type Actor } from '../approvals/index.ts';
import type { Decision, FileRestoreTarget, RequestRow } from '../core/db/schema.ts';
import { AcbaError, publicMessageOf } from '../core/errors.ts';
import { postApprovalCard, refreshApprovalCard } from './approvers.ts';
import { announceDecision } from './decisions.ts';
import { approvalCard, decidedCard, requestStatusCard, type Card } from './cards.ts';
import { pointerOf } from './conversations.ts';
import { customerOfRequest, type BotDeps } from './deps.ts';
import { actorOf, unidentifiedReply } from './identity.ts';
import { submitRestoreForm } from './restore-forms.ts';

type ActionData = Record<string, unknown>;

export const cardResponse = (card: Card): InvokeResponse => ({
  status: 200,
  body: { statusCode: 200, type: 'application/vnd.microsoft.card.adaptive', value: card },
});

export const messageResponse = (text: string): InvokeResponse => ({
  status: 200,
  body: { statusCode: 200, type: 'application/vnd.microsoft.activity.message', value: text },
});

const answerOf = (answer: Card | string): InvokeResponse =>
  typeof answer === 'string' ? messageResponse(answer) : cardResponse(answer);

const text = (value: unknown): string => (typeof value === 'string' ? value : '');

/** Reads verb and data; Teams may send the verb only inside data, or not at all. */
export function actionOf(value: unknown): { verb?: string; data: ActionData } {
  const action = (value as { action?: { verb?: unknown; data?: unknown } } | undefined)?.action;
  const data = action?.data && typeof action.data === 'object' ? (action.data as ActionData) : {};
  const verb = text(action?.verb) || text(data.verb) || undefined;
  return { verb, data };
}

export async function handleCardAction(
  deps: BotDeps,
  context: TurnContext,
): Promise<InvokeResponse> {
  const actor = actorOf(context.activity);
  if (!actor) return messageResponse(unidentifiedReply(context.activity));

  const { verb, data } = actionOf(context.activity.value);
  const log = deps.log.child({ verb, actor: actor.objectId });
  try {
    switch (verb) {
      case 'fileRestore.submit':
        return await submitFileRestore(deps, context, actor, data);
      case 'restoreRequest.submit':
        return cardResponse(await submitRestoreForm(deps, context, actor, data));
      case 'request.approve':
      case 'request.reject':
        return await decide(
          deps,
          actor,
          text(data.requestId),
          verb === 'request.approve' ? 'approve' : 'reject',
          text(data.comment),
        );
      case 'request.cancel':
        return answerOf(await cancelRequest(deps, actor, text(data.requestId)));
      case 'request.status':
        return cardResponse(
          requestStatusCard(await deps.approvals.getRequest(actor, text(data.requestId))),
        );
      default:
        log.info('card_action_unknown');
        return messageResponse(
          verb
            ? `I do not know the button "${verb}". It may come from an older card; type help in our chat to start again.`
            : 'That button did not tell me what to do. It may come from an older card or another app; type help in our chat to see what I can do.',
        );
    }
  } catch (error) {
    if (!(error instanceof AcbaError)) log.error({ err: error }, 'card_action_failed');
    return messageResponse(publicMessageOf(error));
  }
}

/** A pending request of the same person for the same file, sent moments ago: a double click or a retried delivery. */
async function recentTwin(
  deps: BotDeps,
  actor: Actor,
  data: ActionData,
): Promise<RequestRow | undefined> {
  const reason = text(data.reason).trim();
  if (reason === '') return undefined;
  // Someone who may not list requests gets their refusal (audited) from requestFileRestore instead.
  const pending = await deps.approvals
    .listRequests(actor, { status: 'pending', limit: 50 })
    .catch(() => []);
  return pending.find((r) => {
    const target = r.target as FileRestoreTarget;
    return (
      r.requester_object_id === actor.objectId &&
      target.vmName.toLowerCase() === text(data.vmName).trim().toLowerCase() &&
      target.path === text(data.path).trim() &&
      (!data.restorePointId || target.restorePointId === data.restorePointId) &&
      r.reason.startsWith(reason) &&
      Date.now() - new Date(r.created_at as unknown as string).getTime() < 10 * 60_000
    );
  });
}

async function submitFileRestore(
  deps: BotDeps,
  context: TurnContext,
  actor: Actor,
  data: ActionData,
): Promise<InvokeResponse> {
  const twin = await recentTwin(deps, actor, data);
  if (twin)
    return cardResponse(
      requestStatusCard(twin, 'You already sent this request; it is waiting for approval.'),
    );

  const at = text(data.at) ? new Date(text(data.at)) : undefined;
  const request = await deps.approvals.requestFileRestore(actor, {
    vmName: text(data.vmName),
    path: text(data.path),
    at: at && !Number.isNaN(at.getTime()) ? at : undefined,
    restorePointId: text(data.restorePointId) || undefined,
    reason: text(data.reason),
    ticket: text(data.ticket) || undefined,
  });

  const here = TurnContext.getConversationReference(context.activity);
  await deps.approvals.setRequesterConversation(
    request.id,
    pointerOf(here, context.activity.replyToId),
  );

  const posted = await postApprovalCard(deps, request);
  const note = posted
    ? "Sent to the provider's approvers. I will write to you here when it is decided and when the file is ready."
    : "Saved. The provider's approvers will see it in the portal; I will write to you here when it is decided.";
  return cardResponse(requestStatusCard(request, note));
}

async function decide(
  deps: BotDeps,
  actor: Actor,
  requestId: string,
  decision: 'approve' | 'reject',
  comment: string,
): Promise<InvokeResponse> {
  // An approver who already decided (a double click, a delivery repeated on another process) sees
  // where the request stands; a second attempt would only be refused and audited as a refusal.
  if (await hasDecided(deps, actor, requestId)) return currentStateCard(deps, actor, requestId);

  let outcome: { request: RequestRow; decision: Decision };
  try {
    outcome = await deps.approvals.decide(actor, requestId, decision, comment);
  } catch (error) {
    // The same approver clicking again (or Teams retrying) sees the current state, not an error.
    if (error instanceof AcbaError && error.kind === 'conflict' && error.details.sameApprover) {
      return currentStateCard(deps, actor, requestId);
    }
    throw error;
  }

  // The answer below changes the clicker's view; the other approvers see the shared card updated.
  await announceDecision(deps, outcome.request, outcome.decision);
  const customer = await customerOfRequest(deps.db, outcome.request);
  // Still pending after an approval: more approvers are needed, so the card stays open for them.
  if (outcome.request.status === 'pending') {
    return cardResponse(approvalCard(outcome.request, customer));
  }
  return cardResponse(decidedCard(outcome.request, customer, outcome.decision));
}

async function hasDecided(deps: BotDeps, actor: Actor, requestId: string): Promise<boolean> {
  // Someone who may not see the request gets their refusal (audited) from decide instead.
  const decisions = await deps.approvals.listDecisions(actor, requestId).catch(() => []);
  return decisions.some(
    (d) => d.approver_object_id === actor.objectId && d.approver_tenant_id === actor.tenantId,
  );
}

/** The request as it stands: still open for other approvers while pending, else its outcome. */
async function currentStateCard(
  deps: BotDeps,
  actor: Actor,
  requestId: string,
): Promise<InvokeResponse> {
  const request = await deps.approvals.getRequest(actor, requestId);
  const decisions = await deps.approvals.listDecisions(actor, requestId);
  const customer = await customerOfRequest(deps.db, request);
  if (request.status === 'pending') {
    return messageResponse(
      `You already decided request ${request.id}; each approver decides once. It has ${request.approvals_given} of ${request.approvals_required} approvals and waits for another approver.`,
    );
  }
  return cardResponse(decidedCard(request, customer, decisions.at(-1)));
}

/**
 * Cancels the person's own pending request through the workflow, which checks
 * that it is theirs and audits refusals, and updates the approvers' card.
 */
export async function cancelRequest(
  deps: BotDeps,
  actor: Actor,
  requestId: string,
): Promise<Card | string> {
  const request = await deps.approvals.cancel(actor, requestId);
  await refreshApprovalCard(deps, request);
  // The status card describes file restores; other kinds (written in the portal or the API) get words.
  if (request.kind !== 'file_restore') {
    return `You cancelled request ${request.id} (${KIND_LABELS[request.kind]}: ${describeTarget(request.kind, request.target)}); nothing will be done.`;
  }
  return requestStatusCard(request, 'You cancelled this request; nothing will be restored.');
}
