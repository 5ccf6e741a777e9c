/**
 * Running an approved file-restore request: once ./approved-request.ts has
 * checked the approval and claimed the request, the file is recovered from the
 * restore point's disks, stored sealed in the repository, and delivered to the
 * requester through a signed link that expires.
 */
import { randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import type { ApprovalCheckOptions } from '../core/approval-check.ts';
import type { Db } from '../core/db/database.ts';
import type { FileRestoreTarget, RequestRow } from '../core/db/schema.ts';
import { notFound } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { LinkSigner } from '../core/signing.ts';
import { claimApprovedRequest, completeRequest, failRequest } from './approved-request.ts';
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

/** Checks the approval and, when it holds, recovers the file and delivers it. */
export async function runFileRestore(deps: FileRestoreDeps, requestId: string): Promise<void> {
  const log = deps.log.child({ requestId });
  const request = await claimApprovedRequest(deps, log, requestId, 'file_restore');
  if (!request) return;

  try {
    await restoreAndDeliver(deps, log, request);
  } catch (error) {
    await failRequest(deps, log, request, error);
  }
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
  log.info({ deliveryId, sizeBytes: recovered.sizeBytes }, 'file_restore_completed');

  const token = deps.signer.sign({
    purpose: 'download',
    subject: deliveryId,
    expiresAt: expiresAt.getTime(),
  });
  await completeRequest(
    deps,
    request,
    {
      restorePointId: restorePoint.id,
      path: target.path,
      filesystem: recovered.filesystem,
      ...result,
    },
    {
      downloadUrl: `${deps.publicUrl}/downloads/${token}`,
      downloadExpiresAt: expiresAt,
      fileName: recovered.fileName,
      sizeBytes: recovered.sizeBytes,
    },
  );
}
