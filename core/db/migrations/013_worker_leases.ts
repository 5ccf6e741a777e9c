/**
 * Worker leases: every process that takes jobs from the queue holds a row in
 * `workers` whose expiry it renews, records the queue jobs it is running in
 * `worker_jobs`, and stamps its id on the job sessions it opens and the task
 * slots it claims. When a lease lapses, any other process hands the dead
 * worker's jobs back to the queue and closes what it left open.
 */
import type { Kysely } from 'kysely';
import { sql } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .createTable('workers')
    .addColumn('id', 'text', (c) => c.primaryKey())
    .addColumn('host', 'text', (c) => c.notNull())
    .addColumn('pid', 'integer', (c) => c.notNull())
    .addColumn('role', 'text', (c) => c.notNull())
    .addColumn('started_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .addColumn('expires_at', 'timestamptz', (c) => c.notNull())
    .execute();

  await db.schema
    .createTable('worker_jobs')
    .addColumn('job_id', 'text', (c) => c.primaryKey())
    .addColumn('queue', 'text', (c) => c.notNull())
    .addColumn('worker_id', 'text', (c) => c.notNull())
    .addColumn('started_at', 'timestamptz', (c) => c.notNull().defaultTo(sql`now()`))
    .execute();
  await db.schema.createIndex('worker_jobs_worker').on('worker_jobs').column('worker_id').execute();

  await db.schema.alterTable('job_sessions').addColumn('worker_id', 'text').execute();
  await db.schema
    .createIndex('job_sessions_running_worker')
    .on('job_sessions')
    .column('worker_id')
    .where(sql.ref('status'), '=', 'running')
    .execute();
  await db.schema.alterTable('task_slots').addColumn('worker_id', 'text').execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.alterTable('task_slots').dropColumn('worker_id').execute();
  await db.schema.dropIndex('job_sessions_running_worker').execute();
  await db.schema.alterTable('job_sessions').dropColumn('worker_id').execute();
  await db.schema.dropTable('worker_jobs').execute();
  await db.schema.dropTable('workers').execute();
}
