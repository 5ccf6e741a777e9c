/**
 * Backup status of one customer's protected items: how many restore points
 * each has, the newest, and how its latest backup job went, read from the
 * job sessions (./job-sessions.ts): the newest session of each item, with
 * the progress of its tasks while it runs.
 */
import type { Db } from '../core/db/database.ts';
import type { JobStatus, ProtectedItem } from '../core/db/schema.ts';

export type BackupOutcome = JobStatus;

export interface BackupProgress {
  /** Tasks (disks of a VM, or the one of a database) finished, and in all so far. */
  tasksDone: number;
  tasks: number;
  /** Bytes read so far, finished tasks and running ones together. */
  bytesRead: number;
}

export interface LastBackup {
  outcome: BackupOutcome;
  /** When it started (running) or ended. */
  at: Date;
  sessionId: string;
  /** While it runs. */
  progress?: BackupProgress;
}

export interface ItemStatus {
  item: ProtectedItem;
  restorePointCount: number;
  /** When the newest restore point was taken; undefined before the first backup completes. */
  newestRestorePoint?: Date;
  /** The latest backup job, when there has been one. */
  lastBackup?: LastBackup;
}

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

  const sessions = await db
    .selectFrom('job_sessions')
    .distinctOn('item_id')
    .select(['id', 'item_id', 'status', 'started_at', 'finished_at'])
    .where('customer_id', '=', customerId)
    .where('kind', '=', 'backup')
    .orderBy('item_id')
    .orderBy('started_at', 'desc')
    .orderBy('id')
    .execute();
  const progress = await progressOf(
    db,
    sessions.filter((s) => s.status === 'running').map((s) => s.id),
  );

  const pointsOf = new Map(points.map((p) => [p.item_id, p]));
  const sessionOf = new Map(sessions.map((s) => [s.item_id, s]));
  return items.map((item) => {
    const point = pointsOf.get(item.id);
    const session = sessionOf.get(item.id);
    return {
      item,
      restorePointCount: Number(point?.count ?? 0),
      newestRestorePoint: point?.newest ? new Date(point.newest as unknown as string) : undefined,
      lastBackup: session && {
        outcome: session.status,
        at: new Date(session.finished_at ?? session.started_at),
        sessionId: session.id,
        progress: progress.get(session.id),
      },
    };
  });
}

async function progressOf(db: Db, sessionIds: string[]): Promise<Map<string, BackupProgress>> {
  if (sessionIds.length === 0) return new Map();
  const rows = await db
    .selectFrom('job_tasks')
    .select((eb) => [
      'session_id',
      eb.fn.countAll<string>().as('tasks'),
      eb.fn.count<string>(eb.case().when('status', '=', 'succeeded').then(1).end()).as('done'),
      eb.fn.sum<string>('bytes_done').as('bytes'),
    ])
    .where('session_id', 'in', sessionIds)
    .groupBy('session_id')
    .execute();
  return new Map(
    rows.map((r) => [
      r.session_id,
      { tasks: Number(r.tasks), tasksDone: Number(r.done), bytesRead: Number(r.bytes ?? 0) },
    ]),
  );
}
