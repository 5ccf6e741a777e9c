/**
 * Running an approved SQL restore request: one or more databases of one
 * logical server, each imported from its restore point's BACPAC
 * (./sql-restore.ts) under a new name on the original server, on another
 * server of the customer, or over the original database.
 *
 *   1. the approval check and claim (./approved-request.ts);
 *   2. every database's restore point is checked (the customer's own, a
 *      backup, not expired), and every name the restore will create is
 *      looked up in Azure: a name that exists is refused before anything is
 *      created;
 *   3. a job session of kind 'restore', one task per database, and
 *      `restore.start`;
 *   4. each database is imported; over the original, under a temporary name
 *      first. Only once every import succeeded is each original renamed to
 *      `<database>-replaced-<request>` (kept, and named in the result) and
 *      the import renamed to the original's name;
 *   5. on failure the renames done are undone and every database the restore
 *      created is deleted, so no half-imported database stays behind; those
 *      Azure would not delete are named in the result.
 */
import type { SqlManagementClient } from '@azure/arm-sql';
import type { Db } from '../core/db/database.ts';
import type {
  ProtectedItem,
  RequestRow,
  RestorePoint,
  SqlRestoreDatabase,
  SqlRestoreTarget,
} from '../core/db/schema.ts';
import { badInput, conflict, notFound } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import {
  claimApprovedRequest,
  completeRequest,
  failRequest,
  type ApprovedRequestDeps,
} from './approved-request.ts';
import { azureStep, isResourceNotFound } from './azure-steps.ts';
import { loadItem } from './backup-run.ts';
import type { JobSession, JobSessionOptions } from './job-sessions.ts';
import type { Repository } from './repository/repository.ts';
import { parseResourceId } from './resource-id.ts';
import { parseSqlDatabaseId } from './resource-types.ts';
import { openRestoreSession, usableRestorePoint } from './restore-run.ts';
import type { SqlLogins } from './sql-logins.ts';
import { restoreSqlDatabase, targetServer, type TargetServer } from './sql-restore.ts';
import type { SqlStaging } from './sql-staging.ts';

/** Azure SQL's longest database name. */
const MAX_DATABASE_NAME = 128;

export interface SqlRestoreRequestDeps extends ApprovedRequestDeps {
  log: Logger;
  sql(subscriptionId: string): SqlManagementClient;
  repository(): Promise<Repository>;
  staging: SqlStaging;
  logins: SqlLogins;
  /** Poll interval for ARM long-running operations without Retry-After. */
  pollIntervalMs?: number;
  /** Task retries and progress pacing of the restore's job session. */
  sessions?: JobSessionOptions;
}

/** The server a database goes to, with its resource id. */
type Server = TargetServer & { id: string };

/** One database of the request and the names the restore gives it. */
interface DatabasePlan {
  item: ProtectedItem;
  point: RestorePoint;
  /** The database's name on its original server. */
  database: string;
  server: Server;
  /** The name Azure imports into: the final one, or a temporary one when it replaces the original. */
  importName: string;
  finalName: string;
  /** Over the original: the name the original database is kept under. */
  keptName?: string;
}

/** What the restore changed in Azure so far, for undoing it after a failure. */
interface Changes {
  /** Ids of databases the restore created (imports under their import names). */
  created: string[];
  /** Renames done, in order, each undone by renaming back. */
  renamed: Array<{ server: Server; from: string; to: string }>;
}

/** Runs an approved SQL restore after the engine's own approval check; throws forbidden when refused. */
export async function runSqlRestore(deps: SqlRestoreRequestDeps, requestId: string): Promise<void> {
  const log = deps.log.child({ requestId, kind: 'sql_restore' });
  const request = await claimApprovedRequest(deps, log, requestId, 'sql_restore');
  if (!request) return;

  const changes: Changes = { created: [], renamed: [] };
  let session: JobSession | undefined;
  let sql: SqlManagementClient | undefined;
  try {
    const target = request.target as SqlRestoreTarget;
    const plans = await planDatabases(deps.db, request, target);
    const { customer, item } = await loadItem(deps.db, 'sql_database', plans[0]!.item.id);
    sql = deps.sql(customer.subscription_id);
    await checkBeforeCreating(deps, sql, plans);
    session = await openRestoreSession(deps, log, request, customer, item, {
      databases: plans.map((p) => ({ itemId: p.item.id, restorePointId: p.point.id })),
    });

    const repository = await deps.repository();
    for (const plan of plans)
      await importOne({ deps, sql, repository, session, request, log, changes }, plan);
    if (target.replaceOriginal) for (const plan of plans) await swapIn(deps, sql, plan, changes);

    await session.succeed(plans[0]!.point.id);
    const outcome = describeOutcome(target, plans);
    await completeRequest(deps, request, outcome.result, { message: outcome.summary });
    log.info(outcome.result, 'sql_restore_request_completed');
  } catch (error) {
    const leftBehind = sql ? await undo(deps, log, sql, changes) : [];
    await session?.fail(error);
    await failRequest(deps, log, request, error, {
      databasesDeleted: changes.created.filter((id) => !leftBehind.includes(id)).map(nameOf),
      ...(leftBehind.length > 0 ? { databasesLeftBehind: leftBehind.map(nameOf) } : {}),
    });
  }
}

/** Each database's item, restore point and names; every database must be on the request's one server. */
async function planDatabases(
  db: Db,
  request: RequestRow,
  target: SqlRestoreTarget,
): Promise<DatabasePlan[]> {
  const customer = await db
    .selectFrom('customers')
    .select('subscription_id')
    .where('id', '=', request.customer_id)
    .executeTakeFirstOrThrow();
  const plans: DatabasePlan[] = [];
  let sourceServerId: string | undefined;
  for (const wanted of target.databases) {
    const { item } = await loadItem(db, 'sql_database', wanted.itemId);
    if (item.customer_id !== request.customer_id)
      throw notFound(
        `Database ${wanted.database} is not one of this customer's; nothing was restored.`,
      );
    const source = parseSqlDatabaseId(item.resource_id);
    sourceServerId ??= source.serverId;
    if (source.serverId.toLowerCase() !== sourceServerId.toLowerCase())
      throw badInput(
        `Database ${item.name} is not on server ${target.server}; one request restores databases of one logical server. Ask for it in a new request.`,
      );

    const point = await usableRestorePoint(db, request, item, wanted.restorePointId);
    const serverId = target.targetServerId ?? source.serverId;
    const server = { id: serverId, ...targetServer(serverId, customer.subscription_id) };
    plans.push({
      item,
      point,
      database: source.database,
      server,
      ...names(wanted, target, request),
    });
  }
  if (plans.length === 0) throw badInput(`Request ${request.id} names no database to restore.`);
  return plans;
}

function names(
  wanted: SqlRestoreDatabase,
  target: SqlRestoreTarget,
  request: RequestRow,
): Pick<DatabasePlan, 'importName' | 'finalName' | 'keptName'> {
  if (!target.replaceOriginal) return { importName: wanted.newName, finalName: wanted.newName };
  return {
    importName: withSuffix(wanted.database, `-restoring-${request.id.slice(0, 8)}`),
    finalName: wanted.database,
    keptName: withSuffix(wanted.database, `-replaced-${request.id.slice(0, 8)}`),
  };
}

/** Refuses, before anything is created, a server without a login, a name taken, or an original gone. */
async function checkBeforeCreating(
  deps: SqlRestoreRequestDeps,
  sql: SqlManagementClient,
  plans: DatabasePlan[],
): Promise<void> {
  for (const plan of plans) {
    if (!deps.logins(plan.server.id))
      throw badInput(
        `No SQL login is configured for server ${plan.server.name}, so nothing can be imported there. Add the server to ACBA_SQL_LOGINS_FILE and ask again.`,
      );
    const taken = [plan.importName, plan.keptName].filter((n): n is string => n !== undefined);
    for (const name of taken)
      if (await databaseExists(sql, plan.server, name))
        throw conflict(
          `Database ${name} already exists on server ${plan.server.name}; nothing was created. Choose another name, or delete that database first, then ask again.`,
        );
    if (plan.keptName && !(await databaseExists(sql, plan.server, plan.finalName)))
      throw notFound(
        `Database ${plan.finalName} no longer exists on server ${plan.server.name}, so there is nothing to replace; nothing was created. Ask for a restore under a new name instead.`,
      );
  }
}

interface ImportContext {
  deps: SqlRestoreRequestDeps;
  sql: SqlManagementClient;
  repository: Repository;
  session: JobSession;
  request: RequestRow;
  log: Logger;
  changes: Changes;
}

/** Imports one database as a task of the session; a failed try deletes what it made before the next. */
async function importOne(context: ImportContext, plan: DatabasePlan): Promise<void> {
  const { deps, changes } = context;
  const sizeBytes = plan.point.bacpac?.sizeBytes;
  await context.session.runTask(
    { kind: 'database', name: `${plan.server.name}/${plan.importName}`, totalBytes: sizeBytes },
    async () => {
      let made: string | undefined;
      try {
        await restoreSqlDatabase(
          { ...deps, repository: context.repository, sql: () => context.sql },
          {
            restorePointId: plan.point.id,
            databaseName: plan.importName,
            serverResourceId: plan.server.id,
            requestId: context.request.id,
            created: (id) => {
              made = id;
              if (!changes.created.includes(id)) changes.created.push(id);
            },
          },
        );
      } catch (error) {
        if (made && (await deleteDatabase(deps, context.log, context.sql, made)))
          changes.created.splice(changes.created.indexOf(made), 1);
        throw error;
      }
      return { readBytes: sizeBytes };
    },
  );
}

/** Keeps the original under its kept name and gives the import the original's name. */
async function swapIn(
  deps: SqlRestoreRequestDeps,
  sql: SqlManagementClient,
  plan: DatabasePlan,
  changes: Changes,
): Promise<void> {
  await rename(sql, plan.server, plan.finalName, plan.keptName!);
  changes.renamed.push({ server: plan.server, from: plan.finalName, to: plan.keptName! });
  await rename(sql, plan.server, plan.importName, plan.finalName);
  changes.renamed.push({ server: plan.server, from: plan.importName, to: plan.finalName });
}

/** Renames back what was renamed, newest first, then deletes what was created; returns ids left behind. */
async function undo(
  deps: SqlRestoreRequestDeps,
  log: Logger,
  sql: SqlManagementClient,
  changes: Changes,
): Promise<string[]> {
  for (const step of [...changes.renamed].reverse()) {
    try {
      await rename(sql, step.server, step.to, step.from);
    } catch (err) {
      // The original may now sit under its kept name: say so rather than delete anything more.
      log.error({ err, database: step.to }, 'sql_restore_rename_back_failed');
      return changes.created;
    }
  }
  const left: string[] = [];
  for (const id of changes.created) if (!(await deleteDatabase(deps, log, sql, id))) left.push(id);
  return left;
}

async function rename(
  sql: SqlManagementClient,
  server: Server,
  from: string,
  to: string,
): Promise<void> {
  await azureStep(`Renaming database ${from} on server ${server.name} to ${to}`, () =>
    sql.databases.rename(server.resourceGroup, server.name, from, {
      id: `${server.id}/databases/${to}`,
    }),
  );
}

/** Deletes a database the restore made; false (and logged) when Azure would not. */
async function deleteDatabase(
  deps: SqlRestoreRequestDeps,
  log: Logger,
  sql: SqlManagementClient,
  databaseId: string,
): Promise<boolean> {
  const { resourceGroup, server, database } = parseSqlDatabaseId(databaseId);
  try {
    await sql.databases.beginDeleteAndWait(resourceGroup, server, database, {
      updateIntervalInMs: deps.pollIntervalMs,
    });
    log.info({ database, server }, 'sql_restore_database_deleted');
    return true;
  } catch (err) {
    log.error({ err, database, server }, 'sql_restore_database_delete_failed');
    return false;
  }
}

async function databaseExists(
  sql: SqlManagementClient,
  server: TargetServer,
  name: string,
): Promise<boolean> {
  return azureStep(`Looking for database ${name} on server ${server.name}`, () =>
    sql.databases.get(server.resourceGroup, server.name, name).then(
      () => true,
      (error: unknown) => (isResourceNotFound(error) ? false : Promise.reject(error)),
    ),
  );
}

function describeOutcome(
  target: SqlRestoreTarget,
  plans: DatabasePlan[],
): { result: Record<string, unknown>; summary: string } {
  const server = plans[0]!.server.name;
  const databases = plans.map((p) => ({
    database: p.database,
    restorePointId: p.point.id,
    restoredAs: p.finalName,
    server: p.server.name,
    ...(p.keptName ? { originalKeptAs: p.keptName } : {}),
  }));
  const list = plans
    .map((p) => `${p.finalName} (from ${p.point.created_at.toISOString()})`)
    .join(', ');
  const summary = target.replaceOriginal
    ? `The databases of ${server} were replaced from their backups: ${list}. The previous databases are kept for you to delete once you are satisfied: ${plans.map((p) => p.keptName).join(', ')}.`
    : `The databases of ${target.server} were restored on server ${server} as new databases: ${list}.`;
  return { result: { server, databases }, summary };
}

function withSuffix(base: string, suffix: string): string {
  return `${base.slice(0, MAX_DATABASE_NAME - suffix.length)}${suffix}`;
}

function nameOf(databaseId: string): string {
  return parseResourceId(databaseId).name;
}
