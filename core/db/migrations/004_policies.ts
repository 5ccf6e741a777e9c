/**
 * Backup policies and what they select, one row per scheduled run
 * (unique per policy and slot, so a slot runs once across workers), VM tags for
 * selection by tag, the policy behind each restore point, and leases that keep
 * pruning and backups apart.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('policies')
    .addColumn('name', 'text', (c) => c.primaryKey())
    .addColumn('customer_id', 'text', (c) => c.notNull().references('customers.id'))
    .addColumn('priority', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('enabled', 'boolean', (c) => c.notNull().defaultTo(true))
    .addColumn('type', 'text', (c) =>
      c.notNull().check(sql`type in ('snapshots', 'backups', 'both')`),
    )
    .addColumn('time_zone', 'text', (c) => c.notNull())
    .addColumn('spec', 'jsonb', (c) => c.notNull())
    .addColumn('active_from', 'timestamptz', (c) => c.notNull())
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();

  await db.schema
    .createTable('policy_items')
    .addColumn('policy_name', 'text', (c) =>
      c.notNull().references('policies.name').onDelete('cascade'),
    )
    .addColumn('selector', 'text', (c) => c.notNull().check(sql`selector in ('vm', 'tag')`))
    .addColumn('value', 'text', (c) => c.notNull())
    .addPrimaryKeyConstraint('policy_items_pk', ['policy_name', 'selector', 'value'])
    .execute();

  await db.schema
    .createTable('policy_runs')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('policy_name', 'text', (c) =>
      c.notNull().references('policies.name').onDelete('cascade'),
    )
    .addColumn('slot_key', 'text', (c) => c.notNull())
    .addColumn('slot_at', 'timestamptz', (c) => c.notNull())
    .addColumn('trigger', 'text', (c) => c.notNull())
    .addColumn('expires_at', 'timestamptz')
    .addColumn('started_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('items', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('skipped', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addUniqueConstraint('policy_runs_slot', ['policy_name', 'slot_key'])
    .execute();

  await db.schema
    .alterTable('protected_items')
    .addColumn('tags', 'jsonb', (c) => c.notNull().defaultTo(sql`'{}'::jsonb`))
    .execute();
  await db.schema.alterTable('restore_points').addColumn('policy_name', 'text').execute();
  await db.schema
    .createIndex('restore_points_expiry')
    .on('restore_points')
    .column('expires_at')
    .execute();

  await db.schema
    .createTable('repository_leases')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('kind', 'text', (c) => c.notNull().check(sql`kind in ('backup', 'prune')`))
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('repository_leases').execute();
  await db.schema.dropIndex('restore_points_expiry').execute();
  await db.schema.alterTable('restore_points').dropColumn('policy_name').execute();
  await db.schema.alterTable('protected_items').dropColumn('tags').execute();
  await db.schema.dropTable('policy_runs').execute();
  await db.schema.dropTable('policy_items').execute();
  await db.schema.dropTable('policies').execute();
}
