/**
 * SQL inventory: the user databases of every logical server in a customer's
 * subscription become protected items of kind `sql_database`, named
 * `server/database` (unique per customer, since server names are unique in
 * Azure), with their tags for selection by policies. System databases
 * (`master`) are skipped: Azure SQL cannot copy or export them.
 *
 * Item ids derive from the resource id, as for VMs, so syncing again (or from
 * another worker) finds the same item. Databases are protected instances like
 * VMs: with a licence that limits them, new databases are taken by name while
 * there is room, and the others are skipped, logged and audited.
 */
import { createHash } from 'node:crypto';
import type { SqlManagementClient } from '@azure/arm-sql';
import type { Db } from '../core/db/database.ts';
import type { Customer, ProtectedItem } from '../core/db/schema.ts';
import type { Logger } from '../core/log.ts';
import { auditInstanceSkipped, instanceAllowance } from './licences.ts';
import { parseResourceId } from './resource-id.ts';
import { recordHoldings } from './usage.ts';

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
  const databases: FoundDatabase[] = [];
  for await (const server of sql.servers.list()) {
    if (!server.id || !server.name) continue;
    try {
      databases.push(...(await listServer(sql, server.id, server.name)));
    } catch (err) {
      // A server that cannot be listed now (being deleted, no access) must not hide the others.
      log.warn({ err, customerId: customer.id, serverId: server.id }, 'sql_server_skipped');
    }
  }
  databases.sort((a, b) => a.name.localeCompare(b.name));

  const items: ProtectedItem[] = [];
  const allowance = await instanceAllowance(db, customer.id);
  for (const database of databases) {
    if (allowance && !allowance.admits(sqlItemIdFor(database.resourceId))) {
      log.warn(
        { customerId: customer.id, database: database.name, instances: allowance.max },
        'inventory_item_over_licence',
      );
      await auditInstanceSkipped(
        db,
        customer.id,
        { kind: 'sql_database', name: database.name, resourceId: database.resourceId },
        allowance.max,
      );
      continue;
    }
    items.push(await upsertDatabase(db, customer, database));
  }
  await recordHoldings(db, customer.id);
  log.info({ customerId: customer.id, databases: items.length }, 'sql_inventory_synced');
  return items;
}

interface FoundDatabase {
  /** `server/database`. */
  name: string;
  resourceId: string;
  tags: Record<string, string>;
}

async function listServer(
  sql: SqlManagementClient,
  serverId: string,
  serverName: string,
): Promise<FoundDatabase[]> {
  const found: FoundDatabase[] = [];
  const { resourceGroup } = parseResourceId(serverId);
  for await (const database of sql.databases.listByServer(resourceGroup, serverName)) {
    if (!database.id || !database.name || isSystemDatabase(database)) continue;
    found.push({
      name: `${serverName}/${database.name}`,
      resourceId: database.id,
      tags: database.tags ?? {},
    });
  }
  return found;
}

async function upsertDatabase(
  db: Db,
  customer: Customer,
  database: FoundDatabase,
): Promise<ProtectedItem> {
  const { name, resourceId } = database;
  const tags = JSON.stringify(database.tags);
  return db
    .insertInto('protected_items')
    .values({
      id: sqlItemIdFor(resourceId),
      customer_id: customer.id,
      kind: 'sql_database',
      name,
      resource_id: resourceId,
      tags,
    })
    .onConflict((oc) => oc.column('id').doUpdateSet({ name, resource_id: resourceId, tags }))
    .returningAll()
    .executeTakeFirstOrThrow();
}

function isSystemDatabase(database: { name?: string; kind?: string }): boolean {
  return database.name?.toLowerCase() === 'master' || (database.kind ?? '').includes('system');
}
