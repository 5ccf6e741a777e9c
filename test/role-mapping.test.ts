/**
 * Roles from Entra ID: with a role mapping configured, signing in through the
 * sandbox's OpenID provider grants the roles the token's app roles map to,
 * revokes mapped roles the token no longer carries, leaves roles granted by
 * hand alone, and writes each change to the audit trail. A role granted this
 * way starts the approver cooldown, so a fresh approver cannot approve at once.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FROM_ENTRA_ID, loadRoleMapping } from '../approvals/index.ts';
import { AcbaError } from '../core/errors.ts';
import { startOidcSandbox, type OidcSandbox } from './support/oidc-sandbox.ts';
import { PortalClient } from './support/portal-client.ts';

let sandbox: OidcSandbox;

beforeAll(async () => {
  sandbox = await startOidcSandbox({
    approvals: true,
    roleMapping: loadRoleMapping(
      path.resolve(import.meta.dirname, '../examples/role-mapping.json'),
    ),
  });
}, 120_000);

afterAll(async () => {
  await sandbox?.close();
});

async function rolesOf(name: string) {
  const user = sandbox.user(name);
  return sandbox.database.db
    .selectFrom('principals')
    .select(['role', 'granted_by', 'granted_at'])
    .where('tenant_id', '=', user.tenantId)
    .where('object_id', '=', user.objectId)
    .orderBy('role')
    .execute();
}

async function roleAudit(name: string) {
  const user = sandbox.user(name);
  return sandbox.database.db
    .selectFrom('audit_log')
    .select(['action', 'actor_name', 'channel', 'details'])
    .where('resource', '=', `principal/${user.tenantId}/${user.objectId}`)
    .orderBy('seq')
    .execute();
}

describe('roles from the app roles in the sign-in token', () => {
  it('grants a mapped role at sign-in, and the new approver waits out the cooldown', async () => {
    const lee = sandbox.user('Lee Gu');
    await sandbox.database.db
      .deleteFrom('principals')
      .where('object_id', '=', lee.objectId)
      .execute();

    const client = new PortalClient(sandbox.portalUrl);
    await client.signInWithOidc(lee.objectId);
    const roles = await rolesOf('Lee Gu');
    expect(roles.map((r) => `${r.role}:${r.granted_by}`)).toEqual([`approver:${FROM_ENTRA_ID}`]);
    expect(Date.now() - new Date(roles[0]!.granted_at!).getTime()).toBeLessThan(60_000);
    expect(await roleAudit('Lee Gu')).toEqual([
      expect.objectContaining({
        action: 'role.grant',
        actor_name: 'Microsoft Entra ID',
        channel: 'portal',
        details: expect.objectContaining({ role: 'approver' }),
      }),
    ]);

    const alex = sandbox.user('Alex Wilber');
    const request = await sandbox.approvals!.requestFileRestore(
      { objectId: alex.objectId, tenantId: alex.tenantId, name: alex.displayName, channel: 'bot' },
      {
        vmName: 'web-01',
        path: '/etc/hosts',
        reason: 'The hosts file was emptied by a script; we need yesterday’s copy.',
      },
    );
    const refused = await sandbox
      .approvals!.decide(
        {
          objectId: lee.objectId,
          tenantId: lee.tenantId,
          name: lee.displayName,
          channel: 'portal',
        },
        request.id,
        'approve',
        'Looks fine to me, approving.',
      )
      .then(
        () => undefined,
        (e: unknown) => e as AcbaError,
      );
    expect(refused?.kind).toBe('forbidden');
    expect(refused?.message).toMatch(/hours/);
  });

  it('revokes a mapped role the token no longer carries, and keeps roles granted by hand', async () => {
    const isaiah = sandbox.user('Isaiah Langer');
    await sandbox.database.db
      .insertInto('principals')
      .values({
        tenant_id: isaiah.tenantId,
        object_id: isaiah.objectId,
        display_name: isaiah.displayName,
        role: 'approver',
        granted_at: new Date('2026-01-01T00:00:00Z'),
        granted_by: FROM_ENTRA_ID,
      })
      .execute();

    const token = await sandbox.accessToken('Isaiah Langer');
    const me = await fetch(`${sandbox.portalUrl}/api/v1/me`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(me.status).toBe(200);
    expect(((await me.json()) as { roles: string[] }).roles).toEqual(['auditor']);

    const roles = await rolesOf('Isaiah Langer');
    expect(roles.map((r) => `${r.role}:${r.granted_by}`)).toEqual(['auditor:seed']);
    const audit = await roleAudit('Isaiah Langer');
    expect(audit.map((e) => `${e.action}/${e.channel}`)).toEqual(['role.revoke/api']);
  });

  it('changes nothing, and writes nothing, when the token matches the roles held', async () => {
    const before = await roleAudit('Adele Vance');
    const token = await sandbox.accessToken('Adele Vance');
    for (let i = 0; i < 2; i += 1) {
      const me = await fetch(`${sandbox.portalUrl}/api/v1/me`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(me.status).toBe(200);
    }
    expect(await roleAudit('Adele Vance')).toEqual(before);
  });
});

describe('loadRoleMapping', () => {
  it('names a file that is not JSON and a role that does not exist', () => {
    expect(() => loadRoleMapping('/nonexistent/mapping.json')).toThrow(/ACBA_ROLE_MAPPING/);
    expect(() => loadRoleMapping(path.resolve(import.meta.dirname, '../package.json'))).toThrow(
      /role mapping is invalid/,
    );
  });
});
