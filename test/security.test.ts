/**
 * Attacks on segregation of duties and on what people can see, over HTTP
 * against the real bot and portal routers, the real approval workflow and a
 * real embedded PostgreSQL. Two customers (Contoso and Fabrikam) and the
 * provider; every story is someone trying what they must not manage.
 */
import type { AddressInfo } from 'node:net';
import express from 'express';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createApprovals } from '../approvals/index.ts';
import { createBot } from '../bot/index.ts';
import { appendAudit, serviceActor, verifyAuditChain } from '../core/audit.ts';
import { silentLogger } from '../core/log.ts';
import { LinkSigner } from '../core/signing.ts';
import type { BackupJob, FileRestoreJob, JobQueue } from '../engine/queue.ts';
import { createPortal } from '../portal/index.ts';
import { openTestDatabase, type TestDatabase } from './support/database.ts';
import { PortalClient } from './support/portal-client.ts';

const PROVIDER = 'tenant-provider';
const CONTOSO = 'tenant-contoso';
const FABRIKAM = 'tenant-fabrikam';
const APPROVERS = '19:approvers@thread.tacv2';

interface Person {
  objectId: string;
  tenantId: string;
  name: string;
}
const megan: Person = { objectId: 'aad-megan', tenantId: CONTOSO, name: 'Megan Bowen' };
const bob: Person = { objectId: 'aad-bob', tenantId: FABRIKAM, name: 'Bob Fabrikam' };
const adele: Person = { objectId: 'aad-adele', tenantId: PROVIDER, name: 'Adele Vance' };

const goodReason = 'The nginx config was overwritten by a bad deploy on Monday, incident INC-4711.';

class RecordingQueue implements JobQueue {
  readonly fileRestores: FileRestoreJob[] = [];
  async enqueueFileRestore(job: FileRestoreJob) {
    this.fileRestores.push(job);
  }
  async enqueueBackup(_job: BackupJob) {}
}

let handle: TestDatabase;
let baseUrl: string;
let connectorUrl: string;
const queue = new RecordingQueue();
const sent: Array<{ path: string; body: any }> = [];
const servers: Array<{ close(): void; closeAllConnections(): void }> = [];

async function listen(app: express.Express): Promise<string> {
  return new Promise((resolve) => {
    const server = app.listen(0, '127.0.0.1', () =>
      resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`),
    );
    servers.push(server);
  });
}

async function seed(h: TestDatabase) {
  await h.db
    .insertInto('customers')
    .values([
      { id: 'contoso', name: 'Contoso', tenant_id: CONTOSO, subscription_id: 'sub-contoso' },
      { id: 'fabrikam', name: 'Fabrikam', tenant_id: FABRIKAM, subscription_id: 'sub-fabrikam' },
    ])
    .execute();
  await h.db
    .insertInto('principals')
    .values([
      {
        tenant_id: CONTOSO,
        object_id: megan.objectId,
        display_name: megan.name,
        role: 'requester',
      },
      { tenant_id: FABRIKAM, object_id: bob.objectId, display_name: bob.name, role: 'requester' },
      {
        tenant_id: PROVIDER,
        object_id: adele.objectId,
        display_name: adele.name,
        role: 'approver',
      },
    ])
    .execute();
  await h.db
    .insertInto('protected_items')
    .values({
      id: 'item-web-01',
      customer_id: 'contoso',
      kind: 'vm',
      name: 'web-01',
      resource_id: '/vm/web-01',
    })
    .execute();
  await h.db
    .insertInto('restore_points')
    .values({
      id: 'rp-web-01',
      customer_id: 'contoso',
      item_id: 'item-web-01',
      created_at: '2026-12-01T02:00:00Z',
      expires_at: '2027-12-31T00:00:00Z',
      manifest_path: 'manifests/0',
      disks: JSON.stringify([
        { name: 'web-01-os', role: 'os', sizeBytes: 2 ** 30, storedBytes: 2 ** 20 },
      ]),
      size_bytes: 2 ** 30,
      stored_bytes: 2 ** 20,
    })
    .execute();
}

beforeAll(async () => {
  handle = await openTestDatabase();
  await seed(handle);

  const connector = express();
  connector.use(express.json());
  connector.use((req, res) => {
    sent.push({ path: decodeURIComponent(req.path), body: req.body });
    res.json({ id: `sent-${sent.length}` });
  });
  connectorUrl = `${await listen(connector)}/`;

  const approvals = createApprovals({
    db: handle.db,
    log: silentLogger,
    queue,
    providerTenantId: PROVIDER,
  });
  const bot = createBot({
    approvals,
    db: handle.db,
    log: silentLogger,
    appType: 'MultiTenant',
    approversConversationId: APPROVERS,
    approversServiceUrl: connectorUrl,
  });
  const app = express();
  app.use(bot.router);
  app.use(
    '/portal',
    createPortal({
      db: handle.db,
      log: silentLogger,
      providerTenantId: PROVIDER,
      sessionSecret: Buffer.alloc(32, 7),
      secureCookies: false,
      verifyAudit: () => verifyAuditChain(handle.db),
      signIn: { mode: 'picker' },
    }),
  );
  baseUrl = await listen(app);
}, 60_000);

afterAll(async () => {
  for (const server of servers) {
    server.closeAllConnections();
    server.close();
  }
  await handle?.dispose();
});

beforeEach(() => {
  sent.length = 0;
});

let seq = 0;

function message(person: Person, text: unknown, extra: Record<string, unknown> = {}) {
  return {
    type: 'message',
    id: `msg-${++seq}`,
    serviceUrl: connectorUrl,
    channelId: 'msteams',
    from: { id: `29:${person.objectId}`, name: person.name, aadObjectId: person.objectId },
    conversation: {
      conversationType: 'personal',
      id: `a:${person.objectId}`,
      tenantId: person.tenantId,
    },
    recipient: { id: '28:acba-bot', name: 'ACBA' },
    channelData: { tenant: { id: person.tenantId } },
    text,
    ...extra,
  };
}

function invoke(
  person: Person,
  verb: string,
  data: Record<string, unknown>,
  extra: Record<string, unknown> = {},
) {
  return {
    ...message(person, undefined),
    type: 'invoke',
    name: 'adaptiveCard/action',
    value: { action: { type: 'Action.Execute', verb, data }, trigger: 'manual' },
    ...extra,
  };
}

async function post(
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: any }> {
  const response = await fetch(`${baseUrl}/api/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify(body),
  });
  const text = await response.text();
  try {
    return { status: response.status, body: JSON.parse(text) };
  } catch {
    return { status: response.status, body: text };
  }
}

/** The text of what the bot wrote back in the chat, for messages (not invokes). */
const replyText = () =>
  sent.map((s) => s.body.text ?? JSON.stringify(s.body.attachments ?? '')).join('\n');

async function submit(person: Person, data: Record<string, unknown>) {
  return post(
    invoke(person, 'fileRestore.submit', {
      vmName: 'web-01',
      path: '/etc/nginx/nginx.conf',
      restorePointId: 'rp-web-01',
      reason: goodReason,
      ...data,
    }),
  );
}

async function newRequestId(reason = goodReason, path = '/etc/nginx/nginx.conf'): Promise<string> {
  const response = await submit(megan, { reason, path });
  const id = /"value":"([0-9a-f-]{36})"/.exec(JSON.stringify(response.body.value))?.[1];
  if (!id) throw new Error(`no request id in ${JSON.stringify(response.body)}`);
  return id;
}

const auditRows = () =>
  handle.db.selectFrom('audit_log').selectAll().orderBy('seq', 'desc').execute();

describe('the bot endpoint without a Microsoft app id (local mode)', () => {
  it('refuses activities that came through a proxy, since it cannot tell they are from this machine', async () => {
    const response = await post(message(megan, 'help'), { 'x-forwarded-for': '203.0.113.7' });
    expect(response.status).toBe(403);
    expect(response.body.error).toContain('only from this machine');
    expect(response.body.error).toContain('MICROSOFT_APP_ID');
    expect(sent).toHaveLength(0);
  });

  it('refuses to send replies to a serviceUrl elsewhere (download links would go there)', async () => {
    const response = await post(
      message(megan, 'help', { serviceUrl: 'https://collector.example.net/' }),
    );
    expect(response.status).toBe(403);
    expect(response.body.error).toContain('serviceUrl on this machine');
    expect(sent).toHaveLength(0);
  });
});

describe('activities with odd shapes', () => {
  it('treats a text that is not a string as bad input instead of failing', async () => {
    const response = await post(message(megan, 42));
    expect(response.status).toBe(400);
    expect(response.body.error).toContain('text must be a string');
  });

  it('reads the help request when entities is not a list and the name is not a string', async () => {
    const activity = message(megan, 'help', { entities: { type: 'clientInfo' } });
    (activity.from as { name: unknown }).name = 12;
    await post(activity);
    expect(replyText()).toContain('here is what I can do');
    expect(replyText()).not.toContain('Sorry, something went wrong');
  });

  it('asks an activity whose Entra object id is not a string to come from Teams', async () => {
    const activity = message(megan, 'help');
    (activity.from as { aadObjectId: unknown }).aadObjectId = { $ne: null };
    await post(activity);
    expect(replyText()).toContain('only work in Microsoft Teams');
  });

  it('answers 400 to a NUL byte in the conversation id', async () => {
    const activity = message(megan, 'help');
    activity.conversation.id = 'a:megan\u0000';
    const response = await post(activity);
    expect(response.status).toBe(400);
    expect(response.body.error).toContain('conversation.id');
  });
});

describe('someone claims a tenant they are not in', () => {
  it('refuses an activity whose conversation and channel data name different tenants', async () => {
    // Megan of Contoso, with the provider's tenant slipped into channelData.
    const response = await post(
      invoke(
        megan,
        'fileRestore.submit',
        { vmName: 'web-01', path: '/etc/hosts', reason: goodReason },
        { channelData: { tenant: { id: PROVIDER } } },
      ),
    );
    expect(response.body.value).toContain('names two different tenants');
    expect(
      await handle.db
        .selectFrom('requests')
        .selectAll()
        .where('target', '@>', JSON.stringify({ path: '/etc/hosts' }) as never)
        .execute(),
    ).toHaveLength(0);
  });

  it("does not let the approver's id decide when it comes from the customer's tenant, or with mixed tenants", async () => {
    const requestId = await newRequestId();
    const forgedInCustomer = await post(
      invoke({ ...adele, tenantId: CONTOSO }, 'request.approve', {
        requestId,
        comment: 'Approved, all fine here.',
      }),
    );
    expect(forgedInCustomer.body.value).toContain("Only the provider's approvers");

    const mixed = await post(
      invoke(
        adele,
        'request.approve',
        { requestId, comment: 'Approved, all fine here.' },
        { channelData: { tenant: { id: CONTOSO } } },
      ),
    );
    expect(mixed.body.value).toContain('names two different tenants');

    const request = await handle.db
      .selectFrom('requests')
      .select('status')
      .where('id', '=', requestId)
      .executeTakeFirstOrThrow();
    expect(request.status).toBe('pending');
    expect(queue.fileRestores.map((j) => j.requestId)).not.toContain(requestId);
  });

  it('refuses self-approval also when the object id arrives in upper case', async () => {
    const requestId = await newRequestId();
    await handle.db
      .insertInto('principals')
      .values({
        tenant_id: PROVIDER,
        object_id: megan.objectId.toUpperCase(),
        display_name: 'Megan (provider account)',
        role: 'approver',
      })
      .execute();
    const response = await post(
      invoke(
        { ...megan, objectId: megan.objectId.toUpperCase(), tenantId: PROVIDER },
        'request.approve',
        { requestId, comment: 'Approving my own request.' },
      ),
    );
    expect(response.body.value).toContain('yourself');
  });
});

describe('the audit log under hostile input', () => {
  it('records a refused request with a huge VM name and path in bounded form, and answers briefly', async () => {
    const before = (await auditRows())[0]!.seq;
    const response = await submit(megan, {
      vmName: 'v'.repeat(200_000),
      path: `/${'p'.repeat(300_000)}`,
    });
    expect(response.body.value.length).toBeLessThan(1000);

    const [entry] = await auditRows();
    expect(entry!.seq).not.toBe(before);
    expect(entry!.outcome).toBe('refused');
    expect(JSON.stringify(entry).length).toBeLessThan(5000);
  });

  it('records an approve for a huge or NUL-carrying request id as a refusal, not a failure', async () => {
    const huge = await post(
      invoke(adele, 'request.approve', {
        requestId: 'i'.repeat(300_000),
        comment: 'Looks fine to me.',
      }),
    );
    expect(huge.body.value).toContain('There is no request');
    expect(huge.body.value.length).toBeLessThan(400);

    const nul = await post(
      invoke(adele, 'request.approve', { requestId: 'abc\u0000def', comment: 'Looks fine to me.' }),
    );
    expect(nul.body.value).toContain('There is no request');
    const [entry] = await auditRows();
    expect(entry!.action).toBe('request.approve');
    expect(entry!.outcome).toBe('refused');
    expect(entry!.resource).toBe('request/abc\uFFFDdef');
  });

  it('refuses a reason with a NUL byte with a message, and audits the refusal', async () => {
    const response = await submit(megan, { reason: `${goodReason}\u0000` });
    expect(response.body.value).toContain('control characters');
    const [entry] = await auditRows();
    expect(entry).toMatchObject({ action: 'request.create', outcome: 'refused' });
  });

  it('keeps the chain verifiable when an entry carries NUL bytes and very long text', async () => {
    await appendAudit(handle.db, {
      actor: serviceActor,
      channel: 'engine',
      action: 'test.hostile',
      resource: `x\u0000${'r'.repeat(10_000)}`,
      outcome: 'success',
      details: { note: `a\u0000b`, long: 'z'.repeat(100_000) },
    });
    const [entry] = await auditRows();
    expect((entry!.details as { note: string }).note).toBe('a\uFFFDb');
    expect((entry!.details as { long: string }).long).toContain('(100000 characters in all)');
    expect((await verifyAuditChain(handle.db)).ok).toBe(true);
  });
});

describe('what approvers read on the card', () => {
  it('shows the reason and path as plain text runs, never as markdown', async () => {
    const reason =
      'Need the file back [open the ticket](https://evil.example/login) **APPROVED BY SECURITY** ${requesterName}';
    const requestId = await newRequestId(reason, '/srv/[click](https://evil.example)/app.conf');
    const posted = sent.find((s) => s.path === `/v3/conversations/${APPROVERS}/activities`);
    const card = posted!.body.attachments[0].content;
    const blocks = JSON.stringify(card.body);
    expect(requestId).toBeTruthy();
    // Text blocks and fact values render markdown in Teams; text runs do not.
    const markdownCapable = [
      ...card.body.filter((b: any) => b.type === 'TextBlock').map((b: any) => b.text),
      ...card.body
        .filter((b: any) => b.type === 'FactSet')
        .flatMap((b: any) => b.facts.map((f: any) => f.value)),
    ].join('\n');
    expect(markdownCapable).not.toContain('evil.example');
    expect(blocks).toContain('"type":"TextRun","text":"Need the file back [open the ticket]');
    expect(blocks).toContain('${requesterName}');
  });

  it('refuses a path with invisible right-to-left overrides', async () => {
    const response = await submit(megan, { path: '/home/megan/\u202Efdp.exe' });
    expect(response.body.value).toContain('invisible formatting characters');
  });
});

describe('the portal', () => {
  it("does not show a customer the audit entry of their own look at another customer's request", async () => {
    const requestId = await newRequestId();
    const probe = await post(invoke(bob, 'request.status', { requestId }));
    expect(probe.body.value).toContain(`There is no request ${requestId} that you can see`);

    const owner = new PortalClient(baseUrl);
    await owner.signIn(megan.objectId, CONTOSO);
    const seenByOwner = await (
      await owner.get('/portal/audit', { accept: 'application/json' })
    ).json();
    expect(JSON.stringify(seenByOwner)).toContain(bob.objectId);

    const prober = new PortalClient(baseUrl);
    await prober.signIn(bob.objectId, FABRIKAM);
    const seenByProber = await (
      await prober.get('/portal/audit', { accept: 'application/json' })
    ).json();
    expect(JSON.stringify(seenByProber)).not.toContain(requestId);
    expect(JSON.stringify(seenByProber)).not.toContain('contoso');
  });

  it("keeps the provider's Teams delivery details out of a customer's JSON", async () => {
    const requestId = await newRequestId();
    const client = new PortalClient(baseUrl);
    await client.signIn(megan.objectId, CONTOSO);
    const one = await (
      await client.get(`/portal/requests/${requestId}`, { accept: 'application/json' })
    ).json();
    expect(one.request.id).toBe(requestId);
    expect(JSON.stringify(one)).not.toContain(APPROVERS);
    const list = await (
      await client.get('/portal/requests', { accept: 'application/json' })
    ).json();
    expect(JSON.stringify(list)).not.toContain(APPROVERS);
    const overview = await (await client.get('/portal/', { accept: 'application/json' })).json();
    expect(JSON.stringify(overview)).not.toContain(APPROVERS);

    const provider = new PortalClient(baseUrl);
    await provider.signIn(adele.objectId, PROVIDER);
    const forProvider = await (
      await provider.get(`/portal/requests/${requestId}`, { accept: 'application/json' })
    ).json();
    expect(forProvider.request.approval_card.conversationId).toBe(APPROVERS);
  });

  it('answers an out-of-range audit page and a NUL request id as a person would expect, not with 500', async () => {
    const client = new PortalClient(baseUrl);
    await client.signIn(adele.objectId, PROVIDER);
    const outOfRange = await client.get('/portal/audit?before=99999999999999999999999999', {
      accept: 'application/json',
    });
    expect(outOfRange.status).toBe(400);
    expect(((await outOfRange.json()) as { message: string }).message).toContain('"before"');
    const missing = await client.get('/portal/requests/%00abc', { accept: 'application/json' });
    expect(missing.status).toBe(404);
  });

  it('never sends a signed-in person away through dot segments in next', async () => {
    for (const next of [
      '/portal/../..//evil.example',
      '/portal/%2e%2e/%2E%2E//evil.example',
      '/portal//evil.example',
    ]) {
      const client = new PortalClient(baseUrl);
      const response = await client.postForm(
        '/portal/sign-in',
        { objectId: megan.objectId, tenantId: CONTOSO, next },
        '/portal/sign-in',
      );
      expect(response.status).toBe(303);
      expect(response.headers.get('location')).toBe('/portal');
    }
    const client = new PortalClient(baseUrl);
    const fine = await client.postForm(
      '/portal/sign-in',
      { objectId: megan.objectId, tenantId: CONTOSO, next: '/portal/requests?status=pending' },
      '/portal/sign-in',
    );
    expect(fine.headers.get('location')).toBe('/portal/requests?status=pending');
  });
});

describe('signed links', () => {
  const signer = new LinkSigner(Buffer.alloc(32, 9));

  it('refuses a token with extra parts, and one whose signed body is not a grant', () => {
    const token = signer.sign({
      purpose: 'download',
      subject: 'd-1',
      expiresAt: Date.now() + 60_000,
    });
    expect(() => signer.verify(`${token}.extra`, 'download')).toThrow('malformed');
    expect(signer.verify(token, 'download').subject).toBe('d-1');
  });
});
