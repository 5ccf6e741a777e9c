/**
 * The portal against a real embedded PostgreSQL (PGlite) with two customers:
 * sign-in is required, each customer sees only its own data, provider staff
 * see everything, and the audit page shows the verifier's verdict.
 */
import fs from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestDatabase, type TestDatabase } from './support/database.ts';
import { silentLogger } from '../core/log.ts';
import { createPortal } from '../portal/index.ts';

const providerTenant = 'tenant-provider';
const tenantA = 'tenant-contoso';
const tenantB = 'tenant-fabrikam';

let handle: TestDatabase;
let dataDir: string;
let server: ReturnType<express.Express['listen']>;
let baseUrl: string;
let verifyResult = { ok: true, checked: 3 } as {
  ok: boolean;
  checked: number;
  firstBroken?: { seq: string; problem: string };
};

async function seed(h: TestDatabase) {
  const db = h.db;
  await db
    .insertInto('customers')
    .values([
      { id: 'cust-a', name: 'Contoso', tenant_id: tenantA, subscription_id: 'sub-a' },
      { id: 'cust-b', name: 'Fabrikam', tenant_id: tenantB, subscription_id: 'sub-b' },
    ])
    .execute();
  await db
    .insertInto('principals')
    .values([
      {
        tenant_id: providerTenant,
        object_id: 'oid-pat',
        display_name: 'Pat Approver',
        role: 'approver',
      },
      {
        tenant_id: providerTenant,
        object_id: 'oid-pat',
        display_name: 'Pat Approver',
        role: 'auditor',
      },
      {
        tenant_id: tenantA,
        object_id: 'oid-alice',
        display_name: 'Alice Contoso',
        role: 'requester',
      },
      { tenant_id: tenantB, object_id: 'oid-bob', display_name: 'Bob Fabrikam', role: 'requester' },
      {
        tenant_id: 'tenant-stranger',
        object_id: 'oid-eve',
        display_name: 'Eve Stranger',
        role: 'requester',
      },
    ])
    .execute();
  await db
    .insertInto('protected_items')
    .values([
      {
        id: 'item-a',
        customer_id: 'cust-a',
        kind: 'vm',
        name: 'contoso-web01',
        resource_id: '/subs/a/vm/web01',
      },
      {
        id: 'item-b',
        customer_id: 'cust-b',
        kind: 'vm',
        name: 'fabrikam-db01',
        resource_id: '/subs/b/vm/db01',
      },
    ])
    .execute();
  const disks = (name: string) =>
    JSON.stringify([{ name, role: 'os', sizeBytes: 32 * 2 ** 30, storedBytes: 3 * 2 ** 30 }]);
  await db
    .insertInto('restore_points')
    .values([
      {
        id: 'rp-a1',
        customer_id: 'cust-a',
        item_id: 'item-a',
        created_at: '2025-03-01T02:00:00Z',
        expires_at: '2025-04-01T02:00:00Z',
        manifest_path: 'm/a1',
        disks: disks('contoso-web01-osdisk'),
        size_bytes: 32 * 2 ** 30,
        stored_bytes: 3 * 2 ** 30,
      },
      {
        id: 'rp-b1',
        customer_id: 'cust-b',
        item_id: 'item-b',
        created_at: '2025-03-02T02:00:00Z',
        expires_at: '2025-04-02T02:00:00Z',
        manifest_path: 'm/b1',
        disks: disks('fabrikam-db01-osdisk'),
        size_bytes: 64 * 2 ** 30,
        stored_bytes: 5 * 2 ** 30,
      },
    ])
    .execute();
  const request = (
    id: string,
    customer: string,
    tenant: string,
    who: string,
    vm: string,
    created: string,
  ) => ({
    id,
    customer_id: customer,
    kind: 'file_restore' as const,
    status: 'pending' as const,
    target: JSON.stringify({
      itemId: 'x',
      vmName: vm,
      path: 'C:\\data\\report.xlsx',
      restorePointId: 'rp',
      restorePointTime: created,
    }),
    reason: `${who} needs the report back`,
    requester_object_id: `oid-${who}`,
    requester_tenant_id: tenant,
    requester_name: who,
    content_hash: `hash-${id}`,
    approvals_required: 1,
    // Generated<Timestamp> in core/db/schema.ts wraps a ColumnType, so kysely types the insert value oddly.
    created_at: new Date(created) as never,
    expires_at: '2099-01-01T00:00:00Z',
  });
  await db
    .insertInto('requests')
    .values([
      request('req-a', 'cust-a', tenantA, 'Alice Contoso', 'contoso-web01', '2025-03-03T10:00:00Z'),
      request('req-b', 'cust-b', tenantB, 'Bob Fabrikam', 'fabrikam-db01', '2025-03-04T10:00:00Z'),
    ])
    .execute();
  await db
    .insertInto('decisions')
    .values({
      id: 'dec-1',
      request_id: 'req-a',
      decision: 'approve',
      comment: 'Verified with Contoso service desk ticket 4711',
      approver_object_id: 'oid-pat',
      approver_tenant_id: providerTenant,
      approver_name: 'Pat Approver',
      request_hash: 'hash-req-a',
    })
    .execute();
  const audit = (n: number, tenant: string, name: string, customerId: string, action: string) => ({
    at: `2025-03-0${n}T11:00:00Z`,
    actor_object_id: `oid-${n}`,
    actor_tenant_id: tenant,
    actor_name: name,
    actor_role: 'requester',
    channel: 'bot' as const,
    action,
    resource: `request/${n}`,
    outcome: 'success' as const,
    details: JSON.stringify({ customerId }),
    prev_hash: `h${n - 1}`,
    hash: `h${n}`,
  });
  await db
    .insertInto('audit_log')
    .values([
      audit(1, tenantA, 'Alice Contoso', 'cust-a', 'request.create.contoso'),
      audit(2, tenantB, 'Bob Fabrikam', 'cust-b', 'request.create.fabrikam'),
      audit(3, providerTenant, 'Pat Approver', 'cust-a', 'decision.approve.contoso'),
    ])
    .execute();
}

/** A tiny browser: keeps cookies between requests and never follows redirects. */
class Browser {
  private cookies = new Map<string, string>();

  async get(pathname: string, headers: Record<string, string> = {}) {
    return this.send(pathname, { method: 'GET', headers });
  }

  async post(pathname: string, form: Record<string, string>) {
    return this.send(pathname, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams(form).toString(),
    });
  }

  async signIn(objectId: string, tenantId: string) {
    const page = await (await this.get('/portal/sign-in')).text();
    const response = await this.post('/portal/sign-in', {
      _token: tokenOf(page),
      objectId,
      tenantId,
    });
    expect(response.status).toBe(303);
  }

  private async send(pathname: string, init: RequestInit) {
    const cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    const response = await fetch(`${baseUrl}${pathname}`, {
      ...init,
      redirect: 'manual',
      headers: { ...(init.headers as Record<string, string>), cookie },
    });
    for (const line of response.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const [name, ...value] = (pair ?? '').split('=');
      if (name) this.cookies.set(name.trim(), value.join('='));
    }
    return response;
  }
}

function tokenOf(html: string): string {
  const match = /name="_token" value="([^"]+)"/.exec(html);
  if (!match?.[1]) throw new Error('no form token on the page');
  return match[1];
}

beforeAll(async () => {
  dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'acba-portal-'));
  handle = await openTestDatabase();
  await seed(handle);

  const app = express();
  app.use(
    '/portal',
    createPortal({
      db: handle.db,
      log: silentLogger,
      providerTenantId: providerTenant,
      sessionSecret: Buffer.alloc(32, 7),
      secureCookies: false,
      verifyAudit: async () => verifyResult,
      signIn: { mode: 'picker' },
    }),
  );
  server = app.listen(0);
  await new Promise((resolve) => server.once('listening', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}, 60_000);

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await handle?.dispose();
  await fs.rm(dataDir, { recursive: true, force: true });
});

describe('portal', () => {
  it('sends people who are not signed in to the sign-in page, and scripts get 401', async () => {
    const browser = new Browser();
    const page = await browser.get('/portal/restore-points');
    expect(page.status).toBe(303);
    expect(page.headers.get('location')).toBe('/portal/sign-in?next=%2Fportal%2Frestore-points');

    const json = await browser.get('/portal/requests', { accept: 'application/json' });
    expect(json.status).toBe(401);

    const signIn = await (await browser.get('/portal/sign-in')).text();
    expect(signIn).toContain('Alice Contoso');
    expect(signIn).toContain('Pat Approver');
    expect(signIn).toContain('approver, auditor');
  });

  it('refuses a sign-in post without the session form token', async () => {
    const browser = new Browser();
    await browser.get('/portal/sign-in');
    const response = await browser.post('/portal/sign-in', {
      _token: 'forged',
      objectId: 'oid-pat',
      tenantId: providerTenant,
    });
    expect(response.status).toBe(403);
    expect((await browser.get('/portal/')).status).toBe(303);
  });

  it('shows a customer user only their own restore points and requests', async () => {
    const alice = new Browser();
    await alice.signIn('oid-alice', tenantA);

    const points = await (await alice.get('/portal/restore-points')).text();
    expect(points).toContain('contoso-web01');
    expect(points).toContain('32.0 GiB');
    expect(points).toContain(
      '<time datetime="2025-03-01T02:00:00.000Z">2025-03-01 02:00 UTC</time>',
    );
    expect(points).not.toContain('fabrikam');

    const requests = await (await alice.get('/portal/requests')).text();
    expect(requests).toContain('Alice Contoso needs the report back');
    expect(requests).not.toContain('Bob Fabrikam');

    const detail = await (await alice.get('/portal/requests/req-a')).text();
    expect(detail).toContain('Verified with Contoso service desk ticket 4711');
    expect(detail).toContain('Pat Approver');
    expect((await alice.get('/portal/requests/req-b')).status).toBe(404);

    const otherItem = await (await alice.get('/portal/restore-points?item=item-b')).text();
    expect(otherItem).not.toContain('fabrikam-db01-osdisk');
  });

  it('shows provider staff every customer', async () => {
    const pat = new Browser();
    await pat.signIn('oid-pat', providerTenant);

    const points = await (await pat.get('/portal/restore-points')).text();
    expect(points).toContain('contoso-web01');
    expect(points).toContain('fabrikam-db01');

    const requests = await (await pat.get('/portal/requests')).text();
    expect(requests.indexOf('Bob Fabrikam')).toBeLessThan(requests.indexOf('Alice Contoso'));

    const filtered = await (await pat.get('/portal/restore-points?item=item-b')).text();
    expect(filtered).toContain('fabrikam-db01-osdisk');
    expect(filtered).not.toContain('contoso-web01-osdisk');
  });

  it('refuses a principal whose tenant is no customer', async () => {
    const eve = new Browser();
    await eve.signIn('oid-eve', 'tenant-stranger');
    const page = await eve.get('/portal/');
    expect(page.status).toBe(403);
    expect(await page.text()).toContain('is not a customer of this provider');
  });

  it('shows the audit trail scoped to the customer, and the verdict of Verify chain', async () => {
    const alice = new Browser();
    await alice.signIn('oid-alice', tenantA);
    const own = await (await alice.get('/portal/audit')).text();
    expect(own).toContain('request.create.contoso');
    expect(own).toContain('decision.approve.contoso');
    expect(own).not.toContain('request.create.fabrikam');

    const pat = new Browser();
    await pat.signIn('oid-pat', providerTenant);
    const all = await (await pat.get('/portal/audit')).text();
    expect(all).toContain('request.create.fabrikam');

    const intact = await (await pat.post('/portal/audit/verify', { _token: tokenOf(all) })).text();
    expect(intact).toContain('Chain intact: 3 entries checked');

    verifyResult = {
      ok: false,
      checked: 2,
      firstBroken: { seq: '2', problem: 'hash does not match the entry' },
    };
    const broken = await (await pat.post('/portal/audit/verify', { _token: tokenOf(all) })).text();
    expect(broken).toContain('Chain broken at entry 2: hash does not match the entry');

    expect((await pat.post('/portal/audit/verify', { _token: 'forged' })).status).toBe(403);
  });
});

describe('portal outside the sandbox, before Entra ID sign-in is configured', () => {
  it('lists nobody to sign in as and refuses a picked sign-in', async () => {
    const app = express();
    app.use(
      '/portal',
      createPortal({
        db: handle.db,
        log: silentLogger,
        providerTenantId: providerTenant,
        sessionSecret: Buffer.alloc(32, 8),
        secureCookies: false,
        verifyAudit: async () => verifyResult,
        signIn: { mode: 'none' },
      }),
    );
    const closed = app.listen(0);
    await new Promise((resolve) => closed.once('listening', resolve));
    const url = `http://127.0.0.1:${(closed.address() as AddressInfo).port}`;
    try {
      const page = await fetch(`${url}/portal/sign-in`);
      const html = await page.text();
      expect(html).toContain('not configured');
      expect(html).not.toContain('Pat Approver');

      const cookie = page.headers
        .getSetCookie()
        .map((c) => c.split(';')[0])
        .join('; ');
      const token = /name="_token" value="([^"]+)"/.exec(html)?.[1] ?? 'none';
      const attempt = await fetch(`${url}/portal/sign-in`, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'content-type': 'application/x-www-form-urlencoded', cookie },
        body: new URLSearchParams({ _token: token, objectId: 'oid-pat', tenantId: providerTenant }),
      });
      expect(attempt.status).toBe(403);
      expect(await attempt.text()).toContain('Entra ID');
    } finally {
      closed.closeAllConnections();
      await new Promise((resolve) => closed.close(resolve));
    }
  });
});
