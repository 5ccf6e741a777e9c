/**
 * The monthly usage report a provider invoices from, per customer, read from
 * the daily usage rows the engine records (./usage.ts):
 * - protected instances: the highest count of protected VMs and databases on
 *   any day of the month, which is how a per-instance price list counts them;
 * - used bytes: the highest stored bytes on any day, against the allocated
 *   bytes of the customer's licence;
 * - peak concurrent tasks, against the licence;
 * - egress: every byte that restores, downloads and exports delivered in the
 *   month, summed.
 * The licence columns are the licence as it stands when the report is made;
 * the usage columns are exactly what was recorded, so the figures match the
 * engine's to the byte.
 */
import { sql } from 'kysely';
import { csvLine } from '../core/csv.ts';
import type { Db } from '../core/db/database.ts';
import { badInput, notFound } from '../core/errors.ts';
import { licenceView } from './licences.ts';

export interface MonthlyUsage {
  /** YYYY-MM. */
  month: string;
  customerId: string;
  customerName: string;
  protectedInstances: number;
  /** Null when the licence sets no limit. */
  licensedInstances: number | null;
  usedBytes: number;
  allocatedBytes: number | null;
  peakTasks: number;
  licensedTasks: number | null;
  egressBytes: number;
  /** Days of the month with recorded usage. */
  daysRecorded: number;
}

/** The report's columns, in the order of the CSV. */
export const MONTHLY_USAGE_COLUMNS = [
  'month',
  'customerId',
  'customerName',
  'protectedInstances',
  'licensedInstances',
  'usedBytes',
  'allocatedBytes',
  'peakTasks',
  'licensedTasks',
  'egressBytes',
  'daysRecorded',
] as const satisfies readonly (keyof MonthlyUsage)[];

/** Checks a month given as YYYY-MM and returns its first day and the first day of the next. */
export function monthBounds(month: string): { from: string; to: string } {
  const match = /^(\d{4})-(\d{2})$/.exec(month);
  const year = Number(match?.[1]);
  const index = Number(match?.[2]);
  if (!match || index < 1 || index > 12 || year < 2000)
    throw badInput(`"${month.slice(0, 20)}" is not a month; give it as YYYY-MM, e.g. 2026-11.`);
  const next = index === 12 ? `${year + 1}-01` : `${year}-${String(index + 1).padStart(2, '0')}`;
  return { from: `${month}-01`, to: `${next}-01` };
}

/** One row per customer (or for the one asked for), in name order; customers with no usage get zeros. */
export async function monthlyUsage(
  db: Db,
  filter: { month: string; customerId?: string },
): Promise<MonthlyUsage[]> {
  const { from, to } = monthBounds(filter.month);
  let customers = db.selectFrom('customers').select(['id', 'name']).orderBy('name').orderBy('id');
  if (filter.customerId) customers = customers.where('id', '=', filter.customerId);
  const rows = await customers.execute();
  if (filter.customerId && rows.length === 0)
    throw notFound(
      `There is no customer "${filter.customerId}"; the report lists customers by their ACBA id.`,
    );

  const totals = await db
    .selectFrom('usage_daily')
    .select([
      'customer_id',
      sql<string>`max(protected_instances)`.as('instances'),
      sql<string>`max(stored_bytes)`.as('used'),
      sql<string>`max(peak_tasks)`.as('tasks'),
      sql<string>`sum(egress_bytes)`.as('egress'),
      sql<string>`count(*)`.as('days'),
    ])
    .where('day', '>=', from)
    .where('day', '<', to)
    .groupBy('customer_id')
    .execute();
  const byCustomer = new Map(totals.map((t) => [t.customer_id, t]));

  const report: MonthlyUsage[] = [];
  for (const customer of rows) {
    const licence = await licenceView(db, customer.id);
    const usage = byCustomer.get(customer.id);
    report.push({
      month: filter.month,
      customerId: customer.id,
      customerName: customer.name,
      protectedInstances: Number(usage?.instances ?? 0),
      licensedInstances: licence.instances,
      usedBytes: Number(usage?.used ?? 0),
      allocatedBytes: licence.allocatedBytes,
      peakTasks: Number(usage?.tasks ?? 0),
      licensedTasks: licence.tasks,
      egressBytes: Number(usage?.egress ?? 0),
      daysRecorded: Number(usage?.days ?? 0),
    });
  }
  return report;
}

/** The report as CSV: a header line of the column names, then one line per customer. */
export function usageCsv(report: readonly MonthlyUsage[]): string {
  return (
    csvLine(MONTHLY_USAGE_COLUMNS) +
    report.map((row) => csvLine(MONTHLY_USAGE_COLUMNS.map((c) => row[c]))).join('')
  );
}
