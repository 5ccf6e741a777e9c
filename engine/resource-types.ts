/**
 * What ACBA backs up, told by the type in an Azure resource id: virtual
 * machines (`Microsoft.Compute/virtualMachines`) and Azure SQL databases
 * (`Microsoft.Sql/servers/databases`).
 *
 * Databases of Azure Arc-enabled SQL Server
 * (`Microsoft.AzureArcData/sqlServerInstances/databases`) look alike in the
 * portal but run on the customer's own SQL Server, outside Azure SQL: there is
 * no database copy or BACPAC export to build on. They are refused by name
 * wherever they can reach ACBA, so nobody believes them protected.
 */
import type { ProtectedItemKind } from '../core/db/schema.ts';
import { badInput, type AcbaError } from '../core/errors.ts';
import { parseResourceId } from './resource-id.ts';

const VM_TYPE = 'microsoft.compute/virtualmachines';
const SQL_DATABASE_TYPE = 'microsoft.sql/servers/databases';
const ARC_SQL_DATABASE_TYPE = 'microsoft.azurearcdata/sqlserverinstances/databases';

/** The resource type of an ARM id, lower-case, e.g. `microsoft.sql/servers/databases`; '' when it has none. */
export function resourceTypeOf(resourceId: string): string {
  const parts = resourceId.split('/').filter((p) => p !== '');
  const providers = parts.map((p) => p.toLowerCase()).lastIndexOf('providers');
  if (providers < 0 || !parts[providers + 1]) return '';
  const rest = parts.slice(providers + 2);
  const types = rest.filter((_, i) => i % 2 === 0);
  return [parts[providers + 1], ...types].join('/').toLowerCase();
}

export function isArcSqlDatabase(resourceId: string): boolean {
  return resourceTypeOf(resourceId) === ARC_SQL_DATABASE_TYPE;
}

/** The refusal for an Arc-enabled SQL Server database, naming it. */
export function arcDatabaseRefused(resourceId: string): AcbaError {
  const { name } = parseResourceId(resourceId);
  return badInput(
    `${name} (${resourceId}) is a database of an Azure Arc-enabled SQL Server; ACBA backs up Azure SQL Database only. Back it up with that SQL Server's own backups, or move it to Azure SQL Database and protect it there.`,
    { resourceId },
  );
}

/** The kind of backup a resource gets; throws bad_input for Arc databases and for anything else ACBA does not back up. */
export function backupKindOf(resourceId: string): ProtectedItemKind {
  const type = resourceTypeOf(resourceId);
  if (type === VM_TYPE) return 'vm';
  if (type === SQL_DATABASE_TYPE) return 'sql_database';
  if (type === ARC_SQL_DATABASE_TYPE) throw arcDatabaseRefused(resourceId);
  throw badInput(
    `${resourceId} is not a resource ACBA backs up; it protects Azure virtual machines and Azure SQL databases.`,
    { resourceId },
  );
}

/** How the audit trail and the log name each kind of protected item. */
const ITEM_NAMING: Record<ProtectedItemKind, { resource: string; label: string }> = {
  vm: { resource: 'vm', label: 'VM' },
  sql_database: { resource: 'sql', label: 'SQL database' },
};

/** A protected item as audit entries name it, e.g. `vm/contoso/web-01` or `sql/contoso/sql-weu/sales`. */
export function itemAuditResource(
  kind: ProtectedItemKind,
  customerId: string,
  name: string,
): string {
  return `${ITEM_NAMING[kind].resource}/${customerId}/${name}`;
}

/** The kind of a protected item in words, e.g. "SQL database". */
export function itemKindLabel(kind: ProtectedItemKind): string {
  return ITEM_NAMING[kind].label;
}

export interface SqlDatabaseId {
  subscriptionId: string;
  resourceGroup: string;
  server: string;
  database: string;
  /** The logical server's resource id. */
  serverId: string;
}

/** The parts of an Azure SQL database's resource id. */
export function parseSqlDatabaseId(resourceId: string): SqlDatabaseId {
  if (resourceTypeOf(resourceId) !== SQL_DATABASE_TYPE)
    throw badInput(
      `${resourceId} is not an Azure SQL database id of the form /subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.Sql/servers/<server>/databases/<database>.`,
    );
  const { subscriptionId, resourceGroup, name } = parseResourceId(resourceId);
  const parts = resourceId.split('/').filter((p) => p !== '');
  const server = parts[parts.length - 3]!;
  const serverId = `/${parts.slice(0, parts.length - 2).join('/')}`;
  return { subscriptionId, resourceGroup, server, database: name, serverId };
}
