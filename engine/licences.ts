/**
 * Licences from the provider's price list: per customer, how many instances
 * (VMs and databases) ACBA protects, how much repository storage is allocated,
 * and how many tasks may run at once. A customer without a licence row, or a
 * limit left empty, is unlimited.
 *
 * Storage is the customer's stored bytes in the repository: the sum of its
 * restore points' stored bytes (what each backup added after deduplication
 * and compression). At 90% of the allocation a backup still runs and warns;
 * at 100% it is refused. Instances: the customer's first N protected items,
 * oldest first (then by name), are protected; an item beyond them is neither
 * added by an inventory sync nor backed up.
 */
import { appendAudit, serviceActor, type AuditActor } from '../core/audit.ts';
import type { Db } from '../core/db/database.ts';
import type { Licence, ProtectedItemKind } from '../core/db/schema.ts';
import { badInput, limitReached, notFound } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { JobSession } from './job-sessions.ts';
import { itemAuditResource } from './resource-types.ts';

/** A terabyte as storage is sold: 10^12 bytes. */
export const TB = 1e12;
/** The share of the allocation from which backups warn. */
export const STORAGE_WARNING_RATIO = 0.9;

export interface LicenceLimits {
  /** Protected instances; null for no limit. */
  instances: number | null;
  /** Allocated repository storage in TB; null for no limit. */
  storageTb: number | null;
  /** Concurrent tasks across all workers; null for no limit. */
  tasks: number | null;
}

export interface LicenceView extends LicenceLimits {
  customerId: string;
  /** False when the customer has no licence row: no limits at all. */
  licensed: boolean;
  allocatedBytes: number | null;
  updatedAt?: Date;
  updatedBy?: string;
}

export async function getLicence(db: Db, customerId: string): Promise<Licence | undefined> {
  return db
    .selectFrom('licences')
    .selectAll()
    .where('customer_id', '=', customerId)
    .executeTakeFirst();
}

/** The customer's licence in operators' units; a customer without one is unlimited. */
export async function licenceView(db: Db, customerId: string): Promise<LicenceView> {
  const row = await getLicence(db, customerId);
  const allocatedBytes = row?.allocated_bytes == null ? null : Number(row.allocated_bytes);
  return {
    customerId,
    licensed: row !== undefined,
    instances: row?.max_instances ?? null,
    storageTb: allocatedBytes === null ? null : allocatedBytes / TB,
    tasks: row?.max_tasks ?? null,
    allocatedBytes,
    updatedAt: row?.updated_at,
    updatedBy: row?.updated_by,
  };
}

/**
 * Sets the limits given (undefined keeps the current value, null removes the
 * limit) and records the change in the audit trail.
 */
export async function setLicence(
  db: Db,
  customerId: string,
  limits: Partial<LicenceLimits>,
  actor: AuditActor = serviceActor,
): Promise<LicenceView> {
  const customer = await db
    .selectFrom('customers')
    .select('id')
    .where('id', '=', customerId)
    .executeTakeFirst();
  if (!customer)
    throw notFound(
      `Customer ${customerId} does not exist; use the customer's id as the portal lists it.`,
    );
  checkLimits(limits);

  const current = await licenceView(db, customerId);
  const next = {
    max_instances: limits.instances === undefined ? current.instances : limits.instances,
    allocated_bytes:
      limits.storageTb === undefined
        ? current.allocatedBytes
        : limits.storageTb === null
          ? null
          : Math.round(limits.storageTb * TB),
    max_tasks: limits.tasks === undefined ? current.tasks : limits.tasks,
    updated_at: new Date(),
    updated_by: actor.name,
  };
  await db
    .insertInto('licences')
    .values({ customer_id: customerId, ...next })
    .onConflict((oc) => oc.column('customer_id').doUpdateSet(next))
    .execute();

  const view = await licenceView(db, customerId);
  await appendAudit(db, {
    actor,
    channel: 'cli',
    action: 'licence.set',
    resource: `licence/${customerId}`,
    outcome: 'success',
    details: {
      customerId,
      instances: view.instances,
      storageTb: view.storageTb,
      tasks: view.tasks,
      previous: {
        instances: current.instances,
        storageTb: current.storageTb,
        tasks: current.tasks,
      },
    },
  });
  return view;
}

function checkLimits(limits: Partial<LicenceLimits>): void {
  const whole = (name: string, value: number | null | undefined, min: number) => {
    if (value == null) return;
    if (!Number.isInteger(value) || value < min)
      throw badInput(`--${name} must be a whole number of at least ${min}; got ${value}.`);
  };
  whole('instances', limits.instances, 0);
  whole('tasks', limits.tasks, 1);
  const tb = limits.storageTb;
  if (tb != null && (!Number.isFinite(tb) || tb < 0))
    throw badInput(`--storage-tb must be a number of terabytes of at least 0; got ${tb}.`);
}

/** The customer's stored bytes in the repository (sum of its restore points' stored bytes). */
export async function storedBytesOf(db: Db, customerId: string): Promise<number> {
  const row = await db
    .selectFrom('restore_points')
    .select((eb) => eb.fn.sum<string | null>('stored_bytes').as('stored'))
    .where('customer_id', '=', customerId)
    .executeTakeFirstOrThrow();
  return Number(row.stored ?? 0);
}

export interface StorageCheck {
  usedBytes: number;
  allocatedBytes: number | null;
  /** Set at or above 90% of the allocation: what to tell the operators. */
  warning?: string;
}

/**
 * Compares the customer's stored bytes with its allocation before a backup:
 * a warning from 90%, a limit_reached refusal from 100%.
 */
export async function checkStorage(
  db: Db,
  customerId: string,
  customerName: string,
): Promise<StorageCheck> {
  const licence = await licenceView(db, customerId);
  const usedBytes = await storedBytesOf(db, customerId);
  const allocated = licence.allocatedBytes;
  if (allocated === null) return { usedBytes, allocatedBytes: null };

  const used = `${tb(usedBytes)} of its ${tb(allocated)} allocated TB`;
  if (usedBytes >= allocated)
    throw limitReached(
      `Customer ${customerName} has used ${used}; raise its licence with acba licence set ${customerId} --storage-tb N or free space with acba repository prune.`,
      { customerId, usedBytes, allocatedBytes: allocated },
    );
  if (usedBytes >= STORAGE_WARNING_RATIO * allocated)
    return {
      usedBytes,
      allocatedBytes: allocated,
      warning: `Customer ${customerName} has used ${used} (${Math.floor((usedBytes / allocated) * 100)}%); backups stop at 100%: raise its licence or free space with acba repository prune.`,
    };
  return { usedBytes, allocatedBytes: allocated };
}

function tb(bytes: number): string {
  const value = bytes / TB;
  return value >= 10 ? value.toFixed(1) : String(Number(value.toPrecision(3)));
}

/**
 * The items the licence lets ACBA protect: the first `max_instances` of the
 * customer's items, oldest first, then by name. Undefined when unlimited.
 */
export async function licensedItemIds(
  db: Db,
  customerId: string,
): Promise<Set<string> | undefined> {
  const licence = await getLicence(db, customerId);
  if (licence?.max_instances == null) return undefined;
  const rows = await db
    .selectFrom('protected_items')
    .select('id')
    .where('customer_id', '=', customerId)
    .orderBy('created_at')
    .orderBy('name')
    .limit(licence.max_instances)
    .execute();
  return new Set(rows.map((r) => r.id));
}

/** Refuses (limit_reached) a backup of an item beyond the customer's licensed instances. */
export async function checkInstance(
  db: Db,
  customerId: string,
  customerName: string,
  item: { id: string; name: string },
): Promise<void> {
  const allowed = await licensedItemIds(db, customerId);
  if (!allowed || allowed.has(item.id)) return;
  throw limitReached(
    `${item.name} is beyond the ${allowed.size} protected instance(s) licensed for customer ${customerName}, so it is not backed up; raise the licence with acba licence set ${customerId} --instances N.`,
    { customerId, itemId: item.id, instances: allowed.size },
  );
}

/** Records in the audit trail that a VM or database was left unprotected because of the licence. */
export async function auditInstanceSkipped(
  db: Db,
  customerId: string,
  item: { kind: ProtectedItemKind; name: string; resourceId: string },
  instances: number,
): Promise<void> {
  const { kind, name, resourceId } = item;
  await appendAudit(db, {
    actor: serviceActor,
    channel: 'engine',
    action: 'licence.instance_skip',
    resource: itemAuditResource(kind, customerId, name),
    outcome: 'refused',
    details: {
      customerId,
      resourceId,
      instances,
      reason: `the licence covers ${instances} protected instance(s)`,
    },
  });
}

/**
 * The licence's say before a backup of `item`: refused (limit_reached) beyond
 * the licensed instances or at a full allocation; a warning on the session,
 * the log and the audit trail from 90% of the allocation.
 */
export async function admitBackup(
  db: Db,
  log: Logger,
  session: Pick<JobSession, 'warn'>,
  customer: { id: string; name: string },
  item: { id: string; name: string },
): Promise<void> {
  await checkInstance(db, customer.id, customer.name, item);
  const storage = await checkStorage(db, customer.id, customer.name);
  if (!storage.warning) return;

  await session.warn(storage.warning);
  log.warn(
    { usedBytes: storage.usedBytes, allocatedBytes: storage.allocatedBytes },
    'licence_storage_near_allocation',
  );
  await appendAudit(db, {
    actor: serviceActor,
    channel: 'engine',
    action: 'licence.storage_warning',
    resource: `licence/${customer.id}`,
    outcome: 'success',
    details: {
      customerId: customer.id,
      itemId: item.id,
      usedBytes: storage.usedBytes,
      allocatedBytes: storage.allocatedBytes,
      message: storage.warning,
    },
  });
}

/** Decides, during an inventory sync, which VMs and databases may become protected items. */
export interface InstanceAllowance {
  max: number;
  /** True for an item already licensed, or a new one while there is room (which it then takes). */
  admits(itemId: string): boolean;
}

/** The customer's instance allowance, or undefined when the licence sets no limit. */
export async function instanceAllowance(
  db: Db,
  customerId: string,
): Promise<InstanceAllowance | undefined> {
  const licensed = await licensedItemIds(db, customerId);
  const licence = await getLicence(db, customerId);
  if (!licensed || licence?.max_instances == null) return undefined;
  const max = licence.max_instances;
  return {
    max,
    admits: (itemId) => {
      if (licensed.has(itemId)) return true;
      if (licensed.size >= max) return false;
      licensed.add(itemId);
      return true;
    },
  };
}
