/**
 * SQL inventory: the user databases of every logical server in a customer's
 * subscription become protected items of kind `sql_database`, named
 * `server/database` (unique per customer, since server names are unique in
 * Azure), with their tags for selection by policies. System databases
 * (`master`) are skipped: Azure SQL cannot copy or export them.
 *
 * Item ids derive from the resource id, as for VMs, so syncing again (or from
 * another worker) finds the same item.
 */
import { createHash } from 'node:crypto';
import type { SqlManagementClient } from '@azure/arm-sql';
import type { Db } from '../core/db/database.ts';
import type { Customer, ProtectedItem } from '../core/db/schema.ts';
import type { Logger } from '../core/log.ts';
import { parseResourceId } from './resource-id.ts';

/** The stable protected-item id of an Azure SQL database (ARM ids compare case-insensitively). */
export function sqlItemIdFor(resourceId: string): string {
  return `sqldb-${createHash('sha256').update(resourceId.toLowerCase()).digest('hex').slice(0, 24)}`;
}

/** Lists the subscription's SQL databases and upserts one protected item each; returns those seen now. */
export async function syncSqlInventory(
  db: Db,
  log: Logger,
  sql: SqlManagementClient,
  customer: Customer,
): Promise<ProtectedItem[]> {
  const items: ProtectedItem[] = [];
  for await (const server of sql.servers.list()) {
    if (!server.id || !server.name) continue;
    try {
      items.push(...(await syncServer(db, sql, customer, server.id, server.name)));
    } catch (err) {
      // A server that cannot be listed now (being deleted, no access) must not hide the others.
      log.warn({ err, customerId: customer.id, serverId: server.id }, 'sql_server_skipped');
    }
  }
  log.info({ customerId: customer.id, databases: items.length }, 'sql_inventory_synced');
  return items;
}

async function syncServer(
  db: Db,
  sql: SqlManagementClient,
  customer: Customer,
  serverId: string,
  serverName: string,
): Promise<ProtectedItem[]> {
  const items: ProtectedItem[] = [];
  const { resourceGroup } = parseResourceId(serverId);
  for await (const database of sql.databases.listByServer(resourceGroup, serverName)) {
    if (!database.id || !database.name || isSystemDatabase(database)) continue;
    const name = `${serverName}/${database.name}`;
    const tags = JSON.stringify(database.tags ?? {});
    const item = await db
      .insertInto('protected_items')
      .values({
        id: sqlItemIdFor(database.id),
        customer_id: customer.id,
        kind: 'sql_database',
        name,
        resource_id: database.id,
        tags,
      })
      .onConflict((oc) => oc.column('id').doUpdateSet({ name, resource_id: database.id!, tags }))
      .returningAll()
      .executeTakeFirstOrThrow();
    items.push(item);
  }
  return items;
}

function isSystemDatabase(database: { name?: string; kind?: string }): boolean {
  return database.name?.toLowerCase() === 'master' || (database.kind ?? '').includes('system');
}
