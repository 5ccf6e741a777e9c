/**
 * Auditors filter the trail by a person's name as well as by object id; names
 * are compared without regard to case, newest entries first.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await sql`create index audit_log_actor_name_seq on audit_log (lower(actor_name), seq)`.execute(
    db,
  );
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema.dropIndex('audit_log_actor_name_seq').ifExists().execute();
}
