/**
 * The kinds of written request and the target each one names. Input from the
 * bot or the portal is validated with zod and resolved against the database
 * (the VM, the restore point) into the typed target that is stored and hashed.
 * File, VM, disk and SQL restores run in the engine; the other kinds are requested,
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
import { KNOWN_REGIONS, normaliseRegion } from '../engine/restore-regions.ts';
import { REQUEST_KINDS } from './approval-rules.ts';
import { resolveItem, resolveRestorePoint } from './lookup.ts';
import {
  resolveSqlRestoreTarget,
  sqlRestoreInput,
  type SqlRestoreInput,
} from './sql-restore-target.ts';

/** Kinds the engine can run today; approved requests of other kinds wait with status 'approved'. */
export const EXECUTABLE_KINDS: ReadonlySet<RequestKind> = new Set([
  'file_restore',
  'vm_restore',
  'disk_restore',
  'sql_restore',
]);

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

const diskRole = z.union([z.literal('os'), z.number().int().min(0).max(63)]);
const vmName = z
  .string()
  .trim()
  .regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,62}[A-Za-z0-9_]$|^[A-Za-z0-9]$/, {
    message: 'a VM name has 1 to 64 letters, digits, periods, underscores or hyphens',
  });
const resourceGroup = z
  .string()
  .trim()
  .regex(/^[-\w.()]{0,89}[-\w()]$/, {
    message:
      'a resource group name has 1 to 90 letters, digits, underscores, hyphens, periods or parentheses',
  });
const region = z
  .string()
  .trim()
  .transform(normaliseRegion)
  .refine((r) => KNOWN_REGIONS.has(r), { message: 'not an Azure region ACBA restores to' });
const subnetId = z
  .string()
  .trim()
  .regex(
    /^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.Network\/virtualNetworks\/[^/]+\/subnets\/[^/]+$/i,
    {
      message:
        'give the subnet as /subscriptions/<id>/resourceGroups/<group>/providers/Microsoft.Network/virtualNetworks/<network>/subnets/<subnet>',
    },
  );
const vmSize = z
  .string()
  .trim()
  .regex(/^[A-Za-z0-9_]{2,64}$/, { message: 'a VM size looks like Standard_D2s_v5' });

const newLocationFields = ['newVmName', 'resourceGroup', 'region', 'subnetId', 'vmSize'] as const;

/** What a person gives for each kind other than file_restore (which has its own flow). */
export const targetInputSchemas = {
  disk_restore: z
    .strictObject({
      ...pointInput,
      disk: diskRole.optional(),
      disks: z.array(diskRole).min(1).max(64).optional(),
      replaceOriginal: z.boolean().default(false),
      resourceGroup: resourceGroup.optional(),
    })
    .refine((t) => (t.disk === undefined) !== (t.disks === undefined), {
      message: 'name the disks to restore, either as disk or as disks, not both',
      path: ['disks'],
    })
    .refine((t) => !(t.replaceOriginal && t.resourceGroup), {
      message:
        'disks swapped into the original VM stay in its resource group; leave resourceGroup out',
      path: ['resourceGroup'],
    }),
  vm_restore: z
    .strictObject({
      ...pointInput,
      replaceOriginal: z.boolean().default(false),
      newVmName: vmName.optional(),
      resourceGroup: resourceGroup.optional(),
      region: region.optional(),
      subnetId: subnetId.optional(),
      vmSize: vmSize.optional(),
    })
    .refine((t) => !t.replaceOriginal || newLocationFields.every((f) => t[f] === undefined), {
      message: `a restore over the original VM keeps its name and place; leave ${newLocationFields.join(', ')} out`,
      path: ['replaceOriginal'],
    })
    .refine((t) => t.replaceOriginal || t.subnetId !== undefined, {
      message:
        'a VM restored beside the original needs a network of its own: give subnetId, a subnet in the region it goes to',
      path: ['subnetId'],
    }),
  sql_restore: sqlRestoreInput,
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
      const wanted = [...new Set(t.disks ?? [t.disk!])];
      const missing = wanted.find((role) => !disks.some((d) => d.role === role));
      if (missing !== undefined) {
        throw notFound(
          `Restore point ${point.id} of ${item.name} has no disk ${missing}. Choose one of ${disks.map((d) => d.role).join(', ')}.`,
        );
      }
      return {
        itemId: item.id,
        vmName: item.name,
        restorePointId: point.id,
        disks: wanted,
        replaceOriginal: t.replaceOriginal,
        ...(t.resourceGroup ? { resourceGroup: t.resourceGroup } : {}),
      } satisfies DiskRestoreTarget;
    }
    case 'vm_restore': {
      const t = parsed.data as z.infer<(typeof targetInputSchemas)['vm_restore']>;
      const item = await resolveItem(db, customer, t.vmName);
      const point = await resolveRestorePoint(db, item, undefined, t.restorePointId);
      if (
        t.subnetId &&
        !t.subnetId
          .toLowerCase()
          .startsWith(`/subscriptions/${customer.subscription_id.toLowerCase()}/`)
      )
        throw badInput(
          `Subnet ${t.subnetId} is not in ${customer.name}'s subscription; choose a subnet of subscription ${customer.subscription_id}.`,
          { field: 'subnetId' },
        );
      const newLocation = t.replaceOriginal
        ? {}
        : {
            newVmName: t.newVmName ?? `${item.name}-restored`,
            ...Object.fromEntries(
              (['resourceGroup', 'region', 'subnetId', 'vmSize'] as const)
                .filter((f) => t[f] !== undefined)
                .map((f) => [f, t[f]]),
            ),
          };
      return {
        itemId: item.id,
        vmName: item.name,
        restorePointId: point.id,
        replaceOriginal: t.replaceOriginal,
        ...newLocation,
      } satisfies VmRestoreTarget;
    }
    case 'sql_restore':
      return resolveSqlRestoreTarget(db, customer, parsed.data as SqlRestoreInput);
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
    case 'disk_restore': {
      const disks = (t.disks as unknown[] | undefined) ?? [t.disk];
      const where = t.resourceGroup ? ` as new disks in ${String(t.resourceGroup)}` : '';
      return `disk ${disks.map(String).join(', ')} of ${String(t.vmName)}${over}${where}`;
    }
    case 'vm_restore':
      return t.newVmName
        ? `${String(t.vmName)} as ${describeNewVm(t)}`
        : `${String(t.vmName)}${over}`;
    case 'sql_restore':
      return describeSqlRestore(target as SqlRestoreTarget);
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

/** Where a VM restored beside the original goes, in words. */
function describeNewVm(t: Record<string, unknown>): string {
  const place = [t.resourceGroup, t.region, t.vmSize].filter((v) => v !== undefined).map(String);
  return `${String(t.newVmName)}${place.length > 0 ? ` (${place.join(', ')})` : ''}`;
}

/** The databases of a SQL restore and where each goes, in words. */
function describeSqlRestore(t: SqlRestoreTarget): string {
  const names = t.databases.map((d) =>
    t.replaceOriginal || d.newName === d.database ? d.database : `${d.database} as ${d.newName}`,
  );
  const where = t.replaceOriginal
    ? ', over the original'
    : t.targetServer
      ? ` to server ${t.targetServer}`
      : '';
  return `${names.join(', ')} of ${t.server}${where}`;
}
