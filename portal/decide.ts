/**
 * Deciding a request from the portal or the API. The approvals module holds
 * every rule (who may decide, one decision per person, the content hash, the
 * state change) and records refusals in the audit log; this file only turns a
 * form or a JSON body into a call on it, and afterwards lets Teams know, so
 * that the approval card and the requester see a decision made outside Teams.
 */
import type { Approvals } from '../approvals/index.ts';
import type { AuditChannel, Decision, RequestRow } from '../core/db/schema.ts';
import { badInput, unavailable } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { Viewer } from './viewer.ts';

/** What the portal needs to take decisions. */
export interface PortalDecisions {
  approvals: Approvals;
  /** Updates the approval card in Teams and tells the requester; failures are the caller's to log. */
  announce?: (request: RequestRow, decision: Decision) => Promise<void>;
}

/** Reads `decision` and `comment` from a form or JSON body; bad_input names the wrong field. */
export function decisionInput(body: unknown): { decision: 'approve' | 'reject'; comment: string } {
  const fields = (body && typeof body === 'object' ? body : {}) as Record<string, unknown>;
  const decision = fields.decision;
  if (decision !== 'approve' && decision !== 'reject') {
    throw badInput('Say "approve" or "reject" in the field "decision".', { field: 'decision' });
  }
  const comment = typeof fields.comment === 'string' ? fields.comment : '';
  return { decision, comment };
}

/**
 * Records the viewer's decision through the approvals module and announces it
 * in Teams. Announcing never undoes a decision: it is logged when it fails.
 */
export async function decideAsViewer(
  decisions: PortalDecisions | undefined,
  log: Logger,
  viewer: Viewer,
  channel: Extract<AuditChannel, 'portal' | 'api'>,
  requestId: string,
  body: unknown,
): Promise<{ request: RequestRow; decision: Decision }> {
  if (!decisions) {
    throw unavailable(
      'This installation takes decisions in Teams only; the portal was started without the approval workflow.',
    );
  }
  const input = decisionInput(body);
  const actor = {
    objectId: viewer.objectId,
    tenantId: viewer.tenantId,
    name: viewer.name,
    channel,
  };

  const outcome = await decisions.approvals.decide(actor, requestId, input.decision, input.comment);

  try {
    await decisions.announce?.(outcome.request, outcome.decision);
  } catch (error) {
    log.error({ err: error, requestId: outcome.request.id }, 'decision_announce_failed');
  }
  return outcome;
}

/** Why a pending request shows this viewer no decision form; undefined when it shows one. */
export function whyNoDecision(
  viewer: Viewer,
  request: RequestRow,
  decided: Decision[],
): string | undefined {
  if (request.status !== 'pending' || mayOfferDecision(viewer, request, decided)) return undefined;
  if (viewer.scope.kind === 'customer')
    return "The service provider's approvers decide this request.";
  if (decided.some((d) => d.approver_object_id === viewer.objectId))
    return 'You have decided this request; each approver decides once. It waits for another approver.';
  if (request.requester_object_id.toLowerCase() === viewer.objectId.toLowerCase())
    return 'You asked for this request yourself, so another approver decides it.';
  return 'Only approvers decide requests; operators and auditors follow them here.';
}

/** True when the page should offer this viewer the decision form for this request. */
export function mayOfferDecision(
  viewer: Viewer,
  request: RequestRow,
  decided: Decision[],
): boolean {
  return (
    request.status === 'pending' &&
    viewer.scope.kind === 'provider' &&
    viewer.roles.includes('approver') &&
    request.requester_object_id.toLowerCase() !== viewer.objectId.toLowerCase() &&
    !decided.some((d) => d.approver_object_id === viewer.objectId)
  );
}
