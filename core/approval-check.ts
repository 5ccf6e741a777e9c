/**
 * The segregation-of-duties rules over stored rows, in one place: the approval
 * workflow checks a decider with them before recording a decision, and the
 * engine re-checks every stored decision with them before it runs anything. A
 * person may approve a request when they are not its requester, sign in to the
 * provider's tenant, hold the approver role there, and were granted that role
 * at least the cooldown before they decide. The engine depends on this module
 * and not on approvals/, so the rules cannot drift apart.
 */
import type { Db } from './db/database.ts';
import type { Principal, RequestRow } from './db/schema.ts';
import { requestContentHash } from './request-hash.ts';

/** How long a newly granted approver waits before they may approve, unless configured. */
export const DEFAULT_APPROVER_COOLDOWN_HOURS = 24;

export interface ApprovalCheckOptions {
  /** The provider's tenant; when unset only the rule that approvers are outside the requester's tenant applies. */
  providerTenantId?: string;
  /** Hours between being granted the approver role and approving; 24 by default. */
  cooldownHours?: number;
}

/** The person deciding, as far as the rules care. */
export interface Decider {
  objectId: string;
  tenantId: string;
}

/** Why a person may not approve: the rule's id and a message naming the request and what to do. */
export interface Ineligibility {
  rule: 'no_self_approval' | 'provider_tenant_only' | 'approver_role' | 'approver_cooldown';
  message: string;
}

/** The hashed content of a stored request, recomputed the same way everywhere. */
export function contentHashOf(
  row: Pick<
    RequestRow,
    | 'id'
    | 'customer_id'
    | 'kind'
    | 'target'
    | 'reason'
    | 'requester_object_id'
    | 'requester_tenant_id'
  > & { ticket?: string | null },
): string {
  return requestContentHash({
    id: row.id,
    customerId: row.customer_id,
    kind: row.kind,
    target: row.target,
    reason: row.reason,
    requesterObjectId: row.requester_object_id,
    requesterTenantId: row.requester_tenant_id,
    ticket: row.ticket,
  });
}

/**
 * Checks whether the person may approve the request at time `at` (now for a new
 * decision, the decision's time when the engine re-checks it). Returns their
 * approver principal, or why they may not.
 */
export async function approverEligibility(
  db: Db,
  options: ApprovalCheckOptions,
  decider: Decider,
  request: Pick<RequestRow, 'id' | 'requester_object_id' | 'requester_tenant_id'>,
  at: Date = new Date(),
): Promise<{ principal: Principal } | Ineligibility> {
  // Entra object ids are GUIDs, which may arrive in either case.
  if (decider.objectId.toLowerCase() === request.requester_object_id.toLowerCase()) {
    return {
      rule: 'no_self_approval',
      message: `You asked for request ${request.id} yourself, so you cannot decide it. Another approver of the provider must decide it.`,
    };
  }
  // Requests the provider's own operators write (data access, say) come from the provider's
  // tenant; its other approvers decide them. Without a configured provider tenant, nobody
  // from the requester's tenant does.
  const outsider =
    options.providerTenantId !== undefined
      ? decider.tenantId !== options.providerTenantId
      : request.requester_tenant_id === decider.tenantId;
  if (outsider) {
    return {
      rule: 'provider_tenant_only',
      message: `Only the provider's approvers can decide requests; you are signed in to tenant ${decider.tenantId}, which is not the provider's. Ask the provider to decide request ${request.id}.`,
    };
  }

  const principal = await db
    .selectFrom('principals')
    .selectAll()
    .where('tenant_id', '=', decider.tenantId)
    .where('object_id', '=', decider.objectId)
    .where('role', '=', 'approver')
    .executeTakeFirst();
  if (!principal) {
    return {
      rule: 'approver_role',
      message: `You do not hold the approver role, so you cannot decide request ${request.id}: operators and auditors follow requests but do not decide them. If you should approve, ask your administrator for the approver role (an ACBA app role in Microsoft Entra ID).`,
    };
  }

  const cooldownMs = (options.cooldownHours ?? DEFAULT_APPROVER_COOLDOWN_HOURS) * 3600_000;
  const grantedAt = principal.granted_at ? new Date(principal.granted_at) : undefined;
  if (grantedAt && at.getTime() - grantedAt.getTime() < cooldownMs) {
    const from = new Date(grantedAt.getTime() + cooldownMs);
    return {
      rule: 'approver_cooldown',
      message: `You were granted the approver role at ${grantedAt.toISOString()}, less than ${cooldownMs / 3600_000} hours ago, so you cannot decide request ${request.id} yet. Another approver can decide it, or you can from ${from.toISOString()}.`,
    };
  }
  return { principal };
}

/**
 * Why the request's approvals do not allow running its work now, or undefined
 * when they do: it must be approved and not past its start-by time, its content
 * must still hash to what was approved, nobody may have rejected it, and enough
 * distinct eligible approvers must have approved that exact content.
 */
export async function approvalProblem(
  db: Db,
  options: ApprovalCheckOptions,
  request: RequestRow,
  now: Date = new Date(),
): Promise<string | undefined> {
  if (request.status !== 'approved')
    return `Request ${request.id} is ${request.status}, not approved; nothing was run.`;
  if (request.start_by && new Date(request.start_by).getTime() <= now.getTime()) {
    return `Request ${request.id} was approved but not started before ${new Date(request.start_by).toISOString()}, so its approval has expired; nothing was run. The requester can ask again.`;
  }

  const hash = contentHashOf(request);
  if (hash !== request.content_hash) {
    return `Request ${request.id} was changed after it was written (its content no longer matches its recorded hash); nothing was run. Write a new request.`;
  }

  const decisions = await db
    .selectFrom('decisions')
    .selectAll()
    .where('request_id', '=', request.id)
    .execute();
  const rejection = decisions.find((d) => d.decision === 'reject');
  if (rejection)
    return `Request ${request.id} was rejected by ${rejection.approver_name}; nothing was run.`;

  const valid = new Set<string>();
  for (const d of decisions) {
    if (d.decision !== 'approve' || d.request_hash !== hash) continue;
    const decider = { objectId: d.approver_object_id, tenantId: d.approver_tenant_id };
    const eligible = await approverEligibility(db, options, decider, request, d.created_at);
    if ('principal' in eligible)
      valid.add(`${d.approver_tenant_id}/${d.approver_object_id.toLowerCase()}`);
  }
  if (valid.size < request.approvals_required) {
    return `Request ${request.id} needs ${request.approvals_required} approval(s) of its current content by distinct eligible approvers of the provider and has ${valid.size}; nothing was run.`;
  }
  return undefined;
}
