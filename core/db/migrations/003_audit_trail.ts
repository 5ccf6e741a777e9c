import { sql, type Kysely } from 'kysely';

/**
 * The audit trail for auditors: indexes that serve the portal's filtered pages
 * (newest first by seq, keyset paging), and no UPDATE, DELETE or TRUNCATE on
 * the audit log for roles other than its owner (see core/audit-role.ts for the
 * application role's grants).
 */
export async function up(db: Kysely<unknown>): Promise<void> {
  // Each filter column with seq, so that a filtered page walks one index backwards.
  for (const [name, column] of [
    ['audit_log_actor_seq', 'actor_object_id'],
    ['audit_log_action_seq', 'action'],
    ['audit_log_outcome_seq', 'outcome'],
    ['audit_log_tenant_seq', 'actor_tenant_id'],
    ['audit_log_at', 'at'],
  ] as const) {
    const columns = column === 'at' ? ['at'] : [column, 'seq'];
    await db.schema.createIndex(name).on('audit_log').columns(columns).execute();
  }
  await sql`create index audit_log_customer_seq on audit_log ((details->>'customerId'), seq)`.execute(
    db,
  );

  await sql`revoke update, delete, truncate, references, trigger on audit_log from public`.execute(
    db,
  );
}

export async function down(db: Kysely<unknown>): Promise<void> {
  for (const name of [
    'audit_log_actor_seq',
    'audit_log_action_seq',
    'audit_log_outcome_seq',
    'audit_log_tenant_seq',
    'audit_log_at',
    'audit_log_customer_seq',
  ]) {
    await db.schema.dropIndex(name).ifExists().execute();
  }
}
