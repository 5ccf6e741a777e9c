/**
 * How the sandbox's SQL resources look on the wire: logical servers,
 * databases and import/export results in the shape of Azure's published REST
 * examples (ServerGet, GetVCoreDatabase, ExportDatabase), with the live parts
 * (a database's status while it is being created) from the current state.
 */
import type { SqlDatabaseRecord, SqlServerRecord } from './sql-resources.ts';

export function sqlServerJson(server: SqlServerRecord): Record<string, unknown> {
  return {
    tags: {},
    id: server.id,
    name: server.name,
    type: 'Microsoft.Sql/servers',
    location: server.location,
    kind: 'v12.0',
    properties: {
      fullyQualifiedDomainName: `${server.name}.database.windows.net`,
      administratorLogin: server.administratorLogin,
      version: '12.0',
      state: 'Ready',
      workspaceFeature: 'Connected',
      publicNetworkAccess: 'Enabled',
      restrictOutboundNetworkAccess: 'Disabled',
      privateEndpointConnections: [],
    },
  };
}

export function sqlDatabaseJson(database: SqlDatabaseRecord): Record<string, unknown> {
  const sku = database.system
    ? { name: 'System0', tier: 'System', capacity: 0 }
    : { name: 'GP_Gen5', tier: 'GeneralPurpose', family: 'Gen5', capacity: 2 };
  return {
    sku,
    kind: database.system ? 'v12.0,system' : 'v12.0,user,vcore',
    properties: {
      collation: 'SQL_Latin1_General_CP1_CI_AS',
      maxSizeBytes: database.system ? 32212254720 : 34359738368,
      status: database.status,
      databaseId: database.databaseId,
      creationDate: database.creationDate,
      currentServiceObjectiveName: database.system ? 'System0' : 'GP_Gen5_2',
      requestedServiceObjectiveName: database.system ? 'System0' : 'GP_Gen5_2',
      defaultSecondaryLocation: database.location === 'northeurope' ? 'westeurope' : 'northeurope',
      catalogCollation: 'SQL_Latin1_General_CP1_CI_AS',
      ...(database.system ? {} : { licenseType: 'LicenseIncluded' }),
      maxLogSizeBytes: database.system ? undefined : 104857600,
      isInfraEncryptionEnabled: false,
      zoneRedundant: false,
      readScale: 'Disabled',
      ...(database.system ? {} : { earliestRestoreDate: database.creationDate }),
      maintenanceConfigurationId: `/subscriptions/${database.server.subscriptionId}/providers/Microsoft.Maintenance/publicMaintenanceConfigurations/SQL_Default`,
      currentSku: sku,
      currentBackupStorageRedundancy: 'Geo',
      requestedBackupStorageRedundancy: 'Geo',
      isLedgerOn: false,
      ...(database.sourceDatabaseId ? { sourceDatabaseId: database.sourceDatabaseId } : {}),
    },
    location: database.location,
    tags: database.tags,
    id: database.id,
    name: database.name,
    type: 'Microsoft.Sql/servers/databases',
  };
}

/** The final result of an export or import, as its Location URL serves it. */
export function importExportResultJson(input: {
  operationId: string;
  requestType: 'Export' | 'Import';
  database: SqlDatabaseRecord;
  blobUri: string;
  queuedTime: Date;
}): Record<string, unknown> {
  return {
    properties: {
      requestId: input.operationId,
      requestType: input.requestType,
      queuedTime: input.queuedTime.toISOString(),
      lastModifiedTime: new Date().toISOString(),
      blobUri: input.blobUri,
      serverName: `${input.database.server.name}.database.windows.net`,
      databaseName: input.database.name,
      status: 'Completed',
    },
    id: `${input.database.id}/importExportOperationResults/${input.operationId}`,
    name: input.operationId,
    type: 'Microsoft.Sql/servers/databases/importExportOperationResults',
  };
}
