/**
 * The portal as each kind of person sees it, in headless Chromium: a
 * requester of the customer Contoso, an approver, an operator and an auditor
 * of the provider sign in through the sandbox OpenID provider's login page
 * and open every page. Contoso's requester sees Contoso and nothing of the
 * second customer, Northwind, not even by typing the address of its request;
 * the provider's staff see both customers; only the approver is offered a
 * decision; nobody gets a form that changes anything but Verify chain and Sign
 * out. Pages load with no Content-Security-Policy violation, and only the
 * portal itself and Teams' hosts may frame them.
 *
 * A full-page screenshot of every page per person goes to
 * test/.cache/screenshots/portal/.
 */
import path from 'node:path';
import type { Browser, BrowserContext, Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { launchChromium, screenshotFolder } from './support/chromium.ts';
import { startHttpsPortal } from './support/https-portal.ts';
import type { OidcSandbox } from './support/oidc-sandbox.ts';
import { useOidcSandbox } from './support/oidc-sandbox-suite.ts';

interface Person {
  name: string;
  role: 'requester' | 'approver' | 'operator' | 'auditor';
  /** What the header says under the name. */
  scope: string;
}

const people: Person[] = [
  { name: 'Alex Wilber', role: 'requester', scope: 'Contoso · requester' },
  { name: 'Adele Vance', role: 'approver', scope: 'Provider · approver' },
  { name: 'Nestor Wilke', role: 'operator', scope: 'Provider · operator' },
  { name: 'Isaiah Langer', role: 'auditor', scope: 'Provider · auditor' },
];

const pages = [
  { slug: 'overview', path: '/portal/', heading: 'Overview' },
  { slug: 'restore-points', path: '/portal/restore-points', heading: 'Restore points' },
  { slug: 'jobs', path: '/portal/jobs', heading: 'Jobs' },
  { slug: 'requests', path: '/portal/requests', heading: 'Requests' },
  { slug: 'usage', path: '/portal/usage', heading: 'Usage' },
  { slug: 'request', path: '/portal/requests/req-co', heading: 'req-co' },
  { slug: 'audit', path: '/portal/audit', heading: 'Audit trail' },
];

/** Northwind's names, rows and ids, which nobody from Contoso may see. */
const northwind = ['Northwind', 'nw-sql-01', 'Nina Northwind', 'req-nw', 'rp-nw-os'];

const running = useOidcSandbox({ approvals: true });
let sandbox: OidcSandbox;
let browser: Browser;
let shots: string;

beforeAll(async () => {
  sandbox = running();
  await seedContosoAudit(sandbox);
  browser = await launchChromium();
  shots = await screenshotFolder('portal');
}, 60_000);

afterAll(async () => {
  await browser?.close();
});

/** An audit entry of Contoso's, so its requester's audit trail is not empty. */
async function seedContosoAudit(sandbox: OidcSandbox): Promise<void> {
  const alex = sandbox.user('Alex Wilber');
  await sandbox.database.db
    .insertInto('audit_log')
    .values({
      at: '2026-12-01T09:00:00Z',
      actor_object_id: alex.objectId,
      actor_tenant_id: alex.tenantId,
      actor_name: alex.displayName,
      actor_role: 'requester',
      channel: 'bot',
      action: 'request.create',
      resource: 'request/req-co',
      outcome: 'success',
      details: JSON.stringify({ customerId: 'contoso' }),
      prev_hash: 'h1',
      hash: 'h2',
    })
    .execute();
}

/** A fresh browser profile signed in as the person through the OpenID provider's login page. */
async function signIn(
  person: Person,
): Promise<{ context: BrowserContext; page: Page; problems: string[] }> {
  // The sandbox identity provider serves HTTPS with the test CA, which Chromium does not know.
  const context = await browser.newContext({
    ignoreHTTPSErrors: true,
    viewport: { width: 1280, height: 800 },
  });
  const page = await context.newPage();
  page.setDefaultTimeout(15_000);
  const problems = watchProblems(page);

  await page.goto(`${sandbox.portalUrl}/portal/`);
  expect(new URL(page.url()).pathname).toBe('/portal/sign-in');
  await page.getByRole('link', { name: 'Sign in with Microsoft' }).click();
  await page.getByRole('heading', { name: 'Pick an account' }).waitFor();
  expect(new URL(page.url()).origin).toBe(sandbox.identityUrl);
  await page.getByRole('button', { name: new RegExp(person.name) }).click();
  await page.waitForURL(`${sandbox.portalUrl}/portal/`);
  return { context, page, problems };
}

/** Collects the page's console errors (CSP violations among them) and uncaught exceptions. */
function watchProblems(page: Page): string[] {
  const problems: string[] = [];
  // A 404 answer is checked where it is expected; browsers log every one of them as an error.
  page.on('console', (m) => {
    if (m.type() === 'error' && !m.text().startsWith('Failed to load resource'))
      problems.push(m.text());
  });
  page.on('pageerror', (e) => problems.push(e.message));
  return problems;
}

interface Visit {
  status: number;
  text: string;
  postActions: string[];
  buttons: string[];
}

/** Opens a portal page, takes its full-page screenshot and reads what a person can see and do. */
async function visit(page: Page, person: Person, slug: string, pathname: string): Promise<Visit> {
  const response = await page.goto(`${sandbox.portalUrl}${pathname}`);
  expect(response, pathname).not.toBeNull();
  expect(response!.headers()['content-security-policy']).toContain('frame-ancestors');
  expect(response!.headers()['x-frame-options']).toBeUndefined();
  await page.screenshot({ path: path.join(shots, `${person.role}-${slug}.png`), fullPage: true });

  return {
    status: response!.status(),
    text: await page.locator('body').innerText(),
    postActions: await page
      .locator('form[method="post"]')
      .evaluateAll((forms) => forms.map((f) => new URL((f as HTMLFormElement).action).pathname)),
    buttons: await page.getByRole('button').allInnerTexts(),
  };
}

describe('each person signs in through the login page and sees their part of the portal', () => {
  for (const person of people) {
    it(`${person.name} (${person.role})`, async () => {
      const { context, page, problems } = await signIn(person);
      try {
        const header = await page.locator('header .who').innerText();
        expect(header).toContain(person.name);
        expect(header).toContain(person.scope);
        expect(await page.locator('header nav a').allInnerTexts()).toEqual([
          'Overview',
          'Restore points',
          'Jobs',
          'Requests',
          'Usage',
          'Audit trail',
        ]);

        const seen = new Map<string, Visit>();
        for (const p of pages) {
          const result = await visit(page, person, p.slug, p.path);
          expect(result.status, `${person.name} on ${p.path}`).toBe(200);
          expect(await page.locator('h1').innerText()).toContain(p.heading);
          seen.set(p.slug, result);
        }

        // Changing forms: Sign out and Verify chain for everyone; a decision for the approver only.
        const decide = '/portal/requests/req-co/decide';
        const allowed = ['/portal/sign-out', '/portal/audit/verify'];
        for (const [slug, result] of seen) {
          const unexpected = result.postActions.filter(
            (a) => !allowed.includes(a) && !(person.role === 'approver' && a === decide),
          );
          expect(unexpected, `${person.name} on ${slug}`).toEqual([]);
        }
        const request = seen.get('request')!;
        if (person.role === 'approver') {
          expect(request.postActions).toContain(decide);
          expect(request.buttons).toEqual(expect.arrayContaining(['Approve', 'Reject']));
        } else {
          expect(request.postActions).not.toContain(decide);
          expect(request.buttons.join(' ')).not.toMatch(/Approve|Reject/);
        }

        const visible = [...seen.values()].map((v) => v.text).join('\n');
        expect(visible).toContain('Contoso');
        expect(visible).toContain('web-01');
        if (person.role === 'requester') {
          for (const name of northwind)
            expect(visible, `${person.name} sees ${name}`).not.toContain(name);
          const other = await visit(
            page,
            person,
            'other-customers-request',
            '/portal/requests/req-nw',
          );
          expect(other.status).toBe(404);
          expect(other.text).not.toContain('Nina Northwind');
          expect(seen.get('audit')!.text).toContain('request.create');
        } else {
          for (const slug of ['overview', 'restore-points', 'requests'])
            expect(seen.get(slug)!.text, `${person.name} on ${slug}`).toContain('Northwind');
          expect(seen.get('audit')!.text).toContain('request.create.northwind');
        }

        expect(problems).toEqual([]);
      } finally {
        await context.close();
      }
    });
  }
});

describe('framing', () => {
  /** Serves a page with an iframe of the portal at `origin`, as if that site embedded it. */
  async function frameFrom(origin: string): Promise<{ page: Page; messages: string[] }> {
    const context = await browser.newContext();
    const page = await context.newPage();
    const messages = watchProblems(page);
    await page.route(`${origin}/embed`, (route) =>
      route.fulfill({
        contentType: 'text/html',
        body: `<!doctype html><iframe name="portal" src="${sandbox.portalUrl}/portal/sign-in"></iframe>`,
      }),
    );
    await page.goto(`${origin}/embed`);
    return { page, messages };
  }

  it('lets the portal frame itself', async () => {
    const { page, messages } = await frameFrom(sandbox.portalUrl);
    try {
      const frame = page.frame({ name: 'portal' })!;
      await frame.getByRole('heading', { name: 'Sign in' }).waitFor();
      expect(frame.url()).toBe(`${sandbox.portalUrl}/portal/sign-in`);
      expect(messages).toEqual([]);
    } finally {
      await page.context().close();
    }
  });

  it('refuses to be framed by another site', async () => {
    // 127.0.0.1 and localhost are different sites to the browser.
    const other = sandbox.portalUrl.replace('localhost', '127.0.0.1');
    const { page, messages } = await frameFrom(other);
    try {
      await page.waitForLoadState('load');
      // Chromium replaces a frame that frame-ancestors refuses with its own error page.
      expect(page.frame({ name: 'portal' })!.url()).toMatch(/^chrome-error:/);
    } finally {
      await page.context().close();
    }
  });

  it('sends the Teams tab outside Teams to the normal sign-in, teams-js loading under the CSP', async () => {
    const context = await browser.newContext();
    const page = await context.newPage();
    const messages = watchProblems(page);
    try {
      await page.goto(`${sandbox.portalUrl}/portal/teams-tab`);
      await page.waitForURL(`${sandbox.portalUrl}/portal/sign-in`);
      await page.getByRole('link', { name: 'Sign in with Microsoft' }).waitFor();
      // teams-js asks Microsoft's CDN for the newest list of Teams hosts; connect-src refuses, and
      // it uses the list it ships with. Nothing else may be refused.
      const cdn = /res\.cdn\.office\.net\/teams-js\/validDomains/;
      expect(messages.filter((m) => !cdn.test(m))).toEqual([]);
    } finally {
      await context.close();
    }
  });
});

describe('inside Teams', () => {
  /**
   * A stand-in for Teams on the web at its real origin (the browser never
   * reaches the internet: the page is answered here). It frames the tab and
   * answers teams-js' messages as Teams does: initialize, then
   * authentication.getAuthToken with a token from the sandbox identity
   * provider for Alex.
   */
  function teamsHost(tabUrl: string, token: string): string {
    return `<!doctype html><title>Microsoft Teams (stand-in)</title>
<iframe name="tab" src="${tabUrl}" style="width:1240px;height:760px;border:0"></iframe>
<script>
  window.calls = [];
  window.addEventListener('message', (event) => {
    const m = event.data;
    if (!m || typeof m.id !== 'number' || typeof m.func !== 'string') return;
    window.calls.push(m.func);
    const reply = (args) =>
      event.source.postMessage({ id: m.id, uuidAsString: m.uuidAsString, args }, event.origin);
    if (m.func === 'initialize') reply(['content', 'web', '2.0.0']);
    if (m.func === 'authentication.getAuthToken') reply([true, ${JSON.stringify(token)}]);
  });
</script>`;
  }

  it("signs Alex in with Teams' token inside the Teams frame and shows the portal there", async () => {
    const portal = await startHttpsPortal(sandbox);
    const context = await browser.newContext({
      ignoreHTTPSErrors: true,
      viewport: { width: 1280, height: 800 },
    });
    // Teams is a public site and the portal here runs on this machine: Chromium asks first.
    await context.grantPermissions(['local-network-access'], {
      origin: 'https://teams.microsoft.com',
    });
    try {
      const page = await context.newPage();
      const token = await sandbox.accessToken('Alex Wilber');
      await page.route('https://teams.microsoft.com/**', (route) =>
        route.fulfill({
          contentType: 'text/html',
          body: teamsHost(`${portal.url}/portal/teams-tab`, token),
        }),
      );
      // teams-js asks Microsoft's CDN for its host list; the CSP refuses it before any request.
      await page.goto('https://teams.microsoft.com/v2/');

      const tab = page.frame({ name: 'tab' })!;
      await tab.waitForURL(`${portal.url}/portal/`);
      await tab.getByRole('heading', { name: 'Overview' }).waitFor();
      expect(await tab.locator('header .who').innerText()).toContain('Contoso · requester');
      expect(await tab.locator('main').innerText()).not.toContain('Northwind');
      expect(await page.evaluate(() => (window as any).calls)).toEqual(
        expect.arrayContaining(['initialize', 'authentication.getAuthToken']),
      );
      await page.screenshot({ path: path.join(shots, 'teams-tab-requester.png') });

      // The session lives in Teams' partition: the same browser outside Teams is not signed in.
      const outside = await context.newPage();
      await outside.goto(`${portal.url}/portal/`);
      expect(new URL(outside.url()).pathname).toBe('/portal/sign-in');
    } finally {
      await context.close();
      await portal.close();
    }
  });
});
