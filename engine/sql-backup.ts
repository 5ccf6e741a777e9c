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
 * The copy and the staging blob are deleted whatever happens. The run is a
 * job session (./backup-run.ts) in which steps 1 to 3 are one task of kind
 * `database`, holding one of the customer's licensed slots throughout. Export
 * and import need a SQL login of the database's server (SqlLogins), which
 * never reaches a log or the audit trail.
 */
import type { SqlManagementClient } from '@azure/arm-sql';
import type { RestorePoint, RestorePointBacpac } from '../core/db/schema.ts';
import { badInput } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import {
  runBackupSession,
  type BackupOptions,
  type BackupRun,
  type BackupRunDeps,
} from './backup-run.ts';
import { storeBlob } from './bacpac-blocks.ts';
import { writeManifest } from './repository/manifest.ts';
import { BLOCK_SIZE, type Repository } from './repository/repository.ts';
import { parseSqlDatabaseId, type SqlDatabaseId } from './resource-types.ts';
import type { SqlLogin, SqlLogins } from './sql-logins.ts';
import type { SqlStaging } from './sql-staging.ts';

/** How long the export's SAS lasts; an export must finish within it. */
const EXPORT_ACCESS_MINUTES = 12 * 60;
const DEFAULT_RETENTION_DAYS = 365;

export interface SqlBackupDeps extends BackupRunDeps {
  repository: Repository;
  sql(subscriptionId: string): SqlManagementClient;
  staging: SqlStaging;
  logins: SqlLogins;
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
  return runBackupSession(deps, 'sql_database', itemId, trigger, options, (run) =>
    runSqlBackup(deps, run, options),
  );
}

async function runSqlBackup(
  deps: SqlBackupDeps,
  { customer, item, restorePointId, session, log }: BackupRun,
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

  // A try that fails for a passing reason starts again from a new copy.
  const writer = deps.repository.newWriter();
  const bacpacName = `${id.database}.bacpac`;
  let attempt = 0;
  const task = await session.runTask({ kind: 'database', name: id.database }, async (handle) => {
    attempt += 1;
    const copy = { restorePointId, attempt };
    const stored = await withExport(deps, log, id, database.location, login, copy, (blob) =>
      storeBlob(blob, bacpacName, writer, (bytes) => handle.progress(bytes)),
    );
    return { stored, readBytes: stored.sizeBytes, storedBytes: stored.storedBytes };
  });
  await writer.flush();

  const { storedBytes, ...file } = task.stored;
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
 * Every try has its own copy, so a copy a failed try could not delete is never
 * taken for this one.
 */
async function withExport<T>(
  deps: SqlBackupDeps,
  log: Logger,
  id: SqlDatabaseId,
  location: string,
  login: SqlLogin,
  copy: { restorePointId: string; attempt: number },
  read: (blob: Awaited<ReturnType<SqlStaging['blob']>>) => Promise<T>,
): Promise<T> {
  const sql = deps.sql(id.subscriptionId);
  const lro = { updateIntervalInMs: deps.pollIntervalMs };
  const copyName = `acba-${copy.restorePointId}${copy.attempt > 1 ? `-${copy.attempt}` : ''}`;
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
        tags: { 'acba-restore-point': copy.restorePointId },
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
