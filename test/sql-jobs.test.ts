// Azure SQL database backups as job sessions under the customer's licence,
// against the sandbox over HTTPS and Azurite: a database is one task of its
// session, tried again in the session after a passing failure, holding one of
// the customer's concurrent-task slots; databases count as protected instances
// and are refused at a full storage allocation, like VMs.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sandboxSqlLogins } from '../cli/sandbox-seed.ts';
import { openDatabase, type DatabaseHandle } from '../core/db/database.ts';
import type { ProtectedItem, RestorePointBacpac } from '../core/db/schema.ts';
import type { Engine, EngineOptions } from '../engine/engine.ts';
import { setLicence, storedBytesOf, TB } from '../engine/licences.ts';
import { backupStatus } from '../engine/status.ts';
import { listUsage } from '../engine/usage.ts';
import { tempDir } from './support/database.ts';
import { startSandboxEngine, type SandboxEngineWorld } from './support/sandbox-engine.ts';
import { peakOverlap } from './support/task-intervals.ts';

let world: SandboxEngineWorld;
let engine: Engine;
let otherPool: DatabaseHandle | undefined;
/** Contoso's databases by name (sales, inventory, hr), once the inventory has them all. */
const databases: Record<string, ProtectedItem> = {};

const sqlOptions = (): Partial<EngineOptions> => ({
  sql: { stagingContainer: 'acba-staging', logins: sandboxSqlLogins(world.sandbox.seed) },
});

beforeAll(async () => {
  world = await startSandboxEngine();
  engine = await world.engine(sqlOptions());
});

afterAll(async () => {
  await otherPool?.close();
  await world?.dispose();
});

/** A second engine as another worker process would run it: on PostgreSQL, with its own pool. */
async function otherWorker(): Promise<Engine> {
  if (!world.database.url) return world.engine(sqlOptions());
  otherPool = await openDatabase({ url: world.database.url, dataDir: await tempDir() });
  return world.engine(sqlOptions(), otherPool.db);
}

/** The newest session of an item, with its tasks. */
async function latestSession(itemId: string) {
  const session = await world.database.db
    .selectFrom('job_sessions')
    .selectAll()
    .where('item_id', '=', itemId)
    .orderBy('started_at', 'desc')
    .limit(1)
    .executeTakeFirstOrThrow();
  const tasks = await world.database.db
    .selectFrom('job_tasks')
    .selectAll()
    .where('session_id', '=', session.id)
    .execute();
  return { session, tasks };
}

/** The id of the database copy a backup's try makes, as the sandbox keys it. */
const copyId = (item: ProtectedItem, name: string) =>
  item.resource_id.replace(/databases\/[^/]+$/, `databases/${name}`);

describe('databases as protected instances', () => {
  it('an inventory sync adds databases by name only while the licence has room, and says which it skipped', async () => {
    // Contoso's three VMs are protected already: five instances leave room for two databases.
    await setLicence(world.database.db, 'contoso', { instances: 5 });

    const synced = await engine.syncSqlInventory(world.customer);

    expect(synced.map((i) => i.name)).toEqual(['sql-contoso-neu/hr', 'sql-contoso-weu/inventory']);
    const skipped = await world.database.db
      .selectFrom('audit_log')
      .select(['resource', 'outcome', 'details'])
      .where('action', '=', 'licence.instance_skip')
      .execute();
    expect(skipped).toEqual([
      {
        resource: 'sql/contoso/sql-contoso-weu/sales',
        outcome: 'refused',
        details: expect.objectContaining({
          reason: 'the licence covers 5 protected instance(s)',
        }),
      },
    ]);

    await setLicence(world.database.db, 'contoso', { instances: null });
    for (const item of await engine.syncSqlInventory(world.customer))
      databases[item.name.split('/')[1]!] = item;
    expect(Object.keys(databases).sort()).toEqual(['hr', 'inventory', 'sales']);
    const [today] = await listUsage(world.database.db, { customerId: 'contoso', days: 1 });
    expect(today!.protectedInstances).toBe(6);
  });

  it('refuses to back up a database beyond the licensed instances, recorded on its session, before anything is copied', async () => {
    await setLicence(world.database.db, 'contoso', { instances: 5 });
    const exportsBefore = world.sandbox.sql.exports().length;

    const refusal = engine.backup(databases.sales!.id, 'operator');

    await expect(refusal).rejects.toMatchObject({ kind: 'limit_reached' });
    await expect(refusal).rejects.toThrow(
      'sql-contoso-weu/sales is beyond the 5 protected instance(s) licensed for customer Contoso, so it is not backed up; raise the licence with acba licence set contoso --instances N.',
    );
    const { session, tasks } = await latestSession(databases.sales!.id);
    expect(session).toMatchObject({ status: 'failed', error_kind: 'limit_reached' });
    expect(tasks).toEqual([]);
    expect(world.sandbox.sql.exports()).toHaveLength(exportsBefore);
    await setLicence(world.database.db, 'contoso', { instances: null });
  });
});

describe('a database backup as a job session', () => {
  it("is one session with one database task that succeeded with the BACPAC's bytes", async () => {
    const point = await engine.backup(databases.sales!.id, 'operator');
    const bacpac = point.bacpac as RestorePointBacpac;

    const { session, tasks } = await latestSession(databases.sales!.id);
    expect(session).toMatchObject({
      status: 'succeeded',
      item_name: 'sql-contoso-weu/sales',
      restore_point_id: point.id,
    });
    expect(Number(session.bytes_read)).toBe(bacpac.sizeBytes);
    expect(Number(session.bytes_stored)).toBe(bacpac.storedBytes);
    expect(bacpac.storedBytes).toBeGreaterThan(0);
    expect(
      tasks.map((t) => ({
        kind: t.subject_kind,
        name: t.subject_name,
        status: t.status,
        attempts: t.attempts,
        bytesDone: Number(t.bytes_done),
        bytesStored: Number(t.bytes_stored),
      })),
    ).toEqual([
      {
        kind: 'database',
        name: 'sales',
        status: 'succeeded',
        attempts: 1,
        bytesDone: bacpac.sizeBytes,
        bytesStored: bacpac.storedBytes,
      },
    ]);

    const status = await backupStatus(world.database.db, 'contoso');
    expect(status.find((s) => s.item.id === databases.sales!.id)).toMatchObject({
      restorePointCount: 1,
      lastBackup: { outcome: 'succeeded', sessionId: session.id },
    });
    const [today] = await listUsage(world.database.db, { customerId: 'contoso', days: 1 });
    expect(today!.peakTasks).toBeGreaterThanOrEqual(1);
    expect(today!.storedBytes).toBe(await storedBytesOf(world.database.db, 'contoso'));
  });

  it('tries a failed export again in the same session from a fresh copy, and leaves no copy behind', async () => {
    const item = databases.inventory!;
    const exportsBefore = world.sandbox.sql.exports().length;
    world.sandbox.sql.failNextExports(1);

    const point = await engine.backup(item.id, 'schedule');

    const tries = world.sandbox.sql.exports().slice(exportsBefore);
    expect(tries.map((t) => [t.databaseId.toLowerCase(), t.succeeded])).toEqual([
      [copyId(item, `acba-${point.id}`).toLowerCase(), false],
      [copyId(item, `acba-${point.id}-2`).toLowerCase(), true],
    ]);
    expect(world.sandbox.sql.databaseContent(copyId(item, `acba-${point.id}`))).toBeUndefined();
    expect(world.sandbox.sql.databaseContent(copyId(item, `acba-${point.id}-2`))).toBeUndefined();

    const { session, tasks } = await latestSession(item.id);
    expect(session.status).toBe('succeeded');
    expect(tasks.map((t) => [t.subject_name, t.status, t.attempts])).toEqual([
      ['inventory', 'succeeded', 2],
    ]);
    const retries = await world.database.db
      .selectFrom('audit_log')
      .select(['resource', 'details'])
      .where('action', '=', 'backup.task_retry')
      .execute();
    expect(retries).toEqual([
      {
        resource: 'sql/contoso/sql-contoso-weu/inventory',
        details: expect.objectContaining({ sessionId: session.id, task: 'inventory', attempt: 1 }),
      },
    ]);
  });

  it('never runs two database tasks of a customer licensed for one at once, across two workers', async () => {
    await setLicence(world.database.db, 'contoso', { tasks: 1 });
    const other = await otherWorker();
    const since = new Date();

    const results = await Promise.allSettled([
      engine.backup(databases.hr!.id, 'operator'),
      other.backup(databases.inventory!.id, 'operator'),
      other.backup(databases.sales!.id, 'operator'),
    ]);

    expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
    const { peak, tasks } = await peakOverlap(world.database.db, 'contoso', since);
    expect(tasks).toBe(3);
    expect(peak).toBe(1);
    const slots = await world.database.db
      .selectFrom('task_slots')
      .select('holder')
      .where('customer_id', '=', 'contoso')
      .execute();
    expect(slots.every((s) => s.holder === null)).toBe(true);
    await setLicence(world.database.db, 'contoso', { tasks: null });
  });
});

describe('allocated storage and databases', () => {
  it('backs up a database from 90% of the allocation with a warning on its session', async () => {
    const used = await storedBytesOf(world.database.db, 'contoso');
    await setLicence(world.database.db, 'contoso', { storageTb: used / 0.95 / TB });

    const point = await engine.backup(databases.hr!.id, 'schedule');

    const { session } = await latestSession(databases.hr!.id);
    expect(session).toMatchObject({ status: 'warning', restore_point_id: point.id });
    expect(session.warnings[0]).toMatch(/^Customer Contoso has used .* \(9[0-9]%\)/);
  });

  it('refuses a database at 100% with the limit message, recorded on its session and in the notice', async () => {
    const used = await storedBytesOf(world.database.db, 'contoso');
    await setLicence(world.database.db, 'contoso', { storageTb: used / TB });
    const exportsBefore = world.sandbox.sql.exports().length;

    const refusal = engine.backup(databases.sales!.id, 'schedule');

    await expect(refusal).rejects.toMatchObject({ kind: 'limit_reached' });
    await expect(refusal).rejects.toThrow(
      /^Customer Contoso has used .* of its .* allocated TB; raise its licence with acba licence set contoso --storage-tb N or free space with acba repository prune\.$/,
    );
    const { session, tasks } = await latestSession(databases.sales!.id);
    expect(session).toMatchObject({ status: 'failed', error_kind: 'limit_reached' });
    expect(tasks).toEqual([]);
    expect(world.sandbox.sql.exports()).toHaveLength(exportsBefore);
    expect(world.failures.at(-1)).toMatchObject({
      itemName: 'sql-contoso-weu/sales',
      itemKind: 'sql_database',
      kind: 'limit_reached',
      message: session.error,
    });
    const failed = await world.database.db
      .selectFrom('audit_log')
      .select(['resource', 'details'])
      .where('action', '=', 'backup.fail')
      .orderBy('seq', 'desc')
      .limit(1)
      .executeTakeFirstOrThrow();
    expect(failed).toMatchObject({
      resource: 'sql/contoso/sql-contoso-weu/sales',
      details: { kind: 'limit_reached', message: session.error },
    });
    await setLicence(world.database.db, 'contoso', { storageTb: null });
  });
});
