/**
 * The backup pipeline for one VM: ARM configuration, an incremental snapshot
 * per managed disk, read access to it, and the disk read into the repository
 * in 1 MiB blocks (deduplicated, compressed, sealed and packed), then the
 * manifest, and only then the restore_points row that makes it visible.
 *
 * Each disk's snapshot is kept after a successful backup, so that the next
 * backup reads only the blocks that changed since (./disk-reader.ts) and takes
 * the others from this backup's manifest; the older kept snapshot is then
 * deleted (./disk-snapshots.ts). Without a usable previous snapshot the disk
 * is read in full, and the log says why. A failed run deletes the snapshots
 * it took. Policies of type `snapshots` keep only the snapshots; `both` keeps
 * them as a snapshot restore point besides the backup (./vm-snapshots.ts).
 */
import { randomUUID } from 'node:crypto';
import type { ComputeManagementClient } from '@azure/arm-compute';
import { appendAudit, serviceActor } from '../core/audit.ts';
import type { Db } from '../core/db/database.ts';
import type { Customer, ProtectedItem, RestorePoint, RestorePointDisk } from '../core/db/schema.ts';
import { notFound } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { JobSession, type JobSessionOptions } from './job-sessions.ts';
import { admitBackup } from './licences.ts';
import { BaseUnusable, readChangedBlocks, readDisk, type DiskReadResult } from './disk-reader.ts';
import {
  deleteSnapshot,
  findChainBase,
  releaseSnapshots,
  snapshotRows,
  withReadAccess,
  withSnapshot,
  type ChainBase,
  type SnapshotContext,
  type TakenSnapshot,
} from './disk-snapshots.ts';
import { failureOf, type EngineNotices } from './notices.ts';
import { parseResourceId } from './resource-id.ts';
import { backupLease } from './repository/leases.ts';
import { protectRestorePoint } from './repository/immutability.ts';
import { writeManifest, type ManifestDisk } from './repository/manifest.ts';
import type { PackWriter } from './repository/packs.ts';
import { BLOCK_SIZE, type Repository } from './repository/repository.ts';
import { recordHoldings } from './usage.ts';
import { vmDisks } from './vm-disks.ts';
import { applySnapshotRetention, insertSnapshotPoint, snapshotVm } from './vm-snapshots.ts';

export { readDisk, type DiskReadResult } from './disk-reader.ts';

const DEFAULT_RETENTION_DAYS = 365;

export interface BackupDeps {
  db: Db;
  log: Logger;
  repository: Repository;
  compute(subscriptionId: string): ComputeManagementClient;
  /** Told once per failed run; its own failures are logged and never change the run's outcome. */
  notices?: Pick<EngineNotices, 'backupFailed'>;
  /** Poll interval for ARM long-running operations when ARM gives no Retry-After; the SDK's 2 s by default. */
  pollIntervalMs?: number;
  /** Task retries and progress pacing of the run's job session. */
  sessions?: JobSessionOptions;
}

/** What a policy run says about the restore point to make. */
export interface BackupOptions {
  /** When the restore point expires; a year after it is taken when absent. */
  expiresAt?: Date;
  policyName?: string;
  /** What the run keeps: a backup in the repository (the default), only the disks' snapshots, or both. */
  protection?: 'backups' | 'snapshots' | 'both';
  /** Schedule kinds (daily, weekly, ...) whose slots asked for the run; snapshot retention counts per kind. */
  schedules?: string[];
}

/** Backs up one protected VM and returns its new restore point. */
export async function backupVm(
  deps: BackupDeps,
  itemId: string,
  trigger: string,
  options: BackupOptions = {},
): Promise<RestorePoint> {
  const item = await deps.db
    .selectFrom('protected_items')
    .selectAll()
    .where('id', '=', itemId)
    .executeTakeFirst();
  if (!item)
    throw notFound(
      `Protected item ${itemId} does not exist; sync the customer's inventory and try again.`,
    );
  const customer = await deps.db
    .selectFrom('customers')
    .selectAll()
    .where('id', '=', item.customer_id)
    .executeTakeFirstOrThrow();
  if (options.protection === 'snapshots')
    return snapshotVm(deps, customer, item, {
      type: 'snapshot',
      policyName: options.policyName ?? null,
      schedules: options.schedules ?? [],
      trigger,
    });

  const restorePointId = randomUUID();
  const log = deps.log.child({ itemId, restorePointId, vm: item.name, trigger });
  const resource = `vm/${customer.id}/${item.name}`;
  const started = Date.now();
  const session = await JobSession.open(
    deps.db,
    log,
    {
      customerId: customer.id,
      itemId,
      itemName: item.name,
      trigger,
      policyName: options.policyName,
    },
    deps.sessions,
  );
  await appendAudit(deps.db, {
    actor: serviceActor,
    channel: 'engine',
    action: 'backup.start',
    resource,
    outcome: 'success',
    details: { customerId: customer.id, itemId, restorePointId, trigger, sessionId: session.id },
  });
  log.info('backup_started');

  try {
    await admitBackup(deps.db, log, session, customer, item);
    // Held until the restore point row exists, so a prune cannot delete blocks it deduplicates against.
    const lease = await backupLease(deps.db);
    const restorePoint = await runBackup(
      deps,
      log,
      customer,
      item,
      restorePointId,
      options,
      session,
    ).finally(() => lease.release());
    // The restore point exists: failing to record the session or usage must not fail the backup.
    await session
      .succeed(restorePoint.id)
      .then(() => recordHoldings(deps.db, customer.id))
      .catch((err) => log.warn({ err }, 'job_session_not_recorded'));
    const seconds = (Date.now() - started) / 1000;
    await appendAudit(deps.db, {
      actor: serviceActor,
      channel: 'engine',
      action: 'backup.finish',
      resource,
      outcome: 'success',
      details: {
        customerId: customer.id,
        itemId,
        restorePointId,
        trigger,
        sizeBytes: Number(restorePoint.size_bytes),
        storedBytes: Number(restorePoint.stored_bytes),
        seconds,
      },
    });
    log.info(
      { seconds, sizeBytes: restorePoint.size_bytes, storedBytes: restorePoint.stored_bytes },
      'backup_finished',
    );
    return restorePoint;
  } catch (error) {
    // Customers' staff read their own audit entries: the message loses URL queries and secrets.
    const failure = failureOf(error);
    await session.fail(error).catch((err) => log.warn({ err }, 'job_session_not_recorded'));
    await appendAudit(deps.db, {
      actor: serviceActor,
      channel: 'engine',
      action: 'backup.fail',
      resource,
      outcome: 'failed',
      details: {
        customerId: customer.id,
        itemId,
        restorePointId,
        trigger,
        kind: failure.kind,
        message: failure.message,
      },
    });
    log.error({ err: error }, 'backup_failed');
    await deps.notices
      ?.backupFailed?.({
        customerId: customer.id,
        customerName: customer.name,
        itemId,
        itemName: item.name,
        trigger,
        policyName: options.policyName,
        restorePointId,
        ...failure,
        failedAt: new Date(),
      })
      .catch((err) => log.warn({ err }, 'backup_failure_notice_failed'));
    throw error;
  }
}

async function runBackup(
  deps: BackupDeps,
  log: Logger,
  customer: Customer,
  item: ProtectedItem,
  restorePointId: string,
  options: BackupOptions,
  session: JobSession,
): Promise<RestorePoint> {
  const { resourceGroup, name: vmName } = parseResourceId(item.resource_id);
  const compute = deps.compute(customer.subscription_id);
  const snapshots: SnapshotContext = { compute, log, pollIntervalMs: deps.pollIntervalMs };

  let rawVm: unknown;
  const vm = await compute.virtualMachines.get(resourceGroup, vmName, {
    onResponse: (response) => {
      if (response.bodyAsText) rawVm = JSON.parse(response.bodyAsText);
    },
  });
  const disks = vmDisks(vm, item);
  const createdAt = new Date();

  const writer = deps.repository.newWriter();
  const manifestDisks: ManifestDisk[] = [];
  const rowDisks: RestorePointDisk[] = [];
  const taken: TakenSnapshot[] = [];
  try {
    for (const [index, disk] of disks.entries()) {
      const snapshotName = `acba-${restorePointId}-${index}`;
      const diskLog = log.child({ disk: disk.name });
      const chain = await findChainBase(deps.db, deps.repository, item, disk);
      const { snapshot, ...result } = await session.runTask(
        { kind: 'disk', name: disk.name },
        async (task) => {
          const { taken, result } = await withSnapshot(
            snapshots,
            resourceGroup,
            vm.location,
            snapshotName,
            disk,
            (sas) =>
              readSince(snapshots, deps.repository, chain, sas, writer, diskLog, (bytes) =>
                task.progress(bytes),
              ),
          );
          return { ...result, snapshot: taken };
        },
      );
      taken.push({ ...snapshot, sizeBytes: result.sizeBytes });
      manifestDisks.push({
        name: disk.name,
        role: disk.role,
        resourceId: disk.resourceId,
        sizeBytes: result.sizeBytes,
        sha256: result.sha256,
        blocks: result.blocks,
      });
      rowDisks.push({
        name: disk.name,
        role: disk.role,
        sizeBytes: result.sizeBytes,
        storedBytes: result.storedBytes,
      });
    }
    await writer.flush();

    const manifestPath = await writeManifest(deps.repository, {
      version: 1,
      restorePointId,
      customerId: customer.id,
      itemId: item.id,
      vmName: item.name,
      createdAt: createdAt.toISOString(),
      blockSize: BLOCK_SIZE,
      vm: rawVm ?? vm,
      disks: manifestDisks,
    });

    const expiresAt =
      options.expiresAt ??
      new Date(createdAt.getTime() + DEFAULT_RETENTION_DAYS * 24 * 3600 * 1000);
    if (deps.repository.immutable) {
      await protectRestorePoint(
        { db: deps.db, container: deps.repository.container },
        {
          manifestPath,
          blockIds: manifestDisks.flatMap((disk) => disk.blocks.filter((id) => id !== null)),
          expiresAt,
        },
      );
    }
    const keepSnapshots = options.protection === 'both';
    const snapshotPointId = keepSnapshots ? randomUUID() : undefined;
    const restorePoint = await deps.db.transaction().execute(async (tx) => {
      const point = await tx
        .insertInto('restore_points')
        .values({
          id: restorePointId,
          customer_id: customer.id,
          item_id: item.id,
          created_at: createdAt,
          expires_at: expiresAt,
          manifest_path: manifestPath,
          disks: JSON.stringify(rowDisks),
          size_bytes: rowDisks.reduce((sum, d) => sum + d.sizeBytes, 0),
          stored_bytes: rowDisks.reduce((sum, d) => sum + d.storedBytes, 0),
          policy_name: options.policyName ?? null,
          schedules: JSON.stringify(options.schedules ?? []),
        })
        .returningAll()
        .executeTakeFirstOrThrow();
      if (snapshotPointId)
        await insertSnapshotPoint(tx, {
          restorePointId: snapshotPointId,
          item,
          type: 'snapshot',
          policyName: options.policyName ?? null,
          schedules: options.schedules ?? [],
          createdAt,
          taken,
        });
      await tx
        .insertInto('disk_snapshots')
        .values(
          snapshotRows(item, taken, { backupPointId: restorePointId, snapshotPointId }, createdAt),
        )
        .execute();
      return point;
    });
    taken.length = 0;

    await keepTidy(deps, item, options, snapshotPointId, log);
    return restorePoint;
  } catch (error) {
    // Packs already uploading get indexed, so the next run stores only what is still missing.
    await writer.settle();
    throw error;
  } finally {
    // Snapshots of a run that failed after they were read: nothing records them, so they go.
    for (const t of taken) await deleteSnapshot(snapshots, t.snapshotId);
  }
}

/** Reads a disk incrementally from the chain's base when there is one, in full otherwise, logging why. */
async function readSince(
  snapshots: SnapshotContext,
  repository: Repository,
  chain: ChainBase,
  sas: string,
  writer: PackWriter,
  log: Logger,
  onProgress?: (readBytes: number) => void,
): Promise<DiskReadResult> {
  if ('reason' in chain) {
    log.info({ reason: chain.reason }, 'disk_full_read');
    return readDisk(sas, writer, log, onProgress);
  }

  try {
    return await withReadAccess(snapshots, chain.snapshotId, (previousSasUrl) =>
      readChangedBlocks(
        sas,
        { ...chain.base, previousSasUrl },
        writer,
        repository,
        log,
        onProgress,
      ),
    );
  } catch (error) {
    const status = (error as { statusCode?: number }).statusCode;
    const reason =
      error instanceof BaseUnusable
        ? error.reason
        : status === 404
          ? 'previous_snapshot_gone'
          : undefined;
    if (!reason) throw error;
    log.warn(
      { reason, previousSnapshot: chain.snapshotId, detail: (error as Error).message },
      'disk_full_read',
    );
    return readDisk(sas, writer, log, onProgress);
  }
}

/** After a backup: older kept snapshots of the item go, and a `both` policy's snapshot retention applies. */
async function keepTidy(
  deps: BackupDeps,
  item: ProtectedItem,
  options: BackupOptions,
  snapshotPointId: string | undefined,
  log: Logger,
): Promise<void> {
  try {
    if (snapshotPointId && options.policyName)
      await applySnapshotRetention(deps, item.id, options.policyName);
    else await releaseSnapshots(deps, item.id);
  } catch (err) {
    // The backup stands; the snapshots left over are released on the next run or retention.
    log.warn({ err }, 'kept_snapshot_release_failed');
  }
}
