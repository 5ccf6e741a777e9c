/**
 * Usage per customer and UTC day, for the provider's invoices: protected
 * instances, stored bytes, the peak of concurrent tasks and the bytes that
 * restores delivered out of the repository.
 *
 * Rows are upserted as work happens. Instances, stored bytes and tasks keep
 * the day's highest value (GREATEST), so recording the same state twice, or
 * from two workers at once, changes nothing; egress adds each delivery's bytes.
 */
import { sql } from 'kysely';
import type { Db } from '../core/db/database.ts';
import { storedBytesOf } from './licences.ts';

export interface UsageSample {
  protectedInstances?: number;
  storedBytes?: number;
  peakTasks?: number;
  /** Bytes delivered now; added to the day's total. */
  egressBytes?: number;
}

export interface UsageRow {
  customerId: string;
  /** YYYY-MM-DD (UTC). */
  day: string;
  protectedInstances: number;
  storedBytes: number;
  peakTasks: number;
  egressBytes: number;
}

/** The UTC day of an instant, as YYYY-MM-DD. */
export function utcDay(at = new Date()): string {
  return at.toISOString().slice(0, 10);
}

/** Folds one sample into the customer's row for the day. */
export async function recordUsage(
  db: Db,
  customerId: string,
  sample: UsageSample,
  at = new Date(),
): Promise<void> {
  const values = {
    customer_id: customerId,
    day: utcDay(at),
    protected_instances: sample.protectedInstances ?? 0,
    stored_bytes: sample.storedBytes ?? 0,
    peak_tasks: sample.peakTasks ?? 0,
    egress_bytes: sample.egressBytes ?? 0,
  };
  await db
    .insertInto('usage_daily')
    .values(values)
    .onConflict((oc) =>
      oc.columns(['customer_id', 'day']).doUpdateSet({
        protected_instances: sql`greatest(usage_daily.protected_instances, excluded.protected_instances)`,
        stored_bytes: sql`greatest(usage_daily.stored_bytes, excluded.stored_bytes)`,
        peak_tasks: sql`greatest(usage_daily.peak_tasks, excluded.peak_tasks)`,
        egress_bytes: sql`usage_daily.egress_bytes + excluded.egress_bytes`,
        updated_at: sql`now()`,
      }),
    )
    .execute();
}

/** Records the customer's current protected instances and stored bytes. */
export async function recordHoldings(db: Db, customerId: string): Promise<void> {
  const items = await db
    .selectFrom('protected_items')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('customer_id', '=', customerId)
    .executeTakeFirstOrThrow();
  await recordUsage(db, customerId, {
    protectedInstances: Number(items.n),
    storedBytes: await storedBytesOf(db, customerId),
  });
}

/** Usage rows, newest day first, for one customer or all; `days` back from today. */
export async function listUsage(
  db: Db,
  filter: { customerId?: string; days?: number } = {},
): Promise<UsageRow[]> {
  const since = utcDay(new Date(Date.now() - ((filter.days ?? 31) - 1) * 86_400_000));
  let query = db
    .selectFrom('usage_daily')
    .select([
      'customer_id',
      sql<string>`to_char(day, 'YYYY-MM-DD')`.as('day'),
      'protected_instances',
      'stored_bytes',
      'peak_tasks',
      'egress_bytes',
    ])
    .where('day', '>=', since)
    .orderBy('day', 'desc')
    .orderBy('customer_id');
  if (filter.customerId) query = query.where('customer_id', '=', filter.customerId);
  const rows = await query.execute();
  return rows.map((r) => ({
    customerId: r.customer_id,
    day: r.day,
    protectedInstances: r.protected_instances,
    storedBytes: Number(r.stored_bytes),
    peakTasks: r.peak_tasks,
    egressBytes: Number(r.egress_bytes),
  }));
}
