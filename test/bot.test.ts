/**
 * The Teams bot over HTTP: the real router in an Express app, a stand-in Bot
 * Framework connector recording what the bot sends, a real embedded
 * PostgreSQL and the real approval workflow with a recording job queue.
 */
import fs from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import express from 'express';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createApprovals } from '../approvals/index.ts';
import { createBot } from '../bot/index.ts';
import { verifyAuditChain } from '../core/audit.ts';
import type { Db } from '../core/db/database.ts';
import { openTestDatabase, type TestDatabase } from './support/database.ts';
import { silentLogger } from '../core/log.ts';
import type { EngineNotices } from '../engine/notices.ts';
import type { BackupJob, FileRestoreJob, JobQueue } from '../engine/queue.ts';

const PROVIDER = 'tenant-provider';
const CONTOSO = 'tenant-contoso';
const APPROVERS = '19:approvers-channel@thread.tacv2';

interface Person {
  objectId: string;
  tenantId: string;
  name: string;
  conversationId: string;
}
const megan: Person = {
  objectId: 'aad-megan',
  tenantId: CONTOSO,
  name: 'Megan Bowen',
  conversationId: 'a:personal-megan',
};
const lynne: Person = {
  objectId: 'aad-lynne',
  tenantId: CONTOSO,
  name: 'Lynne Robbins',
  conversationId: 'a:personal-lynne',
};
const adele: Person = {
  objectId: 'aad-adele',
  tenantId: PROVIDER,
  name: 'Adele Vance',
  conversationId: APPROVERS,
};
const alex: Person = {
  objectId: 'aad-alex',
  tenantId: PROVIDER,
  name: 'Alex Wilber',
  conversationId: APPROVERS,
};

const goodReason = 'The nginx config was overwritten by a bad deploy on Monday, incident INC-4711.';

class RecordingQueue implements JobQueue {
  readonly fileRestores: FileRestoreJob[] = [];
  async enqueueFileRestore(job: FileRestoreJob) {
    this.fileRestores.push(job);
  }
  async enqueueBackup(_job: BackupJob) {}
}

interface ConnectorCall {
  method: string;
  path: string;
  body: any;
}

async function seed(db: Db) {
  await db
    .insertInto('customers')
    .values({ id: 'contoso', name: 'Contoso', tenant_id: CONTOSO, subscription_id: 'sub-contoso' })
    .execute();
  await db
    .insertInto('principals')
    .values([
      {
        tenant_id: CONTOSO,
        object_id: megan.objectId,
        display_name: megan.name,
        role: 'requester',
      },
      {
        tenant_id: CONTOSO,
        object_id: lynne.objectId,
        display_name: lynne.name,
        role: 'requester',
      },
      { tenant_id: CONTOSO, object_id: lynne.objectId, display_name: lynne.name, role: 'approver' },
      {
        tenant_id: PROVIDER,
        object_id: adele.objectId,
        display_name: adele.name,
        role: 'approver',
      },
      { tenant_id: PROVIDER, object_id: alex.objectId, display_name: alex.name, role: 'approver' },
    ])
    .execute();
  await db
    .insertInto('protected_items')
    .values({
      id: 'item-web-01',
      customer_id: 'contoso',
      kind: 'vm',
      name: 'web-01',
      resource_id: '/vm/web-01',
    })
    .execute();
  const disks = JSON.stringify([
    { name: 'web-01-os', role: 'os', sizeBytes: 32 * 2 ** 30, storedBytes: 2 ** 30 },
    { name: 'web-01-data', role: 0, sizeBytes: 128 * 2 ** 30, storedBytes: 2 ** 30 },
  ]);
  await db
    .insertInto('restore_points')
    .values(
      ['2026-11-30T02:00:00Z', '2026-12-01T02:00:00Z', '2026-12-02T02:00:00Z'].map((at, i) => ({
        id: `rp-web-01-${i}`,
        customer_id: 'contoso',
        item_id: 'item-web-01',
        created_at: at,
        expires_at: '2027-12-31T00:00:00Z',
        manifest_path: `manifests/${i}`,
        disks,
        size_bytes: 160 * 2 ** 30,
        stored_bytes: 2 ** 31,
      })),
    )
    .execute();
}

let dir: string;
let handle: TestDatabase;
let queue: RecordingQueue;
let notices: EngineNotices;
let botUrl: string;
let connectorUrl: string;
const calls: ConnectorCall[] = [];
const servers: { close(): void }[] = [];

async function listen(app: express.Express): Promise<string> {
  return new Promise((resolve) => {
    const server = app.listen(0, '127.0.0.1', () =>
      resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`),
    );
    servers.push(server);
  });
}

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'acba-bot-'));
  handle = await openTestDatabase();
  await seed(handle.db);

  const connector = express();
  connector.use(express.json());
  connector.use((req, res) => {
    calls.push({ method: req.method, path: decodeURIComponent(req.path), body: req.body });
    res.json({ id: `sent-${calls.length}` });
  });
  connectorUrl = `${await listen(connector)}/`;

  queue = new RecordingQueue();
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
  notices = bot.notices;
  const app = express();
  app.use(bot.router);
  botUrl = await listen(app);
}, 60_000);

afterAll(async () => {
  for (const server of servers) server.close();
  await handle?.dispose();
  await fs.rm(dir, { recursive: true, force: true });
});

beforeEach(() => {
  calls.length = 0;
});

let seq = 0;

/** A personal-chat message as Teams sends it (tenant in conversation and channelData). */
function message(person: Person, text: string, extra: Record<string, unknown> = {}) {
  return {
    type: 'message',
    id: `msg-${++seq}`,
    timestamp: new Date().toISOString(),
    serviceUrl: connectorUrl,
    channelId: 'msteams',
    from: { id: `29:${person.objectId}`, name: person.name, aadObjectId: person.objectId },
    conversation: {
      conversationType: 'personal',
      id: person.conversationId,
      tenantId: person.tenantId,
    },
    recipient: { id: '28:acba-bot', name: 'ACBA' },
    textFormat: 'plain',
    text,
    entities: [{ type: 'clientInfo', locale: 'en-US', timezone: 'UTC' }],
    channelData: { tenant: { id: person.tenantId } },
    locale: 'en-US',
    ...extra,
  };
}

/** An Action.Execute invoke; the approvers' channel sends it with the tenant only in channelData. */
function invoke(person: Person, verb: string | undefined, data: Record<string, unknown>) {
  const channel = person.conversationId === APPROVERS;
  return {
    type: 'invoke',
    name: 'adaptiveCard/action',
    id: `f:invoke-${++seq}`,
    channelId: 'msteams',
    serviceUrl: connectorUrl,
    channelData: { tenant: { id: person.tenantId }, source: { name: 'message' } },
    from: { id: `29:${person.objectId}`, name: person.name, aadObjectId: person.objectId },
    recipient: { id: '28:acba-bot', name: 'ACBA' },
    conversation: channel
      ? { id: APPROVERS, conversationType: 'channel', isGroup: true }
      : { id: person.conversationId, conversationType: 'personal', tenantId: person.tenantId },
    value: {
      action: { type: 'Action.Execute', title: 'Go', ...(verb ? { verb } : {}), data },
      trigger: 'manual',
    },
    replyToId: `card-${seq}`,
    locale: 'en-US',
  };
}

async function post(body: unknown, raw = false): Promise<{ status: number; body: any }> {
  const response = await fetch(`${botUrl}/api/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: raw ? (body as string) : JSON.stringify(body),
  });
  const text = await response.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // plain text answers stay text
  }
  return { status: response.status, body: parsed };
}

const cardsIn = (call: ConnectorCall) => (call.body.attachments ?? []).map((a: any) => a.content);
const countRequests = async () =>
  Number(
    (
      await handle.db
        .selectFrom('requests')
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .executeTakeFirstOrThrow()
    ).n,
  );

async function submitGoodRequest(): Promise<string> {
  const response = await post(
    invoke(megan, 'fileRestore.submit', {
      vmName: 'web-01',
      path: '/etc/nginx/nginx.conf',
      restorePointId: 'rp-web-01-1',
      at: '',
      reason: goodReason,
      ticket: '',
    }),
  );
  expect(response.body.type).toBe('application/vnd.microsoft.card.adaptive');
  return JSON.stringify(response.body.value).match(/"requestId":"([0-9a-f-]{36})"/)![1]!;
}

describe('HTTP endpoint', () => {
  it('answers 400 with a clear message to malformed JSON and changes nothing', async () => {
    const response = await post('{"type": "message", ', true);
    expect(response.status).toBe(400);
    expect(response.body.error).toContain('not valid JSON');
    expect(calls).toHaveLength(0);
  });

  it('answers 400 naming what an activity lacks', async () => {
    const { from: _from, conversation: _conversation, ...rest } = message(megan, 'help');
    const response = await post(rest);
    expect(response.status).toBe(400);
    expect(response.body.error).toContain('conversation.id, from.id');
  });
});

describe('a requester asks in a personal chat', () => {
  it('gets the file-restore form for a restore command, and the conversation is remembered', async () => {
    const response = await post(
      message(megan, '  Restore FILE "/etc/nginx/nginx.conf" from vm WEB-01 at 2026-12-01 14:00 '),
    );
    expect(response.status).toBe(200);

    expect(calls).toHaveLength(1);
    expect(calls[0]!.method).toBe('POST');
    expect(calls[0]!.path).toContain(`/v3/conversations/${megan.conversationId}/activities`);
    const [card] = cardsIn(calls[0]!);
    expect(card.version).toBe('1.5');
    const json = JSON.stringify(card);
    expect(json).toContain('2026-12-01 02:00 UTC');
    expect(json).toContain('web-01-data (data disk, LUN 0)');
    expect(card.body.find((b: any) => b.id === 'reason')).toMatchObject({
      type: 'Input.Text',
      isMultiline: true,
      isRequired: true,
    });
    expect(card.actions[0]).toMatchObject({
      type: 'Action.Execute',
      verb: 'fileRestore.submit',
      data: { vmName: 'web-01', path: '/etc/nginx/nginx.conf', restorePointId: 'rp-web-01-1' },
    });

    const stored = await handle.db
      .selectFrom('conversations')
      .selectAll()
      .where('id', '=', megan.conversationId)
      .executeTakeFirst();
    expect(stored).toMatchObject({ tenant_id: CONTOSO, object_id: megan.objectId });
  });

  it("reads a time without a zone in the user's Teams time zone", async () => {
    const activity = message(megan, 'restore file /etc/hosts from web-01 at 2026-11-30 20:00', {
      localTimezone: 'America/Los_Angeles',
    });
    await post(activity);
    // 20:00 in Los Angeles is 04:00 UTC the next day: the restore point of 2026-12-01 02:00 UTC.
    expect(JSON.stringify(cardsIn(calls[0]!)[0])).toContain('rp-web-01-1');
  });

  it('names the VMs when the VM is unknown', async () => {
    await post(message(megan, 'restore file /etc/hosts from web-99'));
    expect(calls[0]!.body.text).toContain(
      'There is no protected VM named "web-99". Protected VMs of Contoso: web-01.',
    );
  });

  it('gets the help card for anything else, mentions stripped', async () => {
    await post(message(megan, '<at>ACBA</at> what can you do?'));
    const [card] = cardsIn(calls[0]!);
    expect(JSON.stringify(card)).toContain('restore file /etc/nginx/nginx.conf from web-01');
  });

  it('is told to sign in to Teams when the activity carries no Entra identity', async () => {
    const activity = message(megan, 'help');
    delete (activity.from as { aadObjectId?: string }).aadObjectId;
    await post(activity);
    expect(calls[0]!.body.text).toContain('only work in Microsoft Teams');
  });
});

describe('submitting the form', () => {
  it('refuses a too-short reason with a message and stores no request', async () => {
    const before = await countRequests();
    const response = await post(
      invoke(megan, 'fileRestore.submit', {
        vmName: 'web-01',
        path: '/etc/nginx/nginx.conf',
        restorePointId: 'rp-web-01-1',
        reason: 'need it',
      }),
    );
    expect(response.status).toBe(200);
    expect(response.body).toMatchObject({
      statusCode: 200,
      type: 'application/vnd.microsoft.activity.message',
    });
    expect(response.body.value).toContain('The reason is 7 characters long');
    expect(await countRequests()).toBe(before);
    expect(calls).toHaveLength(0);
  });

  it('stores the request, posts the approval card to the approvers and answers with the status card', async () => {
    const requestId = await submitGoodRequest();

    const request = await handle.db
      .selectFrom('requests')
      .selectAll()
      .where('id', '=', requestId)
      .executeTakeFirstOrThrow();
    expect(request.status).toBe('pending');
    expect(request.requester_conversation).toMatchObject({ conversationId: megan.conversationId });

    const posted = calls.find((c) => c.path === `/v3/conversations/${APPROVERS}/activities`);
    expect(posted).toBeDefined();
    const card = cardsIn(posted!)[0];
    expect(JSON.stringify(card)).toContain('Megan Bowen');
    expect(JSON.stringify(card)).toContain(goodReason);
    expect(card.actions.map((a: any) => a.verb)).toEqual(['request.approve', 'request.reject']);
    expect(request.approval_card).toMatchObject({
      conversationId: APPROVERS,
      activityId: expect.stringMatching(/^sent-/),
    });
  });

  it('acts once when the same submit arrives twice', async () => {
    const before = await countRequests();
    const data = {
      vmName: 'web-01',
      path: '/var/log/syslog',
      restorePointId: 'rp-web-01-2',
      reason: goodReason,
    };
    await post(invoke(megan, 'fileRestore.submit', data));
    const again = await post(invoke(megan, 'fileRestore.submit', data));
    expect(JSON.stringify(again.body.value)).toContain('You already sent this request');
    expect(await countRequests()).toBe(before + 1);
  });
});

describe('deciding on the approval card', () => {
  it('refuses the requester, refuses a customer user, and lets a provider approver decide once', async () => {
    const requestId = await submitGoodRequest();
    calls.length = 0;

    const self = await post(
      invoke(megan, 'request.approve', { requestId, comment: 'I approve my own request.' }),
    );
    expect(self.body.type).toBe('application/vnd.microsoft.activity.message');
    expect(self.body.value).toContain('yourself');

    const customer = await post(
      invoke(lynne, 'request.approve', { requestId, comment: 'Fine by me, colleague.' }),
    );
    expect(customer.body.value).toContain("Only the provider's approvers");

    const noComment = await post(invoke(adele, 'request.approve', { requestId }));
    expect(noComment.body.value).toContain('No comment was given');

    const approved = await post(
      invoke(adele, 'request.approve', {
        requestId,
        comment: 'Checked INC-4711 with the customer.',
      }),
    );
    expect(approved.status).toBe(200);
    expect(approved.body.type).toBe('application/vnd.microsoft.card.adaptive');
    const decided = JSON.stringify(approved.body.value);
    expect(decided).toContain('Approved: the restore is queued');
    expect(decided).toContain('Adele Vance');
    expect(decided).toContain('Checked INC-4711 with the customer.');
    expect(queue.fileRestores).toContainEqual({ requestId });

    // The requester hears about it in their personal chat.
    const notice = calls.find((c) =>
      c.path.startsWith(`/v3/conversations/${megan.conversationId}/activities`),
    );
    expect(JSON.stringify(notice?.body)).toContain('Adele Vance approved your request');

    const second = await post(
      invoke(alex, 'request.reject', { requestId, comment: 'I would have said no.' }),
    );
    expect(second.body.type).toBe('application/vnd.microsoft.activity.message');
    expect(second.body.value).toContain(
      `Request ${requestId} was already approved by Adele Vance at`,
    );

    const repeat = await post(
      invoke(adele, 'request.approve', {
        requestId,
        comment: 'Checked INC-4711 with the customer.',
      }),
    );
    expect(repeat.body.type).toBe('application/vnd.microsoft.card.adaptive');
    expect(queue.fileRestores.filter((j) => j.requestId === requestId)).toHaveLength(1);

    const audit = await handle.db
      .selectFrom('audit_log')
      .selectAll()
      .where('resource', '=', `request/${requestId}`)
      .where('outcome', '=', 'refused')
      .execute();
    expect(audit.map((e) => e.actor_object_id)).toEqual(
      expect.arrayContaining([megan.objectId, lynne.objectId, alex.objectId]),
    );
    expect((await verifyAuditChain(handle.db)).ok).toBe(true);
  });

  it('answers a button without a verb with a helpful message', async () => {
    const response = await post(invoke(megan, undefined, { feedback: 'test' }));
    expect(response.status).toBe(200);
    expect(response.body.value).toContain('did not tell me what to do');
  });

  it('reads the verb from data when Teams puts it there', async () => {
    const requestId = await submitGoodRequest();
    const response = await post(invoke(megan, undefined, { verb: 'request.status', requestId }));
    expect(JSON.stringify(response.body.value)).toContain('waiting for approval');
  });
});

describe('when the restore ends', () => {
  it('sends the requester the download link and shows the outcome on the approval card', async () => {
    const requestId = await submitGoodRequest();
    await post(invoke(adele, 'request.approve', { requestId, comment: 'Approved after a call.' }));
    const card = (
      await handle.db
        .selectFrom('requests')
        .select('approval_card')
        .where('id', '=', requestId)
        .executeTakeFirstOrThrow()
    ).approval_card!;
    calls.length = 0;

    await notices.restoreFinished({
      kind: 'file_restore',
      requestId,
      outcome: 'completed',
      fileName: 'nginx.conf',
      sizeBytes: 2048,
      downloadUrl: 'http://localhost:3978/download/abc',
      downloadExpiresAt: new Date('2026-12-03T15:00:00Z'),
    });

    const toRequester = calls.find(
      (c) =>
        c.method === 'POST' &&
        c.path.startsWith(`/v3/conversations/${megan.conversationId}/activities`),
    );
    expect(toRequester?.body.text).toContain('nginx.conf (2.0 KiB)');
    expect(toRequester?.body.text).toContain('http://localhost:3978/download/abc');
    expect(toRequester?.body.text).toContain('until 2026-12-03 15:00 UTC');

    const update = calls.find((c) => c.method === 'PUT');
    expect(update?.path).toBe(`/v3/conversations/${APPROVERS}/activities/${card.activityId}`);
    expect(JSON.stringify(update?.body)).toContain('Approved and restored');
  });

  it('tells the requester why a restore failed', async () => {
    const requestId = await submitGoodRequest();
    await post(invoke(adele, 'request.approve', { requestId, comment: 'Approved after a call.' }));
    calls.length = 0;

    await notices.restoreFinished({
      kind: 'file_restore',
      requestId,
      outcome: 'failed',
      message: 'the file does not exist in that restore point',
    });
    const toRequester = calls.find((c) =>
      c.path.startsWith(`/v3/conversations/${megan.conversationId}/activities`),
    );
    expect(toRequester?.body.text).toContain('failed');
    expect(toRequester?.body.text).toContain('the file does not exist in that restore point');
    expect(JSON.stringify(calls.find((c) => c.method === 'PUT')?.body)).toContain(
      'Approved, but the restore failed',
    );
  });
});

describe('with a Microsoft app id', () => {
  it('refuses an activity without a Bot Framework token and stores nothing', async () => {
    const approvals = createApprovals({
      db: handle.db,
      log: silentLogger,
      queue,
      providerTenantId: PROVIDER,
    });
    const secured = createBot({
      approvals,
      db: handle.db,
      log: silentLogger,
      appType: 'MultiTenant',
      appId: '00000000-0000-0000-0000-00000000b07a',
      appPassword: 'not-a-real-secret',
    });
    const app = express();
    app.use(secured.router);
    const url = await listen(app);

    const activity = message({ ...megan, conversationId: 'a:unauthenticated' }, 'help');
    const response = await fetch(`${url}/api/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(activity),
    });
    expect(response.status).toBe(401);
    expect(calls).toHaveLength(0);
    expect(
      await handle.db
        .selectFrom('conversations')
        .selectAll()
        .where('id', '=', 'a:unauthenticated')
        .executeTakeFirst(),
    ).toBeUndefined();
  });
});

describe('when a turn fails unexpectedly', () => {
  it('apologizes briefly and leaks nothing of the failure', async () => {
    const approvals = createApprovals({
      db: handle.db,
      log: silentLogger,
      queue,
      providerTenantId: PROVIDER,
    });
    const broken = {
      insertInto: () => {
        throw new Error('connection to 10.0.0.5 refused at Pool.connect (internal stack detail)');
      },
    } as unknown as Db;
    const bot = createBot({ approvals, db: broken, log: silentLogger, appType: 'MultiTenant' });
    const app = express();
    app.use(bot.router);
    const url = await listen(app);

    const response = await fetch(`${url}/api/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(message(megan, 'help')),
    });
    expect(response.status).toBe(200);
    expect(calls).toHaveLength(1);
    expect(calls[0]!.body.text).toContain('Sorry, something went wrong on our side');
    expect(JSON.stringify(calls[0]!.body)).not.toContain('10.0.0.5');

    const invokeResponse = await fetch(`${url}/api/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(invoke(megan, 'request.status', { requestId: 'x' })),
    });
    const body = await invokeResponse.json();
    expect(body.type).toBe('application/vnd.microsoft.activity.message');
    expect(body.value).toContain('Sorry');
    expect(JSON.stringify(body)).not.toContain('stack');
  });
});
