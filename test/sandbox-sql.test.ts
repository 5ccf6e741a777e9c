/**
 * The sandbox's Azure SQL surface as the engine meets it through the real
 * @azure/arm-sql client: Azure's shapes from the published REST examples,
 * paging, Azure's errors for servers and databases that do not exist, and a
 * database copy exported to a BACPAC and imported again with its content.
 */
import { existsSync } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { SqlManagementClient } from '@azure/arm-sql';
import { ClientSecretCredential } from '@azure/identity';
import { BlobServiceClient } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createSqlClient } from '../engine/azure.ts';
import { startSandbox, type Sandbox, type SandboxCustomer } from '../sandbox/index.ts';
import { tempDir } from './support/database.ts';

// Azure's published REST examples, kept beside the repository; the shape test skips without them.
const fixtures = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../../shared/fixtures/azure-rest/sql',
);
const haveFixtures = existsSync(fixtures);

let sandbox: Sandbox;
let dataDir: string;
let client: SqlManagementClient;
let contoso: SandboxCustomer;

beforeAll(async () => {
  dataDir = await tempDir('acba-sandbox-sql-');
  sandbox = await startSandbox({
    dataDir,
    armPort: 0,
    blobPort: 0,
    imageCacheDir: 'test/.cache/images',
  });
  contoso = sandbox.seed.customers[0]!;
  const sp = sandbox.servicePrincipal;
  const credential = new ClientSecretCredential(sp.tenantId, sp.clientId, sp.clientSecret, {
    authorityHost: sandbox.authorityHost,
    disableInstanceDiscovery: true,
  });
  client = createSqlClient({
    credential,
    subscriptionId: contoso.subscriptionId,
    endpoint: sandbox.armUrl,
  });
});

afterAll(async () => {
  await sandbox?.close();
  if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
});

async function fixture(name: string): Promise<Record<string, any>> {
  return JSON.parse(await fs.readFile(`${fixtures}/${name}.json`, 'utf8'));
}

/** Every key path of a JSON value, arrays by their first element. */
function shape(value: unknown, prefix = ''): string[] {
  if (Array.isArray(value)) return value.length ? shape(value[0], `${prefix}[]`) : [];
  if (value === null || typeof value !== 'object') return [prefix];
  return Object.entries(value).flatMap(([k, v]) => [
    `${prefix}.${k}`,
    ...shape(v, `${prefix}.${k}`),
  ]);
}

/** The raw body of one SDK call. */
async function rawBody(
  call: (onResponse: (r: { bodyAsText?: string | null }) => void) => Promise<unknown>,
) {
  let body: unknown;
  await call((response) => {
    if (response.bodyAsText) body = JSON.parse(response.bodyAsText);
  });
  return body;
}

describe("the sandbox's Azure SQL", () => {
  it.skipIf(!haveFixtures)(
    "answers servers and databases in the shape of Azure's REST examples",
    async () => {
      const server = await rawBody((onResponse) =>
        client.servers.get('rg-prod', 'sql-contoso-weu', { onResponse }),
      );
      const serverExample = (await fixture('ServerGet')).responses['200'].body;
      // Tags and private endpoints are a server's data, not its shape.
      const ignoreEndpoints = (p: string) =>
        !p.includes('privateEndpointConnections[]') && !p.startsWith('.tags.');
      expect(shape(server)).toEqual(
        expect.arrayContaining(shape(serverExample).filter(ignoreEndpoints)),
      );

      const database = await rawBody((onResponse) =>
        client.databases.get('rg-prod', 'sql-contoso-weu', 'sales', { onResponse }),
      );
      const databaseExample = (await fixture('GetVCoreDatabase')).responses['200'].body;
      expect(shape(database)).toEqual(expect.arrayContaining(shape(databaseExample)));
      expect(database).toMatchObject({
        name: 'sales',
        type: 'Microsoft.Sql/servers/databases',
        kind: 'v12.0,user,vcore',
        location: 'westeurope',
        properties: { status: 'Online' },
      });
    },
  );

  it('pages through servers and databases, master included as in Azure', async () => {
    const servers: string[] = [];
    for await (const server of client.servers.list())
      servers.push(`${server.name}@${server.location}`);
    expect(servers.sort()).toEqual(['sql-contoso-neu@northeurope', 'sql-contoso-weu@westeurope']);

    const databases: string[] = [];
    for await (const db of client.databases.listByServer('rg-prod', 'sql-contoso-weu'))
      databases.push(`${db.name}:${db.kind}`);
    expect(databases.sort()).toEqual([
      'inventory:v12.0,user,vcore',
      'master:v12.0,system',
      'sales:v12.0,user,vcore',
    ]);
  });

  it("answers Azure's errors for a server or database that does not exist", async () => {
    const codeOf = (promise: Promise<unknown>) =>
      promise.then(
        () => 'no error',
        (error: { statusCode?: number; code?: string }) => `${error.statusCode} ${error.code}`,
      );
    expect(await codeOf(client.servers.get('rg-prod', 'sql-nowhere'))).toBe('404 ResourceNotFound');
    expect(await codeOf(client.databases.get('rg-prod', 'sql-nowhere', 'sales'))).toBe(
      '404 ParentResourceNotFound',
    );
    expect(await codeOf(client.databases.get('rg-prod', 'sql-contoso-weu', 'nothing'))).toBe(
      '404 ResourceNotFound',
    );
  });

  it('copies a database, exports the copy to a blob and imports it as a new database with the same rows', async () => {
    const container = BlobServiceClient.fromConnectionString(
      sandbox.repositoryConnectionString,
    ).getContainerClient('sandbox-sql-test');
    await container.createIfNotExists();
    const blob = container.getBlockBlobClient('sales-copy.bacpac');
    const key = /AccountKey=([^;]+)/.exec(sandbox.repositoryConnectionString)![1]!;
    const login = contoso.sqlServers.find((s) => s.name === 'sql-contoso-weu')!;
    const sales = contoso.sqlDatabases.find((d) => d.name === 'sql-contoso-weu/sales')!;
    const lro = { updateIntervalInMs: 10 };

    await client.databases.beginCreateOrUpdateAndWait(
      'rg-prod',
      'sql-contoso-weu',
      'sales-copy',
      { location: 'westeurope', createMode: 'Copy', sourceDatabaseId: sales.resourceId },
      lro,
    );
    const exported = await client.databases.beginExportAndWait(
      'rg-prod',
      'sql-contoso-weu',
      'sales-copy',
      {
        storageKeyType: 'StorageAccessKey',
        storageKey: key,
        storageUri: blob.url,
        administratorLogin: login.administratorLogin,
        administratorLoginPassword: login.administratorLoginPassword,
      },
      lro,
    );
    expect(exported).toMatchObject({
      requestType: 'Export',
      status: 'Completed',
      blobUri: blob.url,
    });

    const imported = await client.servers.beginImportDatabaseAndWait(
      'rg-prod',
      'sql-contoso-neu',
      {
        databaseName: 'sales-imported',
        storageKeyType: 'StorageAccessKey',
        storageKey: key,
        storageUri: blob.url,
        administratorLogin: contoso.sqlServers.find((s) => s.name === 'sql-contoso-neu')!
          .administratorLogin,
        administratorLoginPassword: contoso.sqlServers.find((s) => s.name === 'sql-contoso-neu')!
          .administratorLoginPassword,
      },
      lro,
    );
    expect(imported).toMatchObject({ requestType: 'Import', status: 'Completed' });

    const importedId = sales.resourceId.replace(
      'sql-contoso-weu/databases/sales',
      'sql-contoso-neu/databases/sales-imported',
    );
    expect(sandbox.sql.databaseContent(importedId)).toEqual(
      sandbox.sql.databaseContent(sales.resourceId),
    );
    await client.databases.beginDeleteAndWait('rg-prod', 'sql-contoso-weu', 'sales-copy', lro);
    await expect(
      client.databases.get('rg-prod', 'sql-contoso-weu', 'sales-copy'),
    ).rejects.toMatchObject({
      statusCode: 404,
    });
  });

  it('fails an export made with a wrong SQL password, as Azure does', async () => {
    const container = BlobServiceClient.fromConnectionString(
      sandbox.repositoryConnectionString,
    ).getContainerClient('sandbox-sql-test');
    const blob = container.getBlockBlobClient('wrong-password.bacpac');
    const key = /AccountKey=([^;]+)/.exec(sandbox.repositoryConnectionString)![1]!;

    await expect(
      client.databases.beginExportAndWait(
        'rg-prod',
        'sql-contoso-weu',
        'inventory',
        {
          storageKeyType: 'StorageAccessKey',
          storageKey: key,
          storageUri: blob.url,
          administratorLogin: 'contosoadmin',
          administratorLoginPassword: 'not-the-password',
        },
        { updateIntervalInMs: 10 },
      ),
    ).rejects.toThrow(/Login failed for user 'contosoadmin'/);
    expect(await blob.exists()).toBe(false);
  });
});
