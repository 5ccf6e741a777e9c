// SQL restores through written requests, against the sandbox over HTTPS and
// Azurite: two databases of one server are backed up, then restored in one
// approved request as new databases with the same rows as their sources, and
// over themselves with the originals kept; a request naming databases of two
// servers is refused; a target name that exists is refused before anything
// is created; an import that fails halfway leaves no database behind.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { ClientSecretCredential } from '@azure/identity';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApprovals, type Actor, type Approvals } from '../approvals/index.ts';
import { sandboxSqlLogins } from '../cli/sandbox-seed.ts';
import type { Customer, ProtectedItem, RequestRow, RestorePoint } from '../core/db/schema.ts';
import { isAcbaError } from '../core/errors.ts';
import { silentLogger } from '../core/log.ts';
import { LinkSigner } from '../core/signing.ts';
import { createSqlClient } from '../engine/azure.ts';
import { createEngine, type Engine } from '../engine/engine.ts';
import type { RestoreFinished } from '../engine/notices.ts';
import type { FileRestoreJob, JobQueue } from '../engine/queue.ts';
import { startSandbox, type Sandbox } from '../sandbox/index.ts';
import { seedPeople } from './support/contoso.ts';
import { insertSeededCustomer, sandboxActor } from './support/sandbox-engine.ts';
import { openTestDatabase, tempDir, type TestDatabase } from './support/database.ts';

const reason = 'A faulty deployment wrote wrong prices into the sales tables this morning.';

let sandbox: Sandbox;
let database: TestDatabase;
let engine: Engine;
let approvals: Approvals;
let dataDir: string;
let customer: Customer;
let requester: Actor;
let approver: Actor;
let weuId: string;
const notices: RestoreFinished[] = [];
const queued: FileRestoreJob[] = [];
const points = new Map<string, RestorePoint>();
let items: ProtectedItem[];

const queue: JobQueue = {
  enqueueFileRestore: async (job) => void queued.push(job),
  enqueueBackup: async () => {},
};

const credential = () =>
  new ClientSecretCredential(
    sandbox.servicePrincipal.tenantId,
    sandbox.servicePrincipal.clientId,
    sandbox.servicePrincipal.clientSecret,
    { authorityHost: sandbox.authorityHost, disableInstanceDiscovery: true },
  );

beforeAll(async () => {
  dataDir = await tempDir('acba-sql-restore-');
  sandbox = await startSandbox({
    dataDir,
    armPort: 0,
    blobPort: 0,
    imageCacheDir: 'test/.cache/images',
  });
  database = await openTestDatabase();
  const seeded = sandbox.seed.customers[0]!;
  customer = await insertSeededCustomer(database.db, sandbox);
  await seedPeople(database.db, sandbox.seed.users);
  requester = sandboxActor(sandbox, 'requester');
  approver = sandboxActor(sandbox, 'approver');
  weuId = seeded.sqlServers.find((s) => s.name === 'sql-contoso-weu')!.resourceId;

  engine = await createEngine({
    db: database.db,
    log: silentLogger,
    credential: credential(),
    resourceManagerUrl: sandbox.armUrl,
    repository: {
      connectionString: sandbox.repositoryConnectionString,
      container: 'acba-repository',
      kek: randomBytes(32),
    },
    signer: new LinkSigner(randomBytes(32)),
    publicUrl: 'http://127.0.0.1:9',
    diskResourceUrl: 'http://127.0.0.1:9/engine',
    downloadLinkMinutes: 60,
    notices: { restoreFinished: async (event) => void notices.push(event) },
    workDir: path.join(dataDir, 'work'),
    azurePollIntervalMs: 20,
    approvalCheck: { providerTenantId: sandbox.seed.provider.tenantId },
    jobSessions: { retry: { attempts: 1 } },
    sql: { stagingContainer: 'acba-staging', logins: sandboxSqlLogins(sandbox.seed) },
  });
  approvals = createApprovals({
    db: database.db,
    log: silentLogger,
    queue,
    providerTenantId: sandbox.seed.provider.tenantId,
  });

  items = await engine.syncSqlInventory(customer);
  for (const name of ['sql-contoso-weu/sales', 'sql-contoso-weu/inventory']) {
    const item = items.find((i) => i.name === name)!;
    points.set(name, await engine.backup(item.id, 'test'));
  }
}, 240_000);

afterAll(async () => {
  await engine?.close();
  await database?.dispose();
  await sandbox?.close();
  if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
});

const content = (databaseName: string) =>
  sandbox.sql.databaseContent(`${weuId}/databases/${databaseName}`);
const sourceOf = (name: string) =>
  sandbox.sql.databaseContent(items.find((i) => i.name === name)!.resource_id);
const day = (name: string) =>
  points.get(name)!.created_at.toISOString().slice(0, 10).replaceAll('-', '');

const sqlClient = () =>
  createSqlClient({
    credential: credential(),
    subscriptionId: customer.subscription_id,
    endpoint: sandbox.armUrl,
  });

/** Azure's id of the database that has this name now: a database renamed keeps it. */
async function databaseGuid(name: string): Promise<string | undefined> {
  return (await sqlClient().databases.get('rg-prod', 'sql-contoso-weu', name)).databaseId;
}

async function databasesOfWeu(): Promise<string[]> {
  const sql = sqlClient();
  const names: string[] = [];
  for await (const db of sql.databases.listByServer('rg-prod', 'sql-contoso-weu'))
    names.push(db.name!);
  return names.sort();
}

/** Writes, approves and runs a request the way a worker would take it from the queue. */
async function approvedRestore(target: object): Promise<RequestRow> {
  const request = await approvals.createRequest(requester, { kind: 'sql_restore', target, reason });
  expect(request.status).toBe('pending');
  await approvals.decide(approver, request.id, 'approve', 'Confirmed with the customer by phone.');
  expect(queued.map((j) => j.requestId)).toContain(request.id);
  await engine.runRestore(request.id);
  return database.db
    .selectFrom('requests')
    .selectAll()
    .where('id', '=', request.id)
    .executeTakeFirstOrThrow();
}

describe('a SQL restore request for two databases of one server', () => {
  it('restores both as new databases, each with the rows of its source', async () => {
    const row = await approvedRestore({
      server: 'sql-contoso-weu',
      databases: ['sales', { database: 'inventory', newName: 'inventory-check' }],
    });

    expect(row.status, JSON.stringify(row.result)).toBe('completed');
    const salesName = `sales-restored-${day('sql-contoso-weu/sales')}`;
    expect(content(salesName)).toEqual(sourceOf('sql-contoso-weu/sales'));
    expect(content('inventory-check')).toEqual(sourceOf('sql-contoso-weu/inventory'));
    expect(content(salesName)).not.toEqual(content('inventory-check'));

    const session = await database.db
      .selectFrom('job_sessions')
      .selectAll()
      .where('kind', '=', 'restore')
      .orderBy('started_at', 'desc')
      .executeTakeFirstOrThrow();
    expect(session.status).toBe('succeeded');
    const tasks = await database.db
      .selectFrom('job_tasks')
      .select(['subject_name', 'status'])
      .where('session_id', '=', session.id)
      .orderBy('subject_name')
      .execute();
    expect(tasks).toEqual([
      { subject_name: 'sql-contoso-weu/inventory-check', status: 'succeeded' },
      { subject_name: `sql-contoso-weu/${salesName}`, status: 'succeeded' },
    ]);
    const audit = await database.db
      .selectFrom('audit_log')
      .select('action')
      .where('resource', '=', `request/${row.id}`)
      .where('channel', '=', 'engine')
      .orderBy('seq')
      .execute();
    expect(audit.map((a) => a.action)).toEqual(['restore.start', 'restore.complete']);
    expect(notices.at(-1)).toMatchObject({
      requestId: row.id,
      kind: 'sql_restore',
      outcome: 'completed',
    });
    expect(notices.at(-1)!.message).toContain(salesName);
  }, 120_000);

  it('replaces both originals only after the imports succeeded, keeping the originals under a new name', async () => {
    const originalSales = await databaseGuid('sales');
    const row = await approvedRestore({
      server: 'sql-contoso-weu',
      databases: ['sales', 'inventory'],
      replaceOriginal: true,
    });

    expect(row.status, JSON.stringify(row.result)).toBe('completed');
    const kept = (db: string) => `${db}-replaced-${row.id.slice(0, 8)}`;
    expect(await databasesOfWeu()).toEqual(
      expect.arrayContaining(['sales', 'inventory', kept('sales'), kept('inventory')]),
    );
    expect((await databasesOfWeu()).filter((n) => n.includes('-restoring-'))).toEqual([]);
    expect(await databaseGuid(kept('sales'))).toBe(originalSales);
    expect(await databaseGuid('sales')).not.toBe(originalSales);
    expect(content('sales')).toEqual(sourceOf('sql-contoso-weu/sales'));
    expect(content('sales')).toEqual(content(kept('sales')));
    expect(content('inventory')).toEqual(content(kept('inventory')));
    expect(notices.at(-1)!.message).toContain(kept('inventory'));
  }, 120_000);
});

describe('refusals', () => {
  it('refuses a request naming databases of two servers, saying to ask in a new request', async () => {
    const error = await approvals
      .createRequest(requester, {
        kind: 'sql_restore',
        target: { databases: ['sql-contoso-weu/sales', 'sql-contoso-neu/hr'] },
        reason,
      })
      .catch((e: unknown) => e);

    expect(isAcbaError(error, 'bad_input')).toBe(true);
    expect((error as Error).message).toContain(
      'Database sql-contoso-neu/hr is not on server sql-contoso-weu; one request restores databases of one logical server. Ask for it in a new request.',
    );
  });

  it('refuses a target name that exists before it creates anything', async () => {
    const before = await databasesOfWeu();
    const row = await approvedRestore({
      server: 'sql-contoso-weu',
      databases: [
        { database: 'sales', newName: 'sales-second' },
        { database: 'inventory', newName: 'sales' },
      ],
    });

    expect(row.status).toBe('failed');
    expect(String(row.result?.message)).toContain(
      'Database sales already exists on server sql-contoso-weu; nothing was created.',
    );
    expect(await databasesOfWeu()).toEqual(before);
    expect(notices.at(-1)).toMatchObject({ requestId: row.id, outcome: 'failed' });
  }, 60_000);

  it('deletes the databases it imported when a later import fails', async () => {
    const before = await databasesOfWeu();
    const failing = sandbox.faults.inject({
      method: 'POST',
      pathPattern: /\/servers\/sql-contoso-weu\/import$/,
      after: 1,
      operationFailed: { code: 'ImportFailed', message: 'The import ran out of space.' },
    });

    const row = await approvedRestore({
      server: 'sql-contoso-weu',
      databases: [
        { database: 'sales', newName: 'sales-half' },
        { database: 'inventory', newName: 'inventory-half' },
      ],
    });

    expect(failing.hits().some((h) => h.faulted)).toBe(true);
    expect(row.status).toBe('failed');
    expect(row.result?.databasesDeleted).toEqual(['sales-half']);
    expect(await databasesOfWeu()).toEqual(before);
  }, 60_000);
});
