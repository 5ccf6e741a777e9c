/**
 * Export and import as the sandbox's Azure SQL runs them: an export writes the
 * database's BACPAC (bacpac.ts) into the blob its storageUri names, with the
 * given SAS or account key, and an import reads one and creates the database
 * with its tables. A wrong SQL login or storage key fails the operation, as
 * in Azure. Tests can make exports fail halfway (after part of the BACPAC is
 * written) through the sandbox handle.
 *
 * The work happens when the request arrives; the long-running operation that
 * the caller polls then reports it (see long-running.ts).
 */
import { createHash, randomUUID } from 'node:crypto';
import {
  AnonymousCredential,
  BlockBlobClient,
  StorageSharedKeyCredential,
  type StorageSharedKeyCredential as SharedKey,
} from '@azure/storage-blob';
import { ArmError } from './arm-compute.ts';
import type { ArmSqlOptions } from './arm-sql.ts';
import { readBacpac, writeBacpac } from './bacpac.ts';
import type { OperationHeaders, OperationPaths } from './long-running.ts';
import { importExportResultJson } from './sql-json.ts';
import { operationScope, type SqlDatabaseRecord, type SqlServerRecord } from './sql-resources.ts';

export const SQL_API_VERSION = '2023-08-01';
export const importExportOperation: OperationPaths = {
  provider: 'Microsoft.Sql',
  status: 'importExportAzureAsyncOperation',
  result: 'importExportOperationResults',
  apiVersion: SQL_API_VERSION,
};

export interface ImportExportBody {
  databaseName?: string;
  storageKeyType?: string;
  storageKey?: string;
  storageUri?: string;
  administratorLogin?: string;
  administratorLoginPassword?: string;
}

/** Runs an export of `database`; returns the headers of the 202 that announces its operation. */
export async function exportDatabase(
  options: ArmSqlOptions,
  database: SqlDatabaseRecord,
  body: ImportExportBody,
): Promise<OperationHeaders> {
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

  return options.operations.start({
    ...operationScope(database.server),
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
  });
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

/** Runs an import into a new database on `server`; returns the headers of the 202 that announces its operation. */
export async function importDatabase(
  options: ArmSqlOptions,
  server: SqlServerRecord,
  body: ImportExportBody,
): Promise<OperationHeaders> {
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

  return options.operations.start({
    ...operationScope(server),
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
  });
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
