// Backup runs as job sessions against the sandbox over HTTPS: a session per
// run with a task per disk, progress while a disk is read, Azure throttling
// that the SDK waits out as Retry-After asks, and 5xx answers or failed
// operations that outlast the SDK's retries, which the session tries again.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { JobSession, JobTask } from '../core/db/schema.ts';
import { backupStatus } from '../engine/status.ts';
import { startSandboxEngine, type SandboxEngineWorld } from './support/sandbox-engine.ts';

let world: SandboxEngineWorld;

beforeAll(async () => {
  world = await startSandboxEngine();
});

afterAll(async () => {
  await world?.dispose();
});

async function sessionOf(
  restorePointId: string,
): Promise<{ session: JobSession; tasks: JobTask[] }> {
  const session = await world.database.db
    .selectFrom('job_sessions')
    .selectAll()
    .where('restore_point_id', '=', restorePointId)
    .executeTakeFirstOrThrow();
  return { session, tasks: await tasksOf(session.id) };
}

function tasksOf(sessionId: string): Promise<JobTask[]> {
  return world.database.db
    .selectFrom('job_tasks')
    .selectAll()
    .where('session_id', '=', sessionId)
    .orderBy('created_at')
    .execute();
}

async function latestSession(itemId: string): Promise<JobSession> {
  return world.database.db
    .selectFrom('job_sessions')
    .selectAll()
    .where('item_id', '=', itemId)
    .orderBy('started_at', 'desc')
    .limit(1)
    .executeTakeFirstOrThrow();
}

const snapshotPut = /\/snapshots\/acba-[^/]+$/;

describe('a backup run is a job session', () => {
  it('records the run with one task per disk, the bytes read and stored, and its restore point', async () => {
    const engine = await world.engine();
    const point = await engine.backupVm(world.items['web-01']!.id, 'operator');

    const { session, tasks } = await sessionOf(point.id);
    expect(session).toMatchObject({
      customer_id: 'contoso',
      item_id: world.items['web-01']!.id,
      item_name: 'web-01',
      trigger: 'operator',
      status: 'succeeded',
      error: null,
    });
    expect(session.finished_at).not.toBeNull();
    const disks = point.disks as unknown as { name: string }[];
    expect(tasks.map((t) => [t.subject_kind, t.subject_name])).toEqual(
      disks.map((d) => ['disk', d.name]),
    );
    for (const task of tasks) {
      expect(task).toMatchObject({ status: 'succeeded', attempts: 1, error: null });
      expect(Number(task.bytes_done)).toBeGreaterThan(0);
    }
    expect(Number(session.bytes_read)).toBe(tasks.reduce((n, t) => n + Number(t.bytes_done), 0));
    expect(Number(session.bytes_stored)).toBe(Number(point.stored_bytes));
  });

  it('writes a disk task’s progress while the disk is read', async () => {
    const engine = await world.engine({
      jobSessions: { progressIntervalMs: 3600_000, progressBytes: 1 },
    });
    const itemId = world.items['web-01']!.id;
    // 24 MiB of new data over 24 blocks: the incremental read goes through several batches of blocks.
    const earlier = await world.database.db
      .selectFrom('restore_points')
      .select('disks')
      .where('item_id', '=', itemId)
      .executeTakeFirstOrThrow();
    const group = world.items['web-01']!.resource_id.split('/providers/')[0];
    const diskId = `${group}/providers/Microsoft.Compute/disks/${earlier.disks[0]!.name}`;
    await world.sandbox.writeDisk(diskId, 8 * 2 ** 20, randomBytes(24 * 2 ** 20));
    const seen = new Set<number>();
    let done = false;
    const watching = (async () => {
      while (!done) {
        const running = await world.database.db
          .selectFrom('job_tasks as t')
          .innerJoin('job_sessions as s', 's.id', 't.session_id')
          .select('t.bytes_done')
          .where('s.item_id', '=', itemId)
          .where('t.status', '=', 'running')
          .execute();
        for (const r of running) seen.add(Number(r.bytes_done));
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
    })();

    const point = await engine.backupVm(itemId, 'operator').finally(() => (done = true));
    await watching;

    const { tasks } = await sessionOf(point.id);
    const total = Number(tasks[0]!.bytes_done);
    const between = [...seen].filter((b) => b > 0 && b < total);
    expect(between.length).toBeGreaterThan(0);
  });

  it('shows the latest session of each VM in the backup status', async () => {
    const statuses = await backupStatus(world.database.db, 'contoso');
    const web = statuses.find((s) => s.item.name === 'web-01')!;
    const session = await latestSession(world.items['web-01']!.id);
    expect(web.lastBackup).toMatchObject({ outcome: 'succeeded', sessionId: session.id });
    expect(statuses.find((s) => s.item.name === 'win-01')!.lastBackup).toBeUndefined();
  });
});

describe('Azure throttling and passing failures', () => {
  it('waits as long as Retry-After asks when ARM throttles, and finishes in one attempt', async () => {
    const engine = await world.engine();
    const fault = world.sandbox.faults.inject({
      method: 'PUT',
      pathPattern: snapshotPut,
      status: 429,
      retryAfterSeconds: 1,
      times: 2,
    });

    const point = await engine.backupVm(world.items['win-01']!.id, 'schedule');
    fault.remove();

    const hits = fault.hits();
    expect(hits.slice(0, 3).map((h) => h.faulted)).toEqual([true, true, false]);
    expect(hits[1]!.at - hits[0]!.at).toBeGreaterThanOrEqual(1000);
    expect(hits[2]!.at - hits[1]!.at).toBeGreaterThanOrEqual(1000);
    const { session, tasks } = await sessionOf(point.id);
    expect(session.status).toBe('succeeded');
    expect(tasks[0]).toMatchObject({ status: 'succeeded', attempts: 1 });
  });

  it('tries a disk again in the same session when 503s outlast the SDK’s retries, and records the attempt', async () => {
    const engine = await world.engine();
    // The SDK tries a request four times; a fifth 503-free answer comes only on the task's second attempt.
    const fault = world.sandbox.faults.inject({
      method: 'PUT',
      pathPattern: snapshotPut,
      status: 503,
      retryAfterSeconds: 0,
      times: 4,
    });

    const point = await engine.backupVm(world.items['web-01']!.id, 'schedule');
    fault.remove();

    expect(fault.hits().filter((h) => h.faulted)).toHaveLength(4);
    const { session, tasks } = await sessionOf(point.id);
    expect(session.status).toBe('succeeded');
    expect(tasks[0]).toMatchObject({ status: 'succeeded', attempts: 2, error: null });
    const retries = await world.database.db
      .selectFrom('audit_log')
      .select('details')
      .where('action', '=', 'backup.task_retry')
      .execute();
    expect(retries.at(-1)!.details).toMatchObject({
      sessionId: session.id,
      task: tasks[0]!.subject_name,
      attempt: 1,
    });
  });

  it('tries a disk again when Azure reports its snapshot operation as Failed', async () => {
    const engine = await world.engine();
    const fault = world.sandbox.faults.inject({
      method: 'GET',
      pathPattern: /\/DiskOperations\//,
      operationFailed: { code: 'InternalOperationError', message: 'Snapshot creation failed.' },
    });

    const point = await engine.backupVm(world.items['win-01']!.id, 'schedule');
    fault.remove();

    const { session, tasks } = await sessionOf(point.id);
    expect(session.status).toBe('succeeded');
    expect(tasks[0]!.attempts).toBe(2);
  });

  it('does not try again when Azure refuses, and the session records the failure', async () => {
    const engine = await world.engine();
    const fault = world.sandbox.faults.inject({
      method: 'PUT',
      pathPattern: snapshotPut,
      status: 403,
      code: 'AuthorizationFailed',
      message: 'The client does not have authorization to perform action snapshots/write.',
      times: 5,
    });
    const itemId = world.items['web-01']!.id;

    await expect(engine.backupVm(itemId, 'schedule')).rejects.toThrow(/authorization/);
    fault.remove();

    expect(fault.hits().filter((h) => h.faulted)).toHaveLength(1);
    const session = await latestSession(itemId);
    expect(session).toMatchObject({ status: 'failed', error_kind: 'unexpected' });
    expect(session.error).toContain('authorization');
    const tasks = await tasksOf(session.id);
    expect(tasks[0]).toMatchObject({ status: 'failed', attempts: 1 });
    const status = await backupStatus(world.database.db, 'contoso');
    expect(status.find((s) => s.item.id === itemId)!.lastBackup?.outcome).toBe('failed');
  });
});
