/**
 * Prometheus metrics (prom-client). Two kinds live here:
 *
 * - Events counted by the process they happen in: jobs and tasks finished,
 *   their durations, bytes read and written, restores, approval waiting time.
 *   Each web and worker process serves its own on `GET /metrics`, and
 *   Prometheus adds them up across processes, as with any counter.
 * - State read from the database when scraped, the same from every process:
 *   queue depth, workers alive, requests waiting for approval, repository
 *   size by customer. Those are registered per application (./metrics-state.ts
 *   in the caller) because each one reads its own database.
 *
 * Labels hold kinds and outcomes, plus the customer id for repository size;
 * never names, paths, links or anything secret.
 */
import client from 'prom-client';

/** The registry of event metrics, shared by everything in this process. */
export const eventRegistry = new client.Registry();

const DURATION_BUCKETS = [1, 5, 15, 60, 300, 900, 1800, 3600, 3 * 3600, 6 * 3600, 12 * 3600];

/** Job sessions that ended, by what they backed up ('vm', 'sql') and outcome. */
export const jobsFinished = new client.Counter({
  name: 'acba_jobs_total',
  help: 'Backup job sessions that ended, by item type and outcome',
  labelNames: ['item', 'outcome'] as const,
  registers: [eventRegistry],
});

export const jobDuration = new client.Histogram({
  name: 'acba_job_duration_seconds',
  help: 'How long backup job sessions ran, start to end, by item type and outcome',
  labelNames: ['item', 'outcome'] as const,
  buckets: DURATION_BUCKETS,
  registers: [eventRegistry],
});

/** Task attempts that ended: 'succeeded', 'failed' (for good) or 'retried'. */
export const tasksFinished = new client.Counter({
  name: 'acba_tasks_total',
  help: 'Task attempts (one disk or one database) that ended, by subject and outcome',
  labelNames: ['subject', 'outcome'] as const,
  registers: [eventRegistry],
});

export const taskDuration = new client.Histogram({
  name: 'acba_task_duration_seconds',
  help: 'How long task attempts ran, holding a licence slot, by subject and outcome',
  labelNames: ['subject', 'outcome'] as const,
  buckets: DURATION_BUCKETS,
  registers: [eventRegistry],
});

export const bytesRead = new client.Counter({
  name: 'acba_bytes_read_total',
  help: 'Bytes read from protected disks and databases by tasks that succeeded',
  labelNames: ['subject'] as const,
  registers: [eventRegistry],
});

export const bytesWritten = new client.Counter({
  name: 'acba_bytes_written_total',
  help: 'Bytes the repository gained from tasks that succeeded (after deduplication and compression)',
  labelNames: ['subject'] as const,
  registers: [eventRegistry],
});

/** Restores that ended, by request kind and outcome ('completed', 'failed'). */
export const restoresFinished = new client.Counter({
  name: 'acba_restores_total',
  help: 'Restores that ended, by request kind and outcome',
  labelNames: ['kind', 'outcome'] as const,
  registers: [eventRegistry],
});

/** From a request's creation to its final approval or rejection. */
export const approvalWait = new client.Histogram({
  name: 'acba_approval_wait_seconds',
  help: 'Time from a written request to its final decision, by request kind and decision',
  labelNames: ['kind', 'decision'] as const,
  buckets: [60, 300, 900, 3600, 4 * 3600, 12 * 3600, 24 * 3600, 3 * 24 * 3600, 7 * 24 * 3600],
  registers: [eventRegistry],
});

/** Seconds since `since`, for histograms. */
export function secondsSince(since: Date, now = new Date()): number {
  return Math.max(0, (now.getTime() - since.getTime()) / 1000);
}
