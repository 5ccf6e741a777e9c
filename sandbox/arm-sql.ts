/**
 * Azure Resource Manager's SQL surface, the part ACBA uses: logical servers
 * (list, get), databases (list, get, create as a copy or empty, rename, delete),
 * export of a database to a BACPAC blob, and import of a BACPAC as a new
 * database.
 *
 * Same protocol as the compute surface (arm-compute.ts): bearer token,
 * subscription check, ARM error bodies, nextLink paging, long-running
 * operations with SQL's status and result paths. Export and import really
 * move data (sql-import-export.ts).
 */
import express, { type Request, type Response, type Router } from 'express';
import type { Logger } from '../core/log.ts';
import { armErrorHandler, armPreamble, ArmError } from './arm-compute.ts';
import type { IdentityProvider } from './identity.ts';
import type { LongRunningOperations, OperationPaths } from './long-running.ts';
import type { SandboxSeed } from './seed.ts';
import { sqlDatabaseJson, sqlServerJson } from './sql-json.ts';
import {
  exportDatabase,
  importDatabase,
  importExportOperation,
  SQL_API_VERSION,
} from './sql-import-export.ts';
import {
  operationScope,
  type SqlDatabaseRecord,
  type SqlResources,
  type SqlServerRecord,
} from './sql-resources.ts';

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

const databaseOperation: OperationPaths = {
  provider: 'Microsoft.Sql',
  status: 'databaseAzureAsyncOperation',
  result: 'databaseOperationResults',
  apiVersion: SQL_API_VERSION,
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
    accepted(
      res,
      options.operations.start({ ...operationScope(server), paths: databaseOperation }),
    );
  });
  group.post('/servers/:server/databases/:database/move', (req, res) => {
    renameDatabase(req, res, options);
  });
  group.post('/servers/:server/databases/:database/export', async (req, res) => {
    const database = requireDatabase(req, options);
    accepted(res, await exportDatabase(options, database, req.body ?? {}));
  });
  group.post('/servers/:server/import', async (req, res) => {
    const server = requireServer(req, options, 'ParentResourceNotFound');
    accepted(res, await importDatabase(options, server, req.body ?? {}));
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
      ...operationScope(server),
      paths: databaseOperation,
      onSucceeded: async () => void (database.status = 'Online'),
    }),
  );
}

/** Databases.Rename: the body's `id` names the same server's database under its new name. */
function renameDatabase(req: Request, res: Response, options: ArmSqlOptions): void {
  const database = requireDatabase(req, options);
  const id = String((req.body as { id?: unknown } | undefined)?.id ?? '');
  const prefix = `${database.server.id}/databases/`;
  const newName = id.toLowerCase().startsWith(prefix.toLowerCase()) ? id.slice(prefix.length) : '';
  if (newName === '' || newName.includes('/'))
    throw new ArmError(
      400,
      'InvalidResourceId',
      `The new id '${id}' must name a database of server ${database.server.name}. Parameter name: id.`,
    );
  if (database.system)
    throw new ArmError(
      400,
      'OperationNotAllowed',
      `The database '${database.name}' is a system database and cannot be renamed.`,
    );
  if (options.sql.getDatabase(database.server, newName))
    throw new ArmError(
      409,
      'DatabaseAlreadyExists',
      `The database '${newName}' already exists on server '${database.server.name}'.`,
    );

  options.sql.renameDatabase(database, newName);
  options.log.info({ databaseId: database.id }, 'sandbox_sql_database_renamed');
  res.status(200).end();
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
  if (poll.kind === 'failed') return void res.status(400).json({ error: poll.status.error });
  if (poll.result === undefined) return void res.status(200).end();
  res.status(200).json(poll.result);
}

function accepted(res: Response, headers: Record<string, string>): void {
  res.status(202).set(headers).end();
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
