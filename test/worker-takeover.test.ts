// A worker that dies in the middle of a backup task: another process takes
// back its lease, the queue runs the job again on a live worker, the dead
// worker's session and task end as failed, and its licence slot is free at
// once instead of blocking the retry until the slot's own expiry.
// (PGlite here, PostgreSQL when ACBA_TEST_DATABASE_URL is set.)
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../core/log.ts';
import { startJobQueue, type PgBossJobQueue } from '../engine/job-queue.ts';
import { JobSession } from '../engine/job-sessions.ts';
import { setLicence } from '../engine/licences.ts';
import type { BackupJob } from '../engine/queue.ts';
import { SLOT_TTL_MS } from '../engine/task-slots.ts';
import { reclaimDeadWorkers, WORKER_STOPPED } from '../engine/worker-reclaim.ts';
import { startWorkerLease, type WorkerLease } from '../engine/worker-leases.ts';
import { openTestDatabase, type TestDatabase } from './support/database.ts';

let database: TestDatabase;
const queues: PgBossJobQueue[] = [];
const leases: WorkerLease[] = [];

beforeAll(async () => {
  database = await openTestDatabase();
  await database.db
    .insertInto('customers')
    .values({ id: 'northwind', name: 'Northwind', tenant_id: 't-nw', subscription_id: 's-nw' })
    .execute();
  await setLicence(database.db, 'northwind', { tasks: 1 });
});

afterAll(async () => {
  for (const queue of queues) await queue.stop();
  await database?.dispose();
});

async function until<T>(probe: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** A worker process's parts: a lease and a queue whose backups run `task` in a job session. */
async function startWorker(task: () => Promise<void>): Promise<{ lease: WorkerLease }> {
  const lease = await startWorkerLease(database.db, { log: silentLogger, role: 'worker' });
  leases.push(lease);
  const queue = await startJobQueue({
    executeSql: database.executeSql,
    log: silentLogger,
    pollingIntervalSeconds: 0.5,
    retry: { limit: 2, delaySeconds: 1 },
  });
  queues.push(queue);
  await queue.work(
    {
      fileRestore: async () => undefined,
      backup: async (job: BackupJob) => {
        const session = await JobSession.open(
          database.db,
          silentLogger,
          {
            customerId: 'northwind',
            itemId: job.itemId,
            itemName: 'app-01',
            resource: 'vm/northwind/app-01',
            trigger: job.trigger,
          },
          { workerId: lease.id },
        );
        await session.runTask({ kind: 'disk', name: 'app-01_OsDisk' }, async () => {
          await task();
          return { readBytes: 1 };
        });
        await session.succeed('rp-1');
      },
    },
    lease,
  );
  return { lease };
}

describe('a worker that dies mid-task', () => {
  it('has its job run again elsewhere, its session closed and its slot freed at once', async () => {
    let wakeUp = () => {};
    const dying = await startWorker(() => new Promise<void>((resolve) => (wakeUp = resolve)));
    await queues[0]!.enqueueBackup({ itemId: 'item-app-01', trigger: 'operator' });
    const first = await until(() =>
      database.db
        .selectFrom('job_tasks')
        .selectAll()
        .where('status', '=', 'running')
        .executeTakeFirst(),
    );

    // The dying worker stops renewing: its lease has lapsed, its slot has not.
    await database.db
      .updateTable('workers')
      .set({ expires_at: new Date(Date.now() - 1000) })
      .where('id', '=', dying.lease.id)
      .execute();
    const survivor = await startWorker(async () => undefined);
    const reclaimedAt = Date.now();
    const report = await reclaimDeadWorkers(database.db, queues[1]!.failJob, silentLogger);

    expect(report).toEqual({ workers: [dying.lease.id], jobs: 1, sessions: 1, slots: 1 });
    const deadSession = await database.db
      .selectFrom('job_sessions')
      .selectAll()
      .where('id', '=', first.session_id)
      .executeTakeFirstOrThrow();
    expect(deadSession).toMatchObject({ status: 'failed', error: WORKER_STOPPED });
    const deadTask = await database.db
      .selectFrom('job_tasks')
      .selectAll()
      .where('id', '=', first.id)
      .executeTakeFirstOrThrow();
    expect(deadTask.status).toBe('failed');
    expect(deadTask.finished_at).not.toBeNull();

    const retried = await until(() =>
      database.db
        .selectFrom('job_sessions')
        .selectAll()
        .where('worker_id', '=', survivor.lease.id)
        .where('status', '=', 'succeeded')
        .executeTakeFirst(),
    );
    const retryTask = await database.db
      .selectFrom('job_tasks')
      .selectAll()
      .where('session_id', '=', retried.id)
      .executeTakeFirstOrThrow();
    expect(retryTask.slot).toBe(0);
    expect(retryTask.started_at!.getTime() - reclaimedAt).toBeLessThan(SLOT_TTL_MS / 2);
    expect(retryTask.started_at!.getTime()).toBeGreaterThanOrEqual(deadTask.finished_at!.getTime());

    const leftovers = await reclaimDeadWorkers(database.db, queues[1]!.failJob, silentLogger);
    expect(leftovers.workers).toEqual([]);

    // Had the worker only stalled, its late success does not overwrite the recorded outcome.
    wakeUp();
    await new Promise((r) => setTimeout(r, 300));
    const after = await database.db
      .selectFrom('job_sessions')
      .select('status')
      .where('id', '=', first.session_id)
      .executeTakeFirstOrThrow();
    expect(after.status).toBe('failed');
  });

  it('tells a worker declared dead while it still runs to stop', async () => {
    let lost = 0;
    const lease = await startWorkerLease(database.db, {
      log: silentLogger,
      role: 'worker',
      ttlMs: 600,
      onLost: () => lost++,
    });
    await database.db.deleteFrom('workers').where('id', '=', lease.id).execute();

    await until(async () => (lost > 0 ? lost : undefined), 5000);
    await new Promise((r) => setTimeout(r, 500));
    await lease.stop();
    expect(lost).toBe(1);
  });
});
