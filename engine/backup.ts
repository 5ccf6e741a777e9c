/**
 * The backup pipeline for one VM: ARM configuration, a snapshot per disk (an
 * incremental snapshot of a managed disk, a blob snapshot of an unmanaged
 * disk's VHD), read access to it, and the disk read into the repository
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
 *
 * The run's job session, licence admission, audit entries and failure notice
 * come from ./backup-run.ts.
 */
import { randomUUID } from 'node:crypto';
import type { ComputeManagementClient } from '@azure/arm-compute';
import type { Customer, ProtectedItem, RestorePoint, RestorePointDisk } from '../core/db/schema.ts';
import type { Logger } from '../core/log.ts';
import {
  loadItem,
  runBackupSession,
  type BackupOptions,
  type BackupRunDeps,
} from './backup-run.ts';
import {
  BaseUnusable,
  readChangedBlocks,
  readDisk,
  type DiskReadResult,
  type DiskSource,
} from './disk-reader.ts';
import {
  deleteSnapshot,
  findChainBase,
  releaseSnapshots,
  snapshotRows,
  withChangesSince,
  withSnapshot,
  type ChainBase,
  type SnapshotContext,
  type TakenSnapshot,
} from './disk-snapshots.ts';
import type { JobSession } from './job-sessions.ts';
import { parseResourceId } from './resource-id.ts';
import { protectRestorePoint } from './repository/immutability.ts';
import { writeManifest, type ManifestDisk } from './repository/manifest.ts';
import type { PackWriter } from './repository/packs.ts';
import { BLOCK_SIZE, type Repository } from './repository/repository.ts';
import type { VhdBlobs } from './vhd-snapshots.ts';
import { vmDisks } from './vm-disks.ts';
import { applySnapshotRetention, insertSnapshotPoint, snapshotVm } from './vm-snapshots.ts';

export { openSasDisk, readDisk, type DiskReadResult } from './disk-reader.ts';
export type { BackupOptions } from './backup-run.ts';

const DEFAULT_RETENTION_DAYS = 365;

export interface BackupDeps extends BackupRunDeps {
  repository: Repository;
  compute(subscriptionId: string): ComputeManagementClient;
  /** Poll interval for ARM long-running operations when ARM gives no Retry-After; the SDK's 2 s by default. */
  pollIntervalMs?: number;
  /** Blob clients for unmanaged disks' VHDs, signed in as the service. */
  vhdBlobs?: VhdBlobs;
}

/** Backs up one protected VM and returns its new restore point. */
export async function backupVm(
  deps: BackupDeps,
  itemId: string,
  trigger: string,
  options: BackupOptions = {},
): Promise<RestorePoint> {
  if (options.protection === 'snapshots') {
    const { customer, item } = await loadItem(deps.db, 'vm', itemId);
    return snapshotVm(deps, customer, item, {
      type: 'snapshot',
      policyName: options.policyName ?? null,
      schedules: options.schedules ?? [],
      trigger,
    });
  }
  return runBackupSession(deps, 'vm', itemId, trigger, options, (run) =>
    runBackup(deps, run.log, run.customer, run.item, run.restorePointId, options, run.session),
  );
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
  const snapshots: SnapshotContext = {
    compute,
    log,
    pollIntervalMs: deps.pollIntervalMs,
    vhdBlobs: deps.vhdBlobs,
  };

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
            (source) =>
              readSince(snapshots, deps.repository, chain, source, writer, diskLog, (bytes) =>
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
  source: DiskSource,
  writer: PackWriter,
  log: Logger,
  onProgress?: (readBytes: number) => void,
): Promise<DiskReadResult> {
  if ('reason' in chain) {
    log.info({ reason: chain.reason }, 'disk_full_read');
    return readDisk(source, writer, log, onProgress);
  }

  try {
    return await withChangesSince(snapshots, chain.snapshotId, source, (changedSince) =>
      readChangedBlocks(
        source,
        { ...chain.base, changedSince },
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
    return readDisk(source, writer, log, onProgress);
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
