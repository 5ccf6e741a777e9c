/**
 * The portal inside Teams: the headers that let Teams (and only Teams and
 * Microsoft 365) frame it, the session cookie that works in that frame, and
 * the tab's single sign-on. The tab posts the token Teams gave it to
 * /portal/teams-tab/session; the token is checked against the sandbox
 * identity provider's key set like the API's bearer tokens, and anything
 * forged, expired, meant for another app, sent in the URL or without the
 * page's form token starts no session.
 */
import { decodeProtectedHeader, generateKeyPair, SignJWT } from 'jose';
import { beforeAll, describe, expect, it } from 'vitest';
import type { OidcSandbox } from './support/oidc-sandbox.ts';
import { useOidcSandbox, visibleRequestIds } from './support/oidc-sandbox-suite.ts';
import { startHttpsPortal } from './support/https-portal.ts';
import { PortalClient } from './support/portal-client.ts';

const running = useOidcSandbox();
let sandbox: OidcSandbox;
beforeAll(() => {
  sandbox = running();
});

/** Posts a token to the tab's sign-in as the tab page's form does; the client keeps the session. */
async function exchange(client: PortalClient, token: string): Promise<Response> {
  return client.postForm('/portal/teams-tab/session', { token }, '/portal/teams-tab');
}

async function signedIn(client: PortalClient): Promise<boolean> {
  return (await client.get('/portal/requests')).status === 200;
}

/** The claims Entra puts in an access token of this person for ACBA. */
function claimsOf(name: string, audience = sandbox.clientId) {
  const user = sandbox.user(name);
  return {
    iss: `https://login.microsoftonline.com/${user.tenantId}/v2.0`,
    aud: audience,
    oid: user.objectId,
    tid: user.tenantId,
    scp: 'access_as_user',
  };
}

describe('headers that let Teams frame the portal', () => {
  it('allows framing by the portal itself and the Teams and Microsoft 365 hosts, without X-Frame-Options', async () => {
    const page = await fetch(`${sandbox.portalUrl}/portal/sign-in`);
    const policy = page.headers.get('content-security-policy') ?? '';
    const directives = new Map(
      policy.split(';').map((d) => {
        const [name = '', ...values] = d.trim().split(/\s+/);
        return [name, values] as const;
      }),
    );
    expect(directives.get('frame-ancestors')).toEqual(
      expect.arrayContaining([
        "'self'",
        'https://teams.microsoft.com',
        'https://*.teams.microsoft.com',
        'https://*.cloud.microsoft',
        'https://*.office.com',
      ]),
    );
    expect(directives.get('frame-ancestors')).not.toContain('*');
    expect(directives.get('script-src')).toEqual(["'self'"]);
    expect(page.headers.get('x-frame-options')).toBeNull();
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
  });

  it('serves teams-js from the portal itself, so script-src needs no other origin', async () => {
    const tab = await (await fetch(`${sandbox.portalUrl}/portal/teams-tab`)).text();
    const sources = [...tab.matchAll(/<script src="([^"]+)"/g)].map((m) => m[1]);
    expect(sources).toEqual(['/portal/teams-tab/teams-js.min.js', '/portal/static/teams-tab.js']);
    for (const source of sources) {
      const script = await fetch(`${sandbox.portalUrl}${source}`);
      expect(script.status, source).toBe(200);
      expect(script.headers.get('content-type')).toMatch(/javascript/);
    }
    const bundle = await (await fetch(`${sandbox.portalUrl}${sources[0]}`)).text();
    expect(bundle).toContain('microsoftTeams');
  });

  it('over HTTPS, sends the session cookie SameSite=None, Secure and Partitioned, so it works in the Teams frame', async () => {
    const portal = await startHttpsPortal(sandbox);
    try {
      const cookies = (await fetch(`${portal.url}/portal/sign-in`)).headers.getSetCookie();
      expect(cookies.length).toBeGreaterThan(0);
      for (const cookie of cookies) {
        const attributes = cookie.toLowerCase().split(/;\s*/);
        expect(attributes).toEqual(
          expect.arrayContaining(['samesite=none', 'secure', 'partitioned', 'httponly']),
        );
      }
    } finally {
      await portal.close();
    }
  });

  it('keeps the session cookie SameSite=Lax over plain HTTP, where browsers refuse None', async () => {
    const cookies = (await fetch(`${sandbox.portalUrl}/portal/sign-in`)).headers.getSetCookie();
    expect(cookies.length).toBeGreaterThan(0);
    for (const cookie of cookies) expect(cookie.toLowerCase()).toContain('samesite=lax');
  });
});

describe('Teams single sign-on in the portal tab', () => {
  it("signs Alex in with Teams' token and shows Contoso's requests only", async () => {
    const alex = new PortalClient(sandbox.portalUrl);
    const done = await exchange(alex, await sandbox.accessToken('Alex Wilber'));
    expect(done.status).toBe(303);
    expect(done.headers.get('location')).toBe('/portal/');

    const ids = await visibleRequestIds(alex);
    expect(ids).toContain('req-co');
    expect(ids).not.toContain('req-nw');
  });

  it('refuses an expired token', async () => {
    const client = new PortalClient(sandbox.portalUrl);
    const expired = await sandbox.signWithIdentityKey(claimsOf('Adele Vance'), { expired: true });
    const refused = await exchange(client, expired);
    expect(refused.status).toBe(403);
    expect(await refused.text()).toContain('expired');
    expect(await signedIn(client)).toBe(false);
  });

  it('refuses a token signed with another key under the identity provider key id', async () => {
    const genuine = await sandbox.accessToken('Adele Vance');
    const { kid } = decodeProtectedHeader(genuine);
    const { privateKey } = await generateKeyPair('RS256', { extractable: true });
    const forged = await new SignJWT(claimsOf('Adele Vance'))
      .setProtectedHeader({ alg: 'RS256', kid })
      .setIssuedAt()
      .setExpirationTime('1h')
      .sign(privateKey);

    const client = new PortalClient(sandbox.portalUrl);
    expect((await exchange(client, forged)).status).toBe(403);
    expect(await signedIn(client)).toBe(false);
  });

  it('refuses a genuine token issued for another application', async () => {
    const client = new PortalClient(sandbox.portalUrl);
    const other = await sandbox.signWithIdentityKey(
      claimsOf('Adele Vance', '00000003-0000-0000-c000-000000000000'),
    );
    const refused = await exchange(client, other);
    expect(refused.status).toBe(403);
    expect(await refused.text()).toContain('aud claim');
    expect(await signedIn(client)).toBe(false);
  });

  it('takes the token only from the body, never from the URL', async () => {
    const client = new PortalClient(sandbox.portalUrl);
    const token = await sandbox.accessToken('Adele Vance');
    const inUrl = await client.postForm(
      `/portal/teams-tab/session?token=${encodeURIComponent(token)}`,
      {},
      '/portal/teams-tab',
    );
    expect(inUrl.status).toBe(400);
    expect(await signedIn(client)).toBe(false);
  });

  it('refuses a genuine token posted without the form token, or from another site', async () => {
    const token = await sandbox.accessToken('Adele Vance');
    const page = await fetch(`${sandbox.portalUrl}/portal/teams-tab`);
    const cookie = page.headers
      .getSetCookie()
      .map((c) => c.split(';')[0])
      .join('; ');
    const formToken = /name="_token" value="([^"]+)"/.exec(await page.text())![1]!;
    const post = (fields: Record<string, string>, headers: Record<string, string> = {}) =>
      fetch(`${sandbox.portalUrl}/portal/teams-tab/session`, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'content-type': 'application/x-www-form-urlencoded', cookie, ...headers },
        body: new URLSearchParams(fields).toString(),
      });

    expect((await post({ token })).status).toBe(403);
    const crossSite = await post({ token, _token: formToken }, { 'sec-fetch-site': 'cross-site' });
    expect(crossSite.status).toBe(403);
    expect(await crossSite.text()).toContain('sent from another site');
    expect(
      (await post({ token, _token: formToken }, { 'sec-fetch-site': 'same-origin' })).status,
    ).toBe(303);
  });
});
