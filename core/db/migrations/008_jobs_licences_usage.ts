/**
 * Job sessions and their tasks (one backup run, one task per disk or
 * database), customers' licences, the slots that bound a customer's
 * concurrent tasks across every worker, and usage per customer and UTC day.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('job_sessions')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('customer_id', 'text', (c) => c.notNull().references('customers.id'))
    .addColumn('item_id', 'text', (c) => c.notNull())
    .addColumn('item_name', 'text', (c) => c.notNull())
    .addColumn('kind', 'text', (c) => c.notNull().defaultTo('backup'))
    .addColumn('trigger', 'text', (c) => c.notNull())
    .addColumn('policy_name', 'text')
    .addColumn('status', 'text', (c) =>
      c.notNull().check(sql`status in ('running', 'succeeded', 'warning', 'failed')`),
    )
    .addColumn('started_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('finished_at', 'timestamptz')
    .addColumn('bytes_read', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('bytes_stored', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('warnings', 'jsonb', (c) => c.notNull().defaultTo(sql`'[]'::jsonb`))
    .addColumn('error_kind', 'text')
    .addColumn('error', 'text')
    .addColumn('restore_point_id', 'text')
    .execute();
  await db.schema
    .createIndex('job_sessions_customer_time')
    .on('job_sessions')
    .columns(['customer_id', 'started_at'])
    .execute();
  await db.schema
    .createIndex('job_sessions_item_time')
    .on('job_sessions')
    .columns(['item_id', 'started_at'])
    .execute();

  await db.schema
    .createTable('job_tasks')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('session_id', 'text', (c) =>
      c.notNull().references('job_sessions.id').onDelete('cascade'),
    )
    .addColumn('customer_id', 'text', (c) => c.notNull())
    .addColumn('subject_kind', 'text', (c) => c.notNull())
    .addColumn('subject_name', 'text', (c) => c.notNull())
    .addColumn('status', 'text', (c) =>
      c.notNull().check(sql`status in ('waiting', 'running', 'succeeded', 'failed')`),
    )
    .addColumn('attempts', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('slot', 'integer')
    .addColumn('total_bytes', 'bigint')
    .addColumn('bytes_done', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('bytes_stored', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('created_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('started_at', 'timestamptz')
    .addColumn('finished_at', 'timestamptz')
    .addColumn('progress_at', 'timestamptz')
    .addColumn('error', 'text')
    .execute();
  await db.schema
    .createIndex('job_tasks_session')
    .on('job_tasks')
    .columns(['session_id', 'created_at'])
    .execute();

  await db.schema
    .createTable('licences')
    .addColumn('customer_id', 'text', (c) =>
      c.primaryKey().references('customers.id').onDelete('cascade'),
    )
    .addColumn('max_instances', 'integer', (c) => c.check(sql`max_instances >= 0`))
    .addColumn('allocated_bytes', 'bigint', (c) => c.check(sql`allocated_bytes >= 0`))
    .addColumn('max_tasks', 'integer', (c) => c.check(sql`max_tasks >= 1`))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('updated_by', 'text', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('task_slots')
    .addColumn('customer_id', 'text', (c) => c.notNull())
    .addColumn('slot', 'integer', (c) => c.notNull())
    .addColumn('holder', 'text')
    .addColumn('expires_at', 'timestamptz')
    .addPrimaryKeyConstraint('task_slots_pk', ['customer_id', 'slot'])
    .execute();

  await db.schema
    .createTable('usage_daily')
    .addColumn('customer_id', 'text', (c) => c.notNull())
    .addColumn('day', 'date', (c) => c.notNull())
    .addColumn('protected_instances', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('stored_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('peak_tasks', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('egress_bytes', 'bigint', (c) => c.notNull().defaultTo(0))
    .addColumn('updated_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addPrimaryKeyConstraint('usage_daily_pk', ['customer_id', 'day'])
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropTable('usage_daily').execute();
  await db.schema.dropTable('task_slots').execute();
  await db.schema.dropTable('licences').execute();
  await db.schema.dropTable('job_tasks').execute();
  await db.schema.dropTable('job_sessions').execute();
}
