/**
 * Portal sign-in through the sandbox's OpenID provider, the way a browser
 * goes: the portal sends the person to the login page with PKCE, state and
 * nonce; they pick an account; the portal exchanges the code, checks the ID
 * token (issuer per tenant, audience, nonce) and starts a session for its
 * oid and tid. Contoso's people land in Contoso's scope, the provider's in
 * every customer's.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PortalClient } from './support/portal-client.ts';
import { startOidcSandbox, type OidcSandbox } from './support/oidc-sandbox.ts';

let sandbox: OidcSandbox;

beforeAll(async () => {
  sandbox = await startOidcSandbox();
}, 180_000);

afterAll(async () => {
  await sandbox?.close();
});

describe('portal sign-in with the sandbox OpenID provider', () => {
  it('offers Microsoft sign-in and no picker of people', async () => {
    const page = await (await fetch(`${sandbox.portalUrl}/portal/sign-in`)).text();
    expect(page).toContain('Sign in with Microsoft');
    expect(page).not.toContain('Alex Wilber');
  });

  it('sends the browser to the login page with PKCE, state and nonce, and the page lists both tenants', async () => {
    const browser = new PortalClient(sandbox.portalUrl);
    const start = await browser.get('/portal/sign-in/entra?next=%2Fportal%2Frequests');
    expect(start.status).toBe(303);
    const authorize = new URL(start.headers.get('location')!);
    expect(authorize.origin).toBe(sandbox.identityUrl);
    expect(authorize.searchParams.get('code_challenge_method')).toBe('S256');
    expect(authorize.searchParams.get('state')).toBeTruthy();
    expect(authorize.searchParams.get('nonce')).toBeTruthy();
    expect(authorize.searchParams.get('redirect_uri')).toBe(
      `${sandbox.portalUrl}/portal/sign-in/callback`,
    );

    const login = await (await fetch(authorize)).text();
    expect(login).toContain('Alex Wilber');
    expect(login).toContain('Contoso');
    expect(login).toContain('Adele Vance');
    expect(login).toContain('Fabrikam Managed Services');
  });

  it('signs a Contoso requester in to Contoso only, and back to the page asked for', async () => {
    const alex = new PortalClient(sandbox.portalUrl);
    const done = await alex.signInWithOidc(
      sandbox.user('Alex Wilber').objectId,
      '/portal/requests',
    );
    expect(done.headers.get('location')).toBe('/portal/requests');
    expect(done.headers.get('set-cookie') ?? '').toContain('httponly');

    const requests = await (
      await alex.get('/portal/requests', { accept: 'application/json' })
    ).json();
    const ids = requests.requests.map((r: { id: string }) => r.id);
    expect(ids).toContain('req-co');
    expect(ids).not.toContain('req-nw');
    const other = await alex.get('/portal/requests/req-nw');
    expect(other.status).toBe(404);
  });

  it('signs a provider approver in to every customer', async () => {
    const adele = new PortalClient(sandbox.portalUrl);
    await adele.signInWithOidc(sandbox.user('Adele Vance').objectId);
    const requests = await (
      await adele.get('/portal/requests', { accept: 'application/json' })
    ).json();
    const ids = requests.requests.map((r: { id: string }) => r.id);
    expect(ids).toEqual(expect.arrayContaining(['req-co', 'req-nw']));
  });

  it('refuses a callback whose state does not match the sign-in it started', async () => {
    const browser = new PortalClient(sandbox.portalUrl);
    await browser.get('/portal/sign-in/entra');
    const forged = await browser.get('/portal/sign-in/callback?code=made-up&state=someone-elses');
    expect(forged.status).toBe(403);
    expect((await browser.get('/portal/restore-points')).status).toBe(303);
  });

  it('refuses a callback without a sign-in started in this browser, and a code used twice', async () => {
    const victim = new PortalClient(sandbox.portalUrl);
    const start = await victim.get('/portal/sign-in/entra');
    const authorize = new URL(start.headers.get('location')!);
    const picked = await fetch(authorize, {
      method: 'POST',
      redirect: 'manual',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        ...Object.fromEntries(authorize.searchParams),
        login_oid: sandbox.user('Megan Bowen').objectId,
      }).toString(),
    });
    const callback = new URL(picked.headers.get('location')!);

    // Another browser (an attacker's link) cannot complete someone else's sign-in.
    const stranger = new PortalClient(sandbox.portalUrl);
    const stolen = await stranger.get(`${callback.pathname}${callback.search}`);
    expect(stolen.status).toBe(400);

    expect((await victim.get(`${callback.pathname}${callback.search}`)).status).toBe(303);
    expect((await victim.get(`${callback.pathname}${callback.search}`)).status).toBe(400);
  });
});
