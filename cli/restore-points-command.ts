/**
 * `acba restore-points list [--customer ID] [--item NAME_OR_ID] [--limit N] [--json]`:
 * what a customer can get back, newest first (../engine/catalog.ts).
 * Types: backup (blocks in the repository), snapshot (disk snapshots a policy
 * keeps in Azure) and manual (an operator's snapshot, kept until deleted).
 */
import { parseArgs } from 'node:util';
import type { Config } from '../core/config.ts';
import { openDatabase } from '../core/db/database.ts';
import type { RestorePointType } from '../core/db/schema.ts';
import { badInput } from '../core/errors.ts';
import { formatBytes } from '../core/format.ts';
import { findItemByRef, listRestorePoints, type RestorePointListing } from '../engine/catalog.ts';
import { printRows, printUsage, requireCustomer, wholeNumberOption } from './command-line.ts';

export const restorePointsUsage = `Usage:
  acba restore-points list [--customer ID] [--item NAME_OR_ID] [--limit N] [--json]
      Restore points, newest first (200 unless --limit says otherwise): id, item, type (backup,
      snapshot or manual), when made, when it expires, the data's size and the bytes stored.
      --item takes a VM or database name, or the item id when several customers use the name.`;

const TYPE_NAMES: Record<RestorePointType, string> = {
  backup: 'backup',
  snapshot: 'snapshot',
  manual_snapshot: 'manual',
};

/** One restore point as the listing shows it. */
export interface RestorePointRow {
  id: string;
  customerId: string;
  itemId: string;
  itemName: string;
  type: string;
  createdAt: Date;
  expiresAt: Date;
  sizeBytes: number;
  storedBytes: number;
  policyName: string | null;
}

export async function restorePointsCommand(config: Config, argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined) return printUsage(restorePointsUsage, false);
  if (sub !== 'list')
    throw badInput(
      `unknown restore-points command "${sub}"; use "acba restore-points list [--item NAME_OR_ID]".`,
    );
  const { values } = parseArgs({
    args: rest,
    options: {
      customer: { type: 'string' },
      item: { type: 'string' },
      limit: { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  const limit = wholeNumberOption('limit', values.limit, 1);

  const handle = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir });
  try {
    await requireCustomer(handle.db, values.customer);
    const item = values.item
      ? await findItemByRef(handle.db, values.item, values.customer)
      : undefined;
    const points = await listRestorePoints(handle.db, {
      customerId: values.customer,
      itemId: item?.id,
      limit,
    });
    printRows(points.map(rowOf), values.json === true, describe, 'No restore points match.');
    return 0;
  } finally {
    await handle.close();
  }
}

function rowOf(point: RestorePointListing): RestorePointRow {
  return {
    id: point.id,
    customerId: point.customer_id,
    itemId: point.item_id,
    itemName: point.item_name,
    type: TYPE_NAMES[point.type],
    createdAt: point.created_at,
    expiresAt: point.expires_at,
    sizeBytes: Number(point.size_bytes),
    storedBytes: Number(point.stored_bytes),
    policyName: point.policy_name,
  };
}

function describe(row: RestorePointRow): string {
  return `${row.id}  ${row.itemName}  ${row.type}  created ${row.createdAt.toISOString()}  expires ${row.expiresAt.toISOString()}  ${formatBytes(row.sizeBytes)}  ${formatBytes(row.storedBytes)} stored`;
}
