/**
 * The engine's job queue on pg-boss: jobs are durable rows in PostgreSQL
 * (PGlite or a real server, through the database handle's executeSql), so a
 * crashed worker's job is picked up again by another.
 *
 * Outcomes: a job that fails for a passing reason (Azure or storage not
 * answering, anything unexpected) is retried a couple of times with backoff.
 * A refusal (forbidden, a licence limit), bad input or something that does not exist will not
 * change on retry: such a job completes with the refusal as its output, and
 * the audit log already holds the reason.
 *
 * A worker that dies mid-job cannot fail its job: each job runs tracked under
 * the worker's lease (./worker-leases.ts), and whoever reclaims the dead
 * worker fails the job through `failJob`, so that the retry above runs it on
 * a live worker (./worker-reclaim.ts). The row goes just before pg-boss
 * records the outcome; a worker dying in that instant leaves its job to
 * pg-boss's own expiry.
 */
import PgBoss from 'pg-boss';
import type { ExecuteSql } from '../core/db/database.ts';
import { isAcbaError, unavailable } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { BackupJob, FileRestoreJob, JobQueue } from './queue.ts';
import type { FailQueueJob } from './worker-reclaim.ts';
import type { WorkerLease } from './worker-leases.ts';

export interface PgBossQueueOptions {
  executeSql: ExecuteSql;
  log: Logger;
  /** How often idle workers look for jobs; 2 s by default. */
  pollingIntervalSeconds?: number;
  /** Retries of a failed job and the first delay (doubling after); 2 and 30 s by default. */
  retry?: { limit: number; delaySeconds: number };
}

export interface JobHandlers {
  fileRestore(job: FileRestoreJob): Promise<void>;
  backup(job: BackupJob): Promise<void>;
}

export type PgBossJobQueue = JobQueue & {
  /** Starts taking jobs from both queues, each tracked under the worker's lease while it runs. */
  work(handlers: JobHandlers, lease?: Pick<WorkerLease, 'track'>): Promise<void>;
  /** Fails a job on behalf of a worker that died running it; the queue's retry settings apply. */
  failJob: FailQueueJob;
  health(): Promise<void>;
  /**
   * The items among `itemIds` with a backup job not yet ended: waiting, waiting
   * for a retry, or running. A backup that failed and will be retried still counts.
   */
  pendingBackups(itemIds: string[]): Promise<Set<string>>;
  /** Jobs waiting in each queue, new or waiting for a retry, by queue name. */
  depth(): Promise<Record<string, number>>;
  stop(): Promise<void>;
};

export const FILE_RESTORE_QUEUE = 'engine-file-restore';
export const BACKUP_QUEUE = 'engine-backup';

/** Errors that a retry cannot fix; a licence limit holds until an operator changes the licence. */
const PERMANENT_KINDS = [
  'forbidden',
  'bad_input',
  'not_found',
  'conflict',
  'limit_reached',
] as const;

export async function startJobQueue(opts: PgBossQueueOptions): Promise<PgBossJobQueue> {
  const log = opts.log.child({ component: 'job-queue' });
  const boss = new PgBoss({
    db: { executeSql: (text, values) => opts.executeSql(text, values) },
    schema: 'pgboss',
  });
  boss.on('error', (err) => log.error({ err }, 'job_queue_error'));
  await boss.start();

  // Stately: per item (or request) at most one job waiting and one running.
  const retry = {
    retryLimit: opts.retry?.limit ?? 2,
    retryDelay: opts.retry?.delaySeconds ?? 30,
    retryBackoff: true,
  };
  const queues = [
    // A whole-VM restore writes every disk of the VM; the job may run for hours.
    { name: FILE_RESTORE_QUEUE, policy: 'stately' as const, ...retry, expireInSeconds: 6 * 3600 },
    { name: BACKUP_QUEUE, policy: 'stately' as const, ...retry, expireInSeconds: 12 * 3600 },
  ];
  for (const queue of queues) {
    // createQueue leaves an existing queue as it is; updateQueue applies today's settings to it.
    await boss.createQueue(queue.name, queue);
    await boss.updateQueue(queue.name, queue);
  }

  const run = async <T>(
    queue: string,
    job: PgBoss.Job<T>,
    handler: (data: T) => Promise<void>,
    lease?: Pick<WorkerLease, 'track'>,
  ) => {
    const jobLog = log.child({ queue, jobId: job.id });
    const untrack = await lease?.track(queue, job.id);
    try {
      await handler(job.data);
      jobLog.info('job_done');
      return { outcome: 'done' };
    } catch (error) {
      if (isAcbaError(error) && (PERMANENT_KINDS as readonly string[]).includes(error.kind)) {
        jobLog.warn({ kind: error.kind, reason: error.message }, 'job_refused');
        return { outcome: error.kind, message: error.message };
      }
      jobLog.error({ err: error }, 'job_failed');
      throw error;
    } finally {
      await untrack?.().catch((err) => jobLog.warn({ err }, 'job_untrack_failed'));
    }
  };

  return {
    enqueueFileRestore: async (job) => {
      await boss.send(FILE_RESTORE_QUEUE, job, { singletonKey: job.requestId });
    },
    enqueueBackup: async (job) => {
      await boss.send(BACKUP_QUEUE, job, { singletonKey: job.itemId });
    },
    work: async (handlers, lease) => {
      const pollingIntervalSeconds = opts.pollingIntervalSeconds ?? 2;
      await boss.work<FileRestoreJob>(
        FILE_RESTORE_QUEUE,
        { batchSize: 1, pollingIntervalSeconds },
        async ([job]) => job && run(FILE_RESTORE_QUEUE, job, handlers.fileRestore, lease),
      );
      await boss.work<BackupJob>(
        BACKUP_QUEUE,
        { batchSize: 1, pollingIntervalSeconds },
        async ([job]) => job && run(BACKUP_QUEUE, job, handlers.backup, lease),
      );
    },
    failJob: async (queue, jobId, message, executeSql) => {
      await boss.fail(queue, jobId, { message }, { db: { executeSql } });
      log.warn({ queue, jobId }, 'job_of_dead_worker_failed');
    },
    health: async () => {
      try {
        await boss.getQueueSize(FILE_RESTORE_QUEUE);
      } catch (error) {
        throw unavailable(`job queue does not answer: ${(error as Error).message}`);
      }
    },
    pendingBackups: async (itemIds) => {
      if (itemIds.length === 0) return new Set();
      // Backup jobs carry their item id as pg-boss's singleton key; states before 'completed' have not ended.
      const { rows } = await opts.executeSql(
        "select distinct singleton_key from pgboss.job where name = $1 and singleton_key = any($2) and state < 'completed'",
        [BACKUP_QUEUE, itemIds],
      );
      return new Set(rows.map((r: { singleton_key: string }) => r.singleton_key));
    },
    depth: async () => {
      const depths: Record<string, number> = {};
      for (const queue of queues) depths[queue.name] = await boss.getQueueSize(queue.name);
      return depths;
    },
    stop: async () => {
      await boss.stop({ graceful: true, wait: true, timeout: 30_000 });
    },
  };
}
