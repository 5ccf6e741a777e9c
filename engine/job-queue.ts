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
 */
import PgBoss from 'pg-boss';
import type { ExecuteSql } from '../core/db/database.ts';
import { isAcbaError, unavailable } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { BackupJob, FileRestoreJob, JobQueue } from './queue.ts';

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
  /** Starts taking jobs from both queues. */
  work(handlers: JobHandlers): Promise<void>;
  health(): Promise<void>;
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

  const run = async <T>(queue: string, job: PgBoss.Job<T>, handler: (data: T) => Promise<void>) => {
    const jobLog = log.child({ queue, jobId: job.id });
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
    }
  };

  return {
    enqueueFileRestore: async (job) => {
      await boss.send(FILE_RESTORE_QUEUE, job, { singletonKey: job.requestId });
    },
    enqueueBackup: async (job) => {
      await boss.send(BACKUP_QUEUE, job, { singletonKey: job.itemId });
    },
    work: async (handlers) => {
      const pollingIntervalSeconds = opts.pollingIntervalSeconds ?? 2;
      await boss.work<FileRestoreJob>(
        FILE_RESTORE_QUEUE,
        { batchSize: 1, pollingIntervalSeconds },
        async ([job]) => job && run(FILE_RESTORE_QUEUE, job, handlers.fileRestore),
      );
      await boss.work<BackupJob>(
        BACKUP_QUEUE,
        { batchSize: 1, pollingIntervalSeconds },
        async ([job]) => job && run(BACKUP_QUEUE, job, handlers.backup),
      );
    },
    health: async () => {
      try {
        await boss.getQueueSize(FILE_RESTORE_QUEUE);
      } catch (error) {
        throw unavailable(`job queue does not answer: ${(error as Error).message}`);
      }
    },
    stop: async () => {
      await boss.stop({ graceful: true, wait: true, timeout: 30_000 });
    },
  };
}
