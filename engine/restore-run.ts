/**
 * The frame of every approved VM or disk restore, whatever it writes:
 *
 *   1. the approval check and claim (./approved-request.ts);
 *   2. the restore point: it must exist, belong to the request's customer, be
 *      a backup (snapshots restore elsewhere) and not have expired;
 *   3. a job session of kind 'restore' (one task per disk written) and a
 *      `restore.start` audit entry;
 *   4. the work itself (./vm-restore.ts, ./disk-restore.ts), which checks
 *      names and regions before it creates anything and registers every disk
 *      it creates;
 *   5. on success the session succeeded, `restore.complete` and the notice;
 *      on failure every disk the restore created is deleted (those Azure will
 *      not delete are named in the result), the session failed,
 *      `restore.fail` and the notice.
 */
import type { ComputeManagementClient } from '@azure/arm-compute';
import { appendAudit, serviceActor } from '../core/audit.ts';
import type { Db } from '../core/db/database.ts';
import type {
  Customer,
  ProtectedItem,
  RequestKind,
  RequestRow,
  RestorePoint,
} from '../core/db/schema.ts';
import { badInput, notFound } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import {
  claimApprovedRequest,
  completeRequest,
  failRequest,
  type ApprovedRequestDeps,
} from './approved-request.ts';
import { loadItem } from './backup-run.ts';
import type { DiskImage } from './disk-image.ts';
import { JobSession, type JobSessionOptions } from './job-sessions.ts';
import { readManifest, type Manifest } from './repository/manifest.ts';
import type { Repository } from './repository/repository.ts';
import { parseResourceId } from './resource-id.ts';
import { itemAuditResource } from './resource-types.ts';

export interface RestoreDeps extends ApprovedRequestDeps {
  log: Logger;
  compute(subscriptionId: string): ComputeManagementClient;
  repository(): Promise<Repository>;
  /** Disk `diskIndex` of a restore point as a byte array. */
  openDisk(restorePointId: string, diskIndex: number): Promise<DiskImage>;
  /** Poll interval for ARM long-running operations without Retry-After. */
  pollIntervalMs?: number;
  /** Task retries and progress pacing of the restore's job session. */
  sessions?: JobSessionOptions;
}

/** What the work of one restore is handed. */
export interface RestoreRun {
  deps: RestoreDeps;
  request: RequestRow;
  customer: Customer;
  item: ProtectedItem;
  point: RestorePoint;
  manifest: Manifest;
  compute: ComputeManagementClient;
  session: JobSession;
  log: Logger;
  /** Records a disk the restore created, so that a failure deletes it. */
  created(diskId: string): void;
  /** Disks created so far that must stay even if a later step fails (now attached to a VM that runs). */
  keep(diskId: string): void;
}

/** What the work reports: the request's stored result and one sentence for the requester. */
export interface RestoreOutcome {
  result: Record<string, unknown>;
  summary: string;
}

/** Runs approved request `requestId` of `kind` with `work` inside the restore frame. */
export async function runRestoreRequest(
  deps: RestoreDeps,
  requestId: string,
  kind: RequestKind,
  work: (run: RestoreRun) => Promise<RestoreOutcome>,
): Promise<void> {
  const log = deps.log.child({ requestId, kind });
  const request = await claimApprovedRequest(deps, log, requestId, kind);
  if (!request) return;

  const createdDisks: string[] = [];
  const kept = new Set<string>();
  let session: JobSession | undefined;
  try {
    const target = request.target as { itemId: string; restorePointId: string };
    const { customer, item } = await loadItem(deps.db, 'vm', target.itemId);
    const point = await usableRestorePoint(deps.db, request, item, target.restorePointId);
    const manifest = await readManifest(await deps.repository(), point);
    session = await openRestoreSession(deps, log, request, customer, item, {
      restorePointId: point.id,
    });

    const outcome = await work({
      deps,
      request,
      customer,
      item,
      point,
      manifest,
      compute: deps.compute(customer.subscription_id),
      session,
      log: log.child({ restorePointId: point.id }),
      created: (diskId) => {
        if (!createdDisks.includes(diskId)) createdDisks.push(diskId);
      },
      keep: (diskId) => void kept.add(diskId.toLowerCase()),
    });
    await session.succeed(point.id);
    await completeRequest(deps, request, outcome.result, { message: outcome.summary });
    log.info(outcome.result, 'restore_completed');
  } catch (error) {
    const leftover = createdDisks.filter((id) => !kept.has(id.toLowerCase()));
    const notDeleted = await deleteDisks(deps, log, request, leftover);
    await session?.fail(error);
    await failRequest(deps, log, request, error, {
      disksDeleted: leftover.filter((id) => !notDeleted.includes(id)).map(nameOf),
      ...(notDeleted.length > 0 ? { disksLeftBehind: notDeleted.map(nameOf) } : {}),
    });
  }
}

/** The restore point of the request, checked: the customer's own, a backup, not expired. */
export async function usableRestorePoint(
  db: Db,
  request: RequestRow,
  item: ProtectedItem,
  restorePointId: string,
): Promise<RestorePoint> {
  const point = await db
    .selectFrom('restore_points')
    .selectAll()
    .where('id', '=', restorePointId)
    .where('customer_id', '=', request.customer_id)
    .executeTakeFirst();
  if (!point || point.item_id !== item.id)
    throw notFound(
      `Restore point ${restorePointId} of ${item.name} no longer exists (it may have expired); ask for a restore from a current restore point.`,
    );
  if (new Date(point.expires_at).getTime() <= Date.now())
    throw badInput(
      `Restore point ${point.id} of ${item.name} expired on ${new Date(point.expires_at).toISOString()} and is about to be deleted; ask for a restore from a current restore point.`,
    );
  if (point.type !== 'backup')
    throw badInput(
      `Restore point ${point.id} of ${item.name} is a ${point.type.replace('_', ' ')} kept in Azure, not a backup; ask for a restore from a backup restore point.`,
    );
  return point;
}

/** Opens the restore's job session for `item` and writes `restore.start` for the request. */
export async function openRestoreSession(
  deps: ApprovedRequestDeps & { sessions?: JobSessionOptions },
  log: Logger,
  request: RequestRow,
  customer: Customer,
  item: ProtectedItem,
  details: Record<string, unknown>,
): Promise<JobSession> {
  const resource = itemAuditResource(item.kind, customer.id, item.name);
  const session = await JobSession.open(
    deps.db,
    log,
    {
      customerId: customer.id,
      itemId: item.id,
      itemName: item.name,
      resource,
      trigger: 'request',
      kind: 'restore',
    },
    deps.sessions,
  );
  await appendAudit(deps.db, {
    actor: serviceActor,
    channel: 'engine',
    action: 'restore.start',
    resource: `request/${request.id}`,
    outcome: 'success',
    details: {
      customerId: customer.id,
      kind: request.kind,
      itemId: item.id,
      ...details,
      sessionId: session.id,
      target: request.target,
    },
  });
  return session;
}

/** Deletes the disks a failed restore made; returns the ids Azure would not delete. */
async function deleteDisks(
  deps: RestoreDeps,
  log: Logger,
  request: RequestRow,
  diskIds: string[],
): Promise<string[]> {
  if (diskIds.length === 0) return [];
  const customer = await deps.db
    .selectFrom('customers')
    .select('subscription_id')
    .where('id', '=', request.customer_id)
    .executeTakeFirstOrThrow();
  const compute = deps.compute(customer.subscription_id);
  const failed: string[] = [];
  for (const id of diskIds) {
    const { resourceGroup, name } = parseResourceId(id);
    try {
      await compute.disks.beginDeleteAndWait(resourceGroup, name, {
        updateIntervalInMs: deps.pollIntervalMs,
      });
      log.info({ disk: name }, 'restore_disk_deleted');
    } catch (err) {
      log.error({ err, disk: name }, 'restore_disk_delete_failed');
      failed.push(id);
    }
  }
  return failed;
}

function nameOf(diskId: string): string {
  return parseResourceId(diskId).name;
}
