/**
 * An auditor narrows the audit trail by time, actor, customer, kind and
 * outcome, in the portal and the API; the pages keep the filters; a customer's
 * staff cannot widen their view with a filter; bad filters are named.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { appendAudit, type AuditActor } from '../core/audit.ts';
import { parseAuditFilter } from '../portal/audit-filter.ts';
import { startOidcSandbox, type OidcSandbox } from './support/oidc-sandbox.ts';
import { PortalClient } from './support/portal-client.ts';

let sandbox: OidcSandbox;
let auditorToken: string;

const person = (name: string, role: string): AuditActor => {
  const user = sandbox.user(name);
  return { objectId: user.objectId, tenantId: user.tenantId, name: user.displayName, role };
};

beforeAll(async () => {
  sandbox = await startOidcSandbox();
  const db = sandbox.database.db;
  const alex = person('Alex Wilber', 'requester');
  const adele = person('Adele Vance', 'approver');
  const nestor = person('Nestor Wilke', 'operator');
  const events = [
    [alex, 'request.create', 'success', 'contoso'],
    [adele, 'request.approve', 'success', 'contoso'],
    [nestor, 'request.approve', 'refused', 'contoso'],
    [adele, 'request.reject', 'success', 'northwind'],
    [alex, 'restore.run', 'failed', 'contoso'],
  ] as const;
  for (const [actor, action, outcome, customerId] of events) {
    await appendAudit(db, {
      actor,
      channel: 'portal',
      action,
      resource: `request/${action}-${customerId}`,
      outcome,
      details: { customerId },
    });
  }
  auditorToken = await sandbox.accessToken('Isaiah Langer');
}, 120_000);

afterAll(async () => {
  await sandbox?.close();
});

interface Page {
  entries: Array<{ action: string; actor_name: string; outcome: string; details: unknown }>;
  olderBefore?: string;
}

async function api(query: string, token = auditorToken): Promise<Response> {
  return fetch(`${sandbox.portalUrl}/api/v1/audit${query}`, {
    headers: { authorization: `Bearer ${token}` },
  });
}

async function actions(query: string, token = auditorToken): Promise<string[]> {
  const res = await api(query, token);
  expect(res.status, query).toBe(200);
  const page = (await res.json()) as Page;
  return page.entries.map((e) => `${e.actor_name}:${e.action}:${e.outcome}`);
}

describe('filtering the audit trail through the API', () => {
  it('filters by actor name in any case, or by object id', async () => {
    const byName = await actions('?actor=adele%20VANCE');
    expect(byName).toEqual([
      'Adele Vance:request.reject:success',
      'Adele Vance:request.approve:success',
    ]);
    const id = sandbox.user('Adele Vance').objectId;
    expect(await actions(`?actor=${id}`)).toEqual(byName);
  });

  it('filters by kind, exactly or by family, and by outcome', async () => {
    expect(await actions('?kind=request.approve')).toEqual([
      'Nestor Wilke:request.approve:refused',
      'Adele Vance:request.approve:success',
    ]);
    const family = await actions('?kind=request');
    expect(family).toHaveLength(5);
    expect(family.every((a) => a.includes(':request.'))).toBe(true);
    expect(await actions('?kind=request&outcome=refused')).toEqual([
      'Nestor Wilke:request.approve:refused',
    ]);
    expect(await actions('?kind=request.app')).toEqual([]);
  });

  it('filters by customer and by time, a date meaning the whole day in UTC', async () => {
    expect(await actions('?customer=northwind')).toEqual([
      'Adele Vance:request.reject:success',
      'Nina Northwind:request.create.northwind:success',
    ]);
    // The Northwind sample entry is from 2026-12-01; everything else was written today.
    expect(await actions('?to=2026-12-01')).toEqual([
      'Nina Northwind:request.create.northwind:success',
    ]);
    expect(await actions('?from=2026-12-01&to=2026-12-01T09:59:59Z')).toEqual([]);
    const today = new Date().toISOString().slice(0, 10);
    expect(await actions(`?from=${today}&customer=northwind`)).toEqual([
      'Adele Vance:request.reject:success',
    ]);
  });

  it("never shows a customer's staff another customer's entries, whatever they filter by", async () => {
    const alex = await sandbox.accessToken('Alex Wilber');
    expect(await actions('?customer=northwind', alex)).toEqual([]);
    expect(await actions('?actor=Adele%20Vance', alex)).toEqual([
      'Adele Vance:request.approve:success',
    ]);
  });

  it('names the wrong filter and what it should be', async () => {
    for (const [query, field] of [
      ['?from=yesterday', 'from'],
      ['?outcome=maybe', 'outcome'],
      ['?before=12a', 'before'],
      ['?from=2026-12-02&to=2026-12-01', 'from'],
      [`?actor=${'x'.repeat(201)}`, 'actor'],
      ['?kind=a&kind=b', 'kind'],
    ]) {
      const res = await api(query!);
      expect(res.status, query).toBe(400);
      const body = (await res.json()) as { error: string; message: string };
      expect(body.error).toBe('bad_input');
      expect(body.message, query).toContain(`"${field}"`);
    }
  });
});

describe('filtering the audit trail in the portal', () => {
  it('shows the filter form filled in, the matching entries, and pages that keep the filter', async () => {
    const isaiah = new PortalClient(sandbox.portalUrl);
    await isaiah.signInWithOidc(sandbox.user('Isaiah Langer').objectId);

    const page = await (
      await isaiah.get('/portal/audit?kind=request.approve&outcome=refused')
    ).text();
    expect(page).toContain('value="request.approve"');
    expect(page).toMatch(/<option value="refused" selected>/);
    expect(page).toContain('request.approve');
    expect(page).not.toContain('request.reject');
    expect(page).toContain('<option value="northwind"');

    const empty = await (await isaiah.get('/portal/audit?actor=nobody')).text();
    expect(empty).toContain('No audit entries match these filters.');

    const verified = await isaiah.postForm(
      '/portal/audit/verify?kind=request.approve&outcome=refused',
      {},
      '/portal/audit?kind=request.approve&outcome=refused',
    );
    const verifiedPage = await verified.text();
    expect(verifiedPage).toContain('Chain intact');
    expect(verifiedPage).toMatch(/<option value="refused" selected>/);
    expect(verifiedPage).not.toContain('request.reject');

    const bad = await isaiah.get('/portal/audit?from=soon');
    expect(bad.status).toBe(400);
    expect(await bad.text()).toContain('&quot;from&quot; must be a date');
  });
});

describe('parseAuditFilter', () => {
  it('reads a "to" date as the end of that day and a time as given', () => {
    expect(parseAuditFilter({ to: '2026-12-01' }).to?.toISOString()).toBe(
      '2026-12-02T00:00:00.000Z',
    );
    expect(parseAuditFilter({ to: '2026-12-01T14:00:00Z' }).to?.toISOString()).toBe(
      '2026-12-01T14:00:00.000Z',
    );
    expect(parseAuditFilter({ from: ' ', actor: '' })).toEqual({});
  });
});
