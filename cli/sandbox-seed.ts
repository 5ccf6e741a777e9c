/**
 * Registers the sandbox's seeded customer tenants and people in ACBA's
 * database, as an operator would for real customers. Idempotent: a restart
 * leaves existing rows as they are.
 */
import type { Db } from '../core/db/database.ts';
import { sqlLoginsOf, type SqlLogins } from '../engine/sql-logins.ts';
import type { SandboxSeed } from '../sandbox/index.ts';

export async function seedFromSandbox(db: Db, seed: SandboxSeed): Promise<void> {
  for (const customer of seed.customers) {
    await db
      .insertInto('customers')
      .values({
        id: customer.id,
        name: customer.name,
        tenant_id: customer.tenantId,
        subscription_id: customer.subscriptionId,
      })
      .onConflict((oc) => oc.column('id').doNothing())
      .execute();
  }
  for (const user of seed.users) {
    await db
      .insertInto('principals')
      .values({
        tenant_id: user.tenantId,
        object_id: user.objectId,
        display_name: user.displayName,
        role: user.role,
        // Seeded long ago, so the approver cooldown does not hold back the sandbox's approvers.
        granted_at: new Date('2026-01-01T00:00:00Z'),
        granted_by: 'seed',
      })
      .onConflict((oc) => oc.columns(['tenant_id', 'object_id', 'role']).doNothing())
      .execute();
  }
}

/** The SQL logins of the sandbox's logical servers, as an operator would list them in ACBA_SQL_LOGINS_FILE. */
export function sandboxSqlLogins(seed: SandboxSeed): SqlLogins {
  const servers = seed.customers.flatMap((customer) => customer.sqlServers);
  return sqlLoginsOf(
    Object.fromEntries(
      servers.map((server) => [
        server.resourceId,
        {
          administratorLogin: server.administratorLogin,
          administratorLoginPassword: server.administratorLoginPassword,
        },
      ]),
    ),
  );
}
