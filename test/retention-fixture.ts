// Shared by the retention and repository-check tests: the sandbox, a database,
// a repository with small packs, and real backups of web-01 and win-01.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { ClientSecretCredential } from '@azure/identity';
import express from 'express';
import type { RestorePoint, RestorePointDisk } from '../core/db/schema.ts';
import { silentLogger } from '../core/log.ts';
import { LinkSigner } from '../core/signing.ts';
import { createComputeClient } from '../engine/azure.ts';
import { backupVm } from '../engine/backup.ts';
import { createEngine, type Engine } from '../engine/engine.ts';
import { Repository } from '../engine/repository/repository.ts';
import { startSandbox, type Sandbox } from '../sandbox/index.ts';
import { openTestDatabase, tempDir, type TestDatabase } from './support/database.ts';

export interface Fixture {
  sandbox: Sandbox;
  database: TestDatabase;
  repository: Repository;
  engine: Engine;
  web: RestorePoint;
  win: RestorePoint;
  /** SHA-256 of a restore point's first disk as the engine's disk resource serves it. */
  servedDiskSha256(point: RestorePoint): Promise<string>;
  /** SHA-256 of the sandbox's own disk behind a restore point's first disk. */
  originalDiskSha256(point: RestorePoint): Promise<string>;
  close(): Promise<void>;
}

export async function startFixture(container: string): Promise<Fixture> {
  const dataDir = await tempDir('acba-retention-');
  const sandbox = await startSandbox({
    dataDir,
    armPort: 0,
    blobPort: 0,
    imageCacheDir: 'test/.cache/images',
  });
  const database = await openTestDatabase();
  const seeded = sandbox.seed.customers[0]!;
  const customer = await database.db
    .insertInto('customers')
    .values({
      id: seeded.id,
      name: seeded.name,
      tenant_id: seeded.tenantId,
      subscription_id: seeded.subscriptionId,
    })
    .returningAll()
    .executeTakeFirstOrThrow();

  const credential = new ClientSecretCredential(
    sandbox.servicePrincipal.tenantId,
    sandbox.servicePrincipal.clientId,
    sandbox.servicePrincipal.clientSecret,
    { authorityHost: sandbox.authorityHost, disableInstanceDiscovery: true },
  );
  const kek = randomBytes(32);
  const repository = await Repository.open({
    connectionString: sandbox.repositoryConnectionString,
    container,
    kek,
    db: database.db,
    packTargetBytes: 2 * 1024 * 1024,
  });

  const app = express();
  const server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const signer = new LinkSigner(randomBytes(32));
  const engine = await createEngine({
    db: database.db,
    log: silentLogger,
    credential,
    resourceManagerUrl: sandbox.armUrl,
    repository: { connectionString: sandbox.repositoryConnectionString, container, kek },
    signer,
    publicUrl: baseUrl,
    diskResourceUrl: `${baseUrl}/engine`,
    downloadLinkMinutes: 60,
    notices: { restoreFinished: async () => undefined },
    workDir: path.join(dataDir, 'work'),
    azurePollIntervalMs: 50,
  });
  app.use('/engine', engine.diskRouter());

  const items = await engine.syncInventory(customer);
  const deps = {
    db: database.db,
    log: silentLogger,
    repository,
    compute: (subscriptionId: string) =>
      createComputeClient({ credential, subscriptionId, endpoint: sandbox.armUrl }),
    pollIntervalMs: 50,
  };
  const web = await backupVm(deps, items.find((i) => i.name === 'web-01')!.id, 'test');
  const win = await backupVm(deps, items.find((i) => i.name === 'win-01')!.id, 'test');

  const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');
  return {
    sandbox,
    database,
    repository,
    engine,
    web,
    win,
    servedDiskSha256: async (point) => {
      const token = signer.sign({
        purpose: 'disk',
        subject: `${point.id}/0`,
        expiresAt: Date.now() + 600_000,
      });
      const response = await fetch(`${baseUrl}/engine/disks/${token}/disk.raw`);
      if (response.status !== 200) throw new Error(`disk resource answered ${response.status}`);
      return sha(Buffer.from(await response.arrayBuffer()));
    },
    originalDiskSha256: async (point) => {
      const disk = (point.disks as unknown as RestorePointDisk[])[0]!;
      const id = `/subscriptions/${seeded.subscriptionId}/resourceGroups/${seeded.resourceGroup}/providers/Microsoft.Compute/disks/${disk.name}`;
      return sha(await fs.readFile(sandbox.diskFilePath(id)!));
    },
    close: async () => {
      await engine.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
      await database.dispose();
      await sandbox.close();
      await fs.rm(dataDir, { recursive: true, force: true });
    },
  };
}

/** Every pack blob in the repository. */
export async function packsInStorage(repository: Repository): Promise<Set<string>> {
  const names = new Set<string>();
  for await (const blob of repository.container.listBlobsFlat({ prefix: 'packs/' }))
    names.add(blob.name);
  return names;
}
