/**
 * Kept disk snapshots and restore point types. A backup keeps each disk's
 * newest incremental snapshot so that the next backup reads only what changed
 * since; snapshot policies keep snapshots as restore points of their own.
 * Each kept snapshot names the backup it fed and the snapshot restore point
 * it belongs to; deleting either restore point clears the link, and a
 * snapshot that nothing links to any more is deleted in Azure.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('restore_points')
    .addColumn('type', 'text', (c) =>
      c
        .notNull()
        .defaultTo('backup')
        .check(sql`type in ('backup', 'snapshot', 'manual_snapshot')`),
    )
    .addColumn('schedules', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .execute();

  await db.schema
    .createTable('disk_snapshots')
    .addColumn('snapshot_resource_id', 'text', (c) => c.primaryKey())
    .addColumn('customer_id', 'text', (c) => c.notNull().references('customers.id'))
    .addColumn('item_id', 'text', (c) => c.notNull())
    .addColumn('disk_resource_id', 'text', (c) => c.notNull())
    .addColumn('disk_name', 'text', (c) => c.notNull())
    .addColumn('disk_role', 'text', (c) => c.notNull())
    .addColumn('size_bytes', 'bigint', (c) => c.notNull())
    .addColumn('backup_point_id', 'text', (c) =>
      c.references('restore_points.id').onDelete('set null'),
    )
    .addColumn('snapshot_point_id', 'text', (c) =>
      c.references('restore_points.id').onDelete('set null'),
    )
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema
    .createIndex('disk_snapshots_disk')
    .on('disk_snapshots')
    .columns(['item_id', 'disk_resource_id', 'created_at'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('disk_snapshots').execute();
  await db.schema.alterTable('restore_points').dropColumn('schedules').execute();
  await db.schema.alterTable('restore_points').dropColumn('type').execute();
}
