/**
 * The grants for ACBA's application database role on PostgreSQL.
 *
 * The tables belong to an owner role that runs the migrations; the service
 * connects as a separate application role that may read and write the other
 * tables but only INSERT and SELECT the audit log. Not owning the table, the
 * application role can neither disable the append-only triggers nor drop or
 * alter the table, so the triggers and the missing privileges both hold.
 */
import { badInput } from './errors.ts';

/** The SQL statements an operator runs as the owner to set up `role` (which must exist). */
export function applicationRoleSql(role: string): string[] {
  if (!/^[a-z_][a-z0-9_]{0,62}$/.test(role)) {
    throw badInput(
      `"${role}" is not a plain PostgreSQL role name; use lower-case letters, digits and underscores.`,
    );
  }
  return [
    `grant usage on schema public to ${role}`,
    `grant select, insert, update, delete on all tables in schema public to ${role}`,
    `grant usage, select on all sequences in schema public to ${role}`,
    `revoke update, delete, truncate, references, trigger on audit_log from ${role}`,
    `revoke update, delete, truncate, references, trigger on audit_log from public`,
  ];
}
