/**
 * Look-ups the workflow needs before it writes anything: whose customer an
 * actor belongs to, their role, and the VM and restore point they mean. Each
 * miss throws an error that names what was asked and what exists.
 */
import type { Db } from '../core/db/database.ts';
import type { Customer, ProtectedItem, RestorePoint } from '../core/db/schema.ts';
import { clip, QUOTE_LENGTH } from '../core/clip.ts';
import { forbidden, notFound } from '../core/errors.ts';
import { findItemByName, findRestorePoint, getRestorePoint } from '../engine/catalog.ts';
import type { Actor } from './approvals.ts';
import { formatUtc, plausibleId } from './rules.ts';

/** The customer whose Entra tenant this is. */
export async function findCustomer(db: Db, tenantId: string): Promise<Customer | undefined> {
  return db
    .selectFrom('customers')
    .selectAll()
    .where('tenant_id', '=', tenantId)
    .executeTakeFirst();
}

/** The actor's customer; forbidden when their tenant is not a customer. */
export async function customerOf(db: Db, actor: Actor): Promise<Customer> {
  const customer = await findCustomer(db, actor.tenantId);
  if (!customer) {
    throw forbidden(
      `Your organization (tenant ${actor.tenantId}) is not a customer of this service. Ask your service provider to add it before asking for restores.`,
      { tenantId: actor.tenantId },
    );
  }
  return customer;
}

/** Forbidden unless the actor holds the requester role for the customer's tenant. */
export async function assertRequester(db: Db, actor: Actor, customer: Customer): Promise<void> {
  const principal = await db
    .selectFrom('principals')
    .select('object_id')
    .where('tenant_id', '=', customer.tenant_id)
    .where('object_id', '=', actor.objectId)
    .where('role', '=', 'requester')
    .executeTakeFirst();
  if (!principal) {
    throw forbidden(
      `You (${actor.name}) do not hold the requester role for ${customer.name}, so you cannot ask for restores. Ask your administrator or the provider to grant it.`,
    );
  }
}

/** The customer's protected VM by name; not_found lists the names there are. */
export async function resolveItem(
  db: Db,
  customer: Customer,
  vmName: string,
): Promise<ProtectedItem> {
  const name = vmName.trim();
  const item = plausibleId(name) ? await findItemByName(db, customer.id, name) : undefined;
  if (item) return item;

  const names = await db
    .selectFrom('protected_items')
    .select('name')
    .where('customer_id', '=', customer.id)
    .orderBy('name')
    .execute();
  const known =
    names.length === 0
      ? `${customer.name} has no protected VMs yet.`
      : `Protected VMs of ${customer.name}: ${names.map((n) => n.name).join(', ')}.`;
  const asked = clip(name, QUOTE_LENGTH);
  throw notFound(`There is no protected VM named "${asked}". ${known}`, { vmName: asked });
}

/**
 * The exact restore point when an id is given, else the newest at or before `at`;
 * not_found names the VM, the time and the oldest point there is.
 */
export async function resolveRestorePoint(
  db: Db,
  item: ProtectedItem,
  at?: Date,
  restorePointId?: string,
): Promise<RestorePoint> {
  if (restorePointId) {
    const point = plausibleId(restorePointId)
      ? await getRestorePoint(db, restorePointId)
      : undefined;
    if (!point || point.item_id !== item.id) {
      throw notFound(
        `Restore point ${clip(restorePointId, QUOTE_LENGTH)} of ${item.name} does not exist (it may have expired). Ask again to see the current restore points.`,
      );
    }
    return point;
  }

  const point = await findRestorePoint(db, item.id, at);
  if (point) return point;

  const oldest = await db
    .selectFrom('restore_points')
    .select('created_at')
    .where('item_id', '=', item.id)
    .orderBy('created_at', 'asc')
    .limit(1)
    .executeTakeFirst();
  if (!oldest)
    throw notFound(
      `${item.name} has no restore points yet. Its first backup has not completed; ask again later.`,
      { vmName: item.name },
    );
  throw notFound(
    `${item.name} has no restore point at or before ${formatUtc(at!)}. The oldest available is from ${formatUtc(oldest.created_at)}; ask for a time after that.`,
    {
      vmName: item.name,
      oldest: oldest.created_at.toISOString(),
    },
  );
}
