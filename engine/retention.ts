/**
 * Retention: expired restore points are removed (database row first, so the
 * restore point is invisible before anything of it goes, then its manifest),
 * then the repository is pruned.
 *
 * Pruning deletes whole packs only, and only packs none of whose blocks any
 * restore point references; a pack that still holds one referenced block is
 * kept whole (no repacking), and the bytes it wastes are reported. Packs that
 * no index row points at (left by a crashed backup) go too, once older than a
 * grace period. Pruning runs only under the repository's prune lease, which no
 * backup holds at the same time (./repository/leases.ts): a backup may
 * deduplicate against any indexed block until its restore point is written, so
 * no block is deleted while a backup is in progress. When backups run, the
 * prune is deferred to the next round, saying so. With immutability on
 * (./repository/immutability.ts), a pack whose immutability policy has not
 * ended is kept, index rows and all, and counted in the report.
 *
 * Snapshot restore points never expire by date (see ./vm-snapshots.ts) and
 * hold no blocks. An expired backup's kept disk snapshot goes with it unless
 * a snapshot restore point or a newer backup's chain still uses it; that
 * needs Azure, so it happens when the caller passes `compute`.
 */
import { appendAudit, serviceActor } from '../core/audit.ts';
import type { ComputeManagementClient } from '@azure/arm-compute';
import type { Db } from '../core/db/database.ts';
import type { Logger } from '../core/log.ts';
import { releaseSnapshots } from './disk-snapshots.ts';
import { immutableUntil } from './repository/immutability.ts';
import { tryLease } from './repository/leases.ts';
import type { VhdBlobs } from './vhd-snapshots.ts';
import { manifestBlockIds, readAnyManifest } from './repository/manifest.ts';
import type { Repository } from './repository/repository.ts';

export interface RetentionDeps {
  db: Db;
  repository: Repository;
  log: Logger;
  /** Azure compute clients, to delete the kept snapshots of expired backups; without them the snapshots wait for a later run. */
  compute?(subscriptionId: string): ComputeManagementClient;
  /** Blob clients for unmanaged disks, to delete their kept blob snapshots likewise. */
  vhdBlobs?: VhdBlobs;
  /** Poll interval for ARM long-running operations without Retry-After. */
  pollIntervalMs?: number;
}

/** Removes restore points whose expiry has passed; returns their ids. */
export async function expireRestorePoints(
  deps: RetentionDeps,
  now = new Date(),
): Promise<string[]> {
  const due = await deps.db
    .selectFrom('restore_points')
    .selectAll()
    .where('expires_at', '<=', now)
    .where('type', '=', 'backup')
    .orderBy('expires_at')
    .execute();
  const expired: string[] = [];
  for (const point of due) {
    // Whoever deletes the row removes the manifest; a second worker finds nothing to delete.
    const deleted = await deps.db
      .deleteFrom('restore_points')
      .where('id', '=', point.id)
      .returning('id')
      .executeTakeFirst();
    if (!deleted) continue;
    await deps.repository.deleteObject(point.manifest_path);
    await appendAudit(deps.db, {
      actor: serviceActor,
      channel: 'scheduler',
      action: 'restore_point.expire',
      resource: `restore-point/${point.id}`,
      outcome: 'success',
      details: {
        customerId: point.customer_id,
        itemId: point.item_id,
        createdAt: point.created_at.toISOString(),
        expiresAt: point.expires_at.toISOString(),
      },
    });
    deps.log.info({ restorePointId: point.id, itemId: point.item_id }, 'restore_point_expired');
    expired.push(point.id);
  }
  if (deps.compute) await releaseSnapshots({ ...deps, compute: deps.compute });
  return expired;
}

export interface PruneReport {
  /** False when backups were running and nothing was deleted. */
  ran: boolean;
  deletedPacks: number;
  deletedBlocks: number;
  freedBytes: number;
  /** Packs kept because some of their blocks are still referenced. */
  partialPacks: number;
  /** Bytes of unreferenced blocks inside those packs. */
  unreferencedBytesKept: number;
  /** Unreferenced packs kept because their immutability policy has not ended yet. */
  immutablePacksKept: number;
}

export interface PruneOptions {
  /** Packs without index rows younger than this are left alone; an hour by default. */
  orphanGraceMs?: number;
}

/** Deletes packs that no restore point references; see the module note for the safety rule. */
export async function prune(deps: RetentionDeps, options: PruneOptions = {}): Promise<PruneReport> {
  const report: PruneReport = {
    ran: false,
    deletedPacks: 0,
    deletedBlocks: 0,
    freedBytes: 0,
    partialPacks: 0,
    unreferencedBytesKept: 0,
    immutablePacksKept: 0,
  };
  const lease = await tryLease(deps.db, 'prune');
  if (!lease) {
    deps.log.info('prune_deferred_backups_running');
    return report;
  }
  try {
    report.ran = true;
    const referenced = await referencedBlocks(deps);

    const rows = await deps.db
      .selectFrom('repository_blocks')
      .select(['id', 'pack_path', 'length'])
      .execute();
    const packs = new Map<string, { ids: string[]; live: boolean; deadBytes: number }>();
    for (const row of rows) {
      const pack = packs.get(row.pack_path) ?? { ids: [], live: false, deadBytes: 0 };
      pack.ids.push(row.id);
      if (referenced.has(row.id)) pack.live = true;
      else pack.deadBytes += row.length;
      packs.set(row.pack_path, pack);
    }

    const grace = options.orphanGraceMs ?? 3600_000;
    const stored = new Map<string, number>();
    const lockedUntil = new Map<string, Date>();
    const listing = deps.repository.container.listBlobsFlat({
      prefix: 'packs/',
      includeImmutabilityPolicy: deps.repository.immutable,
    });
    for await (const blob of listing) {
      stored.set(blob.name, blob.properties.contentLength ?? 0);
      const until = immutableUntil(blob);
      if (until) lockedUntil.set(blob.name, until);
      const orphan = !packs.has(blob.name);
      const old = Date.now() - (blob.properties.lastModified?.getTime() ?? 0) > grace;
      if (orphan && old) packs.set(blob.name, { ids: [], live: false, deadBytes: 0 });
    }

    for (const [path, pack] of packs) {
      if (pack.live) {
        if (pack.deadBytes > 0) {
          report.partialPacks += 1;
          report.unreferencedBytesKept += pack.deadBytes;
        }
        continue;
      }
      const until = lockedUntil.get(path);
      if (until && until.getTime() > Date.now()) {
        report.immutablePacksKept += 1;
        deps.log.info({ pack: path, until: until.toISOString() }, 'prune_kept_immutable_pack');
        continue;
      }
      // Index rows first: from here on no reader or deduplication finds these blocks.
      for (let i = 0; i < pack.ids.length; i += 500)
        await deps.db
          .deleteFrom('repository_blocks')
          .where('id', 'in', pack.ids.slice(i, i + 500))
          .where('pack_path', '=', path)
          .execute();
      await deps.repository.deleteObject(path);
      report.deletedPacks += 1;
      report.deletedBlocks += pack.ids.length;
      report.freedBytes += stored.get(path) ?? 0;
    }
  } finally {
    await lease.release();
  }

  await appendAudit(deps.db, {
    actor: serviceActor,
    channel: 'scheduler',
    action: 'repository.prune',
    resource: `repository/${deps.repository.container.containerName}`,
    outcome: 'success',
    details: { ...report },
  });
  deps.log.info({ ...report }, 'prune_finished');
  return report;
}

/** Every block id any restore point references; throws when a manifest cannot be read, so nothing is pruned on a guess. */
async function referencedBlocks(deps: RetentionDeps): Promise<Set<string>> {
  const points = await deps.db
    .selectFrom('restore_points')
    .selectAll()
    .where('type', '=', 'backup')
    .execute();
  const referenced = new Set<string>();
  for (const point of points) {
    let manifest;
    try {
      manifest = await readAnyManifest(deps.repository, point);
    } catch (error) {
      throw new Error(
        `Pruning stopped: the manifest of restore point ${point.id} cannot be read (${(error as Error).message}). Run "acba repository check" and repair or remove that restore point first.`,
        { cause: error },
      );
    }
    for (const block of manifestBlockIds(manifest)) referenced.add(block);
  }
  return referenced;
}

/** Expiry then prune: the scheduler's hourly repository upkeep. */
export async function applyRetention(
  deps: RetentionDeps,
  now = new Date(),
): Promise<{ expired: string[]; prune: PruneReport }> {
  const expired = await expireRestorePoints(deps, now);
  return { expired, prune: await prune(deps) };
}
