/**
 * Azure Resource Manager's SQL surface, the part ACBA uses: logical servers
 * (list, get), databases (list, get, create as a copy or empty, delete),
 * export of a database to a BACPAC blob, and import of a BACPAC as a new
 * database.
 *
 * Same protocol as the compute surface (arm-compute.ts): bearer token,
 * subscription check, ARM error bodies, nextLink paging, long-running
 * operations with SQL's status and result paths. Export and import really
 * move data: an export writes the database's BACPAC (bacpac.ts) into the blob
 * its storageUri names, with the given SAS or account key, and an import
 * reads one and creates the database with its tables. A wrong SQL login or
 * storage key fails the operation, as in Azure. Tests can make exports fail
 * halfway (after part of the BACPAC is written) through the sandbox handle.
 */
import { createHash, randomUUID } from 'node:crypto';
import {
  AnonymousCredential,
  BlockBlobClient,
  StorageSharedKeyCredential,
  type StorageSharedKeyCredential as SharedKey,
} from '@azure/storage-blob';
import express, { type Request, type Response, type Router } from 'express';
import type { Logger } from '../core/log.ts';
import { armErrorHandler, armPreamble, ArmError } from './arm-compute.ts';
import { readBacpac, writeBacpac } from './bacpac.ts';
import type { IdentityProvider } from './identity.ts';
import type { LongRunningOperations, OperationPaths } from './long-running.ts';
import type { SandboxSeed } from './seed.ts';
import { importExportResultJson, sqlDatabaseJson, sqlServerJson } from './sql-json.ts';
import type { SqlDatabaseRecord, SqlResources, SqlServerRecord } from './sql-resources.ts';

export interface ArmSqlOptions {
  baseUrl: string;
  seed: SandboxSeed;
  sql: SqlResources;
  identity: IdentityProvider;
  operations: LongRunningOperations;
  /** Items per page for server and database lists. */
  pageSize: number;
  log: Logger;
}

const apiVersion = '2023-08-01';
const databaseOperation: OperationPaths = {
  provider: 'Microsoft.Sql',
  status: 'databaseAzureAsyncOperation',
  result: 'databaseOperationResults',
  apiVersion,
};
const importExportOperation: OperationPaths = {
  provider: 'Microsoft.Sql',
  status: 'importExportAzureAsyncOperation',
  result: 'importExportOperationResults',
  apiVersion,
};

/** Routes for .../providers/Microsoft.Sql/...; mount at the server root before the compute routes. */
export function armSqlRouter(options: ArmSqlOptions): Router {
  const router = express.Router({ mergeParams: true });
  const subscription = express.Router({ mergeParams: true });
  const group = express.Router({ mergeParams: true });
  const preamble = [armPreamble(options), express.json({ limit: '1mb' })];
  router.use('/subscriptions/:subscriptionId/providers/Microsoft.Sql', ...preamble, subscription);
  router.use(
    '/subscriptions/:subscriptionId/resourceGroups/:resourceGroup/providers/Microsoft.Sql',
    ...preamble,
    group,
  );

  subscription.get('/servers', (req, res) => {
    const servers = options.sql.listServers(param(req, 'subscriptionId'));
    sendPage(req, res, options, servers.map(sqlServerJson));
  });
  subscription.get('/locations/:location/:kind/:operationId', async (req, res) => {
    await pollOperation(req, res, options);
  });

  group.get('/servers', (req, res) => {
    const servers = options.sql.listServers(
      param(req, 'subscriptionId'),
      existingGroup(req, options),
    );
    sendPage(req, res, options, servers.map(sqlServerJson));
  });
  group.get('/servers/:server', (req, res) => {
    res.json(sqlServerJson(requireServer(req, options, 'ResourceNotFound')));
  });
  group.get('/servers/:server/databases', (req, res) => {
    const server = requireServer(req, options, 'ParentResourceNotFound');
    sendPage(req, res, options, options.sql.listDatabases(server).map(sqlDatabaseJson));
  });
  group.get('/servers/:server/databases/:database', (req, res) => {
    res.json(sqlDatabaseJson(requireDatabase(req, options)));
  });
  group.put('/servers/:server/databases/:database', (req, res) => {
    putDatabase(req, res, options);
  });
  group.delete('/servers/:server/databases/:database', (req, res) => {
    const server = requireServer(req, options, 'ParentResourceNotFound');
    const database = options.sql.getDatabase(server, param(req, 'database'));
    if (!database) return void res.status(204).end();
    if (database.system)
      throw new ArmError(
        400,
        'OperationNotAllowed',
        `The database '${database.name}' is a system database and cannot be deleted.`,
      );

    options.sql.deleteDatabase(database.id);
    options.log.info({ databaseId: database.id }, 'sandbox_sql_database_deleted');
    accepted(res, options.operations.start({ ...scope(server), paths: databaseOperation }));
  });
  group.post('/servers/:server/databases/:database/export', async (req, res) => {
    await exportDatabase(req, res, options);
  });
  group.post('/servers/:server/import', async (req, res) => {
    await importDatabase(req, res, options);
  });
  group.use((req) => {
    throw new ArmError(
      404,
      'InvalidResourceType',
      `The resource type could not be found for the path '${req.path}' in the namespace 'Microsoft.Sql' of this sandbox.`,
    );
  });

  router.use(armErrorHandler(options.log));
  return router;
}

interface DatabaseBody {
  location?: string;
  tags?: Record<string, string>;
  properties?: { createMode?: string; sourceDatabaseId?: string };
}

function putDatabase(req: Request, res: Response, options: ArmSqlOptions): void {
  const server = requireServer(req, options, 'ParentResourceNotFound');
  const name = param(req, 'database');
  const body = (req.body ?? {}) as DatabaseBody;
  if (!body.location)
    throw new ArmError(
      400,
      'LocationRequired',
      'The location property is required for this definition.',
    );

  const existing = options.sql.getDatabase(server, name);
  if (existing) {
    if (body.tags) existing.tags = body.tags;
    return void res.status(200).json(sqlDatabaseJson(existing));
  }

  const mode = body.properties?.createMode ?? 'Default';
  let source: SqlDatabaseRecord | undefined;
  if (mode === 'Copy') {
    const sourceId = body.properties?.sourceDatabaseId ?? '';
    source = options.sql.getDatabaseById(sourceId);
    if (!source || source.system)
      throw new ArmError(
        404,
        'SourceDatabaseNotFound',
        `The source database '${sourceId}' does not exist. Parameter name: sourceDatabaseId.`,
      );
  } else if (mode !== 'Default') {
    throw new ArmError(
      400,
      'InvalidParameterValue',
      `The sandbox creates databases with createMode 'Default' or 'Copy' only; got '${mode}'. Parameter name: createMode.`,
    );
  }

  const database = options.sql.createDatabase(
    server,
    name,
    source?.content ?? { tables: [] },
    body.tags ?? {},
    source?.id,
  );
  options.log.info(
    { databaseId: database.id, sourceId: source?.id },
    'sandbox_sql_database_created',
  );
  accepted(
    res,
    options.operations.start({
      ...scope(server),
      paths: databaseOperation,
      onSucceeded: async () => void (database.status = 'Online'),
    }),
  );
}

interface ImportExportBody {
  databaseName?: string;
  storageKeyType?: string;
  storageKey?: string;
  storageUri?: string;
  administratorLogin?: string;
  administratorLoginPassword?: string;
}

async function exportDatabase(req: Request, res: Response, options: ArmSqlOptions): Promise<void> {
  const database = requireDatabase(req, options);
  const body = (req.body ?? {}) as ImportExportBody;
  const blob = blobClient(body);
  const operationId = randomUUID();
  const queuedTime = new Date();

  let error = loginError(database.server, body);
  if (!error && database.system)
    error = {
      code: 'ImportExportJobError',
      message: `The system database '${database.name}' cannot be exported.`,
    };
  if (!error) error = await writeExport(options, database, blob, operationId);

  accepted(
    res,
    options.operations.start({
      ...scope(database.server),
      paths: importExportOperation,
      error,
      result: () =>
        importExportResultJson({
          operationId,
          requestType: 'Export',
          database,
          blobUri: body.storageUri!,
          queuedTime,
        }),
    }),
  );
}

/** Writes the BACPAC (or, when a failure was asked for, its first half); returns the operation's error, if any. */
async function writeExport(
  options: ArmSqlOptions,
  database: SqlDatabaseRecord,
  blob: BlockBlobClient,
  operationId: string,
): Promise<{ code: string; message: string } | undefined> {
  const bacpac = await writeBacpac(database.content, {
    databaseName: database.name,
    serverName: `${database.server.name}.database.windows.net`,
    operationId,
    startedAt: new Date(),
  });
  const failing = options.sql.takeExportFailure();
  const written = failing ? bacpac.subarray(0, Math.floor(bacpac.length / 2)) : bacpac;
  try {
    await blob.uploadData(written);
  } catch (error) {
    return {
      code: 'ImportExportJobError',
      message: `The export of database '${database.name}' could not write to the storage URI: ${(error as Error).message.split('\n')[0]}`,
    };
  }

  options.sql.exports.push({
    databaseId: database.id,
    blobUri: blob.url.split('?')[0]!,
    succeeded: !failing,
    sizeBytes: written.length,
    sha256: createHash('sha256').update(written).digest('hex'),
  });
  options.log.info(
    { databaseId: database.id, sizeBytes: written.length, failing },
    'sandbox_sql_exported',
  );
  if (failing)
    return {
      code: 'ImportExportJobError',
      message: `The export of database '${database.name}' failed: the connection to the database was lost while its data was read. Try the export again.`,
    };
  return undefined;
}

async function importDatabase(req: Request, res: Response, options: ArmSqlOptions): Promise<void> {
  const server = requireServer(req, options, 'ParentResourceNotFound');
  const body = (req.body ?? {}) as ImportExportBody;
  const name = body.databaseName ?? '';
  if (!name)
    throw new ArmError(
      400,
      'InvalidParameterValue',
      'The databaseName property is required for an import.',
    );
  if (options.sql.getDatabase(server, name))
    throw new ArmError(
      409,
      'DatabaseAlreadyExists',
      `The database '${name}' already exists on server '${server.name}'. Import into a new database name.`,
    );
  const blob = blobClient(body);

  let error = loginError(server, body);
  let content;
  if (!error) {
    try {
      content = await readBacpac(await blob.downloadToBuffer());
    } catch (failure) {
      error = {
        code: 'ImportExportJobError',
        message: `The import of database '${name}' could not read the BACPAC at the storage URI: ${(failure as Error).message.split('\n')[0]}`,
      };
    }
  }
  const database =
    content && !error ? options.sql.createDatabase(server, name, content, {}) : undefined;
  if (database) options.log.info({ databaseId: database.id }, 'sandbox_sql_imported');

  accepted(
    res,
    options.operations.start({
      ...scope(server),
      paths: importExportOperation,
      error,
      onSucceeded: async () => {
        if (database) database.status = 'Online';
      },
      result: () =>
        database &&
        importExportResultJson({
          operationId: randomUUID(),
          requestType: 'Import',
          database,
          blobUri: body.storageUri!,
          queuedTime: new Date(),
        }),
    }),
  );
}

async function pollOperation(req: Request, res: Response, options: ArmSqlOptions): Promise<void> {
  const kind = param(req, 'kind').toLowerCase();
  const isStatus = [databaseOperation.status, importExportOperation.status]
    .map((k) => k.toLowerCase())
    .includes(kind);
  const isResult = [databaseOperation.result, importExportOperation.result]
    .map((k) => k.toLowerCase())
    .includes(kind);
  const poll =
    isStatus || isResult ? await options.operations.poll(param(req, 'operationId')) : undefined;
  if (!poll || poll.kind === 'unknown')
    throw new ArmError(
      404,
      'ResourceNotFound',
      `The operation '${param(req, 'operationId')}' was not found.`,
    );

  if (isStatus) {
    if (poll.kind === 'running') res.set('Retry-After', '0');
    return void res.json(poll.status);
  }
  if (poll.kind === 'running')
    return void res
      .status(202)
      .set({ 'Retry-After': '0', Location: `${options.baseUrl}${req.originalUrl}` })
      .end();
  if (poll.status.status === 'Failed')
    return void res.status(400).json({ error: poll.status.error });
  if (poll.result === undefined) return void res.status(200).end();
  res.status(200).json(poll.result);
}

/** The blob client for an import's or export's storageUri and key; a bad combination is refused as Azure does. */
function blobClient(body: ImportExportBody): BlockBlobClient {
  const uri = body.storageUri ?? '';
  let url: URL;
  try {
    url = new URL(uri);
  } catch {
    throw new ArmError(
      400,
      'InvalidParameterValue',
      `The storage URI '${uri}' is not a valid blob URL. Parameter name: storageUri.`,
    );
  }
  if (!body.storageKey)
    throw new ArmError(
      400,
      'InvalidParameterValue',
      'The storageKey property is required. Parameter name: storageKey.',
    );

  if (body.storageKeyType === 'SharedAccessKey') {
    const sas = body.storageKey.replace(/^\?/, '');
    return new BlockBlobClient(`${url.origin}${url.pathname}?${sas}`, new AnonymousCredential());
  }
  if (body.storageKeyType === 'StorageAccessKey') {
    // Path-style URLs (Azurite, IP hosts) name the account in the path; Azure's in the host.
    const pathStyle = /^[\d.]+$|^localhost$/.test(url.hostname);
    const account = pathStyle ? url.pathname.split('/')[1]! : url.hostname.split('.')[0]!;
    const credential: SharedKey = new StorageSharedKeyCredential(account, body.storageKey);
    return new BlockBlobClient(`${url.origin}${url.pathname}`, credential);
  }
  throw new ArmError(
    400,
    'InvalidParameterValue',
    `The storage key type '${body.storageKeyType ?? ''}' is not valid; use 'StorageAccessKey' or 'SharedAccessKey'. Parameter name: storageKeyType.`,
  );
}

function loginError(
  server: SqlServerRecord,
  body: ImportExportBody,
): { code: string; message: string } | undefined {
  if (
    body.administratorLogin === server.administratorLogin &&
    body.administratorLoginPassword === server.administratorLoginPassword
  )
    return undefined;
  return {
    code: 'ImportExportJobError',
    message: `Login failed for user '${body.administratorLogin ?? ''}' on server '${server.name}'. Check the administrator login and password.`,
  };
}

function accepted(res: Response, headers: Record<string, string>): void {
  res.status(202).set(headers).end();
}

function scope(server: SqlServerRecord): { subscriptionId: string; location: string } {
  return { subscriptionId: server.subscriptionId, location: server.location };
}

/** Sends one page of items with a nextLink to the next, by $skiptoken. */
function sendPage(req: Request, res: Response, options: ArmSqlOptions, items: unknown[]): void {
  const skip = Number(req.query.$skiptoken ?? 0) || 0;
  const page = items.slice(skip, skip + options.pageSize);
  const body: { value: unknown[]; nextLink?: string } = { value: page };
  if (skip + options.pageSize < items.length) {
    const next = new URL(`${options.baseUrl}${req.originalUrl}`);
    next.searchParams.set('$skiptoken', String(skip + options.pageSize));
    body.nextLink = next.toString();
  }
  res.json(body);
}

function param(req: Request, name: string): string {
  return String(req.params[name] ?? '');
}

function existingGroup(req: Request, options: ArmSqlOptions): string {
  const subscriptionId = param(req, 'subscriptionId').toLowerCase();
  const resourceGroup = param(req, 'resourceGroup');
  const customer = options.seed.customers.find(
    (c) =>
      c.subscriptionId.toLowerCase() === subscriptionId &&
      c.resourceGroup.toLowerCase() === resourceGroup.toLowerCase(),
  );
  if (!customer)
    throw new ArmError(
      404,
      'ResourceGroupNotFound',
      `Resource group '${resourceGroup}' could not be found.`,
    );
  return customer.resourceGroup;
}

/** The route's server; `code` is how Azure names its absence (the resource itself, or the parent of a nested one). */
function requireServer(
  req: Request,
  options: ArmSqlOptions,
  code: 'ResourceNotFound' | 'ParentResourceNotFound',
): SqlServerRecord {
  const resourceGroup = existingGroup(req, options);
  const name = param(req, 'server');
  const server = options.sql.getServer(param(req, 'subscriptionId'), resourceGroup, name);
  if (server) return server;
  if (code === 'ParentResourceNotFound')
    throw new ArmError(
      404,
      code,
      `Failed to perform 'read' on resource(s) of type 'servers/databases', because the parent resource '/subscriptions/${param(req, 'subscriptionId')}/resourceGroups/${resourceGroup}/providers/Microsoft.Sql/servers/${name}' could not be found.`,
    );
  throw new ArmError(
    404,
    code,
    `The Resource 'Microsoft.Sql/servers/${name}' under resource group '${resourceGroup}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix`,
  );
}

function requireDatabase(req: Request, options: ArmSqlOptions): SqlDatabaseRecord {
  const server = requireServer(req, options, 'ParentResourceNotFound');
  const database = options.sql.getDatabase(server, param(req, 'database'));
  if (!database)
    throw new ArmError(
      404,
      'ResourceNotFound',
      `The Resource 'Microsoft.Sql/servers/${server.name}/databases/${param(req, 'database')}' under resource group '${server.resourceGroup}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix`,
    );
  return database;
}
