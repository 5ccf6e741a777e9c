/**
 * The written-approval workflow over the database: requests, decisions,
 * cancellation and expiry, each step written to the audit log, refusals
 * included. See ./index.ts for the state machine.
 */
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { appendAudit } from '../core/audit.ts';
import { clip, QUOTE_LENGTH } from '../core/clip.ts';
import type { Db } from '../core/db/database.ts';
import type {
  AuditChannel,
  ConversationPointer,
  Customer,
  Decision,
  FileRestoreTarget,
  ProtectedItem,
  RequestKind,
  RequestRow,
  RequestStatus,
  RequestTarget,
  RestorePoint,
} from '../core/db/schema.ts';
import { AcbaError, badInput, conflict, forbidden, notFound, unavailable } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { approvalWait, secondsSince } from '../core/metrics.ts';
import { contentHashOf, type ApprovalCheckOptions } from '../core/approval-check.ts';
import type { JobQueue } from '../engine/queue.ts';
import {
  checkFilePath,
  checkReason,
  checkTicket,
  formatUtc,
  MAX_PATH_LENGTH,
  plausibleId,
  toDate,
} from './rules.ts';
import {
  assertRequester,
  customerOf,
  findCustomer,
  resolveItem,
  resolveRestorePoint,
} from './lookup.ts';
import { assertMayDecide } from './segregation.ts';
import { evaluateApprovalRules, type ApprovalRule } from './approval-rules.ts';
import {
  EXECUTABLE_KINDS,
  isOtherKind,
  KIND_LABELS,
  PROVIDER_KINDS,
  resolveTarget,
} from './request-kinds.ts';
import { restoreChoices, type RestoreChoices } from './restore-forms.ts';

/** Who is acting, from the Teams activity or the portal session. */
export interface Actor {
  objectId: string;
  tenantId: string;
  name: string;
  channel: AuditChannel;
}

export interface ApprovalsOptions {
  db: Db;
  log: Logger;
  /** Where approved work goes (engine/queue.ts). */
  queue: JobQueue;
  /** The provider's Entra tenant; only its approvers decide. */
  providerTenantId: string;
  /** How long a request waits for a decision; 24 hours by default. */
  requestTtlHours?: number;
  /** How long approved work may wait to be started; 24 hours by default. */
  approvedWorkTtlHours?: number;
  /** Hours a newly granted approver waits before approving; 24 by default. */
  approverCooldownHours?: number;
  /** Configured approval rules (ACBA_APPROVAL_RULES); the defaults apply where none matches. */
  rules?: ApprovalRule[];
}

/** A request of any kind but file_restore, whose target is given as data (see request-kinds.ts). */
export interface RequestInput {
  kind: string;
  target: unknown;
  reason: string;
  ticket?: string;
}

export interface FileRestoreInput {
  vmName: string;
  path: string;
  /** Restore the newest restore point taken at or before this time; the newest of all when unset. */
  at?: Date;
  /** The exact restore point shown to the requester (from the preview); wins over `at`. */
  restorePointId?: string;
  reason: string;
  ticket?: string;
}

export interface FileRestorePreview {
  customer: Customer;
  item: ProtectedItem;
  restorePoint: RestorePoint;
}

export interface RequestFilter {
  status?: RequestStatus;
  limit?: number;
}

export type Approvals = ReturnType<typeof createApprovals>;

const KIND = 'file_restore' as const;

export { contentHashOf };

export function createApprovals(o: ApprovalsOptions) {
  const { db, queue, providerTenantId } = o;
  const ttlMs = (o.requestTtlHours ?? 24) * 3600_000;
  const startTtlMs = (o.approvedWorkTtlHours ?? 24) * 3600_000;
  const check: ApprovalCheckOptions = {
    providerTenantId,
    cooldownHours: o.approverCooldownHours,
  };
  const rules = o.rules ?? [];
  const log = o.log.child({ module: 'approvals' });

  async function audit(
    actor: Actor,
    role: string,
    action: string,
    resource: string,
    outcome: 'success' | 'refused',
    details: Record<string, unknown>,
  ) {
    await appendAudit(db, {
      actor: { objectId: actor.objectId, tenantId: actor.tenantId, name: actor.name, role },
      channel: actor.channel,
      action,
      resource,
      outcome,
      details,
    });
  }

  /** Runs a step; an AcbaError it throws is audited as a refusal and rethrown. */
  async function refusable<T>(
    actor: Actor,
    role: string,
    action: string,
    resource: string,
    facts: Record<string, unknown>,
    step: () => Promise<T>,
  ): Promise<T> {
    try {
      return await step();
    } catch (error) {
      if (error instanceof AcbaError) {
        // A refused person did not act in the role they tried; record where they came from instead.
        const from = actor.tenantId === providerTenantId ? 'provider_staff' : 'customer_user';
        await audit(actor, from, action, resource, 'refused', {
          ...facts,
          ...error.details,
          attemptedRole: role,
          kind: error.kind,
          reason: error.message,
        });
        log.info({ action, resource, kind: error.kind, actor: actor.objectId }, 'request_refused');
      }
      throw error;
    }
  }

  async function preview(
    actor: Actor,
    input: { vmName: string; path: string; at?: Date; restorePointId?: string },
  ): Promise<FileRestorePreview> {
    const customer = await customerOf(db, actor);
    await assertRequester(db, actor, customer);
    checkFilePath(input.path);
    if (input.at && Number.isNaN(input.at.getTime()))
      throw badInput('The restore time is not a valid date. Give it as 2026-12-01T14:00:00Z.');

    const item = await resolveItem(db, customer, input.vmName);
    const restorePoint = await resolveRestorePoint(db, item, input.at, input.restorePointId);
    return { customer, item, restorePoint };
  }

  /** The customer a request is about; checks the actor may ask for that kind there. */
  async function requestingCustomer(
    actor: Actor,
    kind: RequestKind,
    target: unknown,
  ): Promise<Customer> {
    if (!PROVIDER_KINDS.has(kind)) {
      const customer = await customerOf(db, actor);
      await assertRequester(db, actor, customer);
      return customer;
    }

    const operator =
      actor.tenantId === providerTenantId
        ? await db
            .selectFrom('principals')
            .select('object_id')
            .where('tenant_id', '=', actor.tenantId)
            .where('object_id', '=', actor.objectId)
            .where('role', '=', 'operator')
            .executeTakeFirst()
        : undefined;
    if (!operator) {
      throw forbidden(
        `Only the provider's operators can ask for ${KIND_LABELS[kind]}. Ask an operator of the provider to write the request.`,
        { rule: 'provider_operator_only' },
      );
    }
    const customerId = (target as { customerId?: unknown } | null)?.customerId;
    const customer =
      typeof customerId === 'string' && plausibleId(customerId)
        ? await db
            .selectFrom('customers')
            .selectAll()
            .where('id', '=', customerId)
            .executeTakeFirst()
        : undefined;
    if (!customer) {
      throw notFound(
        `There is no customer ${clip(String(customerId), QUOTE_LENGTH)}. Give the id of the customer whose backup you need to read.`,
      );
    }
    return customer;
  }

  /** A request the actor may see: the provider's staff see all, a customer's users only their customer's. */
  async function visibleRequest(actor: Actor, requestId: string): Promise<RequestRow> {
    const request = plausibleId(requestId)
      ? await db.selectFrom('requests').selectAll().where('id', '=', requestId).executeTakeFirst()
      : undefined;
    if (request && actor.tenantId === providerTenantId) return request;
    if (request) {
      const customer = await findCustomer(db, actor.tenantId);
      if (customer && customer.id === request.customer_id) return request;
    }
    throw notFound(
      `There is no request ${clip(requestId, QUOTE_LENGTH)} that you can see. Check the id in your request list.`,
      { requestId: clip(requestId, QUOTE_LENGTH) },
    );
  }

  async function markExpired(requestId: string): Promise<void> {
    await db
      .updateTable('requests')
      .set({ status: 'expired' })
      .where('id', '=', requestId)
      .where('status', '=', 'pending')
      .execute();
  }

  /** Stores a validated request with the approvals its rule requires, bound to its content hash. */
  async function writeRequest(
    actor: Actor,
    customer: Customer,
    kind: RequestKind,
    target: RequestTarget,
    reason: string,
    ticket: string | undefined,
  ): Promise<RequestRow> {
    const id = randomUUID();
    const rule = evaluateApprovalRules(rules, {
      kind,
      customerId: customer.id,
      target,
      ticket,
      requester: { objectId: actor.objectId, tenantId: actor.tenantId },
    });
    const base = {
      id,
      customer_id: customer.id,
      kind,
      target,
      reason,
      ticket: ticket ?? null,
      requester_object_id: actor.objectId,
      requester_tenant_id: actor.tenantId,
    };

    const row = await db
      .insertInto('requests')
      .values({
        ...base,
        target: JSON.stringify(target),
        status: 'pending',
        requester_name: actor.name,
        content_hash: contentHashOf(base),
        approvals_required: rule.approvalsRequired,
        approval_rule: rule.ruleId,
        expires_at: new Date(Date.now() + ttlMs),
      })
      .returningAll()
      .executeTakeFirstOrThrow();

    await audit(actor, 'requester', 'request.create', `request/${id}`, 'success', {
      customerId: customer.id,
      requestId: id,
      kind,
      target,
      ticket,
      contentHash: row.content_hash,
      approvalsRequired: rule.approvalsRequired,
      approvalRule: rule.ruleId,
    });
    log.info(
      { requestId: id, customerId: customer.id, kind, approvalRule: rule.ruleId },
      'request_created',
    );
    return row;
  }

  /** Hands approved work to the engine's queue; kinds the engine cannot run yet stay approved. */
  async function enqueue(request: RequestRow): Promise<void> {
    if (!EXECUTABLE_KINDS.has(request.kind)) return;
    try {
      await queue.enqueueFileRestore({ requestId: request.id });
    } catch (error) {
      log.error({ err: error, requestId: request.id }, 'enqueue_failed');
      throw unavailable(
        `Request ${request.id} is approved, but its restore could not be queued. The operators have been told; it will not run until they queue it again.`,
        { requestId: request.id },
      );
    }
  }

  return {
    /** The customer whose tenant the actor signs in to; forbidden for anyone else. */
    customerOf: (actor: Actor): Promise<Customer> => customerOf(db, actor),

    /** What a file restore would use (customer, VM, restore point), before the requester writes a reason. */
    async previewFileRestore(
      actor: Actor,
      input: { vmName: string; path: string; at?: Date; restorePointId?: string },
    ): Promise<FileRestorePreview> {
      return refusable(
        actor,
        'requester',
        'request.preview',
        `vm/${clip(input.vmName, QUOTE_LENGTH)}`,
        { tenantId: actor.tenantId },
        () => preview(actor, input),
      );
    },

    /** What the restore forms offer the actor: their customer's VMs and databases with current backups. */
    async restoreChoices(actor: Actor): Promise<RestoreChoices> {
      const facts = { tenantId: actor.tenantId };
      return refusable(actor, 'requester', 'request.preview', 'restore-forms', facts, async () => {
        const customer = await customerOf(db, actor);
        await assertRequester(db, actor, customer);
        return restoreChoices(db, customer);
      });
    },

    /** Creates a pending file-restore request, validated and bound to its content hash. */
    async requestFileRestore(actor: Actor, input: FileRestoreInput): Promise<RequestRow> {
      const facts: Record<string, unknown> = {
        tenantId: actor.tenantId,
        // What was asked is kept as evidence, but bounded: a refused attempt must not bloat the log.
        vmName: clip(input.vmName, QUOTE_LENGTH),
        path: clip(input.path, MAX_PATH_LENGTH),
      };
      const customer = await findCustomer(db, actor.tenantId);
      if (customer) facts.customerId = customer.id;

      return refusable(
        actor,
        'requester',
        'request.create',
        `vm/${clip(input.vmName, QUOTE_LENGTH)}`,
        facts,
        async () => {
          const { customer, item, restorePoint } = await preview(actor, input);
          const path = checkFilePath(input.path);
          const ticket = checkTicket(input.ticket);
          const reason = checkReason(input.reason);
          const target: FileRestoreTarget = {
            itemId: item.id,
            vmName: item.name,
            path,
            restorePointId: restorePoint.id,
            restorePointTime: restorePoint.created_at.toISOString(),
          };
          return writeRequest(actor, customer, KIND, target, reason, ticket);
        },
      );
    },

    /**
     * Creates a pending request of any other kind (disk, VM or SQL restore, data
     * access, deleting restore points, a retention change, the exit export). The
     * customer's requesters ask for all but data access, which the provider's
     * operators ask for, naming the customer in the target.
     */
    async createRequest(actor: Actor, input: RequestInput): Promise<RequestRow> {
      const kind = clip(String(input.kind), QUOTE_LENGTH);
      const facts: Record<string, unknown> = { tenantId: actor.tenantId, kind };

      return refusable(actor, 'requester', 'request.create', `kind/${kind}`, facts, async () => {
        if (!isOtherKind(input.kind)) {
          throw badInput(
            `There is no request kind "${kind}" to write this way. Use one of disk_restore, vm_restore, sql_restore, data_access, delete_restore_points, change_retention, exit_export; file restores have their own form.`,
          );
        }
        const customer = await requestingCustomer(actor, input.kind, input.target);
        facts.customerId = customer.id;
        const ticket = checkTicket(input.ticket);
        const reason = checkReason(input.reason);
        const target = await resolveTarget(db, customer, input.kind, input.target);
        return writeRequest(actor, customer, input.kind, target, reason, ticket);
      });
    },

    /**
     * Records an approver's written decision. A request that needs several
     * approvals stays pending until distinct approvers have given them; one
     * rejection ends it. The count and the status change in one
     * `UPDATE ... WHERE status = 'pending'`, which holds the row while it
     * counts, so two approvers clicking at once are counted one after the
     * other and the request is approved exactly when the last one lands; a
     * decision on a request settled meanwhile is rolled back and refused.
     */
    async decide(
      actor: Actor,
      requestId: string,
      decision: 'approve' | 'reject',
      comment: string,
    ): Promise<{ request: RequestRow; decision: Decision }> {
      const action = decision === 'approve' ? 'request.approve' : 'request.reject';
      const resource = `request/${clip(requestId, QUOTE_LENGTH)}`;
      const facts: Record<string, unknown> = { requestId: clip(requestId, QUOTE_LENGTH) };

      const outcome = await refusable(actor, 'approver', action, resource, facts, async () => {
        const request = await visibleRequest(actor, requestId);
        facts.customerId = request.customer_id;

        let checked;
        try {
          checked = await assertMayDecide(db, check, actor, request, comment);
        } catch (error) {
          if (error instanceof AcbaError && error.details.expired) await markExpired(request.id);
          throw error;
        }
        if (contentHashOf(request) !== request.content_hash) {
          throw conflict(
            `Request ${request.id} was changed after it was written, so it cannot be decided. Ask the requester to submit it again.`,
            { rule: 'content_hash' },
          );
        }

        return db.transaction().execute(async (trx) => {
          const stored = await trx
            .insertInto('decisions')
            .values({
              id: randomUUID(),
              request_id: request.id,
              decision,
              comment: checked.comment,
              approver_object_id: actor.objectId,
              approver_tenant_id: actor.tenantId,
              approver_name: checked.principal.display_name || actor.name,
              request_hash: request.content_hash,
            })
            .onConflict((oc) => oc.columns(['request_id', 'approver_object_id']).doNothing())
            .returningAll()
            .executeTakeFirst();
          if (!stored)
            throw conflict(
              `You already decided request ${request.id}. Each approver decides once.`,
              { rule: 'one_decision_per_approver', sameApprover: true },
            );

          const reached = sql<boolean>`approvals_given + 1 >= approvals_required`;
          const startBy = new Date(Date.now() + startTtlMs).toISOString();
          const updated =
            decision === 'reject'
              ? await trx
                  .updateTable('requests')
                  .set({ status: 'rejected', decided_at: new Date() })
                  .where('id', '=', request.id)
                  .where('status', '=', 'pending')
                  .returningAll()
                  .executeTakeFirst()
              : await trx
                  .updateTable('requests')
                  .set({
                    approvals_given: sql<number>`approvals_given + 1`,
                    status: sql<RequestStatus>`case when ${reached} then 'approved' else 'pending' end`,
                    decided_at: sql<Date>`case when ${reached} then now() else null end`,
                    start_by: sql<Date>`case when ${reached} then ${startBy}::timestamptz else null end`,
                  })
                  .where('id', '=', request.id)
                  .where('status', '=', 'pending')
                  .where('content_hash', '=', request.content_hash)
                  .returningAll()
                  .executeTakeFirst();
          if (!updated) {
            // Another decision settled the request between our read and this write.
            throw conflict(
              `Request ${request.id} was decided by someone else a moment ago. Refresh to see the outcome.`,
              { rule: 'pending_only' },
            );
          }
          return { request: updated, decision: stored };
        });
      });

      await audit(actor, 'approver', action, resource, 'success', {
        customerId: outcome.request.customer_id,
        requestId,
        decisionId: outcome.decision.id,
        comment: outcome.decision.comment,
        requestHash: outcome.decision.request_hash,
        status: outcome.request.status,
        approvalsGiven: outcome.request.approvals_given,
        approvalsRequired: outcome.request.approvals_required,
      });
      log.info(
        {
          requestId,
          decision,
          status: outcome.request.status,
          approvalsGiven: outcome.request.approvals_given,
        },
        'request_decided',
      );

      if (outcome.request.status === 'approved' || outcome.request.status === 'rejected')
        approvalWait.observe(
          { kind: outcome.request.kind, decision: outcome.request.status },
          secondsSince(toDate(outcome.request.created_at)),
        );
      if (outcome.request.status === 'approved') {
        const customer = await db
          .selectFrom('customers')
          .select('service_model')
          .where('id', '=', outcome.request.customer_id)
          .executeTakeFirstOrThrow();
        // Unmanaged customers start approved work themselves (start below).
        if (customer.service_model === 'managed') await enqueue(outcome.request);
      }
      return outcome;
    },

    /**
     * The requester starts their approved work, for customers on the unmanaged
     * service model; anyone else is refused. Approved work past its start-by
     * time expires instead.
     */
    async start(actor: Actor, requestId: string): Promise<RequestRow> {
      const resource = `request/${clip(requestId, QUOTE_LENGTH)}`;
      const facts: Record<string, unknown> = { requestId: clip(requestId, QUOTE_LENGTH) };

      const request = await refusable(
        actor,
        'requester',
        'request.start',
        resource,
        facts,
        async () => {
          const request = await visibleRequest(actor, requestId);
          facts.customerId = request.customer_id;
          assertOwnRequest(actor, request, 'start', 'requester_starts');
          const customer = await db
            .selectFrom('customers')
            .select('service_model')
            .where('id', '=', request.customer_id)
            .executeTakeFirstOrThrow();
          if (customer.service_model !== 'unmanaged') {
            throw conflict(
              `Request ${request.id} is started by the provider once approved (managed service); there is nothing for you to start.`,
              { rule: 'managed_starts_itself' },
            );
          }
          if (request.status !== 'approved') {
            throw conflict(
              `Request ${request.id} is ${request.status}, so it cannot be started; only approved requests start.`,
              { rule: 'approved_only', status: request.status },
            );
          }
          if (request.start_by && toDate(request.start_by).getTime() <= Date.now()) {
            await db
              .updateTable('requests')
              .set({ status: 'expired' })
              .where('id', '=', request.id)
              .where('status', '=', 'approved')
              .execute();
            throw conflict(
              `Request ${request.id} was approved but not started before ${formatUtc(request.start_by)}, so its approval has expired. Ask again.`,
              { rule: 'start_in_time' },
            );
          }
          if (!EXECUTABLE_KINDS.has(request.kind)) {
            throw conflict(
              `Request ${request.id} is approved, but ACBA cannot run a ${KIND_LABELS[request.kind]} yet; it waits for the engine with status approved.`,
              { rule: 'kind_not_executable' },
            );
          }
          await enqueue(request);
          return request;
        },
      );

      await audit(actor, 'requester', 'request.start', resource, 'success', {
        customerId: request.customer_id,
        requestId: request.id,
      });
      return request;
    },

    /** The requester withdraws their pending request. */
    async cancel(actor: Actor, requestId: string): Promise<RequestRow> {
      const resource = `request/${clip(requestId, QUOTE_LENGTH)}`;
      const facts: Record<string, unknown> = { requestId: clip(requestId, QUOTE_LENGTH) };

      const row = await refusable(
        actor,
        'requester',
        'request.cancel',
        resource,
        facts,
        async () => {
          const request = await visibleRequest(actor, requestId);
          facts.customerId = request.customer_id;
          assertOwnRequest(actor, request, 'cancel', 'requester_cancels');

          const updated = await db
            .updateTable('requests')
            .set({ status: 'cancelled', decided_at: new Date() })
            .where('id', '=', requestId)
            .where('status', '=', 'pending')
            .returningAll()
            .executeTakeFirst();
          if (!updated) {
            const now = await db
              .selectFrom('requests')
              .select('status')
              .where('id', '=', requestId)
              .executeTakeFirstOrThrow();
            throw conflict(
              `Request ${requestId} is ${now.status}, so it can no longer be cancelled.`,
              { status: now.status },
            );
          }
          return updated;
        },
      );

      await audit(actor, 'requester', 'request.cancel', resource, 'success', {
        customerId: row.customer_id,
        requestId,
      });
      return row;
    },

    /**
     * One request; not_found (never forbidden) when the actor may not see it, so
     * ids do not leak. Asking for another customer's request is audited.
     */
    async getRequest(actor: Actor, requestId: string): Promise<RequestRow> {
      try {
        return await visibleRequest(actor, requestId);
      } catch (error) {
        const owner = plausibleId(requestId)
          ? await db
              .selectFrom('requests')
              .select('customer_id')
              .where('id', '=', requestId)
              .executeTakeFirst()
          : undefined;
        if (owner)
          await refusable(
            actor,
            'reader',
            'request.read',
            `request/${requestId}`,
            { requestId, customerId: owner.customer_id },
            () => Promise.reject(error),
          );
        throw error;
      }
    },

    /** Requests the actor may see, newest first. */
    async listRequests(actor: Actor, filter: RequestFilter = {}): Promise<RequestRow[]> {
      let query = db.selectFrom('requests').selectAll();
      if (actor.tenantId !== providerTenantId) {
        const customer = await customerOf(db, actor);
        query = query.where('customer_id', '=', customer.id);
      }
      if (filter.status) query = query.where('status', '=', filter.status);
      return query
        .orderBy('created_at', 'desc')
        .limit(Math.min(filter.limit ?? 100, 1000))
        .execute();
    },

    /** The decisions on a request, oldest first (visibility as getRequest). */
    async listDecisions(actor: Actor, requestId: string): Promise<Decision[]> {
      await visibleRequest(actor, requestId);
      return db
        .selectFrom('decisions')
        .selectAll()
        .where('request_id', '=', requestId)
        .orderBy('created_at', 'asc')
        .execute();
    },

    /**
     * Marks pending requests past their expiry, and approved work not started by
     * its start-by time, as expired; returns how many. For the scheduler.
     */
    async expireOverdue(now = new Date()): Promise<number> {
      const rows = await db
        .updateTable('requests')
        .set({ status: 'expired' })
        .where((eb) =>
          eb.or([
            eb.and([eb('status', '=', 'pending'), eb('expires_at', '<=', now)]),
            eb.and([eb('status', '=', 'approved'), eb('start_by', '<=', now)]),
          ]),
        )
        .returning('id')
        .execute();
      for (const row of rows) {
        const request = await db
          .selectFrom('requests')
          .select('customer_id')
          .where('id', '=', row.id)
          .executeTakeFirstOrThrow();
        await appendAudit(db, {
          actor: {
            objectId: 'acba-service',
            tenantId: 'acba',
            name: 'ACBA service',
            role: 'service',
          },
          channel: 'scheduler',
          action: 'request.expire',
          resource: `request/${row.id}`,
          outcome: 'success',
          details: { customerId: request.customer_id, requestId: row.id },
        });
      }
      return rows.length;
    },

    /** Remembers the approval card posted for the request, to update it later. */
    async setApprovalCard(requestId: string, pointer: ConversationPointer): Promise<void> {
      await db
        .updateTable('requests')
        .set({ approval_card: JSON.stringify(pointer) })
        .where('id', '=', requestId)
        .execute();
    },

    /** Remembers the requester's conversation, for notices about the request. */
    async setRequesterConversation(requestId: string, pointer: ConversationPointer): Promise<void> {
      await db
        .updateTable('requests')
        .set({ requester_conversation: JSON.stringify(pointer) })
        .where('id', '=', requestId)
        .execute();
    },
  };
}

/** Only the person who asked may start or cancel their request. */
function assertOwnRequest(actor: Actor, request: RequestRow, verb: string, rule: string): void {
  if (
    request.requester_object_id !== actor.objectId ||
    request.requester_tenant_id !== actor.tenantId
  ) {
    throw forbidden(
      `Only ${request.requester_name}, who asked for request ${request.id}, can ${verb} it.`,
      { rule },
    );
  }
}
