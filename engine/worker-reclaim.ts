/**
 * Taking back what dead workers held (see ./worker-leases.ts for the leases).
 *
 * A worker is dead when something carries its id (a running queue job, a
 * running job session, a held task slot) and it has no live lease row. Any
 * process that runs the queue sweeps regularly; in one transaction it
 *   1. removes lapsed lease rows,
 *   2. fails the dead workers' queue jobs in pg-boss, so that the queue's
 *      retry runs them again on a live worker,
 *   3. ends their running tasks and sessions as failed, and
 *   4. frees their task slots, after the tasks' recorded intervals end, so
 *      that the retry is not held back by slots nobody renews.
 * Rows are claimed with `FOR UPDATE SKIP LOCKED` and every update checks the
 * state it changes, so two processes sweeping at once take back each thing
 * once; a sweeper that dies mid-way rolls everything back for the next one.
 */
import { CompiledQuery, sql, type Transaction } from 'kysely';
import { appendAudit, serviceActor } from '../core/audit.ts';
import type { Db, ExecuteSql } from '../core/db/database.ts';
import type { Database } from '../core/db/schema.ts';
import type { Logger } from '../core/log.ts';
import { itemAuditResource } from './resource-types.ts';

/** Fails one queue job on a dead worker's behalf, through the given SQL executor. */
export type FailQueueJob = (
  queue: string,
  jobId: string,
  message: string,
  executeSql: ExecuteSql,
) => Promise<void>;

/** What one sweep took back. */
export interface ReclaimReport {
  workers: string[];
  jobs: number;
  sessions: number;
  slots: number;
}

/** The message dead workers' sessions, tasks and jobs end with; customers may read it. */
export const WORKER_STOPPED =
  'The worker running this backup stopped before it finished; the queue runs the backup again on another worker.';

/** Takes back everything that workers without a live lease hold; see the module note. */
export async function reclaimDeadWorkers(
  db: Db,
  failJob: FailQueueJob,
  log: Logger,
): Promise<ReclaimReport> {
  const { report, sessions } = await db.transaction().execute(async (tx) => {
    const workers = await deadWorkers(tx);
    if (workers.length === 0) return { report: emptyReport(), sessions: [] };

    await tx.deleteFrom('workers').where('id', 'in', workers).execute();
    const jobs = await failJobs(tx, workers, failJob);
    const sessions = await failSessions(tx, workers);
    const slots = await tx
      .updateTable('task_slots')
      .set({ holder: null, expires_at: null, worker_id: null })
      .where('worker_id', 'in', workers)
      .executeTakeFirst();
    const report = {
      workers,
      jobs,
      sessions: sessions.length,
      slots: Number(slots.numUpdatedRows),
    };
    return { report, sessions };
  });

  if (report.workers.length > 0) log.warn({ ...report }, 'dead_workers_reclaimed');
  for (const session of sessions) await auditStoppedSession(db, session, log);
  return report;
}

/** Checks every `intervalMs` for dead workers until the returned function is called. */
export function startReclaimer(
  db: Db,
  failJob: FailQueueJob,
  log: Logger,
  intervalMs: number,
): () => void {
  let sweeping = false;
  const timer = setInterval(() => {
    if (sweeping) return;
    sweeping = true;
    reclaimDeadWorkers(db, failJob, log)
      .catch((err) => log.error({ err }, 'dead_worker_reclaim_failed'))
      .finally(() => {
        sweeping = false;
      });
  }, intervalMs);
  timer.unref();
  return () => clearInterval(timer);
}

function emptyReport(): ReclaimReport {
  return { workers: [], jobs: 0, sessions: 0, slots: 0 };
}

/** Worker ids that something still carries, with no live lease; lapsed leases are locked for this sweep. */
async function deadWorkers(tx: Transaction<Database>): Promise<string[]> {
  const lapsed = await tx
    .selectFrom('workers')
    .select('id')
    .where('expires_at', '<', sql<Date>`now()`)
    .forUpdate()
    .skipLocked()
    .execute();
  const orphans = await sql<{ worker_id: string }>`
    select worker_id from worker_jobs
    union select worker_id from job_sessions where status = 'running' and worker_id is not null
    union select worker_id from task_slots where holder is not null and worker_id is not null
    except select id from workers where expires_at >= now()`.execute(tx);
  const ids = new Set([...lapsed.map((w) => w.id), ...orphans.rows.map((o) => o.worker_id)]);
  return [...ids];
}

/** Fails the dead workers' queue jobs in pg-boss within this transaction; returns how many. */
async function failJobs(
  tx: Transaction<Database>,
  workers: string[],
  failJob: FailQueueJob,
): Promise<number> {
  const jobs = await tx
    .selectFrom('worker_jobs')
    .select(['job_id', 'queue'])
    .where('worker_id', 'in', workers)
    .forUpdate()
    .skipLocked()
    .execute();
  const executeSql: ExecuteSql = async (text, values) => {
    const result = await tx.executeQuery(CompiledQuery.raw(text, values ?? []));
    return { rows: result.rows as any[] };
  };
  for (const job of jobs) await failJob(job.queue, job.job_id, WORKER_STOPPED, executeSql);
  if (jobs.length > 0)
    await tx
      .deleteFrom('worker_jobs')
      .where(
        'job_id',
        'in',
        jobs.map((j) => j.job_id),
      )
      .execute();
  return jobs.length;
}

interface StoppedSession {
  id: string;
  customer_id: string;
  item_id: string;
  item_name: string;
}

/** Ends the dead workers' running tasks, then their sessions, as failed. */
async function failSessions(
  tx: Transaction<Database>,
  workers: string[],
): Promise<StoppedSession[]> {
  const running = tx
    .selectFrom('job_sessions')
    .select('id')
    .where('worker_id', 'in', workers)
    .where('status', '=', 'running');
  await tx
    .updateTable('job_tasks')
    .set({ status: 'failed', finished_at: sql<Date>`now()`, error: WORKER_STOPPED })
    .where('session_id', 'in', running)
    .where('status', 'in', ['waiting', 'running'])
    .execute();
  return tx
    .updateTable('job_sessions')
    .set({
      status: 'failed',
      finished_at: sql<Date>`now()`,
      error_kind: 'unavailable',
      error: WORKER_STOPPED,
    })
    .where('worker_id', 'in', workers)
    .where('status', '=', 'running')
    .returning(['id', 'customer_id', 'item_id', 'item_name'])
    .execute();
}

/** Closes the session's `backup.start` in the audit trail, as a failed run would. */
async function auditStoppedSession(db: Db, session: StoppedSession, log: Logger): Promise<void> {
  const item = await db
    .selectFrom('protected_items')
    .select('kind')
    .where('id', '=', session.item_id)
    .executeTakeFirst();
  await appendAudit(db, {
    actor: serviceActor,
    channel: 'engine',
    action: 'backup.fail',
    resource: itemAuditResource(item?.kind ?? 'vm', session.customer_id, session.item_name),
    outcome: 'failed',
    details: {
      customerId: session.customer_id,
      itemId: session.item_id,
      sessionId: session.id,
      kind: 'unavailable',
      message: WORKER_STOPPED,
    },
  }).catch((err) => log.warn({ err, sessionId: session.id }, 'audit_append_failed'));
}
