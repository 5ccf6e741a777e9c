/**
 * Azure SQL databases as protected items: a restore point of a database holds
 * a BACPAC instead of disks, described in its own column, and policies select
 * databases by name, id or resource id besides VMs and tags.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('restore_points').addColumn('bacpac', 'jsonb').execute();

  await db.schema
    .alterTable('policy_items')
    .dropConstraint('policy_items_selector_check')
    .execute();
  await db.schema
    .alterTable('policy_items')
    .addCheckConstraint('policy_items_selector_check', sql`selector in ('vm', 'database', 'tag')`)
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await sql`delete from policy_items where selector = 'database'`.execute(db);
  await db.schema
    .alterTable('policy_items')
    .dropConstraint('policy_items_selector_check')
    .execute();
  await db.schema
    .alterTable('policy_items')
    .addCheckConstraint('policy_items_selector_check', sql`selector in ('vm', 'tag')`)
    .execute();
  await db.schema.alterTable('restore_points').dropColumn('bacpac').execute();
}
