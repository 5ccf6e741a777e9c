/**
 * Who is looking, and what they may see. Provider staff (any principal of the
 * provider's tenant) see every customer; a customer's staff see only their
 * own customer. Anyone else is refused, even with a valid sign-in.
 */
import { syncRolesFromClaims, type RoleMapping } from '../approvals/index.ts';
import type { Db } from '../core/db/database.ts';
import type { AuditChannel, Role } from '../core/db/schema.ts';
import { forbidden } from '../core/errors.ts';
import type { OidcIdentity } from './oidc.ts';
import type { SignedInIdentity } from './session.ts';

/**
 * With a role mapping configured, brings the person's ACBA roles in line with
 * the app roles and groups in the token they just signed in with.
 */
export async function applyRoleClaims(
  db: Db,
  mapping: RoleMapping | undefined,
  providerTenantId: string,
  identity: OidcIdentity,
  channel: Extract<AuditChannel, 'portal' | 'api'>,
): Promise<void> {
  if (!mapping) return;
  // People of tenants that are neither the provider nor a customer get no rows at all.
  const known =
    identity.tenantId === providerTenantId ||
    (await db
      .selectFrom('customers')
      .select('id')
      .where('tenant_id', '=', identity.tenantId)
      .executeTakeFirst()) !== undefined;
  if (!known) return;
  await syncRolesFromClaims(db, identity, identity.roleClaims, mapping, channel);
}

export type Scope =
  { kind: 'provider' } | { kind: 'customer'; customerId: string; customerName: string };

export interface Viewer {
  objectId: string;
  tenantId: string;
  name: string;
  roles: Role[];
  scope: Scope;
}

/** Resolves the signed-in identity to a viewer; throws forbidden for unknown principals and tenants. */
export async function resolveViewer(
  db: Db,
  identity: SignedInIdentity,
  providerTenantId: string,
): Promise<Viewer> {
  const rows = await db
    .selectFrom('principals')
    .selectAll()
    .where('tenant_id', '=', identity.tenantId)
    .where('object_id', '=', identity.objectId)
    .execute();
  const first = rows[0];
  if (!first) {
    throw forbidden(
      'Your account has no role in ACBA. Ask your provider to add you, then sign in again.',
      {
        objectId: identity.objectId,
        tenantId: identity.tenantId,
      },
    );
  }
  const base = {
    objectId: identity.objectId,
    tenantId: identity.tenantId,
    name: first.display_name,
    roles: rows.map((r) => r.role),
  };

  if (identity.tenantId === providerTenantId) return { ...base, scope: { kind: 'provider' } };

  const customer = await db
    .selectFrom('customers')
    .select(['id', 'name'])
    .where('tenant_id', '=', identity.tenantId)
    .executeTakeFirst();
  if (!customer) {
    throw forbidden(
      `Your tenant ${identity.tenantId} is not a customer of this provider. Ask your provider to set it up.`,
      {
        tenantId: identity.tenantId,
      },
    );
  }
  return {
    ...base,
    scope: { kind: 'customer', customerId: customer.id, customerName: customer.name },
  };
}

/** The customer id a query must be limited to, or undefined for provider staff. */
export function customerFilter(viewer: Viewer): string | undefined {
  return viewer.scope.kind === 'customer' ? viewer.scope.customerId : undefined;
}
