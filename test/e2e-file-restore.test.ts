/**
 * The whole slice, driven over HTTP as Teams and a browser would: a customer's
 * employee asks the bot for a file, the provider's approver approves it in
 * writing, the engine recovers the file from a real backup (libguestfs over the
 * restore point's byte-range resource) and the requester downloads it through
 * a signed link. Every part is real: the sandbox over HTTPS, Azurite, the
 * database (PGlite, or PostgreSQL in CI), pg-boss, the bot and the portal.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp, type RunningApp } from '../cli/app.ts';
import { loadConfig } from '../core/config.ts';
import type { SandboxSeed, SandboxUser } from '../sandbox/index.ts';
import { startConnector, type StandInConnector } from './support/connector.ts';
import { createServerDatabase, tempDir } from './support/database.ts';
import { PortalClient } from './support/portal-client.ts';
import {
  invokeActivity,
  messageActivity,
  personalChat,
  type Conversation,
} from './support/teams-activities.ts';

const APPROVERS: Conversation = { id: '19:e2e-approvers@thread.tacv2', type: 'channel' };

let app: RunningApp;
let connector: StandInConnector;
let seed: SandboxSeed;
let dropDatabase: (() => Promise<void>) | undefined;
let dataDir: string;

const user = (name: string): SandboxUser => {
  const found = seed.users.find((u) => u.displayName === name);
  if (!found) throw new Error(`no seeded user ${name}`);
  return found;
};

async function post(activity: object): Promise<{ status: number; body: any }> {
  const res = await fetch(`${app.url}/api/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(activity),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

function cardText(card: unknown): string {
  return JSON.stringify(card);
}

beforeAll(async () => {
  connector = await startConnector();
  dataDir = await tempDir('acba-e2e-');
  const server = await createServerDatabase();
  dropDatabase = server?.drop;
  const config = loadConfig({
    PORT: '0',
    DATA_DIR: dataDir,
    LOG_LEVEL: 'silent',
    ACBA_BACKUP_ON_START: '1',
    ACBA_APPROVERS_CONVERSATION_ID: APPROVERS.id,
    ACBA_APPROVERS_SERVICE_URL: connector.serviceUrl,
    ...(server ? { DATABASE_URL: server.url } : {}),
  });
  app = await startApp(config, { sandboxImageCacheDir: path.resolve('test/.cache/images') });
  seed = app.sandbox!.seed;

  // The start-up backup of both seeded VMs runs on the worker; wait for web-01's.
  const deadline = Date.now() + 240_000;
  for (;;) {
    const points = await app.database.db
      .selectFrom('restore_points')
      .innerJoin('protected_items', 'protected_items.id', 'restore_points.item_id')
      .select('protected_items.name')
      .execute();
    if (points.some((p) => p.name === 'web-01')) break;
    if (Date.now() > deadline)
      throw new Error('web-01 was not backed up within 4 minutes of start-up');
    await new Promise((r) => setTimeout(r, 500));
  }
}, 300_000);

afterAll(async () => {
  await app?.close();
  await connector?.close();
  await dropDatabase?.();
  await fs.rm(dataDir, { recursive: true, force: true });
});

describe('a file restore asked for in Teams, approved in writing, delivered from a real backup', () => {
  let requestId: string;
  let approvalActivityId: string;

  it('answers /healthz with every part up', async () => {
    const res = await fetch(`${app.url}/healthz`);
    const body = await res.json();
    expect(res.status).toBe(200);
    expect(body).toMatchObject({
      status: 'ok',
      parts: { database: { ok: true }, queue: { ok: true }, repository: { ok: true } },
    });
  });

  it('shows the requester the restore point it found and asks for a reason', async () => {
    const alex = user('Alex Wilber');
    const res = await post(
      messageActivity(
        alex,
        personalChat(alex),
        connector.serviceUrl,
        'restore file /etc/nginx/nginx.conf from web-01',
      ),
    );
    expect(res.status).toBe(200);

    const reply = await connector.waitFor(
      (r) => r.conversationId === personalChat(alex).id && r.activity.attachments?.length > 0,
      10_000,
      'form card for Alex',
    );
    const card = reply.activity.attachments[0];
    expect(card.contentType).toBe('application/vnd.microsoft.card.adaptive');
    expect(cardText(card.content)).toContain('/etc/nginx/nginx.conf');
    expect(cardText(card.content)).toContain('fileRestore.submit');
  });

  it('refuses a reason that is too short and stores nothing', async () => {
    const alex = user('Alex Wilber');
    const point = await app.database.db
      .selectFrom('restore_points')
      .select('id')
      .orderBy('created_at', 'desc')
      .executeTakeFirstOrThrow();
    const res = await post(
      invokeActivity(alex, personalChat(alex), connector.serviceUrl, 'fileRestore.submit', {
        vmName: 'web-01',
        path: '/etc/nginx/nginx.conf',
        restorePointId: point.id,
        reason: 'need it',
      }),
    );
    expect(res.status).toBe(200);
    expect(res.body.type).toBe('application/vnd.microsoft.activity.message');
    expect(res.body.value).toMatch(/20 characters/);
    expect(await app.database.db.selectFrom('requests').select('id').execute()).toHaveLength(0);
  });

  it('stores the written request and sends an approval card to the approvers channel', async () => {
    const alex = user('Alex Wilber');
    const form = connector.recorded.find(
      (r) => r.conversationId === personalChat(alex).id && r.activity.attachments,
    )!;
    const submit = form.activity.attachments[0].content.actions.find(
      (a: any) => a.verb === 'fileRestore.submit',
    );

    const res = await post(
      invokeActivity(alex, personalChat(alex), connector.serviceUrl, 'fileRestore.submit', {
        ...submit.data,
        reason: 'The nginx configuration was overwritten by a bad deployment this morning.',
        ticket: 'INC-4711',
      }),
    );
    expect(res.status).toBe(200);
    expect(res.body.type).toBe('application/vnd.microsoft.card.adaptive');

    const approval = await connector.waitFor(
      (r) => r.conversationId === APPROVERS.id && r.method === 'POST',
      10_000,
      'approval card',
    );
    const actions = approval.activity.attachments[0].content.actions;
    requestId = actions.find((a: any) => a.verb === 'request.approve').data.requestId;
    approvalActivityId = approval.id;
    expect(cardText(approval.activity.attachments[0].content)).toContain('bad deployment');

    const stored = await app.database.db
      .selectFrom('requests')
      .selectAll()
      .where('id', '=', requestId)
      .executeTakeFirstOrThrow();
    expect(stored).toMatchObject({
      status: 'pending',
      requester_object_id: alex.objectId,
      kind: 'file_restore',
    });
  });

  it('refuses approval by the requester and by anyone of the customer, and records the refusals', async () => {
    for (const name of ['Alex Wilber', 'Megan Bowen']) {
      const person = user(name);
      const res = await post(
        invokeActivity(person, personalChat(person), connector.serviceUrl, 'request.approve', {
          requestId,
          comment: 'Looks fine to me.',
        }),
      );
      expect(res.status).toBe(200);
      expect(res.body.type).toBe('application/vnd.microsoft.activity.message');
    }
    const request = await app.database.db
      .selectFrom('requests')
      .select('status')
      .where('id', '=', requestId)
      .executeTakeFirstOrThrow();
    expect(request.status).toBe('pending');
    const refusals = await app.database.db
      .selectFrom('audit_log')
      .selectAll()
      .where('outcome', '=', 'refused')
      .execute();
    expect(
      refusals
        .filter((e) => e.resource.includes(requestId))
        .map((e) => e.actor_name)
        .sort(),
    ).toEqual(['Alex Wilber', 'Megan Bowen']);
  });

  it('lets a provider approver approve in writing, then delivers the file through a signed link', async () => {
    const adele = user('Adele Vance');
    const res = await post(
      invokeActivity(adele, APPROVERS, connector.serviceUrl, 'request.approve', {
        requestId,
        comment: 'Approved: matches incident INC-4711.',
      }),
    );
    expect(res.status).toBe(200);
    expect(res.body.type).toBe('application/vnd.microsoft.card.adaptive');
    expect(cardText(res.body.value)).toContain('Adele Vance');

    const alex = user('Alex Wilber');
    const notice = await connector.waitFor(
      (r) =>
        r.conversationId === personalChat(alex).id && /downloads\//.test(r.activity.text ?? ''),
      240_000,
      'download notice for Alex',
    );
    const link = /(https?:\/\/\S+\/downloads\/[^\s.]+(?:\.[^\s.]+)*)/
      .exec(notice.activity.text)![1]!
      .replace(/\.$/, '');

    const download = await fetch(link);
    expect(download.status).toBe(200);
    const content = Buffer.from(await download.arrayBuffer());
    expect(content.toString('utf8')).toMatch(/server\s*\{/);
    const delivery = await app.database.db
      .selectFrom('deliveries')
      .selectAll()
      .where('request_id', '=', requestId)
      .executeTakeFirstOrThrow();
    expect(createHash('sha256').update(content).digest('hex')).toBe(delivery.sha256);

    // A tampered link is refused.
    const forged = await fetch(link.slice(0, -2) + (link.endsWith('AA') ? 'BB' : 'AA'));
    expect(forged.status).toBe(403);

    // The approver's card shows the outcome.
    const update = await connector.waitFor(
      (r) =>
        r.method === 'PUT' &&
        r.conversationId === APPROVERS.id &&
        r.id === approvalActivityId &&
        /Restored/.test(cardText(r.activity)),
      10_000,
      'approval card update',
    );
    expect(cardText(update.activity)).toContain('Adele Vance');
  });

  it('refuses a second decision on the decided request', async () => {
    const lee = user('Lee Gu');
    const res = await post(
      invokeActivity(lee, APPROVERS, connector.serviceUrl, 'request.reject', {
        requestId,
        comment: 'Too late, it is decided.',
      }),
    );
    expect(res.body.type).toBe('application/vnd.microsoft.activity.message');
    expect(res.body.value).toMatch(/already/i);
  });

  it('shows the restore points, the request with its decision, and an intact audit trail in the portal', async () => {
    const auditor = seed.users.find((u) => u.role === 'auditor')!;
    const portal = new PortalClient(app.url);
    await portal.signIn(auditor.objectId, auditor.tenantId);

    const points = await (await portal.get('/portal/restore-points')).text();
    expect(points).toContain('web-01');

    const detail = await (await portal.get(`/portal/requests/${requestId}`)).text();
    expect(detail).toContain('Approved: matches incident INC-4711.');
    expect(detail).toContain('Adele Vance');

    const verified = await portal.postForm('/portal/audit/verify', {}, '/portal/audit');
    const page =
      verified.status === 303
        ? await (await portal.get(verified.headers.get('location')!.replace(app.url, ''))).text()
        : await verified.text();
    expect(page).toMatch(/Chain intact: \d+ entries checked/);
  });
});
