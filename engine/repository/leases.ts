/**
 * Leases that keep pruning and backups apart, across all workers.
 *
 * A backup deduplicates against blocks already in the repository before its
 * restore point exists, so a prune running meanwhile could delete a block the
 * new restore point is about to reference. The rule: a backup holds a 'backup'
 * lease from its first block lookup until its restore point row is written; a
 * prune deletes packs only while it holds the 'prune' lease, which it gets only
 * when no backup lease is live, and no backup lease is granted while it is.
 * Leases are rows with an expiry, renewed while their holder runs, so a crashed
 * worker's lease lapses by itself. A transaction-scoped advisory lock makes the
 * check-and-insert atomic.
 */
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { Db } from '../../core/db/database.ts';
import { unavailable } from '../../core/errors.ts';

/** Arbitrary constant naming the lease lock for pg_advisory_xact_lock. */
const LEASE_LOCK = 7_300_431;
const DEFAULT_TTL_MS = 10 * 60_000;

export type LeaseKind = 'backup' | 'prune';

export interface Lease {
  id: string;
  kind: LeaseKind;
  /** Stops renewing and removes the lease. */
  release(): Promise<void>;
}

/** Takes a lease unless the other kind holds one (a prune also excludes another prune); undefined when refused. */
export async function tryLease(
  db: Db,
  kind: LeaseKind,
  ttlMs = DEFAULT_TTL_MS,
): Promise<Lease | undefined> {
  const id = randomUUID();
  const granted = await db.transaction().execute(async (tx) => {
    await sql`select pg_advisory_xact_lock(${LEASE_LOCK})`.execute(tx);
    await tx.deleteFrom('repository_leases').where('expires_at', '<', new Date()).execute();
    const blocking = await tx
      .selectFrom('repository_leases')
      .select('id')
      .where('kind', 'in', kind === 'backup' ? ['prune'] : ['prune', 'backup'])
      .executeTakeFirst();
    if (blocking) return false;
    await tx
      .insertInto('repository_leases')
      .values({ id, kind, expires_at: new Date(Date.now() + ttlMs) })
      .execute();
    return true;
  });
  if (!granted) return undefined;

  const timer = setInterval(() => {
    db.updateTable('repository_leases')
      .set({ expires_at: new Date(Date.now() + ttlMs) })
      .where('id', '=', id)
      .execute()
      .catch(() => undefined);
  }, ttlMs / 3);
  timer.unref();
  return {
    id,
    kind,
    release: async () => {
      clearInterval(timer);
      await db.deleteFrom('repository_leases').where('id', '=', id).execute();
    },
  };
}

/** Waits for a backup lease while a prune holds the repository; unavailable after `waitMs`. */
export async function backupLease(db: Db, waitMs = 30 * 60_000, pollMs = 2000): Promise<Lease> {
  const deadline = Date.now() + waitMs;
  for (;;) {
    const lease = await tryLease(db, 'backup');
    if (lease) return lease;
    if (Date.now() > deadline)
      throw unavailable(
        'The repository is being pruned and the backup could not start; it will be retried. If this repeats, look for a stuck prune in the service log.',
      );
    await new Promise((resolve) => setTimeout(resolve, pollMs));
  }
}
