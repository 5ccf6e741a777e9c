/**
 * Keeping the principals table in step with Entra ID. When a role mapping is
 * configured, every sign-in (portal, Teams tab, API token) brings the person's
 * app roles and group ids; the roles they map to are granted at that moment
 * (so a new approver waits out the cooldown before approving) and roles that
 * came from the mapping but are no longer in the token are revoked. Roles an
 * operator granted by hand, and the sandbox's seeded ones, are left alone.
 * Each grant and revocation is written to the audit log.
 */
import { appendAudit, type AuditActor } from '../core/audit.ts';
import type { Db } from '../core/db/database.ts';
import type { AuditChannel, Role } from '../core/db/schema.ts';
import { rolesFromClaims, type RoleMapping } from './roles.ts';

/** `granted_by` of roles that follow the token claims. */
export const FROM_ENTRA_ID = 'entra-id';

const entraId = (tenantId: string): AuditActor => ({
  objectId: FROM_ENTRA_ID,
  tenantId,
  name: 'Microsoft Entra ID',
  role: 'identity',
});

export interface SignedInPerson {
  objectId: string;
  tenantId: string;
  name?: string;
}

export interface RoleChanges {
  granted: Role[];
  revoked: Role[];
}

/** Grants the roles the claims map to and revokes mapped roles the claims no longer carry. */
export async function syncRolesFromClaims(
  db: Db,
  person: SignedInPerson,
  claims: Record<string, unknown>,
  mapping: RoleMapping,
  channel: AuditChannel,
): Promise<RoleChanges> {
  const wanted = rolesFromClaims(claims, mapping);
  const held = await db
    .selectFrom('principals')
    .select(['role', 'granted_by', 'display_name'])
    .where('tenant_id', '=', person.tenantId)
    .where('object_id', '=', person.objectId)
    .execute();
  const name = person.name?.trim() || held[0]?.display_name || person.objectId;

  const granted: Role[] = [];
  for (const role of wanted.filter((r) => !held.some((h) => h.role === r))) {
    // Two sign-ins at once: the primary key lets one of them grant the role.
    const inserted = await db
      .insertInto('principals')
      .values({
        tenant_id: person.tenantId,
        object_id: person.objectId,
        display_name: name,
        role,
        granted_at: new Date(),
        granted_by: FROM_ENTRA_ID,
      })
      .onConflict((oc) => oc.columns(['tenant_id', 'object_id', 'role']).doNothing())
      .returning('role')
      .executeTakeFirst();
    if (inserted) granted.push(role);
  }

  const revoked: Role[] = [];
  for (const row of held.filter(
    (h) => h.granted_by === FROM_ENTRA_ID && !wanted.includes(h.role),
  )) {
    const deleted = await db
      .deleteFrom('principals')
      .where('tenant_id', '=', person.tenantId)
      .where('object_id', '=', person.objectId)
      .where('role', '=', row.role)
      .where('granted_by', '=', FROM_ENTRA_ID)
      .returning('role')
      .executeTakeFirst();
    if (deleted) revoked.push(row.role);
  }

  for (const [action, roles] of [
    ['role.grant', granted],
    ['role.revoke', revoked],
  ] as const) {
    for (const role of roles) {
      await appendAudit(db, {
        actor: entraId(person.tenantId),
        channel,
        action,
        resource: `principal/${person.tenantId}/${person.objectId}`,
        outcome: 'success',
        details: { role, person: name, source: 'token claims (app roles and groups)' },
      });
    }
  }
  return { granted, revoked };
}
