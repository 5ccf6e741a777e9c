/**
 * Worker leases: how the processes that share one database and one queue
 * know which of them are alive.
 *
 * A process that takes jobs holds a row in `workers` and renews its expiry
 * every third of the lease. It records each queue job it runs in
 * `worker_jobs` while the job runs, and its id is stamped on the job sessions
 * it opens and the task slots it claims. A process killed outright (SIGKILL,
 * a lost machine) stops renewing; once its expiry passes, another process
 * takes everything it held back (./worker-reclaim.ts).
 *
 * A worker that finds its own row gone was declared dead while it still ran
 * (a long pause, a lost database connection): its jobs are already running
 * elsewhere, so it is told through `onLost` and must stop at once.
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { sql } from 'kysely';
import type { Db } from '../core/db/database.ts';
import type { Logger } from '../core/log.ts';

/**
 * How long a worker's lease lasts without renewal, by default: shorter than a
 * task slot's own expiry (./task-slots.ts), so that a dead worker's slots are
 * freed by the reclaim, which also ends its tasks, before they lapse alone.
 */
export const WORKER_LEASE_TTL_MS = 30_000;

export interface WorkerLeaseOptions {
  log: Logger;
  /** 'all' for `acba serve`, 'worker' for `acba worker`. */
  role: string;
  ttlMs?: number;
  /** Called once when the lease turns out to have been taken back. */
  onLost?: () => void;
}

export interface WorkerLease {
  /** The id stamped on this worker's sessions, slots and running jobs. */
  id: string;
  /** Records a queue job this worker starts; the returned function forgets it when the job ends. */
  track(queue: string, jobId: string): Promise<() => Promise<void>>;
  /**
   * Stops renewing and removes the lease (a clean shutdown). Jobs still
   * running then are taken back by other processes like a dead worker's.
   */
  stop(): Promise<void>;
}

/** Registers this process as a worker and keeps its lease alive until stop(). */
export async function startWorkerLease(db: Db, options: WorkerLeaseOptions): Promise<WorkerLease> {
  const id = randomUUID();
  const ttlMs = options.ttlMs ?? WORKER_LEASE_TTL_MS;
  const log = options.log.child({ workerId: id });
  await db
    .insertInto('workers')
    .values({
      id,
      host: os.hostname(),
      pid: process.pid,
      role: options.role,
      expires_at: sql<Date>`now() + make_interval(secs => ${ttlMs / 1000})`,
    })
    .execute();
  log.info({ ttlMs }, 'worker_lease_started');

  let lost = false;
  const renew = async () => {
    const result = await db
      .updateTable('workers')
      .set({ expires_at: sql<Date>`now() + make_interval(secs => ${ttlMs / 1000})` })
      .where('id', '=', id)
      .executeTakeFirst();
    if (result.numUpdatedRows > 0n || lost) return;
    lost = true;
    log.fatal('worker_lease_lost');
    options.onLost?.();
  };
  const timer = setInterval(() => {
    renew().catch((err) => log.warn({ err }, 'worker_lease_renewal_failed'));
  }, ttlMs / 3);
  timer.unref();

  return {
    id,
    track: async (queue, jobId) => {
      // A retried job keeps its id: the worker running it now takes the row over.
      await db
        .insertInto('worker_jobs')
        .values({ job_id: jobId, queue, worker_id: id })
        .onConflict((oc) =>
          oc.column('job_id').doUpdateSet({ queue, worker_id: id, started_at: new Date() }),
        )
        .execute();
      return async () => {
        await db
          .deleteFrom('worker_jobs')
          .where('job_id', '=', jobId)
          .where('worker_id', '=', id)
          .execute();
      };
    },
    stop: async () => {
      clearInterval(timer);
      await db.deleteFrom('workers').where('id', '=', id).execute();
      log.info('worker_lease_stopped');
    },
  };
}

/** Workers whose lease has not lapsed. */
export async function workersAlive(db: Db): Promise<number> {
  const row = await db
    .selectFrom('workers')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('expires_at', '>', sql<Date>`now()`)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}
