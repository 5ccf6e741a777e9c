/**
 * Backup status of one customer's protected items: how many restore points
 * each has, the newest, and how its latest backup job went.
 *
 * Backup jobs keep no table of their own: the pipeline (./backup.ts) writes
 * backup.start, backup.finish and backup.fail to the audit log with the item's
 * id, so the newest of those entries per item is its latest job. A start with
 * nothing after it is a job still running (or one whose worker died; pg-boss
 * retries it).
 */
import { sql } from 'kysely';
import type { Db } from '../core/db/database.ts';
import type { ProtectedItem } from '../core/db/schema.ts';

export type BackupOutcome = 'running' | 'succeeded' | 'failed';

export interface ItemStatus {
  item: ProtectedItem;
  restorePointCount: number;
  /** When the newest restore point was taken; undefined before the first backup completes. */
  newestRestorePoint?: Date;
  /** The latest backup job, when the audit log records one. */
  lastBackup?: { outcome: BackupOutcome; at: Date };
}

const outcomeOfAction: Record<string, BackupOutcome> = {
  'backup.start': 'running',
  'backup.finish': 'succeeded',
  'backup.fail': 'failed',
};

/** Every protected item of the customer, by name, with its restore points and latest backup job. */
export async function backupStatus(db: Db, customerId: string): Promise<ItemStatus[]> {
  const items = await db
    .selectFrom('protected_items')
    .selectAll()
    .where('customer_id', '=', customerId)
    .orderBy('name')
    .execute();

  const points = await db
    .selectFrom('restore_points')
    .select((eb) => [
      'item_id',
      eb.fn.countAll<string>().as('count'),
      eb.fn.max('created_at').as('newest'),
    ])
    .where('customer_id', '=', customerId)
    .groupBy('item_id')
    .execute();

  const itemId = sql<string>`details->>'itemId'`;
  const jobs = await db
    .selectFrom('audit_log')
    .distinctOn(itemId)
    .select([itemId.as('item_id'), 'action', 'at'])
    .where(sql<string>`details->>'customerId'`, '=', customerId)
    .where('action', 'in', Object.keys(outcomeOfAction))
    .orderBy(itemId)
    .orderBy('seq', 'desc')
    .execute();

  const pointsOf = new Map(points.map((p) => [p.item_id, p]));
  const jobOf = new Map(jobs.map((j) => [j.item_id, j]));
  return items.map((item) => {
    const point = pointsOf.get(item.id);
    const job = jobOf.get(item.id);
    return {
      item,
      restorePointCount: Number(point?.count ?? 0),
      newestRestorePoint: point?.newest ? new Date(point.newest as unknown as string) : undefined,
      lastBackup: job
        ? { outcome: outcomeOfAction[job.action]!, at: new Date(job.at as unknown as string) }
        : undefined,
    };
  });
}
