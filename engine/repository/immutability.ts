/**
 * Write-once protection of the repository's objects, for containers with
 * version-level immutability (WORM) enabled in Azure, behind the setting
 * ACBA_REPOSITORY_IMMUTABILITY (off by default).
 *
 * A restore point's objects are kept immutable until the restore point
 * expires: once its manifest is written, and before the restore point becomes
 * visible, the manifest and every pack holding one of its blocks get a
 * time-based immutability policy ending at the restore point's expiry. A pack
 * that a later backup references again (deduplication) has its policy
 * extended to that restore point's expiry, never shortened, so a pack stays
 * protected until the last restore point that referenced it when it was
 * written expires. Nothing is guessed at upload time: a pack written by a
 * backup that fails before its restore point is made stays unprotected and is
 * pruned as an orphan.
 *
 * Policies are Unlocked: the container's own (locked) immutability policy is
 * what an attacker with the account key cannot shorten; these per-object
 * policies make the expiry of each object visible and enforced by storage.
 * Pruning skips any object whose policy has not ended (see ../retention.ts).
 */
import type { BlobItem, ContainerClient } from '@azure/storage-blob';
import type { Db } from '../../core/db/database.ts';
import { unavailable } from '../../core/errors.ts';

/** Objects whose policy is extended at once. */
const PARALLEL_REQUESTS = 8;

/**
 * Makes a restore point's manifest and packs immutable until `until`;
 * throws unavailable naming the container when storage refuses.
 */
export async function protectRestorePoint(
  deps: { db: Db; container: ContainerClient },
  restorePoint: { manifestPath: string; blockIds: string[]; expiresAt: Date },
): Promise<void> {
  const packs = new Set<string>();
  const ids = [...new Set(restorePoint.blockIds)];
  for (let i = 0; i < ids.length; i += 500) {
    const rows = await deps.db
      .selectFrom('repository_blocks')
      .select('pack_path')
      .distinct()
      .where('id', 'in', ids.slice(i, i + 500))
      .execute();
    for (const row of rows) packs.add(row.pack_path);
  }

  const paths = [restorePoint.manifestPath, ...packs];
  for (let i = 0; i < paths.length; i += PARALLEL_REQUESTS) {
    await Promise.all(
      paths
        .slice(i, i + PARALLEL_REQUESTS)
        .map((path) => retainUntil(deps.container, path, restorePoint.expiresAt)),
    );
  }
}

/** When a listed blob's immutability ends; undefined when it has none (list with includeImmutabilityPolicy). */
export function immutableUntil(blob: BlobItem): Date | undefined {
  return blob.properties.immutabilityPolicyExpiresOn;
}

async function retainUntil(container: ContainerClient, path: string, until: Date): Promise<void> {
  const blob = container.getBlobClient(path);
  try {
    const current = (await blob.getProperties()).immutabilityPolicyExpiresOn;
    if (current && current >= until) return;
    await blob.setImmutabilityPolicy({ expiriesOn: until, policyMode: 'Unlocked' });
  } catch (error) {
    const status = (error as { statusCode?: number }).statusCode ?? 'no status';
    const reason = (error as Error).message.replace(/\s+/g, ' ').trim();
    throw unavailable(
      `Object ${path} in repository container ${container.containerName} cannot be made immutable until ${until.toISOString()} (${status} ${reason}). Enable version-level immutability on the container, or set ACBA_REPOSITORY_IMMUTABILITY=off.`,
    );
  }
}
