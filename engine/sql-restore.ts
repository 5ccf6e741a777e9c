/**
 * Restoring an Azure SQL database's restore point: its BACPAC is assembled
 * from the repository into a staging blob, Azure SQL imports it as a new
 * database (ImportNewDatabase) on the original server or on another server of
 * the same customer, and the staging blob is deleted, also on failure.
 *
 * The database is always new: an existing database of that name is never
 * overwritten. Azure reads the staging blob through a read-only SAS for that
 * one blob that expires after IMPORT_ACCESS_MINUTES.
 *
 * This function does not check approvals: whoever calls it must hold an
 * approved request for this restore, re-checked as file restores are.
 */
import { randomUUID } from 'node:crypto';
import type { SqlManagementClient } from '@azure/arm-sql';
import type { BlockBlobClient } from '@azure/storage-blob';
import { appendAudit, serviceActor } from '../core/audit.ts';
import type { Db } from '../core/db/database.ts';
import { badInput, conflict, forbidden, notFound } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { readStoredFile } from './bacpac-blocks.ts';
import { failureOf } from './notices.ts';
import { readAnyManifest, type ManifestFile } from './repository/manifest.ts';
import type { Repository } from './repository/repository.ts';
import { parseResourceId } from './resource-id.ts';
import { parseSqlDatabaseId, resourceTypeOf } from './resource-types.ts';
import type { SqlLogins } from './sql-logins.ts';
import type { SqlStaging } from './sql-staging.ts';

/** How long Azure may read the staging blob; an import must have read it by then. */
const IMPORT_ACCESS_MINUTES = 4 * 60;

export interface SqlRestoreDeps {
  db: Db;
  log: Logger;
  repository: Repository;
  sql(subscriptionId: string): SqlManagementClient;
  staging: SqlStaging;
  logins: SqlLogins;
  pollIntervalMs?: number;
}

export interface SqlRestoreInput {
  restorePointId: string;
  /** Name of the new database. */
  databaseName: string;
  /** Resource id of the logical server to import into; the original server when absent. */
  serverResourceId?: string;
  /** Who asked, for the audit trail: an approved request's id. */
  requestId?: string;
  /** Told the new database's id just before Azure starts creating it, so that a failure can delete it. */
  created?(databaseId: string): void;
}

/** Imports a SQL restore point as a new database; returns the new database's resource id. */
export async function restoreSqlDatabase(
  deps: SqlRestoreDeps,
  input: SqlRestoreInput,
): Promise<string> {
  const point = await deps.db
    .selectFrom('restore_points')
    .innerJoin('protected_items', 'protected_items.id', 'restore_points.item_id')
    .innerJoin('customers', 'customers.id', 'restore_points.customer_id')
    .selectAll('restore_points')
    .select(['protected_items.kind', 'protected_items.resource_id', 'customers.subscription_id'])
    .where('restore_points.id', '=', input.restorePointId)
    .executeTakeFirst();
  if (!point || point.kind !== 'sql_database')
    throw notFound(
      `Restore point ${input.restorePointId} of a SQL database does not exist (it may have expired); list the database's restore points and choose another.`,
    );

  const source = parseSqlDatabaseId(point.resource_id);
  const serverId = input.serverResourceId ?? source.serverId;
  const target = targetServer(serverId, point.subscription_id);
  const targetId = `${serverId}/databases/${input.databaseName}`;
  const resource = `sql/${point.customer_id}/${target.name}/${input.databaseName}`;
  const details = {
    customerId: point.customer_id,
    restorePointId: point.id,
    itemId: point.item_id,
    targetDatabaseId: targetId,
    requestId: input.requestId,
  };
  const log = deps.log.child({ restorePointId: point.id, target: targetId });

  await appendAudit(deps.db, {
    actor: serviceActor,
    channel: 'engine',
    action: 'restore.start',
    resource,
    outcome: 'success',
    details,
  });
  try {
    const login = deps.logins(serverId);
    if (!login)
      throw badInput(
        `No SQL login is configured for server ${target.name}, so nothing can be imported there. Add the server to ACBA_SQL_LOGINS_FILE and try again.`,
      );
    const sql = deps.sql(point.subscription_id);
    await refuseExisting(sql, target, input.databaseName);

    const manifest = await readAnyManifest(deps.repository, point);
    if (manifest.kind !== 'sql_database')
      throw badInput(`Restore point ${point.id} holds no BACPAC; it is not a SQL database's.`);

    const blob = await deps.staging.blob(
      `${target.subscriptionId}/${target.name}/restore-${randomUUID()}.bacpac`,
    );
    try {
      await uploadStored(deps.repository, manifest.bacpac, manifest.blockSize, blob);
      const access = await deps.staging.access(blob, 'read', IMPORT_ACCESS_MINUTES);
      input.created?.(targetId);
      await sql.servers.beginImportDatabaseAndWait(
        target.resourceGroup,
        target.name,
        {
          databaseName: input.databaseName,
          ...access,
          administratorLogin: login.administratorLogin,
          administratorLoginPassword: login.administratorLoginPassword,
          authenticationType: login.authenticationType ?? 'Sql',
        },
        { updateIntervalInMs: deps.pollIntervalMs },
      );
    } finally {
      await blob
        .deleteIfExists()
        .catch((err) => log.warn({ err, blob: blob.name }, 'sql_staging_delete_failed'));
    }

    await appendAudit(deps.db, {
      actor: serviceActor,
      channel: 'engine',
      action: 'restore.finish',
      resource,
      outcome: 'success',
      details: { ...details, sizeBytes: manifest.bacpac.sizeBytes },
    });
    log.info('sql_restore_finished');
    return targetId;
  } catch (error) {
    const failure = failureOf(error);
    await appendAudit(deps.db, {
      actor: serviceActor,
      channel: 'engine',
      action: 'restore.fail',
      resource,
      outcome: 'failed',
      details: { ...details, kind: failure.kind, message: failure.message },
    });
    log.error({ err: error }, 'sql_restore_failed');
    throw error;
  }
}

/** A logical SQL server a database is imported into. */
export interface TargetServer {
  subscriptionId: string;
  resourceGroup: string;
  name: string;
}

/** The target server, which must be a logical SQL server in the customer's own subscription. */
export function targetServer(serverId: string, customerSubscriptionId: string): TargetServer {
  if (resourceTypeOf(serverId) !== 'microsoft.sql/servers')
    throw badInput(
      `${serverId} is not a logical SQL server's resource id (/subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.Sql/servers/<server>).`,
    );
  const { subscriptionId, resourceGroup, name } = parseResourceId(serverId);
  if (subscriptionId.toLowerCase() !== customerSubscriptionId.toLowerCase())
    throw forbidden(
      `Server ${name} is not in the customer's subscription ${customerSubscriptionId}; a database is restored only into its own customer's subscription.`,
    );
  return { subscriptionId, resourceGroup, name };
}

async function refuseExisting(
  sql: SqlManagementClient,
  target: TargetServer,
  databaseName: string,
): Promise<void> {
  const exists = await sql.databases.get(target.resourceGroup, target.name, databaseName).then(
    () => true,
    (error: { statusCode?: number }) => {
      if (error.statusCode === 404) return false;
      throw error;
    },
  );
  if (exists)
    throw conflict(
      `Database ${databaseName} already exists on server ${target.name}; restore under a new name.`,
    );
}

/** Writes the stored file into a block blob, one staged block per repository block. */
async function uploadStored(
  repository: Repository,
  file: ManifestFile,
  blockSize: number,
  blob: BlockBlobClient,
): Promise<void> {
  const ids: string[] = [];
  for await (const chunk of readStoredFile(repository, file, blockSize)) {
    const id = Buffer.from(String(ids.length).padStart(8, '0')).toString('base64');
    await blob.stageBlock(id, chunk, chunk.length);
    ids.push(id);
  }
  await blob.commitBlockList(ids);
}
