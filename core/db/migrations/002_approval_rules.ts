/**
 * Request kinds with a ticket reference and the rule that set their
 * approvals, a race-safe approval count, a start-by time for approved work,
 * the service model per customer, and when and by whom each role was granted.
 */
import { sql, type Kysely } from 'kysely';

export async function up(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('requests')
    .addColumn('ticket', 'text')
    .addColumn('approval_rule', 'text')
    .addColumn('approvals_given', 'integer', (c) => c.notNull().defaultTo(0))
    .addColumn('start_by', 'timestamptz')
    .execute();
  await sql`update requests set approvals_given = (select count(*) from decisions d where d.request_id = requests.id and d.decision = 'approve')`.execute(
    db,
  );
  await db.schema
    .alterTable('customers')
    .addColumn('service_model', 'text', (c) =>
      c
        .notNull()
        .defaultTo('managed')
        .check(sql`service_model in ('managed', 'unmanaged')`),
    )
    .execute();
  // Roles granted before this migration have no recorded time (null): the cooldown cannot apply to them.
  await db.schema
    .alterTable('principals')
    .addColumn('granted_at', 'timestamptz')
    .addColumn('granted_by', 'text')
    .execute();
}

export async function down(db: Kysely<unknown>): Promise<void> {
  await db.schema
    .alterTable('principals')
    .dropColumn('granted_at')
    .dropColumn('granted_by')
    .execute();
  await db.schema.alterTable('customers').dropColumn('service_model').execute();
  await db.schema
    .alterTable('requests')
    .dropColumn('ticket')
    .dropColumn('approval_rule')
    .dropColumn('approvals_given')
    .dropColumn('start_by')
    .execute();
}
