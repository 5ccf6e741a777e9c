/**
 * The engine against the sandbox over HTTPS with Azurite, for tests about
 * backup runs: one sandbox, one test database (PGlite, or PostgreSQL with
 * ACBA_TEST_DATABASE_URL), the seeded customer Contoso and its synced VMs.
 * Engines are made on demand, so a test can run several over one database
 * or over separate connections to the same server, as separate workers would.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { ClientSecretCredential } from '@azure/identity';
import type { Actor } from '../../approvals/index.ts';
import type { Db } from '../../core/db/database.ts';
import type { Customer, ProtectedItem } from '../../core/db/schema.ts';
import { silentLogger } from '../../core/log.ts';
import { LinkSigner } from '../../core/signing.ts';
import { createEngine, type Engine, type EngineOptions } from '../../engine/engine.ts';
import type { BackupFailed } from '../../engine/notices.ts';
import { Repository } from '../../engine/repository/repository.ts';
import { startSandbox, type Sandbox } from '../../sandbox/index.ts';
import { openTestDatabase, tempDir, type TestDatabase } from './database.ts';

export interface SandboxEngineWorld {
  sandbox: Sandbox;
  database: TestDatabase;
  customer: Customer;
  /** Contoso's VMs by name (web-01, win-01, legacy-01). */
  items: Record<string, ProtectedItem>;
  /** Failed-backup notices the engines sent. */
  failures: BackupFailed[];
  /** Opens the engines' repository directly, to read restore points back byte for byte. */
  repository(): Promise<Repository>;
  /** A new engine over `db` (the world's database by default). */
  engine(options?: Partial<EngineOptions>, db?: Db): Promise<Engine>;
  dispose(): Promise<void>;
}

export async function startSandboxEngine(): Promise<SandboxEngineWorld> {
  const dataDir = await tempDir('acba-jobs-');
  const sandbox = await startSandbox({
    dataDir,
    armPort: 0,
    blobPort: 0,
    imageCacheDir: 'test/.cache/images',
  });
  const database = await openTestDatabase();
  const customer = await insertSeededCustomer(database.db, sandbox);

  const kek = randomBytes(32);
  const signer = new LinkSigner(randomBytes(32));
  const failures: BackupFailed[] = [];
  const engines: Engine[] = [];
  const engine = async (options: Partial<EngineOptions> = {}, db = database.db) => {
    const made = await createEngine({
      db,
      log: silentLogger,
      credential: new ClientSecretCredential(
        sandbox.servicePrincipal.tenantId,
        sandbox.servicePrincipal.clientId,
        sandbox.servicePrincipal.clientSecret,
        { authorityHost: sandbox.authorityHost, disableInstanceDiscovery: true },
      ),
      resourceManagerUrl: sandbox.armUrl,
      repository: {
        connectionString: sandbox.repositoryConnectionString,
        container: 'acba-repository',
        kek,
      },
      signer,
      publicUrl: 'http://127.0.0.1:9',
      diskResourceUrl: 'http://127.0.0.1:9/engine',
      downloadLinkMinutes: 60,
      notices: {
        restoreFinished: async () => {},
        backupFailed: async (event) => void failures.push(event),
      },
      workDir: path.join(dataDir, 'work'),
      azurePollIntervalMs: 50,
      jobSessions: { retry: { baseDelayMs: 200 }, slotPollMs: 100 },
      ...options,
    });
    engines.push(made);
    return made;
  };

  const synced = await (await engine()).syncInventory(customer);
  const items = Object.fromEntries(synced.map((i) => [i.name, i]));
  return {
    sandbox,
    database,
    customer,
    items,
    failures,
    engine,
    repository: () =>
      Repository.open({
        connectionString: sandbox.repositoryConnectionString,
        container: 'acba-repository',
        kek,
        db: database.db,
      }),
    dispose: async () => {
      for (const e of engines) await e.close();
      await database.dispose();
      await sandbox.close();
      await fs.rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** The sandbox's first seeded customer (Contoso), as a row of the test database. */
export async function insertSeededCustomer(db: Db, sandbox: Sandbox): Promise<Customer> {
  const seeded = sandbox.seed.customers[0]!;
  return db
    .insertInto('customers')
    .values({
      id: seeded.id,
      name: seeded.name,
      tenant_id: seeded.tenantId,
      subscription_id: seeded.subscriptionId,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

/** The first seeded sandbox user with `role`, as the approval workflow names an actor in the bot. */
export function sandboxActor(sandbox: Sandbox, role: string): Actor {
  const user = sandbox.seed.users.find((u) => u.role === role)!;
  return {
    objectId: user.objectId,
    tenantId: user.tenantId,
    name: user.displayName,
    channel: 'bot',
  };
}
