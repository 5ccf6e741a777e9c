/**
 * The kinds of written request and the target each one names. Input from the
 * bot or the portal is validated with zod and resolved against the database
 * (the VM, the restore point) into the typed target that is stored and hashed.
 * Only file restores run in the engine today; the other kinds are requested,
 * decided and audited the same way, and approved ones wait for the engine.
 */
import { z } from 'zod';
import type { Db } from '../core/db/database.ts';
import type {
  ChangeRetentionTarget,
  Customer,
  DataAccessTarget,
  DeleteRestorePointsTarget,
  DiskRestoreTarget,
  ExitExportTarget,
  RequestKind,
  RequestTarget,
  SqlRestoreTarget,
  VmRestoreTarget,
} from '../core/db/schema.ts';
import { badInput, notFound } from '../core/errors.ts';
import { checkDestination } from '../engine/export-destination.ts';
import { REQUEST_KINDS } from './approval-rules.ts';
import { resolveItem, resolveRestorePoint } from './lookup.ts';

/** Kinds the engine can run today; approved requests of other kinds wait with status 'approved'. */
export const EXECUTABLE_KINDS: ReadonlySet<RequestKind> = new Set(['file_restore']);

/** Kinds that the provider's staff ask for (reading a customer's backup), not the customer's users. */
export const PROVIDER_KINDS: ReadonlySet<RequestKind> = new Set(['data_access']);

/** How each kind reads in messages. */
export const KIND_LABELS: Record<RequestKind, string> = {
  file_restore: 'file restore',
  disk_restore: 'disk restore',
  vm_restore: 'VM restore',
  sql_restore: 'SQL restore',
  data_access: 'data access',
  delete_restore_points: 'deletion of restore points',
  change_retention: 'retention change',
  exit_export: 'exit export',
};

const name = z.string().trim().min(1).max(200);
const id = z.string().trim().min(1).max(100);

const pointInput = { vmName: name, restorePointId: id.optional() };

/** What a person gives for each kind other than file_restore (which has its own flow). */
export const targetInputSchemas = {
  disk_restore: z.strictObject({
    ...pointInput,
    disk: z.union([z.literal('os'), z.number().int().min(0).max(63)]),
    replaceOriginal: z.boolean().default(false),
  }),
  vm_restore: z.strictObject({ ...pointInput, replaceOriginal: z.boolean().default(false) }),
  sql_restore: z.strictObject({
    server: name,
    database: name,
    restorePointId: id,
    replaceOriginal: z.boolean().default(false),
  }),
  data_access: z.strictObject({
    customerId: id,
    vmName: name.optional(),
    purpose: z.string().trim().min(10).max(500),
  }),
  delete_restore_points: z.strictObject({ restorePointIds: z.array(id).min(1).max(100) }),
  change_retention: z
    .strictObject({
      policy: name,
      change: z.enum(['shorten', 'disable']),
      retentionDays: z.number().int().min(1).max(36500).optional(),
    })
    .refine((t) => t.change === 'disable' || t.retentionDays !== undefined, {
      message: 'a shortened retention needs retentionDays',
      path: ['retentionDays'],
    }),
  exit_export: z.strictObject({
    destination: z.string().trim().min(1).max(500),
    restorePointIds: z.array(id).min(1).max(1000).optional(),
  }),
};

export type OtherKind = keyof typeof targetInputSchemas;

/** True for the kinds createRequest takes (every kind but file_restore). */
export function isOtherKind(kind: string): kind is OtherKind {
  return kind in targetInputSchemas && kind !== 'file_restore';
}

/** Throws bad_input unless the text names a request kind. */
export function checkKind(kind: string): RequestKind {
  if ((REQUEST_KINDS as readonly string[]).includes(kind)) return kind as RequestKind;
  throw badInput(
    `There is no request kind "${kind.slice(0, 40)}". Use one of ${REQUEST_KINDS.join(', ')}.`,
  );
}

/** Validates and resolves a target for the customer; throws bad_input or not_found naming the field. */
export async function resolveTarget(
  db: Db,
  customer: Customer,
  kind: OtherKind,
  input: unknown,
): Promise<RequestTarget> {
  const parsed = targetInputSchemas[kind].safeParse(input);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw badInput(
      `The ${KIND_LABELS[kind]} request is incomplete at ${issue.path.join('.') || 'its target'}: ${issue.message}. Fill it in and submit again.`,
      { field: issue.path.join('.') },
    );
  }

  switch (kind) {
    case 'disk_restore': {
      const t = parsed.data as z.infer<(typeof targetInputSchemas)['disk_restore']>;
      const item = await resolveItem(db, customer, t.vmName);
      const point = await resolveRestorePoint(db, item, undefined, t.restorePointId);
      const disks = point.disks as unknown as Array<{ role: 'os' | number }>;
      if (!disks.some((d) => d.role === t.disk)) {
        throw notFound(
          `Restore point ${point.id} of ${item.name} has no disk ${t.disk}. Choose one of ${disks.map((d) => d.role).join(', ')}.`,
        );
      }
      return {
        itemId: item.id,
        vmName: item.name,
        restorePointId: point.id,
        disk: t.disk,
        replaceOriginal: t.replaceOriginal,
      } satisfies DiskRestoreTarget;
    }
    case 'vm_restore': {
      const t = parsed.data as z.infer<(typeof targetInputSchemas)['vm_restore']>;
      const item = await resolveItem(db, customer, t.vmName);
      const point = await resolveRestorePoint(db, item, undefined, t.restorePointId);
      return {
        itemId: item.id,
        vmName: item.name,
        restorePointId: point.id,
        replaceOriginal: t.replaceOriginal,
      } satisfies VmRestoreTarget;
    }
    case 'sql_restore':
      return parsed.data as SqlRestoreTarget;
    case 'data_access': {
      const t = parsed.data as z.infer<(typeof targetInputSchemas)['data_access']>;
      const item = t.vmName ? await resolveItem(db, customer, t.vmName) : undefined;
      return {
        customerId: customer.id,
        ...(item ? { itemId: item.id } : {}),
        purpose: t.purpose,
      } satisfies DataAccessTarget;
    }
    case 'delete_restore_points': {
      const t = parsed.data as DeleteRestorePointsTarget;
      const ids = await customerRestorePoints(db, customer, t.restorePointIds);
      return { restorePointIds: ids } satisfies DeleteRestorePointsTarget;
    }
    case 'change_retention':
      return parsed.data as ChangeRetentionTarget;
    case 'exit_export': {
      const t = parsed.data as ExitExportTarget;
      const destination = checkDestination(t.destination);
      if (!t.restorePointIds) return { destination } satisfies ExitExportTarget;
      const ids = await customerRestorePoints(db, customer, t.restorePointIds);
      return { destination, restorePointIds: ids } satisfies ExitExportTarget;
    }
  }
}

/** The distinct ids, sorted, after checking each is one of the customer's restore points. */
async function customerRestorePoints(
  db: Db,
  customer: Customer,
  restorePointIds: string[],
): Promise<string[]> {
  const ids = [...new Set(restorePointIds)];
  const found = await db
    .selectFrom('restore_points')
    .select('id')
    .where('id', 'in', ids)
    .where('customer_id', '=', customer.id)
    .execute();
  const missing = ids.filter((rp) => !found.some((f) => f.id === rp));
  if (missing.length > 0) {
    throw notFound(
      `Restore point ${missing[0]!.slice(0, 100)} of ${customer.name} does not exist (it may have expired). Ask for the current restore points and submit again.`,
    );
  }
  return ids.sort();
}

/** One line that says what a request is about, for cards and pages. */
export function describeTarget(kind: RequestKind, target: RequestTarget): string {
  const t = target as unknown as Record<string, unknown>;
  const over = t.replaceOriginal ? ', over the original' : '';
  switch (kind) {
    case 'file_restore':
      return `${String(t.path)} from ${String(t.vmName)}`;
    case 'disk_restore':
      return `disk ${String(t.disk)} of ${String(t.vmName)}${over}`;
    case 'vm_restore':
      return `${String(t.vmName)}${over}`;
    case 'sql_restore':
      return `${String(t.database)} on ${String(t.server)}${over}`;
    case 'data_access':
      return `backup of customer ${String(t.customerId)}: ${String(t.purpose)}`;
    case 'delete_restore_points':
      return `${(t.restorePointIds as string[]).length} restore point(s)`;
    case 'change_retention':
      return t.change === 'disable'
        ? `disable policy ${String(t.policy)}`
        : `shorten policy ${String(t.policy)} to ${String(t.retentionDays)} days`;
    case 'exit_export':
      return `${t.restorePointIds ? `${(t.restorePointIds as string[]).length} restore point(s)` : 'all data'} to ${String(t.destination)}`;
  }
}
