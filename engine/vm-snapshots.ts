/**
 * Snapshot restore points: a VM's disk snapshots kept in Azure (managed
 * disks' in the VM's resource group, unmanaged disks' as blob snapshots in
 * their storage account), instead of (policy type `snapshots`) or besides (`both`)
 * a backup in the repository. They are fast to take and to restore from but
 * live in the customer's subscription, so they complement backups and never
 * replace them.
 *
 * Retention counts: each schedule of a policy keeps its newest
 * `keepSnapshots` snapshot restore points of an item; a restore point made by
 * slots of several schedules stays while any of them keeps it. Manual
 * snapshots, taken by an operator for a VM some policy protects, are never
 * removed by retention, only by the operator. Their rows carry a far-future
 * expiry so that date-based retention never selects them.
 */
import { randomUUID } from 'node:crypto';
import { appendAudit, serviceActor, type AuditActor } from '../core/audit.ts';
import type { Db } from '../core/db/database.ts';
import type { Customer, ProtectedItem, RestorePoint, RestorePointDisk } from '../core/db/schema.ts';
import { badInput, notFound } from '../core/errors.ts';
import {
  deleteSnapshot,
  releaseSnapshots,
  snapshotRows,
  takeSnapshot,
  type ReleaseDeps,
  type TakenSnapshot,
} from './disk-snapshots.ts';
import { findItemByRef } from './catalog.ts';
import { failureOf } from './notices.ts';
import { policySchedules, resolvePolicyItems, type PolicySpec } from './policies.ts';
import { parseResourceId } from './resource-id.ts';
import { vmDisks } from './vm-disks.ts';

/** The expiry of restore points that go by count or by hand, never by date. */
export const KEPT_UNTIL_REMOVED = new Date('9999-12-31T00:00:00Z');

export type SnapshotDeps = ReleaseDeps;

export interface SnapshotPointInput {
  restorePointId: string;
  item: ProtectedItem;
  type: 'snapshot' | 'manual_snapshot';
  policyName: string | null;
  schedules: string[];
  createdAt: Date;
  taken: TakenSnapshot[];
}

/** Inserts a snapshot restore point's row (no manifest: its data stays in Azure). */
export async function insertSnapshotPoint(
  db: Db,
  input: SnapshotPointInput,
): Promise<RestorePoint> {
  const disks: RestorePointDisk[] = input.taken.map((t) => ({
    name: t.disk.name,
    role: t.disk.role,
    sizeBytes: t.sizeBytes,
    storedBytes: 0,
  }));
  return db
    .insertInto('restore_points')
    .values({
      id: input.restorePointId,
      customer_id: input.item.customer_id,
      item_id: input.item.id,
      created_at: input.createdAt,
      expires_at: KEPT_UNTIL_REMOVED,
      manifest_path: '',
      disks: JSON.stringify(disks),
      size_bytes: disks.reduce((sum, d) => sum + d.sizeBytes, 0),
      stored_bytes: 0,
      policy_name: input.policyName,
      type: input.type,
      schedules: JSON.stringify(input.schedules),
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

export interface SnapshotRunOptions {
  type: 'snapshot' | 'manual_snapshot';
  policyName: string | null;
  schedules: string[];
  trigger: string;
  actor?: AuditActor;
}

/** Snapshots every disk of the VM and keeps them as one restore point; then applies the policy's snapshot retention. */
export async function snapshotVm(
  deps: SnapshotDeps,
  customer: Customer,
  item: ProtectedItem,
  options: SnapshotRunOptions,
): Promise<RestorePoint> {
  const restorePointId = randomUUID();
  const log = deps.log.child({ itemId: item.id, restorePointId, vm: item.name });
  const audit = (outcome: 'success' | 'failed', details: Record<string, unknown>) =>
    appendAudit(deps.db, {
      actor: options.actor ?? serviceActor,
      channel: options.actor ? 'cli' : 'engine',
      action: 'snapshot.create',
      resource: `vm/${customer.id}/${item.name}`,
      outcome,
      details: {
        customerId: customer.id,
        itemId: item.id,
        restorePointId,
        type: options.type,
        trigger: options.trigger,
        ...details,
      },
    });

  const taken: TakenSnapshot[] = [];
  const ctx = {
    compute: deps.compute(customer.subscription_id),
    log,
    pollIntervalMs: deps.pollIntervalMs,
    vhdBlobs: deps.vhdBlobs,
  };
  try {
    const { resourceGroup, name: vmName } = parseResourceId(item.resource_id);
    const vm = await ctx.compute.virtualMachines.get(resourceGroup, vmName);
    const createdAt = new Date();
    for (const [index, disk] of vmDisks(vm, item).entries()) {
      const snapshotName = `acba-${restorePointId}-${index}`;
      taken.push(await takeSnapshot(ctx, resourceGroup, vm.location, snapshotName, disk));
    }

    const point = await deps.db.transaction().execute(async (tx) => {
      const row = await insertSnapshotPoint(tx, {
        restorePointId,
        item,
        createdAt,
        taken,
        ...options,
      });
      await tx
        .insertInto('disk_snapshots')
        .values(snapshotRows(item, taken, { snapshotPointId: restorePointId }, createdAt))
        .execute();
      return row;
    });
    await audit('success', { disks: taken.length, snapshots: taken.map((t) => t.snapshotId) });
    log.info({ disks: taken.length, type: options.type }, 'snapshot_point_created');

    if (options.type === 'snapshot' && options.policyName)
      await applySnapshotRetention(deps, item.id, options.policyName);
    return point;
  } catch (error) {
    for (const t of taken) await deleteSnapshot(ctx, t.snapshotId);
    const failure = failureOf(error);
    await audit('failed', { kind: failure.kind, message: failure.message });
    log.error({ err: error }, 'snapshot_point_failed');
    throw error;
  }
}

/** Removes the item's snapshot restore points of a policy beyond each schedule's keepSnapshots; returns their ids. */
export async function applySnapshotRetention(
  deps: SnapshotDeps,
  itemId: string,
  policyName: string,
): Promise<string[]> {
  const policy = await deps.db
    .selectFrom('policies')
    .selectAll()
    .where('name', '=', policyName)
    .executeTakeFirst();
  if (!policy) return [];
  const schedules = policySchedules(policy.spec as PolicySpec).filter(
    (s) => s.keepSnapshots !== undefined,
  );
  if (schedules.length === 0) return [];

  const points = await deps.db
    .selectFrom('restore_points')
    .selectAll()
    .where('item_id', '=', itemId)
    .where('policy_name', '=', policyName)
    .where('type', '=', 'snapshot')
    .orderBy('created_at', 'desc')
    .execute();
  // A run outside the schedule (an operator's) counts as the first schedule's, as its retention does.
  const kindsOf = (p: RestorePoint) =>
    p.schedules.length ? p.schedules : [schedules[0]!.rule.kind];
  const kept = new Set<string>();
  for (const schedule of schedules) {
    const mine = points.filter((p) => kindsOf(p).includes(schedule.rule.kind));
    for (const p of mine.slice(0, schedule.keepSnapshots)) kept.add(p.id);
  }

  const removed: string[] = [];
  for (const point of points.filter((p) => !kept.has(p.id))) {
    const deleted = await deps.db
      .deleteFrom('restore_points')
      .where('id', '=', point.id)
      .returning('id')
      .executeTakeFirst();
    if (!deleted) continue;
    await appendAudit(deps.db, {
      actor: serviceActor,
      channel: 'engine',
      action: 'restore_point.expire',
      resource: `restore-point/${point.id}`,
      outcome: 'success',
      details: {
        customerId: point.customer_id,
        itemId,
        type: point.type,
        policy: policyName,
        reason: 'keep_snapshots',
        createdAt: point.created_at.toISOString(),
      },
    });
    deps.log.info(
      { restorePointId: point.id, itemId, policy: policyName },
      'snapshot_point_expired',
    );
    removed.push(point.id);
  }
  await releaseSnapshots(deps, itemId);
  return removed;
}

/** An operator's snapshot of every disk of a VM that a policy protects; kept until deleted by hand. */
export async function createManualSnapshot(
  deps: SnapshotDeps,
  itemRef: string,
  actor: AuditActor = serviceActor,
): Promise<RestorePoint> {
  const item = await findItemByRef(deps.db, itemRef);
  const customer = await deps.db
    .selectFrom('customers')
    .selectAll()
    .where('id', '=', item.customer_id)
    .executeTakeFirstOrThrow();
  const policies = await deps.db
    .selectFrom('policies')
    .selectAll()
    .where('customer_id', '=', customer.id)
    .where('enabled', '=', true)
    .orderBy('name')
    .execute();
  let policyName: string | undefined;
  for (const policy of policies) {
    const { items } = await resolvePolicyItems(deps.db, policy);
    if (items.some((i) => i.id === item.id)) policyName = policy.name;
  }
  if (!policyName)
    throw badInput(
      `VM ${item.name} is in no enabled policy, so ACBA does not snapshot it; apply a policy that selects it ("acba policy apply FILE") and try again.`,
    );

  return snapshotVm(deps, customer, item, {
    type: 'manual_snapshot',
    policyName,
    schedules: [],
    trigger: 'operator',
    actor,
  });
}

/** Deletes a manual snapshot restore point and its snapshots in Azure; other restore points are refused. */
export async function deleteManualSnapshot(
  deps: SnapshotDeps,
  restorePointId: string,
  actor: AuditActor = serviceActor,
): Promise<void> {
  const point = await deps.db
    .selectFrom('restore_points')
    .selectAll()
    .where('id', '=', restorePointId)
    .executeTakeFirst();
  if (!point)
    throw notFound(
      `Restore point ${restorePointId} does not exist; "acba snapshot list" shows the manual snapshots there are.`,
    );
  if (point.type !== 'manual_snapshot')
    throw badInput(
      `Restore point ${restorePointId} is a ${point.type === 'backup' ? 'backup' : "policy's snapshot"}, not a manual snapshot; its policy's retention removes it, and deleting it early needs an approved delete_restore_points request.`,
    );

  await deps.db.deleteFrom('restore_points').where('id', '=', point.id).execute();
  await appendAudit(deps.db, {
    actor,
    channel: actor === serviceActor ? 'engine' : 'cli',
    action: 'snapshot.delete',
    resource: `restore-point/${point.id}`,
    outcome: 'success',
    details: { customerId: point.customer_id, itemId: point.item_id },
  });
  deps.log.info({ restorePointId: point.id, itemId: point.item_id }, 'manual_snapshot_deleted');
  await releaseSnapshots(deps, point.item_id);
}

/** Manual snapshots, newest first, of one item or of all. */
export async function listManualSnapshots(db: Db, itemRef?: string): Promise<RestorePoint[]> {
  let query = db
    .selectFrom('restore_points')
    .selectAll()
    .where('type', '=', 'manual_snapshot')
    .orderBy('created_at', 'desc');
  if (itemRef) query = query.where('item_id', '=', (await findItemByRef(db, itemRef)).id);
  return query.execute();
}
