/**
 * The /api/v1 JSON API with bearer tokens from the sandbox's OpenID provider:
 * each role sees what the portal would show it and no more, and a missing,
 * forged, expired or misdirected token is refused with 401.
 */
import { generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startOidcSandbox, type OidcSandbox } from './support/oidc-sandbox.ts';

let sandbox: OidcSandbox;

beforeAll(async () => {
  sandbox = await startOidcSandbox();
}, 180_000);

afterAll(async () => {
  await sandbox?.close();
});

async function call(path: string, token?: string, method = 'GET') {
  const res = await fetch(`${sandbox.portalUrl}/api/v1${path}`, {
    method,
    headers: token ? { authorization: `Bearer ${token}` } : {},
  });
  return { status: res.status, body: await res.json(), headers: res.headers };
}

function claimsOf(name: string) {
  const user = sandbox.user(name);
  return {
    oid: user.objectId,
    tid: user.tenantId,
    sub: user.objectId,
    aud: sandbox.clientId,
    iss: `https://login.microsoftonline.com/${user.tenantId}/v2.0`,
  };
}

describe('API for a customer', () => {
  it('shows a Contoso requester only Contoso restore points, requests and audit entries', async () => {
    const token = await sandbox.accessToken('Alex Wilber');

    const me = await call('/me', token);
    expect(me.status).toBe(200);
    expect(me.body.scope).toEqual({
      kind: 'customer',
      customerId: 'contoso',
      customerName: 'Contoso',
    });

    const points = await call('/restore-points?customer=northwind', token);
    expect(points.body.restorePoints.map((p: { id: string }) => p.id)).toEqual(['rp-co']);

    const requests = await call('/requests', token);
    expect(requests.body.requests.map((r: { id: string }) => r.id)).toEqual(['req-co']);
    expect(requests.body.requests[0]).not.toHaveProperty('approval_card');

    const audit = await call('/audit', token);
    expect(JSON.stringify(audit.body)).not.toContain('northwind');
  });

  it("answers 404 with the error kind for another customer's request", async () => {
    const token = await sandbox.accessToken('Alex Wilber');
    const other = await call('/requests/req-nw', token);
    expect(other.status).toBe(404);
    expect(other.body.error).toBe('not_found');
    expect(other.body.message).toContain('req-nw');
  });
});

describe('API for provider staff', () => {
  it('shows an auditor every customer, the decisions, and the delivery details', async () => {
    const token = await sandbox.accessToken('Isaiah Langer');
    const points = await call('/restore-points', token);
    expect(points.body.restorePoints.map((p: { id: string }) => p.id).sort()).toEqual([
      'rp-co',
      'rp-nw',
    ]);
    const one = await call('/requests/req-nw', token);
    expect(one.status).toBe(200);
    expect(one.body.request.approval_card).toEqual({ activityId: 'secret-delivery-detail' });
    expect(one.body.decisions).toEqual([]);

    const audit = await call('/audit', token);
    expect(audit.body.entries.map((e: { action: string }) => e.action)).toContain(
      'request.create.northwind',
    );
    const verify = await call('/audit/verify', token, 'POST');
    expect(verify.body.verification).toEqual({ ok: true, checked: 0 });
  });

  it('refuses a bad status filter with bad_input', async () => {
    const token = await sandbox.accessToken('Adele Vance');
    const res = await call('/requests?status=everything', token);
    expect(res.status).toBe(400);
    expect(res.body.error).toBe('bad_input');
  });
});

describe('API tokens', () => {
  it('answers 401 without a token, and the description needs none', async () => {
    const res = await call('/requests');
    expect(res.status).toBe(401);
    expect(res.body.error).toBe('unauthenticated');
    expect(res.headers.get('www-authenticate')).toContain('Bearer');

    const doc = await call('/openapi.json');
    expect(doc.status).toBe(200);
    expect(doc.body.openapi).toBe('3.1.0');
    expect(Object.keys(doc.body.paths)).toEqual(
      expect.arrayContaining(['/restore-points', '/requests', '/requests/{id}', '/audit']),
    );
  });

  it('answers 401 for a token signed by another key', async () => {
    const { privateKey } = await generateKeyPair('RS256');
    const forged = await new SignJWT(claimsOf('Adele Vance'))
      .setProtectedHeader({ alg: 'RS256' })
      .setIssuedAt()
      .setExpirationTime('1h')
      .sign(privateKey);
    expect((await call('/requests', forged)).status).toBe(401);
  });

  it('answers 401 for an expired token', async () => {
    const expired = await sandbox.signWithIdentityKey(claimsOf('Adele Vance'), { expired: true });
    const res = await call('/requests', expired);
    expect(res.status).toBe(401);
    expect(res.body.message).toContain('expired');
  });

  it('answers 401 for a token for another app, and for an issuer of another tenant', async () => {
    const otherApp = await sandbox.signWithIdentityKey({
      ...claimsOf('Adele Vance'),
      aud: 'other-app',
    });
    expect((await call('/requests', otherApp)).status).toBe(401);

    // A Contoso token claiming the provider's tenant: the issuer names Contoso, tid the provider.
    const alex = claimsOf('Alex Wilber');
    const mixed = await sandbox.signWithIdentityKey({ ...alex, tid: sandbox.providerTenantId });
    expect((await call('/requests', mixed)).status).toBe(401);

    const valid = await sandbox.signWithIdentityKey(claimsOf('Adele Vance'));
    expect((await call('/requests', valid)).status).toBe(200);
  });

  it('answers 403 for a valid token of someone with no role in ACBA', async () => {
    const stranger = await sandbox.signWithIdentityKey({
      ...claimsOf('Adele Vance'),
      oid: '00000000-0000-4000-8000-00000000dead',
    });
    const res = await call('/requests', stranger);
    expect(res.status).toBe(403);
    expect(res.body.error).toBe('forbidden');
  });
});
