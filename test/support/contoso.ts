/**
 * The customer most tests and benchmarks talk about: Contoso, with its VM
 * web-01 and three daily restore points of it, and the people who use ACBA.
 * New tests and scripts seed through here instead of writing the rows again.
 */
import type { Db } from '../../core/db/database.ts';
import type { Role } from '../../core/db/schema.ts';

export const CONTOSO_TENANT = 'tenant-contoso';

/** When the seeded roles were granted: long ago, so the approver cooldown holds nobody back. */
const LONG_AGO = new Date('2026-01-01T00:00:00Z');

/** The customer Contoso, its VM web-01 (item-web-01) and restore points rp-web-01-0..2 of 2026-11-30 to 2026-12-02. */
export async function seedContoso(db: Db): Promise<void> {
  await db
    .insertInto('customers')
    .values({
      id: 'contoso',
      name: 'Contoso',
      tenant_id: CONTOSO_TENANT,
      subscription_id: 'sub-contoso',
    })
    .execute();
  await db
    .insertInto('protected_items')
    .values({
      id: 'item-web-01',
      customer_id: 'contoso',
      kind: 'vm',
      name: 'web-01',
      resource_id:
        '/subscriptions/sub-contoso/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/web-01',
    })
    .execute();
  const disks = JSON.stringify([
    { name: 'web-01-os', role: 'os', sizeBytes: 32 * 2 ** 30, storedBytes: 2 ** 30 },
  ]);
  await db
    .insertInto('restore_points')
    .values(
      ['2026-11-30T02:00:00Z', '2026-12-01T02:00:00Z', '2026-12-02T02:00:00Z'].map((at, i) => ({
        id: `rp-web-01-${i}`,
        customer_id: 'contoso',
        item_id: 'item-web-01',
        created_at: at,
        expires_at: '2027-12-31T00:00:00Z',
        manifest_path: `manifests/rp-web-01-${i}`,
        disks,
        size_bytes: 32 * 2 ** 30,
        stored_bytes: 2 ** 30,
        policy_name: 'daily-30',
      })),
    )
    .execute();
}

export interface SeededPerson {
  tenantId: string;
  objectId: string;
  displayName: string;
  role: Role;
}

/** Grants each person their role, long ago. */
export async function seedPeople(db: Db, people: SeededPerson[]): Promise<void> {
  await db
    .insertInto('principals')
    .values(
      people.map((p) => ({
        tenant_id: p.tenantId,
        object_id: p.objectId,
        display_name: p.displayName,
        role: p.role,
        granted_at: LONG_AGO,
        granted_by: 'seed',
      })),
    )
    .execute();
}
