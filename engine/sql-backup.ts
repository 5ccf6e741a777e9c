/**
 * The backup pipeline for one Azure SQL database:
 *
 *   1. copy the database on its own server (`createMode: 'Copy'`): the copy is
 *      transactionally consistent as of the moment the copy finishes, which an
 *      export of the live database is not;
 *   2. export the copy to a BACPAC in the staging container (./sql-staging.ts),
 *      through a short-lived SAS for that one blob;
 *   3. read the BACPAC into the repository in blocks, like disk data
 *      (./bacpac-blocks.ts);
 *   4. write the manifest (kind `sql_database`), and only then the
 *      restore_points row that makes the restore point visible.
 *
 * The copy and the staging blob are deleted whatever happens. Export and
 * import need a SQL login of the database's server (SqlLogins), which never
 * reaches a log or the audit trail.
 */
import { randomUUID } from 'node:crypto';
import type { SqlManagementClient } from '@azure/arm-sql';
import { appendAudit, serviceActor } from '../core/audit.ts';
import type { Db } from '../core/db/database.ts';
import type {
  Customer,
  ProtectedItem,
  RestorePoint,
  RestorePointBacpac,
} from '../core/db/schema.ts';
import { badInput, notFound } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { BackupOptions } from './backup.ts';
import { storeBlob } from './bacpac-blocks.ts';
import { failureOf, type EngineNotices } from './notices.ts';
import { backupLease } from './repository/leases.ts';
import { writeManifest } from './repository/manifest.ts';
import { BLOCK_SIZE, type Repository } from './repository/repository.ts';
import { parseSqlDatabaseId, type SqlDatabaseId } from './resource-types.ts';
import type { SqlLogin, SqlLogins } from './sql-logins.ts';
import type { SqlStaging } from './sql-staging.ts';

/** How long the export's SAS lasts; an export must finish within it. */
const EXPORT_ACCESS_MINUTES = 12 * 60;
const DEFAULT_RETENTION_DAYS = 365;

export interface SqlBackupDeps {
  db: Db;
  log: Logger;
  repository: Repository;
  sql(subscriptionId: string): SqlManagementClient;
  staging: SqlStaging;
  logins: SqlLogins;
  /** Told once per failed run; its own failures are logged and never change the run's outcome. */
  notices?: Pick<EngineNotices, 'backupFailed'>;
  /** Poll interval for ARM long-running operations without Retry-After; the SDK's 2 s by default. */
  pollIntervalMs?: number;
}

/** Backs up one protected SQL database and returns its new restore point. */
export async function backupSqlDatabase(
  deps: SqlBackupDeps,
  itemId: string,
  trigger: string,
  options: BackupOptions = {},
): Promise<RestorePoint> {
  const item = await deps.db
    .selectFrom('protected_items')
    .selectAll()
    .where('id', '=', itemId)
    .executeTakeFirst();
  if (!item || item.kind !== 'sql_database')
    throw notFound(
      `Protected SQL database ${itemId} does not exist; sync the customer's inventory and try again.`,
    );
  const customer = await deps.db
    .selectFrom('customers')
    .selectAll()
    .where('id', '=', item.customer_id)
    .executeTakeFirstOrThrow();

  const restorePointId = randomUUID();
  const log = deps.log.child({ itemId, restorePointId, database: item.name, trigger });
  const resource = `sql/${customer.id}/${item.name}`;
  const details = { customerId: customer.id, itemId, database: item.name, restorePointId, trigger };
  const started = Date.now();
  await appendAudit(deps.db, {
    actor: serviceActor,
    channel: 'engine',
    action: 'backup.start',
    resource,
    outcome: 'success',
    details,
  });
  log.info('backup_started');

  try {
    // Held until the restore point row exists, so a prune cannot delete blocks it deduplicates against.
    const lease = await backupLease(deps.db);
    const restorePoint = await runSqlBackup(
      deps,
      log,
      customer,
      item,
      restorePointId,
      options,
    ).finally(() => lease.release());
    const seconds = (Date.now() - started) / 1000;
    const sizes = {
      sizeBytes: Number(restorePoint.size_bytes),
      storedBytes: Number(restorePoint.stored_bytes),
    };
    await appendAudit(deps.db, {
      actor: serviceActor,
      channel: 'engine',
      action: 'backup.finish',
      resource,
      outcome: 'success',
      details: { ...details, ...sizes, seconds },
    });
    log.info({ seconds, ...sizes }, 'backup_finished');
    return restorePoint;
  } catch (error) {
    const failure = failureOf(error);
    await appendAudit(deps.db, {
      actor: serviceActor,
      channel: 'engine',
      action: 'backup.fail',
      resource,
      outcome: 'failed',
      details: { ...details, kind: failure.kind, message: failure.message },
    });
    log.error({ err: error }, 'backup_failed');
    await deps.notices
      ?.backupFailed?.({
        customerId: customer.id,
        customerName: customer.name,
        itemId,
        itemName: item.name,
        trigger,
        policyName: options.policyName,
        restorePointId,
        ...failure,
        failedAt: new Date(),
      })
      .catch((err) => log.warn({ err }, 'backup_failure_notice_failed'));
    throw error;
  }
}

async function runSqlBackup(
  deps: SqlBackupDeps,
  log: Logger,
  customer: Customer,
  item: ProtectedItem,
  restorePointId: string,
  options: BackupOptions,
): Promise<RestorePoint> {
  const id = parseSqlDatabaseId(item.resource_id);
  const login = deps.logins(id.serverId);
  if (!login)
    throw badInput(
      `No SQL login is configured for server ${id.server}, so database ${item.name} cannot be exported. Add the server to ACBA_SQL_LOGINS_FILE and run the backup again.`,
    );
  const sql = deps.sql(customer.subscription_id);

  let rawDatabase: unknown;
  const database = await sql.databases.get(id.resourceGroup, id.server, id.database, {
    onResponse: (response) => {
      if (response.bodyAsText) rawDatabase = JSON.parse(response.bodyAsText);
    },
  });
  const createdAt = new Date();

  const writer = deps.repository.newWriter();
  const bacpacName = `${id.database}.bacpac`;
  const stored = await withExport(deps, log, id, database.location, login, restorePointId, (blob) =>
    storeBlob(blob, bacpacName, writer),
  );
  await writer.flush();

  const { storedBytes, ...file } = stored;
  const manifestPath = await writeManifest(deps.repository, {
    version: 2,
    kind: 'sql_database',
    restorePointId,
    customerId: customer.id,
    itemId: item.id,
    databaseName: item.name,
    createdAt: createdAt.toISOString(),
    blockSize: BLOCK_SIZE,
    database: rawDatabase ?? database,
    bacpac: file,
  });

  const bacpac: RestorePointBacpac = {
    name: file.name,
    sizeBytes: file.sizeBytes,
    storedBytes,
    sha256: file.sha256,
  };
  const expiresAt =
    options.expiresAt ?? new Date(createdAt.getTime() + DEFAULT_RETENTION_DAYS * 24 * 3600 * 1000);
  return deps.db
    .insertInto('restore_points')
    .values({
      id: restorePointId,
      customer_id: customer.id,
      item_id: item.id,
      created_at: createdAt,
      expires_at: expiresAt,
      manifest_path: manifestPath,
      disks: JSON.stringify([]),
      bacpac: JSON.stringify(bacpac),
      size_bytes: bacpac.sizeBytes,
      stored_bytes: bacpac.storedBytes,
      policy_name: options.policyName ?? null,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

/**
 * Copies the database, exports the copy to a staging blob and hands the blob
 * to `read`; then deletes the staging blob and the copy, also on failure.
 */
async function withExport<T>(
  deps: SqlBackupDeps,
  log: Logger,
  id: SqlDatabaseId,
  location: string,
  login: SqlLogin,
  restorePointId: string,
  read: (blob: Awaited<ReturnType<SqlStaging['blob']>>) => Promise<T>,
): Promise<T> {
  const sql = deps.sql(id.subscriptionId);
  const lro = { updateIntervalInMs: deps.pollIntervalMs };
  const copyName = `acba-${restorePointId}`;
  const blob = await deps.staging.blob(`${id.subscriptionId}/${id.server}/${copyName}.bacpac`);
  try {
    await sql.databases.beginCreateOrUpdateAndWait(
      id.resourceGroup,
      id.server,
      copyName,
      {
        location,
        createMode: 'Copy',
        sourceDatabaseId: `${id.serverId}/databases/${id.database}`,
        tags: { 'acba-restore-point': restorePointId },
      },
      lro,
    );
    log.info({ copy: copyName }, 'sql_copy_created');

    const access = await deps.staging.access(blob, 'write', EXPORT_ACCESS_MINUTES);
    await sql.databases.beginExportAndWait(
      id.resourceGroup,
      id.server,
      copyName,
      {
        ...access,
        administratorLogin: login.administratorLogin,
        administratorLoginPassword: login.administratorLoginPassword,
        authenticationType: login.authenticationType ?? 'Sql',
      },
      lro,
    );
    log.info({ copy: copyName, blob: blob.name }, 'sql_exported');
    return await read(blob);
  } finally {
    await blob
      .deleteIfExists()
      .catch((err) => log.warn({ err, blob: blob.name }, 'sql_staging_delete_failed'));
    // Also after a failed copy: a copy Azure created before failing is not left behind.
    await sql.databases
      .beginDeleteAndWait(id.resourceGroup, id.server, copyName, lro)
      .catch((err) => log.warn({ err, copy: copyName }, 'sql_copy_delete_failed'));
  }
}
