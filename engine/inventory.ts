/**
 * Inventory: the VMs of a customer's subscription become protected items.
 * An item's id derives from its ARM resource id, so syncing again (or from
 * another worker) finds the same item. Each sync also records the VM's Azure
 * tags, by which policies select VMs. With a licence that limits protected
 * instances, VMs are taken by name until the limit is reached; the others are
 * skipped, logged and audited with the reason.
 */
import { createHash } from 'node:crypto';
import type { ComputeManagementClient } from '@azure/arm-compute';
import type { Db } from '../core/db/database.ts';
import type { Customer, ProtectedItem } from '../core/db/schema.ts';
import type { Logger } from '../core/log.ts';
import { auditInstanceSkipped, instanceAllowance } from './licences.ts';
import { recordHoldings } from './usage.ts';

/** The stable protected-item id of an Azure resource (ARM ids compare case-insensitively). */
export function itemIdFor(resourceId: string): string {
  return `vm-${createHash('sha256').update(resourceId.toLowerCase()).digest('hex').slice(0, 24)}`;
}

/** Lists the subscription's VMs and upserts one protected item each; returns the customer's items seen now. */
export async function syncInventory(
  db: Db,
  log: Logger,
  compute: ComputeManagementClient,
  customer: Customer,
): Promise<ProtectedItem[]> {
  const items: ProtectedItem[] = [];
  const allowance = await instanceAllowance(db, customer.id);
  const vms = [];
  for await (const vm of compute.virtualMachines.listAll()) vms.push(vm);
  vms.sort((a, b) => (a.name ?? '').localeCompare(b.name ?? ''));
  for (const vm of vms) {
    if (!vm.id || !vm.name) continue;
    if (allowance && !allowance.admits(itemIdFor(vm.id))) {
      log.warn(
        { customerId: customer.id, vm: vm.name, instances: allowance.max },
        'inventory_item_over_licence',
      );
      await auditInstanceSkipped(
        db,
        customer.id,
        { kind: 'vm', name: vm.name, resourceId: vm.id },
        allowance.max,
      );
      continue;
    }
    try {
      const item = await db
        .insertInto('protected_items')
        .values({
          id: itemIdFor(vm.id),
          customer_id: customer.id,
          kind: 'vm',
          name: vm.name,
          resource_id: vm.id,
          tags: JSON.stringify(vm.tags ?? {}),
        })
        .onConflict((oc) =>
          oc.column('id').doUpdateSet({
            name: vm.name!,
            resource_id: vm.id!,
            tags: JSON.stringify(vm.tags ?? {}),
          }),
        )
        .returningAll()
        .executeTakeFirstOrThrow();
      items.push(item);
    } catch (err) {
      // Two VMs of one name in different resource groups collide on (customer, name); report and go on.
      log.warn({ err, customerId: customer.id, resourceId: vm.id }, 'inventory_item_skipped');
    }
  }
  await recordHoldings(db, customer.id);
  log.info({ customerId: customer.id, items: items.length }, 'inventory_synced');
  return items;
}
