/**
 * What the bot shows on request: backup status, one item's restore points, and
 * the person's own requests. Status and restore points are a customer's own
 * data, so they answer only people who hold a role in that customer's tenant;
 * the provider's staff are sent to the portal, which shows every customer.
 * Nothing here changes anything, so nothing here is audited.
 */
import type { Actor } from '../approvals/index.ts';
import { findCustomer, resolveItem } from '../approvals/lookup.ts';
import { listOwnRequests } from '../approvals/my-requests.ts';
import type { Customer } from '../core/db/schema.ts';
import { badInput, forbidden } from '../core/errors.ts';
import { listRestorePoints } from '../engine/catalog.ts';
import { backupStatus, type ItemStatus } from '../engine/status.ts';
import { backupStatusCard, myRequestsCard, restorePointsCard, type Card } from './cards.ts';
import type { BotDeps } from './deps.ts';

/** How many items, restore points and requests a card lists. */
const ITEMS_SHOWN = 30;
const RESTORE_POINTS_SHOWN = 20;
const REQUESTS_SHOWN = 10;

const PROVIDER_STAFF =
  "Status and restore points show one customer's own backups, so I answer them for the customer's staff only. As the provider's staff, see every customer's backups in the ACBA portal; approval cards come to the approvers' channel. my requests and cancel work for your own requests.";

/**
 * The customer whose backups the person may see: their tenant's customer, when
 * they hold a role there. Throws forbidden, with what to do, for anyone else.
 */
async function customerOfStaff(deps: BotDeps, actor: Actor): Promise<Customer> {
  const roles = await deps.db
    .selectFrom('principals')
    .select('role')
    .where('tenant_id', '=', actor.tenantId)
    .where('object_id', '=', actor.objectId)
    .execute();
  const customer = await findCustomer(deps.db, actor.tenantId);
  if (customer && roles.length > 0) return customer;
  if (customer) {
    throw forbidden(
      `You (${actor.name}) have no role at ${customer.name} in ACBA, so I cannot show its backups. Ask your administrator or the provider to grant you the requester role.`,
    );
  }
  if (roles.length > 0) throw forbidden(PROVIDER_STAFF);
  // Neither a customer's tenant nor anyone we know: the workflow's own refusal says so.
  return deps.approvals.customerOf(actor);
}

export async function statusReport(deps: BotDeps, actor: Actor, zone: string): Promise<Card> {
  const customer = await customerOfStaff(deps, actor);
  const items = await backupStatus(deps.db, customer.id);

  // A card has room for a few dozen items: failed backups first, then those never backed up.
  const rank = (i: ItemStatus) =>
    i.lastBackup?.outcome === 'failed' ? 0 : i.newestRestorePoint ? 2 : 1;
  const shown = items.length > ITEMS_SHOWN ? [...items].sort((a, b) => rank(a) - rank(b)) : items;
  return backupStatusCard(
    customer.name,
    shown.slice(0, ITEMS_SHOWN),
    zone,
    Math.max(0, items.length - ITEMS_SHOWN),
  );
}

export async function restorePointsReport(
  deps: BotDeps,
  actor: Actor,
  itemName: string | undefined,
  zone: string,
): Promise<Card> {
  const customer = await customerOfStaff(deps, actor);
  if (itemName === undefined) {
    const items = await deps.db
      .selectFrom('protected_items')
      .select('name')
      .where('customer_id', '=', customer.id)
      .orderBy('name')
      .execute();
    const names = items.map((i) => i.name).join(', ') || 'none yet';
    throw badInput(
      `Which VM? Write restore points of ${items[0]?.name ?? 'web-01'}. Protected VMs of ${customer.name}: ${names}.`,
    );
  }

  const item = await resolveItem(deps.db, customer, itemName);
  const points = await listRestorePoints(deps.db, {
    customerId: customer.id,
    itemId: item.id,
    limit: RESTORE_POINTS_SHOWN + 1,
  });
  const shown = points.slice(0, RESTORE_POINTS_SHOWN);
  return restorePointsCard(item, shown, points.length > shown.length, zone);
}

export async function myRequestsReport(
  deps: BotDeps,
  actor: Actor,
  zone: string,
  note = '',
): Promise<Card> {
  const { requests, more } = await listOwnRequests(deps.db, actor, REQUESTS_SHOWN);
  return myRequestsCard(requests, more, zone, note);
}
