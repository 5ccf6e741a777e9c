/**
 * Hostile input against the approval workflow outside Teams (deciding in the
 * portal and the API), the audit trail's filters and the role mapping, each
 * test named after the attack: malformed and oversized bodies, broken
 * percent-encoding, impossible dates, names that would pass for someone
 * else's, tokens of unknown tenants. A real portal and API with real sign-in
 * (test/support/oidc-sandbox.ts) and the example role mapping.
 */
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Actor } from '../approvals/index.ts';
import { loadRoleMapping } from '../approvals/index.ts';
import type { RequestRow } from '../core/db/schema.ts';
import { startOidcSandbox, type OidcSandbox } from './support/oidc-sandbox.ts';
import { PortalClient } from './support/portal-client.ts';

let sandbox: OidcSandbox;
let adeleToken: string;
let auditorToken: string;

const reason = 'The deploy on Monday overwrote the nginx configuration; we need it back.';
const comment = 'Confirmed with the customer by phone, ticket checked.';
const UNKNOWN_TENANT = 'dddddddd-0000-4000-8000-000000000009';

beforeAll(async () => {
  sandbox = await startOidcSandbox({
    approvals: true,
    roleMapping: loadRoleMapping(
      path.resolve(import.meta.dirname, '../examples/role-mapping.json'),
    ),
  });
  adeleToken = await sandbox.accessToken('Adele Vance');
  auditorToken = await sandbox.accessToken('Isaiah Langer');
}, 120_000);

afterAll(async () => {
  await sandbox?.close();
});

function actorOf(name: string): Actor {
  const user = sandbox.user(name);
  return {
    objectId: user.objectId,
    tenantId: user.tenantId,
    name: user.displayName,
    channel: 'bot',
  };
}

async function fileRestoreRequest(): Promise<RequestRow> {
  return sandbox.approvals!.requestFileRestore(actorOf('Alex Wilber'), {
    vmName: 'web-01',
    path: '/etc/nginx/nginx.conf',
    reason,
  });
}

async function api(
  pathname: string,
  token: string,
  init: { method?: string; body?: string; contentType?: string } = {},
): Promise<{
  status: number;
  body: { error?: unknown; message?: string } & Record<string, unknown>;
}> {
  const res = await fetch(`${sandbox.portalUrl}/api/v1${pathname}`, {
    method: init.method ?? 'GET',
    body: init.body,
    headers: {
      authorization: `Bearer ${token}`,
      ...(init.body !== undefined
        ? { 'content-type': init.contentType ?? 'application/json' }
        : {}),
    },
  });
  const text = await res.text();
  let body: Record<string, unknown> = {};
  try {
    body = JSON.parse(text) as Record<string, unknown>;
  } catch {
    body = { text };
  }
  return { status: res.status, body };
}

async function statusOf(requestId: string) {
  return sandbox.database.db
    .selectFrom('requests')
    .select(['status', 'approvals_given'])
    .where('id', '=', requestId)
    .executeTakeFirstOrThrow();
}

/** A token the identity stand-in signs, for a person of `tenantId` with the given claims. */
async function tokenFor(oid: string, tenantId: string, claims: Record<string, unknown>) {
  return sandbox.signWithIdentityKey({
    oid,
    tid: tenantId,
    sub: oid,
    aud: sandbox.clientId,
    iss: `https://login.microsoftonline.com/${tenantId}/v2.0`,
    ...claims,
  });
}

async function principalsOf(oid: string) {
  return sandbox.database.db
    .selectFrom('principals')
    .select(['tenant_id', 'role', 'display_name'])
    .where('object_id', '=', oid)
    .execute();
}

describe('deciding through the API with a hostile body or id', () => {
  it('malformed JSON body is a 400 bad_input, not a 500', async () => {
    const request = await fileRestoreRequest();
    const res = await api(`/requests/${request.id}/decisions`, adeleToken, {
      method: 'POST',
      body: '{"decision":',
    });
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('bad_input');
  });

  it('JSON body that is not an object ("approve", 42, null) is a 400, not a 500', async () => {
    const request = await fileRestoreRequest();
    for (const body of ['"approve"', '42', 'null']) {
      const res = await api(`/requests/${request.id}/decisions`, adeleToken, {
        method: 'POST',
        body,
      });
      expect(res.status, body).toBe(400);
    }
    expect(await statusOf(request.id)).toMatchObject({ status: 'pending', approvals_given: 0 });
  });

  it('1 MB JSON body is a 413 that says the body is too large, not a 500', async () => {
    const request = await fileRestoreRequest();
    const res = await api(`/requests/${request.id}/decisions`, adeleToken, {
      method: 'POST',
      body: JSON.stringify({ decision: 'approve', comment: 'x'.repeat(1_000_000) }),
    });
    expect(res.status).toBe(413);
    expect(await statusOf(request.id)).toMatchObject({ status: 'pending', approvals_given: 0 });
  });

  it('request id with broken percent-encoding (%E0%A4%A, %) is a 400 or 404, not a 500', async () => {
    for (const id of ['%E0%A4%A', '%']) {
      const decided = await api(`/requests/${id}/decisions`, adeleToken, {
        method: 'POST',
        body: JSON.stringify({ decision: 'reject', comment }),
      });
      expect(decided.status, `POST ${id}`).toBeLessThan(500);
      const read = await api(`/requests/${id}`, adeleToken);
      expect(read.status, `GET ${id}`).toBeLessThan(500);
    }
  });
});

describe('deciding in the portal with a hostile form or id', () => {
  async function signedIn(name: string) {
    const client = new PortalClient(sandbox.portalUrl);
    await client.signInWithOidc(sandbox.user(name).objectId);
    return client;
  }

  it('100 KB form post is a 413, not an error 500 page', async () => {
    const request = await fileRestoreRequest();
    const adele = await signedIn('Adele Vance');
    const page = await (await adele.get(`/portal/requests/${request.id}`)).text();
    const token = /name="_token" value="([^"]+)"/.exec(page)![1]!;
    const res = await adele.postRaw(`/portal/requests/${request.id}/decide`, {
      decision: 'approve',
      comment: 'x'.repeat(100_000),
      _token: token,
    });
    expect(res.status).toBe(413);
    expect(await statusOf(request.id)).toMatchObject({ status: 'pending', approvals_given: 0 });
  });

  it('request id with broken percent-encoding in the decide URL is not an error 500', async () => {
    const adele = await signedIn('Adele Vance');
    const request = await fileRestoreRequest();
    const page = await (await adele.get(`/portal/requests/${request.id}`)).text();
    const token = /name="_token" value="([^"]+)"/.exec(page)![1]!;
    const res = await adele.postRaw('/portal/requests/%E0%A4%A/decide', {
      decision: 'approve',
      comment,
      _token: token,
    });
    expect(res.status).toBeLessThan(500);
    expect((await adele.get('/portal/requests/%E0%A4%A')).status).toBeLessThan(500);
  });
});

describe('a request written by a provider operator', () => {
  it("a second provider approver approves an operator's data access through the API", async () => {
    const request = await sandbox.approvals!.createRequest(actorOf('Nestor Wilke'), {
      kind: 'data_access',
      target: { customerId: 'contoso', purpose: 'Check a reported corruption in the backup.' },
      reason,
    });
    const res = await api(`/requests/${request.id}/decisions`, adeleToken, {
      method: 'POST',
      body: JSON.stringify({ decision: 'approve', comment }),
    });
    expect(res.body.message ?? '').not.toContain("which is not the provider's");
    expect(res.status).toBe(201);
    expect(await statusOf(request.id)).toMatchObject({ status: 'approved', approvals_given: 1 });
  });
});

describe('audit filters with impossible or out-of-range dates', () => {
  it('from=0000-01-01 is a 400 naming "from", not a 500', async () => {
    const res = await api('/audit?from=0000-01-01', auditorToken);
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('bad_input');
  });

  it('to=9999-12-31 is answered (400 or the entries), not a 500', async () => {
    const res = await api('/audit?to=9999-12-31', auditorToken);
    expect(res.status).toBeLessThan(500);
    const client = new PortalClient(sandbox.portalUrl);
    await client.signInWithOidc(sandbox.user('Isaiah Langer').objectId);
    expect((await client.get('/portal/audit?to=9999-12-31')).status).toBeLessThan(500);
  });

  it('from=2026-02-30 (no such day) is a 400, not silently 2026-03-02', async () => {
    const res = await api('/audit?from=2026-02-30', auditorToken);
    expect(res.status).toBe(400);
    expect(res.body.message).toContain('"from"');
  });

  it('from=2026-12-01 junk (trailing text) is a 400', async () => {
    const res = await api(`/audit?from=${encodeURIComponent('2026-12-01 junk')}`, auditorToken);
    expect(res.status).toBe(400);
  });
});

describe('role mapping with hostile token claims', () => {
  const contoso = () => sandbox.user('Alex Wilber').tenantId;

  it('name claim holding a NUL character signs in (no 500)', async () => {
    const oid = '10000000-0000-4000-8000-0000000000a1';
    const token = await tokenFor(oid, contoso(), {
      roles: ['ACBA.Requester'],
      name: 'Eve\u0000Evil',
    });
    const res = await api('/me', token);
    expect(res.status).toBe(200);
    expect(await principalsOf(oid)).toHaveLength(1);
  });

  it('name claim of 10,000 characters is stored bounded (at most 300 characters)', async () => {
    const oid = '10000000-0000-4000-8000-0000000000a2';
    const token = await tokenFor(oid, contoso(), {
      roles: ['ACBA.Requester'],
      name: 'N'.repeat(10_000),
    });
    expect((await api('/me', token)).status).toBe(200);
    const [row] = await principalsOf(oid);
    expect(row!.display_name.length).toBeLessThanOrEqual(300);
    const grant = await sandbox.database.db
      .selectFrom('audit_log')
      .select('details')
      .where('resource', '=', `principal/${contoso()}/${oid}`)
      .executeTakeFirstOrThrow();
    expect(String((grant.details as { person?: string }).person).length).toBeLessThanOrEqual(400);
  });

  it('name claim with control characters and a right-to-left override is stored clean', async () => {
    const oid = '10000000-0000-4000-8000-0000000000a3';
    const token = await tokenFor(oid, contoso(), {
      roles: ['ACBA.Requester'],
      name: 'Adele Vance\u202e\u0007\n',
    });
    expect((await api('/me', token)).status).toBe(200);
    const [row] = await principalsOf(oid);
    expect(row!.display_name).not.toMatch(
      /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069]/,
    );
  });

  it('token of an unknown tenant carrying ACBA.Approver leaves no principal and no role.grant', async () => {
    const oid = '10000000-0000-4000-8000-0000000000a4';
    const token = await tokenFor(oid, UNKNOWN_TENANT, {
      roles: ['ACBA.Approver'],
      name: 'Stranger',
    });
    const res = await api('/me', token);
    expect(res.status).toBe(403);
    expect(await principalsOf(oid)).toEqual([]);
    const grants = await sandbox.database.db
      .selectFrom('audit_log')
      .select('seq')
      .where('actor_tenant_id', '=', UNKNOWN_TENANT)
      .execute();
    expect(grants).toEqual([]);
  });
});
