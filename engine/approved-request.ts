/**
 * The gate every approved piece of work passes before the engine runs it, and
 * how the work's end is recorded. The engine does its own approval check,
 * whatever the caller: the request must be of the expected kind and approved,
 * its content must still hash to what the approvers approved, enough
 * approvers from outside the requester's tenant must have approved that exact
 * content, and nobody may have rejected it. Only then is the request claimed,
 * with a state check in the UPDATE, so two workers running the same job run
 * it once. A refusal is audited, closes an approved request that can never
 * run, and tells the requester.
 */
import { approvalProblem, type ApprovalCheckOptions } from '../core/approval-check.ts';
import { appendAudit, serviceActor } from '../core/audit.ts';
import type { Db } from '../core/db/database.ts';
import type { RequestKind, RequestRow } from '../core/db/schema.ts';
import { forbidden, publicMessageOf } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { EngineNotices, RestoreFinished } from './notices.ts';

export interface ApprovedRequestDeps {
  db: Db;
  notices: EngineNotices;
  /** The segregation rules every stored decision is re-checked against (core/approval-check.ts). */
  approvalCheck?: ApprovalCheckOptions;
}

/** States in which the request was already taken by an earlier run: a repeated job does nothing. */
const ALREADY_HANDLED = new Set(['running', 'completed', 'failed']);

const LABELS: Partial<Record<RequestKind, string>> = {
  file_restore: 'a file restore',
  vm_restore: 'a VM restore',
  disk_restore: 'a disk restore',
};

/**
 * Checks the approval of request `requestId` for work of `kind` and claims it.
 * Returns the claimed request, or undefined when an earlier or concurrent run
 * has it; throws forbidden (after auditing and closing it) when it may not run.
 */
export async function claimApprovedRequest(
  deps: ApprovedRequestDeps,
  log: Logger,
  requestId: string,
  kind: RequestKind,
): Promise<RequestRow | undefined> {
  const request = await deps.db
    .selectFrom('requests')
    .selectAll()
    .where('id', '=', requestId)
    .executeTakeFirst();
  if (!request)
    return refuse(
      deps,
      log,
      requestId,
      undefined,
      `Request ${requestId} does not exist, so nothing was restored.`,
    );
  if (ALREADY_HANDLED.has(request.status)) {
    log.info({ status: request.status }, 'request_already_handled');
    return undefined;
  }
  if (request.kind !== kind)
    return refuse(
      deps,
      log,
      requestId,
      request,
      `Request ${requestId} is a ${request.kind} request, not ${LABELS[kind] ?? kind}; nothing was restored.`,
    );
  if (request.status !== 'approved')
    return refuse(
      deps,
      log,
      requestId,
      request,
      `Request ${requestId} is ${request.status}, not approved; nothing was restored.`,
    );

  const problem = await approvalProblem(deps.db, deps.approvalCheck ?? {}, request);
  if (problem) return refuse(deps, log, requestId, request, problem);

  const claimed = await deps.db
    .updateTable('requests')
    .set({ status: 'running' })
    .where('id', '=', requestId)
    .where('status', '=', 'approved')
    .returning('id')
    .executeTakeFirst();
  if (!claimed) {
    log.info('request_claimed_elsewhere');
    return undefined;
  }
  return request;
}

/** Records a claimed request's success: its result, the `restore.complete` audit entry, the requester's notice. */
export async function completeRequest(
  deps: ApprovedRequestDeps,
  request: RequestRow,
  result: Record<string, unknown>,
  notice: Omit<RestoreFinished, 'requestId' | 'outcome' | 'kind'>,
): Promise<void> {
  await deps.db
    .updateTable('requests')
    .set({ status: 'completed', finished_at: new Date(), result: JSON.stringify(result) })
    .where('id', '=', request.id)
    .where('status', '=', 'running')
    .execute();
  await appendAudit(deps.db, {
    actor: serviceActor,
    channel: 'engine',
    action: 'restore.complete',
    resource: `request/${request.id}`,
    outcome: 'success',
    details: { customerId: request.customer_id, ...result },
  });
  await deps.notices.restoreFinished({
    requestId: request.id,
    kind: request.kind,
    outcome: 'completed',
    ...notice,
  });
}

/** Records a claimed request's failure: status failed, `restore.fail` audited, the requester told why. */
export async function failRequest(
  deps: ApprovedRequestDeps,
  log: Logger,
  request: RequestRow,
  error: unknown,
  result: Record<string, unknown> = {},
): Promise<void> {
  const message = publicMessageOf(error);
  log.error({ err: error }, 'restore_failed');
  await deps.db
    .updateTable('requests')
    .set({
      status: 'failed',
      finished_at: new Date(),
      result: JSON.stringify({ message, ...result }),
    })
    .where('id', '=', request.id)
    .where('status', '=', 'running')
    .execute();
  await appendAudit(deps.db, {
    actor: serviceActor,
    channel: 'engine',
    action: 'restore.fail',
    resource: `request/${request.id}`,
    outcome: 'failed',
    details: { customerId: request.customer_id, message, ...result },
  });
  await deps.notices.restoreFinished({
    requestId: request.id,
    kind: request.kind,
    outcome: 'failed',
    message,
  });
}

async function refuse(
  deps: ApprovedRequestDeps,
  log: Logger,
  requestId: string,
  request: RequestRow | undefined,
  reason: string,
): Promise<never> {
  log.warn({ reason }, 'restore_refused');
  await appendAudit(deps.db, {
    actor: serviceActor,
    channel: 'engine',
    action: 'restore.refuse',
    resource: `request/${requestId}`,
    outcome: 'refused',
    details: { customerId: request?.customer_id, reason },
  });

  // An approved request whose approval does not hold can never run: close it and tell the requester.
  if (request?.status === 'approved') {
    const failed = await deps.db
      .updateTable('requests')
      .set({
        status: 'failed',
        finished_at: new Date(),
        result: JSON.stringify({ message: reason }),
      })
      .where('id', '=', requestId)
      .where('status', '=', 'approved')
      .returning('id')
      .executeTakeFirst();
    if (failed)
      await deps.notices.restoreFinished({
        requestId,
        kind: request.kind,
        outcome: 'failed',
        message: reason,
      });
  }
  throw forbidden(reason, { requestId });
}
