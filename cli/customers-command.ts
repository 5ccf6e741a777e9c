/**
 * `acba customers list [--json]`: every customer ACBA serves, with its Entra
 * tenant, Azure subscription, service model, what ACBA protects and stores
 * for it, and its licence (../engine/job-catalog.ts usageReport).
 */
import { parseArgs } from 'node:util';
import type { Config } from '../core/config.ts';
import { openDatabase } from '../core/db/database.ts';
import type { ServiceModel } from '../core/db/schema.ts';
import { badInput } from '../core/errors.ts';
import { formatBytes } from '../core/format.ts';
import { usageReport } from '../engine/job-catalog.ts';
import type { LicenceView } from '../engine/licences.ts';
import { printRows, printUsage } from './command-line.ts';

export const customersUsage = `Usage:
  acba customers list [--json]
      Each customer on one line: its id and name, Entra tenant, Azure subscription, service
      model (managed or unmanaged), protected VMs and databases, bytes stored in the repository,
      and its licence. --json gives an array with exact byte counts.`;

/** One customer as the listing shows it. */
export interface CustomerRow {
  id: string;
  name: string;
  tenantId: string;
  subscriptionId: string;
  serviceModel: ServiceModel;
  protectedItems: number;
  storedBytes: number;
  licence: Pick<LicenceView, 'licensed' | 'instances' | 'storageTb' | 'tasks'>;
}

export async function customersCommand(config: Config, argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined) return printUsage(customersUsage, false);
  if (sub !== 'list')
    throw badInput(`unknown customers command "${sub}"; use "acba customers list [--json]".`);
  const { values } = parseArgs({
    args: rest,
    options: { json: { type: 'boolean' } },
  });

  const handle = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir });
  try {
    const rows = await customerRows(handle.db);
    printRows(rows, values.json === true, describe, 'No customers yet.');
    return 0;
  } finally {
    await handle.close();
  }
}

async function customerRows(db: Parameters<typeof usageReport>[0]): Promise<CustomerRow[]> {
  const customers = await db.selectFrom('customers').selectAll().execute();
  const usage = await usageReport(db, { days: 1 });
  return usage.map((u) => {
    const customer = customers.find((c) => c.id === u.customerId)!;
    const { licensed, instances, storageTb, tasks } = u.licence;
    return {
      id: customer.id,
      name: customer.name,
      tenantId: customer.tenant_id,
      subscriptionId: customer.subscription_id,
      serviceModel: customer.service_model,
      protectedItems: u.protectedInstances,
      storedBytes: u.storedBytes,
      licence: { licensed, instances, storageTb, tasks },
    };
  });
}

function describe(row: CustomerRow): string {
  const limit = (value: number | null, unit: string) =>
    value === null ? `unlimited ${unit}` : `${value} ${unit}`;
  const { licence } = row;
  const licenceText = licence.licensed
    ? `licence ${limit(licence.instances, 'instances')}, ${limit(licence.storageTb, 'TB')}, ${limit(licence.tasks, 'tasks')}`
    : 'no licence (unlimited)';
  return `${row.id}  ${row.name}  tenant ${row.tenantId}  subscription ${row.subscriptionId}  ${row.serviceModel}  ${row.protectedItems} item(s)  ${formatBytes(row.storedBytes)} stored  ${licenceText}`;
}
