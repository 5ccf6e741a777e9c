/**
 * Azure disk snapshots that ACBA takes and keeps. Every backup and snapshot
 * run takes one snapshot per disk: an incremental snapshot resource in the
 * VM's resource group for a managed disk, a blob snapshot of the VHD in its
 * storage account for an unmanaged one (./vhd-snapshots.ts); this module
 * hides which.
 * A backup keeps its snapshots as the base of the next backup's incremental
 * read (the "chain"); snapshot policies and operators keep them as restore
 * points of their own. The disk_snapshots table records each kept snapshot
 * with the backup it fed and the snapshot restore point it belongs to.
 *
 * A kept snapshot is needed while it belongs to a snapshot restore point, or
 * while it is the newest snapshot of its disk whose backup still exists.
 * `releaseSnapshots` deletes every other one in Azure, then its row; a
 * snapshot Azure fails to delete keeps its row and is tried again next time.
 */
import type { ComputeManagementClient } from '@azure/arm-compute';
import { sql } from 'kysely';
import type { Db } from '../core/db/database.ts';
import type { DiskSnapshot, ProtectedItem } from '../core/db/schema.ts';
import type { Logger } from '../core/log.ts';
import { openSasDisk, type DiskSource, type PageDiff, type ReadBase } from './disk-reader.ts';
import { readManifest, type ManifestDisk } from './repository/manifest.ts';
import type { Repository } from './repository/repository.ts';
import { parseResourceId } from './resource-id.ts';
import {
  deleteVhdSnapshot,
  isBlobSnapshotId,
  openVhd,
  takeVhdSnapshot,
  vhdChangesSince,
  type VhdBlobs,
} from './vhd-snapshots.ts';
import type { VmDisk } from './vm-disks.ts';

/** How long a snapshot's read SAS lasts; a disk must be read within it. */
const ACCESS_SECONDS = 4 * 3600;

/** The compute client and polling that snapshot operations need. */
export interface SnapshotContext {
  compute: ComputeManagementClient;
  log: Logger;
  /** Poll interval for ARM long-running operations without Retry-After. */
  pollIntervalMs?: number;
  /** Blob clients for unmanaged disks' VHDs and their snapshots; needed only for those. */
  vhdBlobs?: VhdBlobs;
}

/** A snapshot taken in this run, kept once the run succeeds. */
export interface TakenSnapshot {
  snapshotId: string;
  disk: VmDisk;
  sizeBytes: number;
}

/** Takes a snapshot of a disk (incremental for a managed one, a blob snapshot for a VHD) and returns its id and size. */
export async function takeSnapshot(
  ctx: SnapshotContext,
  resourceGroup: string,
  location: string,
  snapshotName: string,
  disk: VmDisk,
): Promise<TakenSnapshot> {
  if (disk.kind === 'vhd') return takeVhdSnapshot(vhdBlobsOf(ctx), disk, snapshotName);
  const snapshot = await ctx.compute.snapshots.beginCreateOrUpdateAndWait(
    resourceGroup,
    snapshotName,
    {
      location,
      incremental: true,
      creationData: { createOption: 'Copy', sourceResourceId: disk.resourceId },
    },
    { updateIntervalInMs: ctx.pollIntervalMs },
  );
  const snapshotId = snapshot.id ?? snapshotIdIn(disk.resourceId, resourceGroup, snapshotName);
  const sizeBytes = snapshot.diskSizeBytes ?? (snapshot.diskSizeGB ?? 0) * 1024 ** 3;
  return { snapshotId, disk, sizeBytes };
}

/**
 * Snapshots a disk and hands the snapshot, open for reading, to `read`; a
 * managed snapshot's access is revoked afterwards. The snapshot stays when
 * `read` succeeds (the caller keeps or deletes it) and is deleted when
 * anything fails.
 */
export async function withSnapshot<T>(
  ctx: SnapshotContext,
  resourceGroup: string,
  location: string,
  snapshotName: string,
  disk: VmDisk,
  read: (source: DiskSource) => Promise<T>,
): Promise<{ taken: TakenSnapshot; result: T }> {
  let taken: TakenSnapshot | undefined;
  try {
    taken = await takeSnapshot(ctx, resourceGroup, location, snapshotName, disk);
    const snapshotId = taken.snapshotId;
    const result = isBlobSnapshotId(snapshotId)
      ? await read(await openVhd(vhdBlobsOf(ctx)(snapshotId)))
      : await withReadAccess(ctx, snapshotId, async (sas) => read(await openSasDisk(sas)));
    return { taken, result };
  } catch (error) {
    if (taken) await deleteSnapshot(ctx, taken.snapshotId);
    throw error;
  }
}

/** Grants read access to a snapshot, hands the SAS to `read`, and revokes access whatever happens. */
export async function withReadAccess<T>(
  ctx: SnapshotContext,
  snapshotId: string,
  read: (sas: string) => Promise<T>,
): Promise<T> {
  const { resourceGroup, name } = parseResourceId(snapshotId);
  const options = { updateIntervalInMs: ctx.pollIntervalMs };
  const access = await ctx.compute.snapshots.beginGrantAccessAndWait(
    resourceGroup,
    name,
    { access: 'Read', durationInSeconds: ACCESS_SECONDS },
    options,
  );
  try {
    if (!access.accessSAS)
      throw new Error(`Azure granted access to snapshot ${name} without a SAS URL.`);
    return await read(access.accessSAS);
  } finally {
    await ctx.compute.snapshots
      .beginRevokeAccessAndWait(resourceGroup, name, options)
      .catch((err) => ctx.log.warn({ err, snapshotName: name }, 'snapshot_revoke_failed'));
  }
}

/**
 * Hands `read` the diff of `source` against a previous snapshot of the same
 * disk: for a managed disk through a read SAS of the previous snapshot
 * (revoked afterwards), for a VHD against its earlier blob snapshot.
 */
export async function withChangesSince<T>(
  ctx: SnapshotContext,
  previousSnapshotId: string,
  source: DiskSource,
  read: (changedSince: PageDiff) => Promise<T>,
): Promise<T> {
  if (isBlobSnapshotId(previousSnapshotId))
    return read(vhdChangesSince(source, previousSnapshotId));
  return withReadAccess(ctx, previousSnapshotId, (previousSasUrl) =>
    read((offset, count) =>
      source.blob.getPageRangesDiffForManagedDisks(offset, count, previousSasUrl),
    ),
  );
}

/** Deletes a snapshot in Azure; false (and a warning) when Azure fails. A snapshot already gone counts as deleted. */
export async function deleteSnapshot(ctx: SnapshotContext, snapshotId: string): Promise<boolean> {
  if (isBlobSnapshotId(snapshotId)) {
    if (ctx.vhdBlobs) return deleteVhdSnapshot(ctx.vhdBlobs, snapshotId, ctx.log);
    ctx.log.warn({ snapshotId, reason: 'no_blob_access' }, 'snapshot_delete_failed');
    return false;
  }
  const { resourceGroup, name } = parseResourceId(snapshotId);
  try {
    await ctx.compute.snapshots.beginDeleteAndWait(resourceGroup, name, {
      updateIntervalInMs: ctx.pollIntervalMs,
    });
    return true;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return true;
    ctx.log.warn({ err, snapshotName: name }, 'snapshot_delete_failed');
    return false;
  }
}

/** The previous kept snapshot of a disk with the block list of the backup that read it, or why there is none. */
export type ChainBase =
  | { base: Omit<ReadBase, 'changedSince'>; snapshotId: string; backupPointId: string }
  | { reason: string };

/** Finds the newest kept snapshot of the disk whose backup still exists, and that backup's blocks for the disk. */
export async function findChainBase(
  db: Db,
  repository: Repository,
  item: ProtectedItem,
  disk: VmDisk,
): Promise<ChainBase> {
  const rows = await db
    .selectFrom('disk_snapshots')
    .selectAll()
    .where('item_id', '=', item.id)
    .where(sql<string>`lower(disk_resource_id)`, '=', disk.resourceId.toLowerCase())
    .orderBy('created_at', 'desc')
    .execute();
  if (rows.length === 0) return { reason: 'no_kept_snapshot' };
  const head = rows.find((r) => r.backup_point_id !== null);
  if (!head) return { reason: 'previous_backup_pruned' };

  const point = await db
    .selectFrom('restore_points')
    .selectAll()
    .where('id', '=', head.backup_point_id!)
    .executeTakeFirst();
  if (!point) return { reason: 'previous_backup_pruned' };
  let manifestDisk: ManifestDisk | undefined;
  try {
    const manifest = await readManifest(repository, point);
    manifestDisk = manifest.disks.find(
      (d) => d.resourceId.toLowerCase() === disk.resourceId.toLowerCase(),
    );
  } catch {
    return { reason: 'previous_manifest_unreadable' };
  }
  if (!manifestDisk) return { reason: 'disk_not_in_previous_backup' };
  return {
    base: { sizeBytes: manifestDisk.sizeBytes, blocks: manifestDisk.blocks },
    snapshotId: head.snapshot_resource_id,
    backupPointId: point.id,
  };
}

export interface ReleaseDeps {
  db: Db;
  log: Logger;
  compute(subscriptionId: string): ComputeManagementClient;
  pollIntervalMs?: number;
  /** Blob clients for unmanaged disks; without them their snapshots stay and are tried again later. */
  vhdBlobs?: VhdBlobs;
}

/** Deletes the kept snapshots nothing needs any more (see the module note), of one item or of all; returns their ids. */
export async function releaseSnapshots(deps: ReleaseDeps, itemId?: string): Promise<string[]> {
  let query = deps.db
    .selectFrom('disk_snapshots as s')
    .innerJoin('customers as c', 'c.id', 's.customer_id')
    .selectAll('s')
    .select('c.subscription_id')
    .where('s.snapshot_point_id', 'is', null)
    .where((eb) =>
      eb.or([
        eb('s.backup_point_id', 'is', null),
        eb.exists(
          eb
            .selectFrom('disk_snapshots as n')
            .select('n.snapshot_resource_id')
            .whereRef('n.item_id', '=', 's.item_id')
            .where(sql<boolean>`lower(n.disk_resource_id) = lower(s.disk_resource_id)`)
            .where('n.backup_point_id', 'is not', null)
            .whereRef('n.created_at', '>', 's.created_at'),
        ),
      ]),
    );
  if (itemId) query = query.where('s.item_id', '=', itemId);
  const unneeded = await query.execute();

  const released: string[] = [];
  for (const row of unneeded) {
    const ctx = {
      compute: deps.compute(row.subscription_id),
      log: deps.log,
      pollIntervalMs: deps.pollIntervalMs,
      vhdBlobs: deps.vhdBlobs,
    };
    if (!(await deleteSnapshot(ctx, row.snapshot_resource_id))) continue;
    await deps.db
      .deleteFrom('disk_snapshots')
      .where('snapshot_resource_id', '=', row.snapshot_resource_id)
      .execute();
    deps.log.info(
      { snapshotId: row.snapshot_resource_id, itemId: row.item_id },
      'kept_snapshot_released',
    );
    released.push(row.snapshot_resource_id);
  }
  return released;
}

/** Rows for snapshots a run keeps. */
export function snapshotRows(
  item: ProtectedItem,
  taken: TakenSnapshot[],
  links: { backupPointId?: string; snapshotPointId?: string },
  createdAt: Date,
): Array<Omit<DiskSnapshot, 'created_at'> & { created_at: Date }> {
  return taken.map((t) => ({
    snapshot_resource_id: t.snapshotId,
    customer_id: item.customer_id,
    item_id: item.id,
    disk_resource_id: t.disk.resourceId,
    disk_name: t.disk.name,
    disk_role: String(t.disk.role),
    size_bytes: String(t.sizeBytes),
    backup_point_id: links.backupPointId ?? null,
    snapshot_point_id: links.snapshotPointId ?? null,
    created_at: createdAt,
  }));
}

function vhdBlobsOf(ctx: SnapshotContext): VhdBlobs {
  if (!ctx.vhdBlobs)
    throw new Error('This caller has no blob access for unmanaged disks; give it vhdBlobs.');
  return ctx.vhdBlobs;
}

function snapshotIdIn(diskId: string, resourceGroup: string, name: string): string {
  const { subscriptionId } = parseResourceId(diskId);
  return `/subscriptions/${subscriptionId}/resourceGroups/${resourceGroup}/providers/Microsoft.Compute/snapshots/${name}`;
}
