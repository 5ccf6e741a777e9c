// The engine's job queue on pg-boss over the project's database handle
// (PGlite here, PostgreSQL when ACBA_TEST_DATABASE_URL is set).
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { forbidden } from '../core/errors.ts';
import { silentLogger } from '../core/log.ts';
import { startJobQueue, type PgBossJobQueue } from '../engine/job-queue.ts';
import type { BackupJob, FileRestoreJob } from '../engine/queue.ts';
import { openTestDatabase, type TestDatabase } from './support/database.ts';

let database: TestDatabase;
let queue: PgBossJobQueue;
const backups: BackupJob[] = [];
const restores: FileRestoreJob[] = [];
let failBackupsLeft = 1;

async function until(condition: () => boolean, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 100));
  }
}

beforeAll(async () => {
  database = await openTestDatabase();
  queue = await startJobQueue({
    executeSql: database.executeSql,
    log: silentLogger,
    pollingIntervalSeconds: 0.5,
    retry: { limit: 2, delaySeconds: 1 },
  });
  await queue.work({
    backup: async (job) => {
      backups.push(job);
      if (failBackupsLeft-- > 0) throw new Error('Azure did not answer (simulated)');
    },
    fileRestore: async (job) => {
      restores.push(job);
      throw forbidden(`Request ${job.requestId} needs 1 approval and has 0.`);
    },
  });
});

afterAll(async () => {
  await queue?.stop();
  await database?.dispose();
});

describe('job queue', () => {
  it('answers its health check', async () => {
    await expect(queue.health()).resolves.toBeUndefined();
  });

  it('retries a backup that failed for a passing reason', async () => {
    await queue.enqueueBackup({ itemId: 'vm-1', trigger: 'operator' });
    await until(() => backups.length >= 2);
    expect(backups).toEqual([
      { itemId: 'vm-1', trigger: 'operator' },
      { itemId: 'vm-1', trigger: 'operator' },
    ]);
  });

  it('does not retry a restore the engine refused', async () => {
    await queue.enqueueFileRestore({ requestId: 'r-1' });
    await until(() => restores.length >= 1);
    await new Promise((r) => setTimeout(r, 4000));
    expect(restores).toEqual([{ requestId: 'r-1' }]);
  });
});
