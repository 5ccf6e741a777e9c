/**
 * Read-only queries over what the engine has protected: items and their
 * restore points. The bot and the portal use these to find what a person asks for.
 */
import type { Db } from '../core/db/database.ts';
import type { ProtectedItem, RestorePoint } from '../core/db/schema.ts';
import { badInput, notFound } from '../core/errors.ts';

/** The customer's protected item with this name (VM names compare case-insensitively, as Azure does). */
export async function findItemByName(
  db: Db,
  customerId: string,
  name: string,
): Promise<ProtectedItem | undefined> {
  return db
    .selectFrom('protected_items')
    .selectAll()
    .where('customer_id', '=', customerId)
    .where((eb) => eb(eb.fn('lower', ['name']), '=', name.toLowerCase()))
    .executeTakeFirst();
}

/**
 * A protected item by id or by name (compared case-insensitively), optionally
 * of one customer; a name several customers use must be given as an id.
 */
export async function findItemByRef(
  db: Db,
  itemRef: string,
  customerId?: string,
): Promise<ProtectedItem> {
  let query = db
    .selectFrom('protected_items')
    .selectAll()
    .where((eb) =>
      eb.or([eb('id', '=', itemRef), eb(eb.fn('lower', ['name']), '=', itemRef.toLowerCase())]),
    );
  if (customerId) query = query.where('customer_id', '=', customerId);
  const items = await query.execute();
  const byId = items.find((i) => i.id === itemRef);
  if (byId) return byId;
  if (items.length === 0)
    throw notFound(
      `No protected VM or database is called ${itemRef}${customerId ? ` for customer ${customerId}` : ''}; sync the customer's inventory, or use the item id as the portal lists it.`,
    );
  if (items.length > 1)
    throw badInput(
      `Several customers have an item called ${itemRef} (items ${items.map((i) => i.id).join(', ')}); give the item id instead.`,
    );
  return items[0]!;
}

/**
 * The newest backup of the item taken at or before `at` (the newest of all when
 * `at` is unset). Snapshot restore points stay in Azure and hold no files to
 * recover, so they are never picked.
 */
export async function findRestorePoint(
  db: Db,
  itemId: string,
  at?: Date,
): Promise<RestorePoint | undefined> {
  let query = db
    .selectFrom('restore_points')
    .selectAll()
    .where('item_id', '=', itemId)
    .where('type', '=', 'backup');
  if (at) query = query.where('created_at', '<=', at);
  return query.orderBy('created_at', 'desc').limit(1).executeTakeFirst();
}

export async function getRestorePoint(db: Db, id: string): Promise<RestorePoint | undefined> {
  return db.selectFrom('restore_points').selectAll().where('id', '=', id).executeTakeFirst();
}

export interface RestorePointListing extends RestorePoint {
  item_name: string;
}

/** Restore points, newest first, optionally of one customer or one item. */
export async function listRestorePoints(
  db: Db,
  filter: { customerId?: string; itemId?: string; limit?: number } = {},
): Promise<RestorePointListing[]> {
  let query = db
    .selectFrom('restore_points')
    .innerJoin('protected_items', 'protected_items.id', 'restore_points.item_id')
    .selectAll('restore_points')
    .select('protected_items.name as item_name');
  if (filter.customerId) query = query.where('restore_points.customer_id', '=', filter.customerId);
  if (filter.itemId) query = query.where('restore_points.item_id', '=', filter.itemId);
  return query
    .orderBy('restore_points.created_at', 'desc')
    .limit(filter.limit ?? 200)
    .execute();
}
