/**
 * What the portal and the API show of the work: job sessions with their tasks
 * (progress, throughput, attempts, outcome), and each customer's usage against
 * its licence. Every listing takes a customer filter, so that scoping happens
 * in SQL and a customer's staff never get another customer's rows.
 */
import type { Db } from '../core/db/database.ts';
import type { JobSession, JobStatus, JobTask } from '../core/db/schema.ts';
import { licenceView, storedBytesOf, type LicenceView } from './licences.ts';
import { listUsage, utcDay, type UsageRow } from './usage.ts';

export const JOB_STATUSES: readonly JobStatus[] = ['running', 'succeeded', 'warning', 'failed'];

export interface TaskListing {
  id: string;
  kind: string;
  name: string;
  status: JobTask['status'];
  attempts: number;
  bytesDone: number;
  bytesStored: number;
  totalBytes: number | null;
  /** Bytes per second over the current (or last) attempt; null before any progress. */
  throughput: number | null;
  startedAt: Date | null;
  finishedAt: Date | null;
  error: string | null;
}

export interface JobListing {
  id: string;
  customerId: string;
  customerName: string;
  itemId: string;
  itemName: string;
  kind: string;
  trigger: string;
  policyName: string | null;
  status: JobStatus;
  startedAt: Date;
  finishedAt: Date | null;
  bytesRead: number;
  bytesStored: number;
  warnings: string[];
  errorKind: string | null;
  error: string | null;
  restorePointId: string | null;
  tasks: TaskListing[];
}

export interface JobFilter {
  /** Limits the listing to one customer (always set for customers' staff). */
  customerId?: string;
  /** One session by its id. */
  sessionId?: string;
  itemId?: string;
  status?: JobStatus;
  /** Sessions, newest first; 100 by default. */
  limit?: number;
}

/** Job sessions, newest first, each with its tasks in the order they were made. */
export async function listJobs(db: Db, filter: JobFilter = {}): Promise<JobListing[]> {
  let query = db
    .selectFrom('job_sessions as s')
    .innerJoin('customers as c', 'c.id', 's.customer_id')
    .selectAll('s')
    .select('c.name as customer_name')
    .orderBy('s.started_at', 'desc')
    .orderBy('s.id')
    .limit(filter.limit ?? 100);
  if (filter.customerId) query = query.where('s.customer_id', '=', filter.customerId);
  if (filter.sessionId) query = query.where('s.id', '=', filter.sessionId);
  if (filter.itemId) query = query.where('s.item_id', '=', filter.itemId);
  if (filter.status) query = query.where('s.status', '=', filter.status);
  const sessions = await query.execute();
  if (sessions.length === 0) return [];

  const tasks = await db
    .selectFrom('job_tasks')
    .selectAll()
    .where(
      'session_id',
      'in',
      sessions.map((s) => s.id),
    )
    .orderBy('created_at')
    .orderBy('id')
    .execute();
  return sessions.map((session) =>
    jobListing(
      session,
      session.customer_name,
      tasks.filter((t) => t.session_id === session.id),
    ),
  );
}

function jobListing(session: JobSession, customerName: string, tasks: JobTask[]): JobListing {
  return {
    id: session.id,
    customerId: session.customer_id,
    customerName,
    itemId: session.item_id,
    itemName: session.item_name,
    kind: session.kind,
    trigger: session.trigger,
    policyName: session.policy_name,
    status: session.status,
    startedAt: session.started_at,
    finishedAt: session.finished_at,
    bytesRead: Number(session.bytes_read),
    bytesStored: Number(session.bytes_stored),
    warnings: session.warnings,
    errorKind: session.error_kind,
    error: session.error,
    restorePointId: session.restore_point_id,
    tasks: tasks.map(taskListing),
  };
}

function taskListing(task: JobTask): TaskListing {
  const bytesDone = Number(task.bytes_done);
  const until = task.finished_at ?? task.progress_at;
  const seconds =
    task.started_at && until ? (until.getTime() - task.started_at.getTime()) / 1000 : 0;
  return {
    id: task.id,
    kind: task.subject_kind,
    name: task.subject_name,
    status: task.status,
    attempts: task.attempts,
    bytesDone,
    bytesStored: Number(task.bytes_stored),
    totalBytes: task.total_bytes === null ? null : Number(task.total_bytes),
    throughput: seconds > 0 && bytesDone > 0 ? Math.round(bytesDone / seconds) : null,
    startedAt: task.started_at,
    finishedAt: task.finished_at,
    error: task.error,
  };
}

export interface CustomerUsage {
  customerId: string;
  customerName: string;
  licence: LicenceView;
  /** Now: protected items and stored bytes. */
  protectedInstances: number;
  storedBytes: number;
  /** Share of the allocated storage used, 0..1+, or null without a storage limit. */
  storageRatio: number | null;
  /** Today's (UTC) peak of concurrent tasks. */
  peakTasksToday: number;
  /** The last `days` days that have usage rows, newest first. */
  days: UsageRow[];
}

/** Each visible customer's usage against its licence, by customer name. */
export async function usageReport(
  db: Db,
  filter: { customerId?: string; days?: number } = {},
): Promise<CustomerUsage[]> {
  let query = db.selectFrom('customers').select(['id', 'name']).orderBy('name');
  if (filter.customerId) query = query.where('id', '=', filter.customerId);
  const customers = await query.execute();
  const rows = await listUsage(db, filter);

  const report: CustomerUsage[] = [];
  for (const customer of customers) {
    const licence = await licenceView(db, customer.id);
    const storedBytes = await storedBytesOf(db, customer.id);
    const items = await db
      .selectFrom('protected_items')
      .select((eb) => eb.fn.countAll<string>().as('n'))
      .where('customer_id', '=', customer.id)
      .executeTakeFirstOrThrow();
    report.push({
      customerId: customer.id,
      customerName: customer.name,
      licence,
      protectedInstances: Number(items.n),
      storedBytes,
      storageRatio: licence.allocatedBytes ? storedBytes / licence.allocatedBytes : null,
      peakTasksToday:
        rows.find((r) => r.customerId === customer.id && r.day === utcDay())?.peakTasks ?? 0,
      days: rows.filter((r) => r.customerId === customer.id),
    });
  }
  return report;
}
