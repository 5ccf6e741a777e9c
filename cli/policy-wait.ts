/**
 * `acba policy run NAME --wait`: follows the backups a policy run queued until
 * each has ended, then sums them up per item.
 *
 * The queued jobs carry no session id, so an item's run is the newest job
 * session of that item that started after the policy run was recorded. An
 * item is done once the queue holds no unfinished backup job for it (a job
 * that failed for a passing reason waits for its retry, which opens a new
 * session) and its session is no longer running. Workers do the backups: a
 * serve or worker process must run against the same database.
 */
import type { Db } from '../core/db/database.ts';
import type { JobStatus } from '../core/db/schema.ts';
import { formatBytes } from '../core/format.ts';
import { listJobs, type JobListing } from '../engine/job-catalog.ts';

/** How a followed item ended; `not_run` when its job ended without opening a session. */
export type WaitedStatus = JobStatus | 'waiting' | 'not_run';

export interface WaitedItem {
  itemId: string;
  itemName: string;
  status: WaitedStatus;
  sessionId: string | null;
  restorePointId: string | null;
  bytesRead: number;
  bytesStored: number;
  warnings: string[];
  error: string | null;
}

export interface FollowOptions {
  db: Db;
  /** The items among these with a backup job that has not ended. */
  pendingBackups(itemIds: string[]): Promise<Set<string>>;
  /** Sessions started before this belong to earlier runs. */
  since: Date;
  /** Pause between looks; 1 s by default. */
  pollMs?: number;
  /** Called after each look with every item's state, for a progress display. */
  onProgress?(items: WaitedItem[], sessions: Map<string, JobListing>): void;
}

/** Waits until every item's queued backup has ended; returns each item's outcome. */
export async function followBackups(
  options: FollowOptions,
  items: { id: string; name: string }[],
): Promise<WaitedItem[]> {
  const ids = items.map((i) => i.id);
  for (;;) {
    // Pending first: a job that ends after this look has already written its session's end.
    const pending = await options.pendingBackups(ids);
    const sessions = new Map<string, JobListing>();
    for (const id of ids) {
      const [latest] = await listJobs(options.db, { itemId: id, limit: 1 });
      if (latest && latest.startedAt >= options.since) sessions.set(id, latest);
    }
    const states = items.map((item) =>
      waitedItem(item, sessions.get(item.id), pending.has(item.id)),
    );
    options.onProgress?.(states, sessions);
    if (states.every((s) => s.status !== 'running' && s.status !== 'waiting')) return states;
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 1000));
  }
}

function waitedItem(
  item: { id: string; name: string },
  session: JobListing | undefined,
  pending: boolean,
): WaitedItem {
  let status: WaitedStatus;
  if (session?.status === 'running') status = 'running';
  else if (pending) status = 'waiting';
  else status = session?.status ?? 'not_run';
  return {
    itemId: item.id,
    itemName: item.name,
    status,
    sessionId: session?.id ?? null,
    restorePointId: session?.restorePointId ?? null,
    bytesRead: session?.bytesRead ?? 0,
    bytesStored: session?.bytesStored ?? 0,
    warnings: session?.warnings ?? [],
    error:
      status === 'not_run'
        ? 'the backup job ended without starting a session; see the worker log and the audit trail'
        : status === 'failed'
          ? (session?.error ?? null)
          : null,
  };
}

/** True for an item whose backup made its restore point (with or without warnings). */
export function succeeded(item: WaitedItem): boolean {
  return item.status === 'succeeded' || item.status === 'warning';
}

/** One line per item for the terminal while waiting: status and the running task's progress. */
export function progressLines(items: WaitedItem[], sessions: Map<string, JobListing>): string[] {
  return items.map((item) => {
    const tasks = sessions.get(item.itemId)?.tasks ?? [];
    const task = tasks.find((t) => t.status === 'running') ?? tasks.at(-1);
    const detail = task
      ? `  ${task.name} ${formatBytes(task.bytesDone)}${task.totalBytes ? ` of ${formatBytes(task.totalBytes)}` : ''}${task.throughput ? ` at ${formatBytes(task.throughput)}/s` : ''}`
      : '';
    const done = tasks.filter((t) => t.status === 'succeeded').length;
    const counts = tasks.length > 0 ? `  ${done}/${tasks.length} task(s)` : '';
    const waiting = item.sessionId ? 'waiting for a retry' : 'waiting for a worker';
    return `${item.itemName}  ${item.status === 'waiting' ? waiting : item.status}${counts}${detail}`;
  });
}

/** The summary line of one item once it ended. */
export function summaryLine(item: WaitedItem): string {
  const session = item.sessionId ? `  session ${item.sessionId}` : '';
  const point = item.restorePointId ? `  restore point ${item.restorePointId}` : '';
  const bytes = item.sessionId
    ? `  ${formatBytes(item.bytesRead)} read, ${formatBytes(item.bytesStored)} stored`
    : '';
  const notes = [
    ...item.warnings.map((w) => `warning: ${w}`),
    ...(item.error ? [`error: ${item.error}`] : []),
  ];
  return `${item.itemName}  ${item.status}${session}${point}${bytes}${notes.map((n) => `  ${n}`).join('')}`;
}
