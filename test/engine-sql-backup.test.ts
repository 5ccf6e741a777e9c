// Azure SQL database backups against the sandbox over HTTPS and Azurite:
// inventory, a policy over two servers in two regions run through the job
// queue, BACPACs stored byte for byte, copies and staging blobs cleaned up
// (also when an export fails), deduplication, and the refusal of Azure
// Arc-enabled SQL Server databases.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { ClientSecretCredential } from '@azure/identity';
import { BlobServiceClient } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sandboxSqlLogins } from '../cli/sandbox-seed.ts';
import type {
  Customer,
  ProtectedItem,
  RestorePoint,
  RestorePointBacpac,
} from '../core/db/schema.ts';
import { isAcbaError } from '../core/errors.ts';
import { silentLogger } from '../core/log.ts';
import { LinkSigner } from '../core/signing.ts';
import { createSqlClient } from '../engine/azure.ts';
import { readStoredFile } from '../engine/bacpac-blocks.ts';
import { createEngine, type Engine, type EngineOptions } from '../engine/engine.ts';
import { startJobQueue, type PgBossJobQueue } from '../engine/job-queue.ts';
import { applyPolicies, parsePolicyFile } from '../engine/policies.ts';
import { checkRepository } from '../engine/repository/check.ts';
import { readAnyManifest, type SqlDatabaseManifest } from '../engine/repository/manifest.ts';
import { Repository } from '../engine/repository/repository.ts';
import { prune } from '../engine/retention.ts';
import { runPolicyNow } from '../engine/scheduler.ts';
import { backupStatus } from '../engine/status.ts';
import { restoreSqlDatabase, type SqlRestoreDeps } from '../engine/sql-restore.ts';
import type { SqlLogins } from '../engine/sql-logins.ts';
import { SqlStaging } from '../engine/sql-staging.ts';
import { readBacpac } from '../sandbox/bacpac.ts';
import { startSandbox, type Sandbox } from '../sandbox/index.ts';
import { openTestDatabase, tempDir, type TestDatabase } from './support/database.ts';

const REPOSITORY = 'acba-repository';
const STAGING = 'acba-staging';

let sandbox: Sandbox;
let database: TestDatabase;
let engine: Engine;
let queue: PgBossJobQueue;
let repository: Repository;
let dataDir: string;
let customer: Customer;
const kek = randomBytes(32);

const credential = () =>
  new ClientSecretCredential(
    sandbox.servicePrincipal.tenantId,
    sandbox.servicePrincipal.clientId,
    sandbox.servicePrincipal.clientSecret,
    { authorityHost: sandbox.authorityHost, disableInstanceDiscovery: true },
  );

async function until(condition: () => Promise<boolean>, timeoutMs = 90_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await condition())) {
    if (Date.now() > end) throw new Error('condition not met in time');
    await new Promise((r) => setTimeout(r, 200));
  }
}

function engineOptions(logins: SqlLogins): EngineOptions {
  return {
    db: database.db,
    log: silentLogger,
    credential: credential(),
    resourceManagerUrl: sandbox.armUrl,
    repository: {
      connectionString: sandbox.repositoryConnectionString,
      container: REPOSITORY,
      kek,
    },
    signer: new LinkSigner(randomBytes(32)),
    publicUrl: 'http://127.0.0.1:1',
    diskResourceUrl: 'http://127.0.0.1:1/engine',
    downloadLinkMinutes: 60,
    notices: { restoreFinished: async () => undefined },
    workDir: path.join(dataDir, 'work'),
    azurePollIntervalMs: 50,
    jobSessions: { retry: { baseDelayMs: 200 }, slotPollMs: 100 },
    sql: { stagingContainer: STAGING, logins },
  };
}

beforeAll(async () => {
  dataDir = await tempDir('acba-sql-');
  sandbox = await startSandbox({
    dataDir,
    armPort: 0,
    blobPort: 0,
    imageCacheDir: 'test/.cache/images',
  });
  database = await openTestDatabase();

  const seeded = sandbox.seed.customers[0]!;
  customer = await database.db
    .insertInto('customers')
    .values({
      id: seeded.id,
      name: seeded.name,
      tenant_id: seeded.tenantId,
      subscription_id: seeded.subscriptionId,
    })
    .returningAll()
    .executeTakeFirstOrThrow();

  engine = await createEngine(engineOptions(sandboxSqlLogins(sandbox.seed)));
  repository = await Repository.open({
    connectionString: sandbox.repositoryConnectionString,
    container: REPOSITORY,
    kek,
    db: database.db,
  });

  queue = await startJobQueue({
    executeSql: database.executeSql,
    log: silentLogger,
    pollingIntervalSeconds: 0.5,
    retry: { limit: 0, delaySeconds: 1 },
  });
  await queue.work({
    fileRestore: async () => undefined,
    backup: async (job) => {
      await engine.backup(job.itemId, job.trigger, {
        expiresAt: job.expiresAt ? new Date(job.expiresAt) : undefined,
        policyName: job.policyName,
      });
    },
  });
});

afterAll(async () => {
  await queue?.stop();
  await engine?.close();
  await database?.dispose();
  await sandbox?.close();
  if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
});

/** The databases of both servers as ARM lists them, `server/database`. */
async function databasesInAzure(): Promise<string[]> {
  const sql = createSqlClient({
    credential: credential(),
    subscriptionId: customer.subscription_id,
    endpoint: sandbox.armUrl,
  });
  const names: string[] = [];
  for (const server of sandbox.seed.customers[0]!.sqlServers)
    for await (const db of sql.databases.listByServer('rg-prod', server.name))
      names.push(`${server.name}/${db.name}`);
  return names.sort();
}

async function stagingBlobs(): Promise<string[]> {
  const container = BlobServiceClient.fromConnectionString(
    sandbox.repositoryConnectionString,
  ).getContainerClient(STAGING);
  if (!(await container.exists())) return [];
  const names: string[] = [];
  for await (const blob of container.listBlobsFlat()) names.push(blob.name);
  return names;
}

/** The restore point's BACPAC as read back from the repository through its manifest and blocks. */
async function storedBacpac(point: RestorePoint): Promise<Buffer> {
  const manifest = (await readAnyManifest(repository, point)) as SqlDatabaseManifest;
  expect(manifest.kind).toBe('sql_database');
  const chunks: Buffer[] = [];
  for await (const chunk of readStoredFile(repository, manifest.bacpac, manifest.blockSize))
    chunks.push(chunk);
  return Buffer.concat(chunks);
}

function copyIdOf(point: RestorePoint, item: ProtectedItem): string {
  return item.resource_id.replace(/databases\/[^/]+$/, `databases/acba-${point.id}`);
}

let items: ProtectedItem[];
const firstPoints = new Map<string, RestorePoint>();

describe('Azure SQL database backups', () => {
  it('inventory lists the user databases of both servers with their tags, without master', async () => {
    items = await engine.syncSqlInventory(customer);
    expect(items.map((i) => i.name).sort()).toEqual([
      'sql-contoso-neu/hr',
      'sql-contoso-weu/inventory',
      'sql-contoso-weu/sales',
    ]);
    expect(items.every((i) => i.kind === 'sql_database')).toBe(true);
    expect(items.find((i) => i.name.endsWith('/sales'))!.tags).toEqual({
      environment: 'production',
      workload: 'sales',
    });
    expect(items.map((i) => i.resource_id).sort()).toEqual(
      sandbox.seed.customers[0]!.sqlDatabases.map((d) => d.resourceId).sort(),
    );

    const again = await engine.syncSqlInventory(customer);
    expect(again.map((i) => i.id).sort()).toEqual(items.map((i) => i.id).sort());
  });

  it('a policy over two servers in two regions backs up its three databases through the job queue', async () => {
    await engine.syncInventory(customer);
    const inventory = items.find((i) => i.name.endsWith('/inventory'))!;
    const specs = parsePolicyFile(
      [
        'name: contoso-sql',
        'customer: contoso',
        'type: backups',
        'timeZone: Europe/Berlin',
        'items:',
        '  databases: [sql-contoso-weu/sales, ' + inventory.resource_id + ']',
        '  tags: { workload: hr }',
        'schedules:',
        '  daily: { times: ["02:00"], retentionYears: 1 }',
      ].join('\n'),
      'contoso-sql.yaml',
    );
    await applyPolicies(database.db, specs);

    const report = await runPolicyNow({ db: database.db, queue, log: silentLogger }, 'contoso-sql');
    expect(report.items.sort()).toEqual(items.map((i) => i.id).sort());

    const ids = items.map((i) => i.id);
    await until(async () => {
      const rows = await database.db
        .selectFrom('restore_points')
        .select('id')
        .where('item_id', 'in', ids)
        .execute();
      return rows.length === 3;
    });
    const points = await database.db
      .selectFrom('restore_points')
      .selectAll()
      .where('item_id', 'in', ids)
      .execute();
    for (const point of points) {
      firstPoints.set(point.item_id, point);
      expect(point.policy_name).toBe('contoso-sql');
      expect(point.disks).toEqual([]);
      expect((point.bacpac as RestorePointBacpac).name).toMatch(/^(sales|inventory|hr)\.bacpac$/);
    }
  });

  it("each restore point holds, byte for byte, the BACPAC the export wrote of a copy with the database's content", async () => {
    const exports = sandbox.sql.exports();
    for (const item of items) {
      const point = firstPoints.get(item.id)!;
      const bacpac = await storedBacpac(point);
      const written = exports.find(
        (e) => e.databaseId.toLowerCase() === copyIdOf(point, item).toLowerCase(),
      );

      expect(written?.succeeded).toBe(true);
      expect(bacpac.length).toBe(written!.sizeBytes);
      expect(createHash('sha256').update(bacpac).digest('hex')).toBe(written!.sha256);
      expect((point.bacpac as RestorePointBacpac).sha256).toBe(written!.sha256);
      expect(await readBacpac(bacpac)).toEqual(sandbox.sql.databaseContent(item.resource_id));
    }
  });

  it('leaves no database copy and no staging blob behind', async () => {
    expect(await databasesInAzure()).toEqual([
      'sql-contoso-neu/hr',
      'sql-contoso-neu/master',
      'sql-contoso-weu/inventory',
      'sql-contoso-weu/master',
      'sql-contoso-weu/sales',
    ]);
    expect(await stagingBlobs()).toEqual([]);

    const audit = await database.db
      .selectFrom('audit_log')
      .select(['action', 'resource', 'details'])
      .where('channel', '=', 'engine')
      .execute();
    const finished = audit.filter((a) => a.action === 'backup.finish').map((a) => a.resource);
    expect(finished.sort()).toEqual(items.map((i) => `sql/contoso/${i.name}`).sort());
    const status = await backupStatus(database.db, 'contoso');
    for (const item of items)
      expect(status.find((s) => s.item.id === item.id)).toMatchObject({
        restorePointCount: 1,
        lastBackup: { outcome: 'succeeded' },
      });
  });

  it('a second backup of an unchanged database stores almost nothing new', async () => {
    const sales = items.find((i) => i.name.endsWith('/sales'))!;
    const first = firstPoints.get(sales.id)!;
    const second = await engine.backup(sales.id, 'operator');

    expect(Number(first.size_bytes)).toBeGreaterThan(4 * 1024 * 1024);
    // Only the export's own metadata (the copy's name, the operation's times) differs.
    expect(Math.abs(Number(second.size_bytes) - Number(first.size_bytes))).toBeLessThan(1024);
    expect(Number(second.stored_bytes)).toBeLessThan(Number(first.stored_bytes) / 4);
    expect(await readBacpac(await storedBacpac(second))).toEqual(
      sandbox.sql.databaseContent(sales.resource_id),
    );
  });

  it('an export that fails on every try leaves no copy, no staging blob and no restore point, and says so in the audit trail', async () => {
    const hr = items.find((i) => i.name.endsWith('/hr'))!;
    const pointsBefore = await database.db.selectFrom('restore_points').select('id').execute();
    const exportsBefore = sandbox.sql.exports().length;
    sandbox.sql.failNextExports(3);

    const error = await engine.backup(hr.id, 'operator').catch((e: unknown) => e);
    expect(String((error as Error).message)).toMatch(/connection to the database was lost/);

    const attempts = sandbox.sql.exports().slice(exportsBefore);
    expect(attempts).toHaveLength(3);
    expect(attempts.every((a) => !a.succeeded && a.sizeBytes > 0)).toBe(true);
    expect(await stagingBlobs()).toEqual([]);
    expect((await databasesInAzure()).filter((name) => name.includes('/acba-'))).toEqual([]);
    expect(await database.db.selectFrom('restore_points').select('id').execute()).toEqual(
      pointsBefore,
    );

    const failed = await database.db
      .selectFrom('audit_log')
      .select(['resource', 'outcome', 'details'])
      .where('action', '=', 'backup.fail')
      .execute();
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({
      resource: 'sql/contoso/sql-contoso-neu/hr',
      outcome: 'failed',
    });

    // The three tries were one task of one failed session; the passing failures in between are audited.
    const session = await database.db
      .selectFrom('job_sessions')
      .selectAll()
      .where('item_id', '=', hr.id)
      .orderBy('started_at', 'desc')
      .limit(1)
      .executeTakeFirstOrThrow();
    expect(session).toMatchObject({ status: 'failed', error_kind: 'unexpected' });
    const tasks = await database.db
      .selectFrom('job_tasks')
      .select(['subject_kind', 'subject_name', 'status', 'attempts'])
      .where('session_id', '=', session.id)
      .execute();
    expect(tasks).toEqual([
      { subject_kind: 'database', subject_name: 'hr', status: 'failed', attempts: 3 },
    ]);
    const retries = await database.db
      .selectFrom('audit_log')
      .select('resource')
      .where('action', '=', 'backup.task_retry')
      .execute();
    expect(retries).toEqual([
      { resource: 'sql/contoso/sql-contoso-neu/hr' },
      { resource: 'sql/contoso/sql-contoso-neu/hr' },
    ]);
  });

  it('a database whose server has no SQL login fails its backup with that reason, before anything is copied', async () => {
    const inventory = items.find((i) => i.name.endsWith('/inventory'))!;
    const withoutLogins = await createEngine(engineOptions(() => undefined));
    const exportsBefore = sandbox.sql.exports().length;

    const error = await withoutLogins.backup(inventory.id, 'operator').catch((e: unknown) => e);
    expect(isAcbaError(error) && error.kind).toBe('bad_input');
    expect((error as Error).message).toContain(
      'No SQL login is configured for server sql-contoso-weu, so database sql-contoso-weu/inventory cannot be exported.',
    );
    expect(sandbox.sql.exports()).toHaveLength(exportsBefore);
    expect((await databasesInAzure()).filter((name) => name.includes('/acba-'))).toEqual([]);
    await withoutLogins.close();
  });

  it("repository upkeep counts a database restore point's blocks: check reads them, prune keeps them", async () => {
    const check = await checkRepository(database.db, repository, silentLogger, { readData: true });
    expect(check.ok).toBe(true);
    expect(check.restorePoints).toBe(4);

    const pruned = await prune(
      { db: database.db, repository, log: silentLogger },
      { orphanGraceMs: 0 },
    );
    expect(pruned.ran).toBe(true);
    const sales = items.find((i) => i.name.endsWith('/sales'))!;
    expect(await readBacpac(await storedBacpac(firstPoints.get(sales.id)!))).toEqual(
      sandbox.sql.databaseContent(sales.resource_id),
    );
  });
});

describe('restoring a database restore point (engine function, no approval wiring yet)', () => {
  const restoreDeps = (): SqlRestoreDeps => ({
    db: database.db,
    log: silentLogger,
    repository,
    sql: (subscriptionId) =>
      createSqlClient({ credential: credential(), subscriptionId, endpoint: sandbox.armUrl }),
    staging: new SqlStaging({
      connectionString: sandbox.repositoryConnectionString,
      container: STAGING,
    }),
    logins: sandboxSqlLogins(sandbox.seed),
    pollIntervalMs: 50,
  });
  const servers = () => sandbox.seed.customers[0]!.sqlServers;

  it('imports the stored BACPAC under a new name on the original server, with the same rows as the source', async () => {
    const sales = items.find((i) => i.name.endsWith('/sales'))!;
    const restored = await restoreSqlDatabase(restoreDeps(), {
      restorePointId: firstPoints.get(sales.id)!.id,
      databaseName: 'sales-restored',
    });

    expect(restored.toLowerCase()).toBe(
      sales.resource_id.replace(/sales$/, 'sales-restored').toLowerCase(),
    );
    expect(sandbox.sql.databaseContent(restored)).toEqual(
      sandbox.sql.databaseContent(sales.resource_id),
    );
    expect(await stagingBlobs()).toEqual([]);
  });

  it('imports into another server of the customer, in another region', async () => {
    const hr = items.find((i) => i.name.endsWith('/hr'))!;
    const weu = servers().find((s) => s.name === 'sql-contoso-weu')!;
    const restored = await restoreSqlDatabase(restoreDeps(), {
      restorePointId: firstPoints.get(hr.id)!.id,
      databaseName: 'hr-from-neu',
      serverResourceId: weu.resourceId,
    });

    expect(restored).toBe(`${weu.resourceId}/databases/hr-from-neu`);
    expect(sandbox.sql.databaseContent(restored)).toEqual(
      sandbox.sql.databaseContent(hr.resource_id),
    );
    const audit = await database.db
      .selectFrom('audit_log')
      .select(['action', 'resource'])
      .where('action', 'like', 'restore.%')
      .execute();
    expect(audit).toContainEqual({
      action: 'restore.finish',
      resource: 'sql/contoso/sql-contoso-weu/hr-from-neu',
    });
  });

  it('never overwrites an existing database, and never imports into another subscription', async () => {
    const inventory = items.find((i) => i.name.endsWith('/inventory'))!;
    const restorePointId = firstPoints.get(inventory.id)!.id;

    const existing = await restoreSqlDatabase(restoreDeps(), {
      restorePointId,
      databaseName: 'sales',
    }).catch((e: unknown) => e);
    expect(isAcbaError(existing) && existing.kind).toBe('conflict');
    const sales = items.find((i) => i.name.endsWith('/sales'))!;
    expect(sandbox.sql.databaseContent(sales.resource_id)).toEqual(
      await readBacpac(await storedBacpac(firstPoints.get(sales.id)!)),
    );

    const elsewhere = await restoreSqlDatabase(restoreDeps(), {
      restorePointId,
      databaseName: 'inventory-elsewhere',
      serverResourceId:
        '/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg/providers/Microsoft.Sql/servers/other',
    }).catch((e: unknown) => e);
    expect(isAcbaError(elsewhere) && elsewhere.kind).toBe('forbidden');
    expect(await stagingBlobs()).toEqual([]);
  });
});

describe('Azure Arc-enabled SQL Server databases', () => {
  const arcId =
    '/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg-onprem/providers/Microsoft.AzureArcData/sqlServerInstances/sql-onprem-01/databases/payroll';

  it('a policy naming one is refused, naming the database, and changes nothing', async () => {
    const specs = parsePolicyFile(
      [
        'name: arc-sql',
        'customer: contoso',
        'type: backups',
        'timeZone: UTC',
        'items:',
        `  databases: [sql-contoso-weu/sales, ${arcId}]`,
        'schedules:',
        '  daily: { times: ["03:00"], retentionYears: 1 }',
      ].join('\n'),
      'arc-sql.yaml',
    );

    const error = await applyPolicies(database.db, specs).catch((e: unknown) => e);
    expect(isAcbaError(error) && error.kind).toBe('bad_input');
    expect((error as Error).message).toContain('payroll');
    expect((error as Error).message).toContain('ACBA backs up Azure SQL Database only');
    expect(
      await database.db
        .selectFrom('policies')
        .select('name')
        .where('name', '=', 'arc-sql')
        .execute(),
    ).toEqual([]);
  });

  it('a direct backup request for one is refused before anything runs, and the refusal is audited', async () => {
    await database.db
      .insertInto('protected_items')
      .values({
        id: 'arc-payroll',
        customer_id: 'contoso',
        kind: 'sql_database',
        name: 'sql-onprem-01/payroll',
        resource_id: arcId,
      })
      .execute();
    const exportsBefore = sandbox.sql.exports().length;

    const error = await engine.backup('arc-payroll', 'operator').catch((e: unknown) => e);
    expect(isAcbaError(error) && error.kind).toBe('bad_input');
    expect((error as Error).message).toContain('payroll');
    expect((error as Error).message).toContain('ACBA backs up Azure SQL Database only');
    expect(sandbox.sql.exports()).toHaveLength(exportsBefore);

    const refused = await database.db
      .selectFrom('audit_log')
      .select(['action', 'outcome', 'resource'])
      .where('outcome', '=', 'refused')
      .execute();
    expect(refused).toEqual([
      {
        action: 'backup.fail',
        outcome: 'refused',
        resource: 'item/contoso/sql-onprem-01/payroll',
      },
    ]);
    const status = await backupStatus(database.db, 'contoso');
    expect(status.find((s) => s.item.id === 'arc-payroll')!.lastBackup!.outcome).toBe('failed');
  });
});
