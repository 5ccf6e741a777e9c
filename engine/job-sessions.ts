/**
 * Job sessions: every backup run is a session (customer, item, trigger or
 * policy, outcome, times, bytes read and stored, warnings, error) made of
 * tasks, one per disk of a VM or one for a database; an approved VM or disk
 * restore is a session of kind 'restore' with one task per disk written. Operators watch them in the
 * portal, customers' staff see theirs, and the bot's status reply reads the
 * latest session of each item.
 *
 * A task runs only while it holds one of the customer's licensed slots
 * (./task-slots.ts); it waits, recorded as 'waiting', while all are busy.
 * Progress is written while the task reads, but at most every few seconds or
 * every 64 MiB, never per block. A task that fails for a passing reason
 * (Azure throttling past the SDK's own retries, a 5xx, a dropped connection)
 * is tried again with exponential backoff, a few times, inside the same
 * session; a refusal or bad input is not, since trying again cannot change it.
 */
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import { appendAudit, serviceActor } from '../core/audit.ts';
import type { Db } from '../core/db/database.ts';
import type { JobStatus } from '../core/db/schema.ts';
import { isAcbaError } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import {
  bytesRead,
  bytesWritten,
  jobDuration,
  jobsFinished,
  secondsSince,
  taskDuration,
  tasksFinished,
} from '../core/metrics.ts';
import { getLicence } from './licences.ts';
import { failureOf } from './notices.ts';
import { acquireSlot, busySlots, type HeldSlot } from './task-slots.ts';
import { recordUsage } from './usage.ts';

/** How a failed task is tried again within its session. */
export interface TaskRetry {
  /** Tries in all, the first included; 3 by default. */
  attempts: number;
  /** Pause before the second try, doubling after; 10 s by default. */
  baseDelayMs: number;
}

export interface JobSessionOptions {
  retry?: Partial<TaskRetry>;
  /** Progress is written at most this often; 2 s by default. */
  progressIntervalMs?: number;
  /** Or once this many more bytes were read; 64 MiB by default. */
  progressBytes?: number;
  /** Pause between tries for a busy licence slot; 1 s by default. */
  slotPollMs?: number;
  /**
   * The worker lease of this process (./worker-leases.ts), recorded on the
   * session and its slots so that they are taken back if the process dies.
   */
  workerId?: string;
}

export interface SessionStart {
  customerId: string;
  itemId: string;
  itemName: string;
  /** The item as audit entries name it, e.g. `vm/contoso/web-01` (./resource-types.ts). */
  resource: string;
  trigger: string;
  policyName?: string;
  /** What the session does: 'backup' by default, 'restore' for approved restores. */
  kind?: 'backup' | 'restore';
}

/** What a task works on: a disk or a database, by name. */
export interface TaskSubject {
  kind: string;
  name: string;
  /** The subject's size, when known before reading. */
  totalBytes?: number;
}

/** Handed to a task's work: report bytes read so far in this attempt. */
export interface TaskHandle {
  progress(bytesDone: number): void;
}

/** What a task's work returns; its byte counts go to the task and the session. */
export interface TaskOutcome {
  readBytes?: number;
  storedBytes?: number;
}

const DEFAULT_RETRY: TaskRetry = { attempts: 3, baseDelayMs: 10_000 };
const PERMANENT_KINDS = ['forbidden', 'bad_input', 'not_found', 'conflict', 'limit_reached'];

/** True for errors another try may get past: not ours to refuse, not a client error Azure gave. */
export function isPassingError(error: unknown): boolean {
  if (isAcbaError(error)) return !PERMANENT_KINDS.includes(error.kind);
  const status = (error as { statusCode?: unknown } | null)?.statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500)
    return status === 408 || status === 409 || status === 429;
  return true;
}

/** One running session; create with startJobSession. */
export class JobSession {
  private readonly warnings: string[] = [];
  private bytesRead = 0;
  private bytesStored = 0;
  private readonly startedAt = new Date();

  private constructor(
    private readonly db: Db,
    private readonly log: Logger,
    private readonly options: JobSessionOptions,
    readonly id: string,
    readonly start: SessionStart,
  ) {}

  /** Records a running session for the run that starts now. */
  static async open(
    db: Db,
    log: Logger,
    start: SessionStart,
    options: JobSessionOptions = {},
  ): Promise<JobSession> {
    const id = randomUUID();
    await db
      .insertInto('job_sessions')
      .values({
        id,
        customer_id: start.customerId,
        item_id: start.itemId,
        item_name: start.itemName,
        trigger: start.trigger,
        kind: start.kind ?? 'backup',
        policy_name: start.policyName ?? null,
        status: 'running',
        worker_id: options.workerId ?? null,
      })
      .execute();
    return new JobSession(db, log.child({ sessionId: id }), options, id, start);
  }

  /** Adds a warning; a session with warnings that otherwise succeeds ends as 'warning'. */
  async warn(message: string): Promise<void> {
    this.warnings.push(message);
    await this.db
      .updateTable('job_sessions')
      .set({ warnings: JSON.stringify(this.warnings) })
      .where('id', '=', this.id)
      .execute();
    this.log.warn({ warning: message }, 'job_session_warning');
  }

  /**
   * Runs one task: waits for a licence slot, runs `work`, and tries again with
   * backoff when it fails for a passing reason. Throws the last error once the
   * task has failed for good.
   */
  async runTask<T extends TaskOutcome>(
    subject: TaskSubject,
    work: (task: TaskHandle) => Promise<T>,
  ): Promise<T> {
    const retry = { ...DEFAULT_RETRY, ...this.options.retry };
    const taskId = randomUUID();
    const log = this.log.child({ taskId, subject: subject.name });
    await this.db
      .insertInto('job_tasks')
      .values({
        id: taskId,
        session_id: this.id,
        customer_id: this.start.customerId,
        subject_kind: subject.kind,
        subject_name: subject.name,
        status: 'waiting',
        total_bytes: subject.totalBytes ?? null,
      })
      .execute();

    for (let attempt = 1; ; attempt++) {
      const slot = await this.takeSlot(log);
      await this.markRunning(taskId, attempt, slot).catch(async (error) => {
        await slot?.release();
        throw error;
      });
      const progress = new ProgressWriter(this.db, taskId, this.options);
      const attemptStarted = new Date();
      let result: T;
      try {
        result = await work(progress);
      } catch (error) {
        await progress.settle();
        const failure = failureOf(error);
        const again = attempt < retry.attempts && isPassingError(error);
        // The task's recorded interval ends before its slot frees, so recorded intervals never overlap beyond the licence.
        await this.finishTask(taskId, again ? 'waiting' : 'failed', {}, failure.message).finally(
          () => slot?.release(),
        );
        countTask(subject, again ? 'retried' : 'failed', attemptStarted, {});
        if (!again) {
          log.error({ err: error, attempt }, 'task_failed');
          throw error;
        }
        await this.retryLater(subject, attempt, failure, retry.baseDelayMs * 2 ** (attempt - 1));
        continue;
      }
      await progress.settle();
      await this.finishTask(taskId, 'succeeded', result).finally(() => slot?.release());
      countTask(subject, 'succeeded', attemptStarted, result);
      log.info({ attempt, readBytes: result.readBytes }, 'task_finished');
      return result;
    }
  }

  /** Records a failed attempt (log and audit) and waits out the backoff, holding no slot. */
  private async retryLater(
    subject: TaskSubject,
    attempt: number,
    failure: ReturnType<typeof failureOf>,
    delayMs: number,
  ): Promise<void> {
    this.log.warn({ subject: subject.name, attempt, delayMs, ...failure }, 'task_retry');
    await appendAudit(this.db, {
      actor: serviceActor,
      channel: 'engine',
      action: `${this.start.kind ?? 'backup'}.task_retry`,
      resource: this.start.resource,
      outcome: 'failed',
      details: {
        customerId: this.start.customerId,
        itemId: this.start.itemId,
        sessionId: this.id,
        task: subject.name,
        attempt,
        ...failure,
      },
    });
    await new Promise((resolve) => setTimeout(resolve, delayMs));
  }

  /** Ends the session as succeeded (or 'warning' when it has warnings). */
  async succeed(restorePointId: string): Promise<void> {
    await this.finish(this.warnings.length > 0 ? 'warning' : 'succeeded', {
      restore_point_id: restorePointId,
    });
  }

  /** Ends the session as failed, with the error's kind and a message safe for customers' eyes. */
  async fail(error: unknown): Promise<void> {
    const failure = failureOf(error);
    await this.finish('failed', { error_kind: failure.kind, error: failure.message });
  }

  private async finish(
    status: JobStatus,
    extra: { restore_point_id?: string; error_kind?: string; error?: string },
  ): Promise<void> {
    await this.db
      .updateTable('job_sessions')
      .set({
        status,
        finished_at: new Date(),
        bytes_read: this.bytesRead,
        bytes_stored: this.bytesStored,
        warnings: JSON.stringify(this.warnings),
        ...extra,
      })
      .where('id', '=', this.id)
      // A session already ended for a worker declared dead (./worker-reclaim.ts) keeps that outcome.
      .where('status', '=', 'running')
      .execute();
    const labels = { item: this.start.resource.split('/')[0]!, outcome: status };
    jobsFinished.inc(labels);
    jobDuration.observe(labels, secondsSince(this.startedAt));
    this.log.info({ status, bytesRead: this.bytesRead }, 'job_session_finished');
  }

  /** Waits for one of the customer's slots when the licence bounds concurrent tasks. */
  private async takeSlot(log: Logger): Promise<HeldSlot | undefined> {
    const licence = await getLicence(this.db, this.start.customerId);
    if (licence?.max_tasks == null) return undefined;
    return acquireSlot(this.db, this.start.customerId, licence.max_tasks, {
      pollMs: this.options.slotPollMs,
      workerId: this.options.workerId,
      onWait: () => log.info({ maxTasks: licence.max_tasks }, 'task_waiting_for_slot'),
    });
  }

  private async markRunning(taskId: string, attempt: number, slot?: HeldSlot): Promise<void> {
    await this.db
      .updateTable('job_tasks')
      .set({
        status: 'running',
        attempts: attempt,
        slot: slot?.slot ?? null,
        started_at: new Date(),
        finished_at: null,
        bytes_done: 0,
        progress_at: new Date(),
      })
      .where('id', '=', taskId)
      .execute();
    const running = slot
      ? await busySlots(this.db, this.start.customerId)
      : await runningTasks(this.db, this.start.customerId);
    await recordUsage(this.db, this.start.customerId, { peakTasks: running });
  }

  private async finishTask(
    taskId: string,
    status: 'succeeded' | 'failed' | 'waiting',
    result: TaskOutcome,
    error?: string,
  ): Promise<void> {
    if (status === 'succeeded') {
      this.bytesRead += result.readBytes ?? 0;
      this.bytesStored += result.storedBytes ?? 0;
    }
    await this.db
      .updateTable('job_tasks')
      .set({
        status,
        finished_at: new Date(),
        error: error ?? null,
        ...(status === 'succeeded'
          ? { bytes_done: result.readBytes ?? 0, bytes_stored: result.storedBytes ?? 0 }
          : {}),
      })
      .where('id', '=', taskId)
      .execute();
    await this.db
      .updateTable('job_sessions')
      .set({ bytes_read: this.bytesRead, bytes_stored: this.bytesStored })
      .where('id', '=', this.id)
      .execute();
  }
}

/** Counts one ended task attempt in this process's metrics. */
function countTask(
  subject: TaskSubject,
  outcome: 'succeeded' | 'failed' | 'retried',
  startedAt: Date,
  result: TaskOutcome,
): void {
  tasksFinished.inc({ subject: subject.kind, outcome });
  taskDuration.observe({ subject: subject.kind, outcome }, secondsSince(startedAt));
  if (result.readBytes) bytesRead.inc({ subject: subject.kind }, result.readBytes);
  if (result.storedBytes) bytesWritten.inc({ subject: subject.kind }, result.storedBytes);
}

/** Writes a task's progress, at most every interval or every so many bytes. */
class ProgressWriter implements TaskHandle {
  private written = 0;
  private writtenAt = Date.now();
  private pending: Promise<void> = Promise.resolve();

  constructor(
    private readonly db: Db,
    private readonly taskId: string,
    private readonly options: JobSessionOptions,
  ) {}

  progress(bytesDone: number): void {
    const due =
      Date.now() - this.writtenAt >= (this.options.progressIntervalMs ?? 2000) ||
      bytesDone - this.written >= (this.options.progressBytes ?? 64 * 1024 * 1024);
    if (!due) return;
    this.written = bytesDone;
    this.writtenAt = Date.now();
    // Writes stay in order; a failed progress write loses only that update.
    this.pending = this.pending.then(() =>
      this.db
        .updateTable('job_tasks')
        .set({ bytes_done: bytesDone, progress_at: new Date() })
        .where('id', '=', this.taskId)
        .where('status', '=', 'running')
        .execute()
        .then(
          () => undefined,
          () => undefined,
        ),
    );
  }

  settle(): Promise<void> {
    return this.pending;
  }
}

async function runningTasks(db: Db, customerId: string): Promise<number> {
  const row = await db
    .selectFrom('job_tasks')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('customer_id', '=', customerId)
    .where('status', '=', 'running')
    .where('started_at', '>', sql<Date>`now() - interval '12 hours'`)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}
