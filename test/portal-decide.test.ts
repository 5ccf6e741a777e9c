/**
 * Deciding outside Teams: approvers sign in to the portal (through the
 * sandbox's OpenID provider) or call the API with a bearer token, under the
 * same rules as on the approval card. Every way around those rules is refused
 * and written to the audit trail with the channel it came from.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Actor } from '../approvals/index.ts';
import type { RequestRow } from '../core/db/schema.ts';
import { startOidcSandbox, type OidcSandbox } from './support/oidc-sandbox.ts';
import { PortalClient } from './support/portal-client.ts';

let sandbox: OidcSandbox;

const reason = 'The deploy on Monday overwrote the nginx configuration; we need it back.';
const comment = 'Confirmed with the customer by phone, ticket checked.';

beforeAll(async () => {
  sandbox = await startOidcSandbox({ approvals: true });
  // Nestor, the provider's operator, also holds the approver role here, so that
  // he can try to approve the data access he asked for himself.
  const nestor = sandbox.user('Nestor Wilke');
  await sandbox.database.db
    .insertInto('principals')
    .values({
      tenant_id: nestor.tenantId,
      object_id: nestor.objectId,
      display_name: nestor.displayName,
      role: 'approver',
      granted_at: new Date('2026-01-01T00:00:00Z'),
      granted_by: 'test',
    })
    .execute();
}, 120_000);

afterAll(async () => {
  await sandbox?.close();
});

function actorOf(name: string, channel: Actor['channel'] = 'bot'): Actor {
  const user = sandbox.user(name);
  return { objectId: user.objectId, tenantId: user.tenantId, name: user.displayName, channel };
}

async function portalAs(name: string): Promise<PortalClient> {
  const client = new PortalClient(sandbox.portalUrl);
  await client.signInWithOidc(sandbox.user(name).objectId);
  return client;
}

async function fileRestoreRequest(): Promise<RequestRow> {
  return sandbox.approvals!.requestFileRestore(actorOf('Alex Wilber'), {
    vmName: 'web-01',
    path: '/etc/nginx/nginx.conf',
    reason,
  });
}

function decide(client: PortalClient, id: string, decision: string, text = comment) {
  return client.postForm(
    `/portal/requests/${id}/decide`,
    { decision, comment: text },
    `/portal/requests/${id}`,
  );
}

async function apiDecide(name: string, id: string, body: unknown): Promise<Response> {
  return fetch(`${sandbox.portalUrl}/api/v1/requests/${id}/decisions`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${await sandbox.accessToken(name)}`,
      'content-type': 'application/json',
    },
    body: JSON.stringify(body),
  });
}

async function auditOf(requestId: string) {
  return sandbox.database.db
    .selectFrom('audit_log')
    .select(['action', 'outcome', 'channel', 'actor_name', 'details'])
    .where('resource', '=', `request/${requestId}`)
    .orderBy('seq')
    .execute();
}

async function statusOf(requestId: string) {
  return sandbox.database.db
    .selectFrom('requests')
    .select(['status', 'approvals_given'])
    .where('id', '=', requestId)
    .executeTakeFirstOrThrow();
}

describe('an approver decides in the portal', () => {
  it('sees the form, approves in writing, and Teams is told', async () => {
    const request = await fileRestoreRequest();
    const adele = await portalAs('Adele Vance');

    const page = await (await adele.get(`/portal/requests/${request.id}`)).text();
    expect(page).toContain('Your decision');
    expect(page).toContain('/etc/nginx/nginx.conf from web-01');

    const res = await decide(adele, request.id, 'approve');
    expect(res.status).toBe(303);
    expect(res.headers.get('location')).toBe(`/portal/requests/${request.id}`);
    expect(await statusOf(request.id)).toMatchObject({ status: 'approved', approvals_given: 1 });

    const after = await (await adele.get(`/portal/requests/${request.id}`)).text();
    expect(after).not.toContain('Your decision');
    expect(after).toContain(comment);
    const announced = sandbox.announced.find((a) => a.request.id === request.id);
    expect(announced?.decision).toMatchObject({ decision: 'approve', comment });

    const approved = (await auditOf(request.id)).find((e) => e.action === 'request.approve');
    expect(approved).toMatchObject({
      outcome: 'success',
      channel: 'portal',
      actor_name: 'Adele Vance',
    });
  });

  it('keeps the written comment and says why when the comment is too short', async () => {
    const request = await fileRestoreRequest();
    const lee = await portalAs('Lee Gu');

    const res = await decide(lee, request.id, 'reject', 'no');
    expect(res.status).toBe(400);
    const page = await res.text();
    expect(page).toMatch(/role="alert">[^<]*comment/i);
    expect(page).toContain('>no</textarea>');
    expect(await statusOf(request.id)).toMatchObject({ status: 'pending' });
  });

  it('refuses a decision posted without the form token of the session', async () => {
    const request = await fileRestoreRequest();
    const adele = await portalAs('Adele Vance');

    expect((await adele.get(`/portal/requests/${request.id}`)).status).toBe(200);
    const forged = await adele.postRaw(`/portal/requests/${request.id}/decide`, {
      decision: 'approve',
      comment,
    });
    expect(forged.status).toBe(403);
    expect(await forged.text()).toContain('did not come from the portal');
    expect(await statusOf(request.id)).toMatchObject({ status: 'pending', approvals_given: 0 });
  });

  it('takes two approvals from two people when the rule asks for two, across portal and API', async () => {
    const request = await sandbox.approvals!.createRequest(actorOf('Alex Wilber'), {
      kind: 'delete_restore_points',
      target: { restorePointIds: ['rp-co'] },
      reason,
    });
    expect(request.approvals_required).toBe(2);

    const adele = await portalAs('Adele Vance');
    expect((await decide(adele, request.id, 'approve')).status).toBe(303);
    expect(await statusOf(request.id)).toMatchObject({ status: 'pending', approvals_given: 1 });
    const page = await (await adele.get(`/portal/requests/${request.id}`)).text();
    expect(page).toContain('1 of 2 required');

    const again = await apiDecide('Adele Vance', request.id, { decision: 'approve', comment });
    expect(again.status).toBe(409);

    const lee = await apiDecide('Lee Gu', request.id, { decision: 'approve', comment });
    expect(lee.status).toBe(201);
    const body = (await lee.json()) as { request: RequestRow };
    expect(body.request).toMatchObject({ status: 'approved', approvals_given: 2 });

    const statuses = sandbox.announced
      .filter((a) => a.request.id === request.id)
      .map((a) => a.request.status);
    expect(statuses).toEqual(['pending', 'approved']);
    const channels = (await auditOf(request.id))
      .filter((e) => e.action === 'request.approve')
      .map((e) => `${e.channel}:${e.outcome}`);
    expect(channels).toEqual(['portal:success', 'api:refused', 'api:success']);
  });
});

describe('nobody gets around segregation of duties in the portal or the API', () => {
  it('shows no decision form to the requester, a colleague, an auditor, or an approver on their own request', async () => {
    const request = await fileRestoreRequest();
    const own = await sandbox.approvals!.createRequest(actorOf('Nestor Wilke'), {
      kind: 'data_access',
      target: { customerId: 'contoso', purpose: 'Check the restore of web-01 before handover' },
      reason,
    });
    const nestor = await (await portalAs('Nestor Wilke')).get(`/portal/requests/${own.id}`);
    const ownPage = await nestor.text();
    expect(ownPage).not.toContain('Your decision');
    expect(ownPage).toContain('You asked for this request yourself');
    for (const name of ['Alex Wilber', 'Isaiah Langer', 'Megan Bowen']) {
      const page = await (
        await (await portalAs(name)).get(`/portal/requests/${request.id}`)
      ).text();
      expect(page, name).not.toContain('Your decision');
      expect(page, name).toMatch(/approvers decide this request|Only approvers decide requests/);
    }
  });

  it('refuses the requester, a customer colleague and an auditor, in the portal and the API, and records each', async () => {
    const request = await fileRestoreRequest();

    for (const name of ['Alex Wilber', 'Megan Bowen', 'Isaiah Langer']) {
      const res = await decide(await portalAs(name), request.id, 'approve');
      expect(res.status, name).toBe(403);
      expect(await res.text(), name).toContain('role="alert"');

      const api = await apiDecide(name, request.id, { decision: 'approve', comment });
      expect(api.status, name).toBe(403);
      expect(((await api.json()) as { error: string }).error).toBe('forbidden');
    }

    expect(await statusOf(request.id)).toMatchObject({ status: 'pending', approvals_given: 0 });
    const refusals = (await auditOf(request.id)).filter((e) => e.outcome === 'refused');
    expect(refusals.map((e) => `${e.actor_name}/${e.channel}`)).toEqual([
      'Alex Wilber/portal',
      'Alex Wilber/api',
      'Megan Bowen/portal',
      'Megan Bowen/api',
      'Isaiah Langer/portal',
      'Isaiah Langer/api',
    ]);
  });

  it('never lets an approver approve the data access they asked for themselves', async () => {
    const nestor = actorOf('Nestor Wilke');
    const request = await sandbox.approvals!.createRequest(nestor, {
      kind: 'data_access',
      target: { customerId: 'contoso', purpose: 'Check the restore of web-01 before handover' },
      reason,
    });

    const portal = await decide(await portalAs('Nestor Wilke'), request.id, 'approve');
    expect(portal.status).toBe(403);
    expect(await portal.text()).toMatch(/yourself, so you cannot decide it/);
    const api = await apiDecide('Nestor Wilke', request.id, { decision: 'approve', comment });
    expect(api.status).toBe(403);

    expect(await statusOf(request.id)).toMatchObject({ status: 'pending', approvals_given: 0 });
    const refused = (await auditOf(request.id)).filter((e) => e.outcome === 'refused');
    expect(refused.map((e) => e.channel)).toEqual(['portal', 'api']);
  });

  it("answers 404 to a customer deciding another customer's request, and 400 to a decision that is neither", async () => {
    const alex = await portalAs('Alex Wilber');
    const other = await alex.postForm(
      '/portal/requests/req-nw/decide',
      { decision: 'approve', comment },
      '/portal/requests',
    );
    expect(other.status).toBe(404);

    const request = await fileRestoreRequest();
    const odd = await apiDecide('Adele Vance', request.id, { decision: 'maybe', comment });
    expect(odd.status).toBe(400);
    expect(((await odd.json()) as { message: string }).message).toContain('"decision"');
    expect(await statusOf(request.id)).toMatchObject({ status: 'pending' });
  });
});

describe('a requester asks for a restore in the portal', () => {
  let subnetId: string;

  beforeAll(async () => {
    const contoso = await sandbox.database.db
      .selectFrom('customers')
      .select('subscription_id')
      .where('id', '=', 'contoso')
      .executeTakeFirstOrThrow();
    subnetId = `/subscriptions/${contoso.subscription_id}/resourceGroups/rg-dr/providers/Microsoft.Network/virtualNetworks/vnet-dr/subnets/default`;
  });

  it('submits a VM restore from the form, which lands as a pending request with its target', async () => {
    const alex = await portalAs('Alex Wilber');
    const list = await (await alex.get('/portal/requests/new')).text();
    expect(list).toContain('/portal/requests/new?kind=vm_restore&amp;item=web-01');
    expect(list).not.toContain('nw-sql-01');

    const formPage = '/portal/requests/new?kind=vm_restore&item=web-01';
    const form = await (await alex.get(formPage)).text();
    expect(form).toContain('<option value="rp-co"');

    const res = await alex.postForm(
      '/portal/requests/new',
      {
        kind: 'vm_restore',
        vmName: 'web-01',
        restorePointId: 'rp-co',
        placement: 'new',
        newVmName: 'web-01-dr',
        resourceGroup: 'rg-dr',
        subnetId,
        reason,
      },
      formPage,
    );

    expect(res.status).toBe(303);
    const id = /\/portal\/requests\/([^/]+)$/.exec(res.headers.get('location') ?? '')?.[1];
    const row = await sandbox.database.db
      .selectFrom('requests')
      .selectAll()
      .where('id', '=', decodeURIComponent(id ?? ''))
      .executeTakeFirstOrThrow();
    expect(row).toMatchObject({
      kind: 'vm_restore',
      status: 'pending',
      requester_name: 'Alex Wilber',
    });
    expect(row.target).toEqual({
      itemId: 'item-co',
      vmName: 'web-01',
      restorePointId: 'rp-co',
      replaceOriginal: false,
      newVmName: 'web-01-dr',
      resourceGroup: 'rg-dr',
      subnetId,
    });
    const created = (await auditOf(row.id)).find((e) => e.action === 'request.create');
    expect(created).toMatchObject({ outcome: 'success', channel: 'portal' });
  });

  it('submits a file restore from the form, which lands as a pending request for that file', async () => {
    const alex = await portalAs('Alex Wilber');
    const formPage = '/portal/requests/new?kind=file_restore&item=web-01';
    const form = await (await alex.get(formPage)).text();
    expect(form).toContain('Restore a file of web-01');
    expect(form).toContain('name="path"');

    const res = await alex.postForm(
      '/portal/requests/new',
      {
        kind: 'file_restore',
        vmName: 'web-01',
        restorePointId: 'rp-co',
        path: '/var/www/html/index.html',
        reason,
      },
      formPage,
    );

    expect(res.status).toBe(303);
    const id = /\/portal\/requests\/([^/]+)$/.exec(res.headers.get('location') ?? '')?.[1];
    const row = await sandbox.database.db
      .selectFrom('requests')
      .selectAll()
      .where('id', '=', decodeURIComponent(id ?? ''))
      .executeTakeFirstOrThrow();
    expect(row).toMatchObject({ kind: 'file_restore', status: 'pending' });
    expect(row.target).toMatchObject({
      vmName: 'web-01',
      path: '/var/www/html/index.html',
      restorePointId: 'rp-co',
    });
  });

  it("shows the form again with the reason when the restore point is another customer's", async () => {
    const alex = await portalAs('Alex Wilber');
    const formPage = '/portal/requests/new?kind=vm_restore&item=web-01';
    const res = await alex.postForm(
      '/portal/requests/new',
      { kind: 'vm_restore', vmName: 'web-01', restorePointId: 'rp-nw', subnetId, reason },
      formPage,
    );

    expect(res.status).toBe(404);
    expect(await res.text()).toContain('Restore point rp-nw of web-01 does not exist');
  });
});

describe('a requester asks for a restore through the API', () => {
  async function apiRequest(name: string, body: unknown): Promise<Response> {
    return fetch(`${sandbox.portalUrl}/api/v1/requests`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${await sandbox.accessToken(name)}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify(body),
    });
  }

  it('writes a pending file restore and a pending disk restore, audited on the API channel', async () => {
    const file = await apiRequest('Alex Wilber', {
      kind: 'file_restore',
      target: { vmName: 'web-01', path: '/etc/hosts', restorePointId: 'rp-co' },
      reason,
      ticket: 'INC-77',
    });
    expect(file.status).toBe(201);
    const { request } = await file.json();
    expect(request).toMatchObject({ kind: 'file_restore', status: 'pending', ticket: 'INC-77' });
    expect(request.target).toMatchObject({ vmName: 'web-01', path: '/etc/hosts' });
    const created = (await auditOf(request.id)).find((e) => e.action === 'request.create');
    expect(created).toMatchObject({ outcome: 'success', channel: 'api' });

    const disk = await apiRequest('Alex Wilber', {
      kind: 'disk_restore',
      target: { vmName: 'web-01', restorePointId: 'rp-co', disk: 'os' },
      reason,
    });
    expect(disk.status).toBe(201);
    expect((await disk.json()).request).toMatchObject({ kind: 'disk_restore', status: 'pending' });
  });

  it("names what is wrong in a bad body, and answers 404 for another customer's restore point", async () => {
    const bad = await apiRequest('Alex Wilber', {
      kind: 'file_restore',
      target: { vmName: 'web-01' },
      reason,
    });
    expect(bad.status).toBe(400);
    expect((await bad.json()).message).toMatch(/^The file restore is incomplete at target\.path/);

    const other = await apiRequest('Alex Wilber', {
      kind: 'disk_restore',
      target: { vmName: 'web-01', restorePointId: 'rp-nw', disk: 'os' },
      reason,
    });
    expect(other.status).toBe(404);
  });
});
