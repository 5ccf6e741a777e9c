/**
 * The simple restore forms of the bot and the portal, shared by both: the
 * choices a form offers (the customer's VMs and SQL databases with their
 * current backup restore points, each VM restore point's disks), and the
 * turning of a submitted form's flat fields into the target input that
 * createRequest validates and resolves again, whatever the form offered.
 *
 * Field names, the same in every form:
 *   disk_restore  vmName, restorePointId, disks (list or comma-separated: os, 0, 1...),
 *                 placement (new | original), resourceGroup
 *   vm_restore    vmName, restorePointId, placement (new | original), newVmName,
 *                 resourceGroup, region, subnetId, vmSize
 *   sql_restore   server, placement (new | original | server), targetServer, and per
 *                 database `point.<database>` (a restore point id, empty to leave it
 *                 out) and `name.<database>` (a new name, optional)
 */
import type { Db } from '../core/db/database.ts';
import type { Customer, RestorePointDisk } from '../core/db/schema.ts';
import { badInput } from '../core/errors.ts';
import { formatUtc } from './rules.ts';

/** How many restore points of each item a form offers, newest first. */
const POINTS_PER_ITEM = 20;

export interface PointChoice {
  id: string;
  label: string;
}

export interface VmChoice {
  itemId: string;
  name: string;
  points: PointChoice[];
  /** The disks of the newest restore point: 'os' or a LUN, with a label. */
  disks: Array<{ role: string; label: string }>;
}

export interface SqlServerChoice {
  name: string;
  databases: Array<{ itemId: string; name: string; points: PointChoice[] }>;
}

export interface RestoreChoices {
  vms: VmChoice[];
  sqlServers: SqlServerChoice[];
}

/** The customer's items that have current backups, with their restore points, for a form's choice sets. */
export async function restoreChoices(db: Db, customer: Customer): Promise<RestoreChoices> {
  const points = await db
    .selectFrom('restore_points')
    .innerJoin('protected_items', 'protected_items.id', 'restore_points.item_id')
    .select([
      'restore_points.id',
      'restore_points.item_id',
      'restore_points.created_at',
      'restore_points.disks',
      'protected_items.name',
      'protected_items.kind',
    ])
    .where('restore_points.customer_id', '=', customer.id)
    .where('protected_items.customer_id', '=', customer.id)
    .where('restore_points.type', '=', 'backup')
    .where('restore_points.expires_at', '>', new Date())
    .orderBy('protected_items.name')
    .orderBy('restore_points.created_at', 'desc')
    .execute();

  const vms = new Map<string, VmChoice>();
  const servers = new Map<string, SqlServerChoice>();
  for (const point of points) {
    const choice = { id: point.id, label: `${formatUtc(point.created_at)} (${point.id})` };
    if (point.kind === 'vm') {
      const vm = vms.get(point.item_id) ?? newVm(point.item_id, point.name, point.disks);
      vms.set(point.item_id, vm);
      if (vm.points.length < POINTS_PER_ITEM) vm.points.push(choice);
      continue;
    }
    const [serverName, databaseName] = point.name.split('/') as [string, string];
    const server = servers.get(serverName) ?? { name: serverName, databases: [] };
    servers.set(serverName, server);
    let database = server.databases.find((d) => d.itemId === point.item_id);
    if (!database) {
      database = { itemId: point.item_id, name: databaseName, points: [] };
      server.databases.push(database);
    }
    if (database.points.length < POINTS_PER_ITEM) database.points.push(choice);
  }
  return { vms: [...vms.values()], sqlServers: [...servers.values()] };
}

function newVm(itemId: string, name: string, disks: unknown): VmChoice {
  const list = (typeof disks === 'string' ? JSON.parse(disks) : disks) as RestorePointDisk[];
  return {
    itemId,
    name,
    points: [],
    disks: list.map((d) => ({
      role: String(d.role),
      label: d.role === 'os' ? `${d.name} (OS disk)` : `${d.name} (data disk, LUN ${d.role})`,
    })),
  };
}

type Fields = Record<string, unknown>;

/** The target input of a submitted form of `kind`; createRequest validates it. */
export function formTarget(
  kind: 'disk_restore' | 'vm_restore' | 'sql_restore',
  fields: Fields,
): Record<string, unknown> {
  const placement = text(fields.placement) || 'new';
  if (!['new', 'original', 'server'].includes(placement))
    throw badInput(
      `Choose where the restore goes: new, original or server, not "${placement.slice(0, 20)}".`,
      {
        field: 'placement',
      },
    );
  const replaceOriginal = placement === 'original';

  switch (kind) {
    case 'disk_restore':
      return compact({
        vmName: text(fields.vmName),
        restorePointId: text(fields.restorePointId),
        disks: list(fields.disks).map((d) => (/^\d+$/.test(d) ? Number(d) : d)),
        replaceOriginal,
        resourceGroup: replaceOriginal ? '' : text(fields.resourceGroup),
      });
    case 'vm_restore':
      return compact({
        vmName: text(fields.vmName),
        restorePointId: text(fields.restorePointId),
        replaceOriginal,
        ...(replaceOriginal
          ? {}
          : {
              newVmName: text(fields.newVmName),
              resourceGroup: text(fields.resourceGroup),
              region: text(fields.region),
              subnetId: text(fields.subnetId),
              vmSize: text(fields.vmSize),
            }),
      });
    case 'sql_restore':
      return compact({
        server: text(fields.server),
        databases: sqlDatabases(fields, replaceOriginal),
        replaceOriginal,
        targetServer: placement === 'server' ? text(fields.targetServer) : '',
      });
  }
}

/** The databases a SQL form picked: each `point.<database>` with a restore point. */
function sqlDatabases(fields: Fields, replaceOriginal: boolean): Array<Record<string, string>> {
  return Object.keys(fields)
    .filter((key) => key.startsWith('point.') && text(fields[key]) !== '')
    .map((key) => {
      const database = key.slice('point.'.length);
      const newName = replaceOriginal ? '' : text(fields[`name.${database}`]);
      return compact({ database, restorePointId: text(fields[key]), newName });
    });
}

function text(value: unknown): string {
  return typeof value === 'string' ? value.trim() : '';
}

/** A multi-select's values: an HTML form sends a list (or one string), an Adaptive Card a comma-separated string. */
function list(value: unknown): string[] {
  const values = Array.isArray(value) ? value : [value];
  return values
    .flatMap((v) => text(v).split(','))
    .map((v) => v.trim())
    .filter((v) => v !== '');
}

/** Leaves out empty strings, so that the schema's defaults and refinements apply. */
function compact<T extends Record<string, unknown>>(object: T): T {
  return Object.fromEntries(Object.entries(object).filter(([, v]) => v !== '')) as T;
}
