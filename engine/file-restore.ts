/**
 * Running an approved file-restore request. The engine does its own approval
 * check, whatever the caller: the request must be approved, its content must
 * still hash to what the approvers approved, enough approvers from outside the
 * requester's tenant must have approved that exact content, and nobody may
 * have rejected it. Only then is the request claimed, with a state check in
 * the UPDATE, so two workers running the same job restore once.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import { approvalProblem, type ApprovalCheckOptions } from '../core/approval-check.ts';
import type { Db } from '../core/db/database.ts';
import { appendAudit, serviceActor } from '../core/audit.ts';
import type { FileRestoreTarget, RequestRow } from '../core/db/schema.ts';
import { forbidden, notFound, publicMessageOf } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { LinkSigner } from '../core/signing.ts';
import { recoverFile } from './file-recovery.ts';
import type { EngineNotices } from './notices.ts';
import { ObjectType } from './repository/crypto.ts';
import { readManifest } from './repository/manifest.ts';
import type { Repository } from './repository/repository.ts';

export interface FileRestoreDeps {
  db: Db;
  log: Logger;
  repository(): Promise<Repository>;
  signer: LinkSigner;
  notices: EngineNotices;
  publicUrl: string;
  downloadLinkMinutes: number;
  workDir: string;
  /** The URL at which the appliance reads disk `diskIndex` of a restore point, valid for `minutes`. */
  diskUrl(restorePointId: string, diskIndex: number, minutes: number): URL;
  /** Limit for one recovery, appliance start included. */
  recoveryTimeoutMs?: number;
  /** The segregation rules every stored decision is re-checked against (core/approval-check.ts). */
  approvalCheck?: ApprovalCheckOptions;
}

/** Recovered files are delivered as one sealed object, so they are kept to a size that fits in memory. */
export const MAX_DELIVERY_BYTES = 256 * 1024 * 1024;

/** States in which the request was already taken by an earlier run: a repeated job does nothing. */
const ALREADY_HANDLED = new Set(['running', 'completed', 'failed']);

/** Checks the approval and, when it holds, recovers the file and delivers it. */
export async function runFileRestore(deps: FileRestoreDeps, requestId: string): Promise<void> {
  const log = deps.log.child({ requestId });
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
    log.info({ status: request.status }, 'file_restore_already_handled');
    return;
  }
  if (request.kind !== 'file_restore')
    return refuse(
      deps,
      log,
      requestId,
      request,
      `Request ${requestId} is a ${request.kind} request, not a file restore; nothing was restored.`,
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
    log.info('file_restore_claimed_elsewhere');
    return;
  }

  try {
    await restoreAndDeliver(deps, log, request);
  } catch (error) {
    const message = publicMessageOf(error);
    log.error({ err: error }, 'file_restore_failed');
    await deps.db
      .updateTable('requests')
      .set({ status: 'failed', finished_at: new Date(), result: JSON.stringify({ message }) })
      .where('id', '=', requestId)
      .where('status', '=', 'running')
      .execute();
    await appendAudit(deps.db, {
      actor: serviceActor,
      channel: 'engine',
      action: 'restore.fail',
      resource: `request/${requestId}`,
      outcome: 'failed',
      details: { customerId: request.customer_id, message },
    });
    await deps.notices.restoreFinished({
      requestId,
      kind: 'file_restore',
      outcome: 'failed',
      message,
    });
  }
}

async function refuse(
  deps: FileRestoreDeps,
  log: Logger,
  requestId: string,
  request: RequestRow | undefined,
  reason: string,
): Promise<never> {
  log.warn({ reason }, 'file_restore_refused');
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
        kind: 'file_restore',
        outcome: 'failed',
        message: reason,
      });
  }
  throw forbidden(reason, { requestId });
}

async function restoreAndDeliver(
  deps: FileRestoreDeps,
  log: Logger,
  request: RequestRow,
): Promise<void> {
  const target = request.target as FileRestoreTarget;
  const restorePoint = await deps.db
    .selectFrom('restore_points')
    .selectAll()
    .where('id', '=', target.restorePointId)
    .executeTakeFirst();
  if (!restorePoint || restorePoint.customer_id !== request.customer_id) {
    throw notFound(
      `The restore point of ${target.vmName} taken at ${target.restorePointTime} no longer exists; ask for a file from a newer restore point.`,
    );
  }
  const repository = await deps.repository();
  const manifest = await readManifest(repository, restorePoint);

  const minutes = Math.ceil((deps.recoveryTimeoutMs ?? 3 * 60 * 1000) / 60000) + 5;
  const disks = manifest.disks.map((_, index) => deps.diskUrl(restorePoint.id, index, minutes));
  const recovered = await recoverFile(
    {
      workDir: deps.workDir,
      log,
      timeoutMs: deps.recoveryTimeoutMs,
      maxFileBytes: MAX_DELIVERY_BYTES,
    },
    disks,
    target.path,
    {
      vmName: target.vmName,
      takenAt: restorePoint.created_at,
    },
  );

  const deliveryId = randomUUID();
  const blobPath = `deliveries/${deliveryId}`;
  try {
    await repository.putObject(
      blobPath,
      ObjectType.Delivery,
      await fs.readFile(recovered.localPath),
    );
  } finally {
    await fs.rm(recovered.localPath, { force: true });
  }

  const expiresAt = new Date(Date.now() + deps.downloadLinkMinutes * 60 * 1000);
  await deps.db
    .insertInto('deliveries')
    .values({
      id: deliveryId,
      request_id: request.id,
      customer_id: request.customer_id,
      file_name: recovered.fileName,
      blob_path: blobPath,
      size_bytes: recovered.sizeBytes,
      sha256: recovered.sha256,
      expires_at: expiresAt,
    })
    .execute();
  const result = {
    deliveryId,
    fileName: recovered.fileName,
    sizeBytes: recovered.sizeBytes,
    sha256: recovered.sha256,
  };
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
    details: {
      customerId: request.customer_id,
      restorePointId: restorePoint.id,
      path: target.path,
      filesystem: recovered.filesystem,
      ...result,
    },
  });
  log.info({ deliveryId, sizeBytes: recovered.sizeBytes }, 'file_restore_completed');

  const token = deps.signer.sign({
    purpose: 'download',
    subject: deliveryId,
    expiresAt: expiresAt.getTime(),
  });
  await deps.notices.restoreFinished({
    requestId: request.id,
    kind: 'file_restore',
    outcome: 'completed',
    downloadUrl: `${deps.publicUrl}/downloads/${token}`,
    downloadExpiresAt: expiresAt,
    fileName: recovered.fileName,
    sizeBytes: recovered.sizeBytes,
  });
}
