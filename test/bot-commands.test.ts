/**
 * The bot's commands in plain words, told as stories over HTTP: the real
 * router in an Express app, a stand-in connector recording what the bot says,
 * a real embedded PostgreSQL and the real approval workflow. Two customers,
 * Contoso and Northwind, share the service; neither may see the other's.
 *
 * Also the token checks with app credentials, against a stand-in for the keys
 * Bot Framework publishes, and a repeated delivery of an approve.
 */
import { once } from 'node:events';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { exportJWK, generateKeyPair, SignJWT } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApprovals, type Actor, type Approvals } from '../approvals/index.ts';
import { createBot } from '../bot/index.ts';
import { verifyAuditChain } from '../core/audit.ts';
import type { Db } from '../core/db/database.ts';
import { silentLogger } from '../core/log.ts';
import type { BackupJob, FileRestoreJob, JobQueue } from '../engine/queue.ts';
import { startConnector, type StandInConnector } from './support/connector.ts';
import { openTestDatabase, type TestDatabase } from './support/database.ts';
import {
  invokeActivity,
  messageActivity,
  personalChat,
  type TeamsPerson,
} from './support/teams-activities.ts';

const PROVIDER = 'tenant-provider';
const CONTOSO = 'tenant-contoso';
const NORTHWIND = 'tenant-northwind';

const megan: TeamsPerson = { objectId: 'aad-megan', tenantId: CONTOSO, displayName: 'Megan Bowen' };
const lynne: TeamsPerson = {
  objectId: 'aad-lynne',
  tenantId: CONTOSO,
  displayName: 'Lynne Robbins',
};
const nora: TeamsPerson = { objectId: 'aad-nora', tenantId: NORTHWIND, displayName: 'Nora Dunn' };
const adele: TeamsPerson = {
  objectId: 'aad-adele',
  tenantId: PROVIDER,
  displayName: 'Adele Vance',
};

const why = 'The nginx config was overwritten by a bad deploy on Monday, incident INC-4711.';

/** File restores the workflow queued for the engine. */
const queuedRestores: FileRestoreJob[] = [];

const principalOf = (p: TeamsPerson) => ({
  tenant_id: p.tenantId,
  object_id: p.objectId,
  display_name: p.displayName,
});

const itemOf = (id: string, customerId: string, name: string) => ({
  id,
  customer_id: customerId,
  kind: 'vm' as const,
  name,
  resource_id: `/vm/${name}`,
});

/** A finished backup run, recorded as the engine records it: a job session of the item. */
const backupJob = (status: 'succeeded' | 'failed', customerId: string, itemId: string) =>
  handle.db
    .insertInto('job_sessions')
    .values({
      id: `session-${itemId}-${status}`,
      customer_id: customerId,
      item_id: itemId,
      item_name: itemId,
      trigger: 'schedule',
      status,
      finished_at: new Date(),
      error_kind: status === 'failed' ? 'unexpected' : null,
      error: status === 'failed' ? 'disk snapshot quota exceeded at 10.0.0.7' : null,
    })
    .execute();

async function seed(db: Db) {
  const customers = { contoso: ['Contoso', CONTOSO], northwind: ['Northwind', NORTHWIND] };
  await db
    .insertInto('customers')
    .values(
      Object.entries(customers).map(([id, [name, tenant]]) => ({
        id,
        name: name!,
        tenant_id: tenant!,
        subscription_id: `sub-${id}`,
      })),
    )
    .execute();
  await db
    .insertInto('principals')
    .values(
      [megan, lynne, nora, adele].map((p) => ({
        ...principalOf(p),
        role: p === adele ? ('approver' as const) : ('requester' as const),
      })),
    )
    .execute();
  await db
    .insertInto('protected_items')
    .values([
      itemOf('item-web-01', 'contoso', 'web-01'),
      itemOf('item-win-01', 'contoso', 'win-01'),
      itemOf('item-nw-01', 'northwind', 'nw-app-01'),
    ])
    .execute();

  const disks = JSON.stringify([
    { name: 'web-01-os', role: 'os', sizeBytes: 32 * 2 ** 30, storedBytes: 2 ** 30 },
  ]);
  const point = (
    id: string,
    customer: string,
    item: string,
    at: string,
    policy: string | null,
  ) => ({
    id,
    customer_id: customer,
    item_id: item,
    created_at: at,
    expires_at: '2027-01-15T02:00:00Z',
    manifest_path: `manifests/${id}`,
    disks,
    size_bytes: 32 * 2 ** 30,
    stored_bytes: 2 ** 30,
    policy_name: policy,
  });
  await db
    .insertInto('restore_points')
    .values([
      point('rp-web-0', 'contoso', 'item-web-01', '2026-11-30T02:00:00Z', null),
      point('rp-web-1', 'contoso', 'item-web-01', '2026-12-01T02:00:00Z', 'daily-web'),
      point('rp-web-2', 'contoso', 'item-web-01', '2026-12-02T02:00:00Z', 'daily-web'),
      point('rp-nw-0', 'northwind', 'item-nw-01', '2026-12-02T04:00:00Z', 'nightly'),
    ])
    .execute();

  await backupJob('succeeded', 'contoso', 'item-web-01');
  await backupJob('failed', 'contoso', 'item-win-01');
  await backupJob('succeeded', 'northwind', 'item-nw-01');
}

let handle: TestDatabase;
let connector: StandInConnector;
let approvals: Approvals;
let botUrl: string;
const servers: Server[] = [];

/** Serves the app on a free local port; closed after all tests. */
async function serve(app: express.Express): Promise<string> {
  const server = app.listen(0, '127.0.0.1');
  servers.push(server);
  await once(server, 'listening');
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
}

beforeAll(async () => {
  handle = await openTestDatabase();
  await seed(handle.db);
  connector = await startConnector();
  const queue: JobQueue = {
    enqueueFileRestore: async (job) => void queuedRestores.push(job),
    enqueueBackup: async (_job: BackupJob) => {},
  };
  approvals = createApprovals({
    db: handle.db,
    log: silentLogger,
    queue,
    providerTenantId: PROVIDER,
  });
  const bot = createBot({ approvals, db: handle.db, log: silentLogger, appType: 'MultiTenant' });
  const app = express();
  app.use(bot.router);
  botUrl = await serve(app);
}, 60_000);

afterAll(async () => {
  for (const server of servers) server.close();
  await connector?.close();
  await handle?.dispose();
});

async function post(url: string, activity: unknown, token?: string) {
  const response = await fetch(`${url}/api/messages`, {
    method: 'POST',
    headers: {
      'content-type': 'application/json',
      ...(token ? { authorization: `Bearer ${token}` } : {}),
    },
    body: JSON.stringify(activity),
  });
  const text = await response.text();
  // Invoke responses are JSON; the adapter's refusals are plain text.
  const json = response.headers.get('content-type')?.includes('json');
  return { status: response.status, body: json ? JSON.parse(text) : text };
}

interface Reply {
  text?: string;
  card?: any;
  /** The card as JSON text, or the text: what a person reads, for toContain. */
  shown: string;
}

/** Writes to the bot in the person's personal chat and returns its one reply. */
async function say(person: TeamsPerson, text: string, extra: object = {}): Promise<Reply> {
  const before = connector.recorded.length;
  const activity = {
    ...messageActivity(person, personalChat(person), connector.serviceUrl, text),
    ...extra,
  };
  const response = await post(botUrl, activity);
  expect(response.status).toBe(200);
  const replies = connector.recorded.slice(before);
  expect(replies).toHaveLength(1);
  const sent = replies[0]!.activity;
  const card = sent.attachments?.[0]?.content;
  // Every card the bot sends must render in Teams: schema 1.5 or lower.
  if (card) expect(Number(card.version)).toBeLessThanOrEqual(1.5);
  return { text: sent.text, card, shown: card ? JSON.stringify(card) : String(sent.text) };
}

const actorOf = (person: TeamsPerson): Actor => ({
  objectId: person.objectId,
  tenantId: person.tenantId,
  name: person.displayName,
  channel: 'bot',
});

async function requestFor(person: TeamsPerson, path: string): Promise<string> {
  const request = await approvals.requestFileRestore(actorOf(person), {
    vmName: 'web-01',
    path,
    reason: why,
  });
  return request.id;
}

const statusOf = async (requestId: string) =>
  (
    await handle.db
      .selectFrom('requests')
      .select('status')
      .where('id', '=', requestId)
      .executeTakeFirstOrThrow()
  ).status;

const auditOf = (requestId: string, action: string) =>
  handle.db
    .selectFrom('audit_log')
    .selectAll()
    .where('resource', '=', `request/${requestId}`)
    .where('action', '=', action)
    .orderBy('seq')
    .execute();

describe('what people write, read forgivingly', () => {
  it.each([
    ['status', 'Backups of Contoso'],
    ['STATUS', 'Backups of Contoso'],
    ['Please show me the backup status.', 'Backups of Contoso'],
    ['<at>ACBA</at> status please', 'Backups of Contoso'],
    ['hi acba, how are our backups doing?', 'Backups of Contoso'],
    ['restore points web-01', 'Restore points of web-01'],
    ['show restore points for "WEB-01"', 'Restore points of web-01'],
    ['List my Restore Points of the VM web-01', 'Restore points of web-01'],
    ['backups of web-01', 'Restore points of web-01'],
    ["web-01's restore points", 'Restore points of web-01'],
    ['my requests', 'Your requests'],
    ['could you list my pending requests?', 'Your requests'],
  ])('reads "%s" as the command titled "%s"', async (text, title) => {
    const reply = await say(megan, text);
    expect(reply.card?.body[0].text).toBe(title);
  });
});

describe('a requester asks how the backups are', () => {
  it("sees each of Contoso's VMs with its newest restore point in her time zone and how its last backup went", async () => {
    const reply = await say(megan, 'how are my backups?', { localTimezone: 'Europe/Berlin' });

    expect(reply.card.body[0].text).toBe('Backups of Contoso');
    const [web, win] = reply.card.body.filter((b: any) => b.type === 'Container');
    expect(JSON.stringify(web)).toContain('web-01 (VM)');
    expect(web.items[1].facts).toEqual([
      { title: 'Newest restore point', value: '2026-12-02 03:00 Europe/Berlin' },
      { title: 'Restore points', value: '3' },
      {
        title: 'Last backup',
        value: expect.stringMatching(/^succeeded at \d{4}-.* Europe\/Berlin$/),
      },
    ]);
    expect(JSON.stringify(win)).toContain('none yet');
    expect(JSON.stringify(win)).toContain('failed at');
    expect(JSON.stringify(win)).toContain('The last backup of win-01 failed');
    // The engine's failure message stays with the operators.
    expect(reply.shown).not.toContain('10.0.0.7');
    expect(reply.shown).not.toContain('nw-app-01');
  });

  it('shows a customer with many VMs those whose backups failed first, and counts the rest', async () => {
    const tina = { objectId: 'aad-tina', tenantId: 'tenant-tailspin', displayName: 'Tina Tail' };
    await handle.db
      .insertInto('customers')
      .values({ id: 'tailspin', name: 'Tailspin', tenant_id: tina.tenantId, subscription_id: 's' })
      .execute();
    await handle.db
      .insertInto('principals')
      .values({ ...principalOf(tina), role: 'requester' })
      .execute();
    const names = Array.from({ length: 35 }, (_, i) => `vm-${String(i).padStart(2, '0')}`);
    await handle.db
      .insertInto('protected_items')
      .values(names.map((name) => itemOf(`item-${name}`, 'tailspin', name)))
      .execute();
    await backupJob('failed', 'tailspin', 'item-vm-34');

    const reply = await say(tina, 'status');
    const shown = reply.card.body.filter((b: any) => b.type === 'Container');
    expect(shown).toHaveLength(30);
    expect(shown[0].items[0].text).toBe('vm-34 (VM)');
    expect(reply.shown).toContain('35 protected item(s), 1 whose last backup failed.');
    expect(reply.shown).toContain('the portal lists all');
  });

  it('shows a backup that is running with how many disks are done and how much was read', async () => {
    const started = new Date(Date.now() + 1000);
    await handle.db
      .insertInto('job_sessions')
      .values({
        id: 'session-web-01-running',
        customer_id: 'contoso',
        item_id: 'item-web-01',
        item_name: 'web-01',
        trigger: 'schedule',
        status: 'running',
        started_at: started,
      })
      .execute();
    await handle.db
      .insertInto('job_tasks')
      .values(
        [
          ['os', 'succeeded', 3 * 2 ** 30],
          ['data', 'running', 2 ** 29],
        ].map(([disk, status, bytes]) => ({
          id: `task-web-01-${disk}`,
          session_id: 'session-web-01-running',
          customer_id: 'contoso',
          subject_kind: 'disk',
          subject_name: `web-01-${disk}`,
          status: status as 'succeeded' | 'running',
          bytes_done: bytes as number,
        })),
      )
      .execute();

    try {
      const reply = await say(megan, 'status', { localTimezone: 'Europe/Berlin' });
      const [web] = reply.card.body.filter((b: any) => b.type === 'Container');
      expect(web.items[1].facts[2]).toEqual({
        title: 'Last backup',
        value: expect.stringMatching(
          /^running since \d{4}-.* Europe\/Berlin \(1 of 2 disk\(s\) done, 3\.5 GiB read\)$/,
        ),
      });
    } finally {
      await handle.db
        .deleteFrom('job_sessions')
        .where('id', '=', 'session-web-01-running')
        .execute();
    }
  });

  it("shows a database among the VMs, with its running backup's progress through the BACPAC", async () => {
    await handle.db
      .insertInto('protected_items')
      .values({
        id: 'item-sales',
        customer_id: 'contoso',
        kind: 'sql_database',
        name: 'sql-weu/sales',
        resource_id: '/sql/sql-weu/sales',
      })
      .execute();
    await handle.db
      .insertInto('job_sessions')
      .values({
        id: 'session-sales-running',
        customer_id: 'contoso',
        item_id: 'item-sales',
        item_name: 'sql-weu/sales',
        trigger: 'schedule',
        status: 'running',
      })
      .execute();
    await handle.db
      .insertInto('job_tasks')
      .values({
        id: 'task-sales',
        session_id: 'session-sales-running',
        customer_id: 'contoso',
        subject_kind: 'database',
        subject_name: 'sales',
        status: 'running',
        bytes_done: 3 * 2 ** 29,
      })
      .execute();

    try {
      const reply = await say(megan, 'status', { localTimezone: 'Europe/Berlin' });
      const sales = reply.card.body
        .filter((b: any) => b.type === 'Container')
        .find((c: any) => c.items[0].text === 'sql-weu/sales (SQL database)');
      expect(sales.items[1].facts[2]).toEqual({
        title: 'Last backup',
        value: expect.stringMatching(
          /^running since \d{4}-.* Europe\/Berlin \(1\.5 GiB of the BACPAC read\)$/,
        ),
      });
      expect(reply.shown).toContain('3 protected item(s), 1 whose last backup failed.');
    } finally {
      await handle.db
        .deleteFrom('job_sessions')
        .where('id', '=', 'session-sales-running')
        .execute();
      await handle.db.deleteFrom('protected_items').where('id', '=', 'item-sales').execute();
    }
  });

  it("shows Northwind's requester only Northwind's VM", async () => {
    const reply = await say(nora, 'status');
    expect(reply.card.body[0].text).toBe('Backups of Northwind');
    expect(reply.shown).toContain('nw-app-01');
    expect(reply.shown).not.toContain('web-01');
    expect(reply.shown).not.toContain('win-01');
  });

  it('refuses a colleague without a role in ACBA, and someone from a tenant that is not a customer', async () => {
    const guest = { objectId: 'aad-guest', tenantId: CONTOSO, displayName: 'Gus Guest' };
    const noRole = await say(guest, 'status');
    expect(noRole.text).toContain('You (Gus Guest) have no role at Contoso in ACBA');

    const stranger = { objectId: 'aad-eve', tenantId: 'tenant-elsewhere', displayName: 'Eve' };
    const elsewhere = await say(stranger, 'restore points of web-01');
    expect(elsewhere.text).toContain('is not a customer of this service');
  });

  it("tells the provider's staff that status is for the customers' staff and where they can look", async () => {
    const reply = await say(adele, 'status');
    expect(reply.card).toBeUndefined();
    expect(reply.text).toContain("for the customer's staff only");
    expect(reply.text).toContain('portal');
  });
});

describe('a requester asks for the restore points of a VM', () => {
  it('lists them newest first, in her time zone, with their type and expiry', async () => {
    const reply = await say(megan, 'restore points of web-01');
    expect(reply.card.body[0].text).toBe('Restore points of web-01');
    const rows = reply.card.body
      .filter((b: any) => b.type === 'ColumnSet')
      .slice(1)
      .map((row: any) => row.columns.map((c: any) => c.items[0].text));
    expect(rows).toEqual([
      [
        '2026-12-02 02:00 Europe/London',
        'backup, policy daily-web',
        '2027-01-15 02:00 Europe/London',
      ],
      [
        '2026-12-01 02:00 Europe/London',
        'backup, policy daily-web',
        '2027-01-15 02:00 Europe/London',
      ],
      ['2026-11-30 02:00 Europe/London', 'backup, on demand', '2027-01-15 02:00 Europe/London'],
    ]);
  });

  it("does not find another customer's VM, and names her own", async () => {
    const reply = await say(nora, 'restore points of web-01');
    expect(reply.card).toBeUndefined();
    expect(reply.text).toBe(
      'There is no protected VM named "web-01". Protected VMs of Northwind: nw-app-01.',
    );
  });

  it('names the VMs there are when the VM is unknown, or not given', async () => {
    const unknown = await say(megan, 'restore points of web-99');
    expect(unknown.text).toContain('There is no protected VM named "web-99"');
    expect(unknown.text).toContain('Protected VMs of Contoso: web-01, win-01.');

    const none = await say(megan, 'restore points');
    expect(none.text).toContain('Which VM? Write restore points of web-01.');
  });

  it('says when a VM has no restore points yet', async () => {
    const reply = await say(megan, 'restore points of win-01');
    expect(reply.shown).toContain('win-01 has no restore points yet');
  });
});

describe('a requester follows and cancels her requests', () => {
  let first: string;
  let second: string;
  let lynnes: string;

  beforeAll(async () => {
    first = await requestFor(megan, '/etc/hosts');
    second = await requestFor(megan, '/etc/nginx/nginx.conf');
    lynnes = await requestFor(lynne, '/var/log/syslog');
  });

  it("sees her own requests, newest first, with how to cancel, and not her colleague's", async () => {
    const reply = await say(megan, 'show me my requests please');
    expect(reply.card.body[0].text).toBe('Your requests');
    const listed = reply.card.body
      .filter((b: any) => b.type === 'Container')
      .map((c: any) => c.items[1].facts[0].value);
    expect(listed.indexOf(second)).toBeLessThan(listed.indexOf(first));
    expect(listed).not.toContain(lynnes);
    expect(reply.shown).toContain('file restore: /etc/nginx/nginx.conf from web-01');
    expect(reply.shown).toContain('waiting for approval');
    expect(reply.shown).toContain('write cancel followed by its id');
    expect(reply.shown).toContain('"verb":"request.cancel"');
  });

  it("is refused cancelling her colleague's request, and the refusal is audited", async () => {
    const reply = await say(megan, `cancel ${lynnes}`);
    expect(reply.text).toBe(`Only Lynne Robbins, who asked for request ${lynnes}, can cancel it.`);
    expect(await statusOf(lynnes)).toBe('pending');
    const refused = await auditOf(lynnes, 'request.cancel');
    expect(refused).toHaveLength(1);
    expect(refused[0]).toMatchObject({ actor_object_id: megan.objectId, outcome: 'refused' });
  });

  it("does not find another customer's request, and audits the attempt", async () => {
    const reply = await say(nora, `cancel request ${first}`);
    expect(reply.text).toContain(`There is no request ${first} that you can see`);
    expect(await statusOf(first)).toBe('pending');
    const refused = await auditOf(first, 'request.cancel');
    expect(refused.map((e) => [e.actor_object_id, e.outcome])).toEqual([
      [nora.objectId, 'refused'],
    ]);
  });

  it('cancels her own pending request, once', async () => {
    const reply = await say(megan, `Cancel request "${first}"`);
    expect(reply.shown).toContain('You cancelled this request; nothing will be restored.');
    expect(await statusOf(first)).toBe('cancelled');

    const again = await say(megan, `cancel ${first}`);
    expect(again.text).toBe(`Request ${first} is cancelled, so it can no longer be cancelled.`);
    const entries = await auditOf(first, 'request.cancel');
    expect(entries.filter((e) => e.outcome === 'success')).toHaveLength(1);
  });

  it('cancels a request of another kind, written in the portal, and says so in words', async () => {
    const vm = await approvals.createRequest(actorOf(megan), {
      kind: 'vm_restore',
      target: {
        vmName: 'web-01',
        subnetId:
          '/subscriptions/sub-contoso/resourceGroups/rg-web/providers/Microsoft.Network/virtualNetworks/vnet-web/subnets/default',
      },
      reason: why,
    });
    const listed = await say(megan, 'my requests');
    expect(listed.shown).toContain('VM restore: web-01 as web-01-restored');

    const reply = await say(megan, `cancel ${vm.id}`);
    expect(reply.text).toBe(
      `You cancelled request ${vm.id} (VM restore: web-01 as web-01-restored); nothing will be done.`,
    );
    expect(await statusOf(vm.id)).toBe('cancelled');
  });

  it('is told of an unknown id, and asked which request when she gives none', async () => {
    const unknown = await say(megan, 'cancel 00000000-0000-0000-0000-000000000000');
    expect(unknown.text).toContain('There is no request 00000000-0000-0000-0000-000000000000');

    const which = await say(megan, 'cancel');
    expect(which.shown).toContain('Which request?');
    expect(which.shown).toContain(second);
  });
});

describe('help and what the bot does not understand', () => {
  it('lists every command with an example that names a real VM and path', async () => {
    const reply = await say(megan, 'help');
    const titles = reply.card.body
      .find((b: any) => b.type === 'FactSet')
      .facts.map((f: any) => f.title);
    expect(titles).toEqual(
      expect.arrayContaining([
        'status',
        'restore points of web-01',
        'restore file /etc/nginx/nginx.conf from web-01',
        'restore disks of web-01',
        'restore vm web-01',
        'restore databases of sql-contoso-weu',
        'my requests',
        'help',
      ]),
    );
    expect(titles.some((t: string) => t.startsWith('cancel '))).toBe(true);
    expect(reply.shown).toContain("For the provider's staff");
    expect(reply.shown).not.toContain('I did not understand');
  });

  it('answers anything else with the help card, saying what it did not understand', async () => {
    const reply = await say(megan, 'make me a sandwich');
    expect(reply.card.body[0].inlines[0].text).toBe('I did not understand "make me a sandwich".');
    expect(reply.shown).toContain('restore points of web-01');
  });

  it('greets a greeting with the help card alone', async () => {
    const reply = await say(megan, 'Hello!');
    expect(reply.shown).toContain('here is what I can do');
    expect(reply.shown).not.toContain('I did not understand');
  });
});

describe('the same approve delivered twice', () => {
  const decisionsOn = (requestId: string) =>
    handle.db.selectFrom('decisions').selectAll().where('request_id', '=', requestId).execute();

  /** Adele's approve of the request, one delivery of it (post it twice to repeat it). */
  const approveOf = (requestId: string) =>
    invokeActivity(adele, personalChat(adele), connector.serviceUrl, 'request.approve', {
      requestId,
      comment: 'Checked INC-4711 with the customer.',
    });

  it('acts once: one decision, one audit entry, the same answer to both deliveries', async () => {
    const requestId = await requestFor(megan, '/etc/ssh/sshd_config');
    const approve = approveOf(requestId);

    const first = await post(botUrl, approve);
    const second = await post(botUrl, approve);

    expect(first.body.type).toBe('application/vnd.microsoft.card.adaptive');
    expect(second.body).toEqual(first.body);
    expect(await decisionsOn(requestId)).toHaveLength(1);
    expect(await auditOf(requestId, 'request.approve')).toHaveLength(1);
    expect(queuedRestores.filter((j) => j.requestId === requestId)).toHaveLength(1);
  });

  it('acts once when both deliveries arrive at the same moment', async () => {
    const requestId = await requestFor(megan, '/etc/fstab');
    const approve = approveOf(requestId);

    const [first, second] = await Promise.all([post(botUrl, approve), post(botUrl, approve)]);
    expect(second.body).toEqual(first.body);
    expect(await decisionsOn(requestId)).toHaveLength(1);
    expect(await auditOf(requestId, 'request.approve')).toHaveLength(1);
    expect((await verifyAuditChain(handle.db)).ok).toBe(true);
  });

  it('shows an approver who clicks again, in a new delivery, where the request stands without a refusal', async () => {
    const requestId = await requestFor(megan, '/etc/resolv.conf');
    const click = () => post(botUrl, approveOf(requestId));
    await click();
    const again = await click();
    expect(JSON.stringify(again.body.value)).toContain('Approved: the restore is queued');
    expect((await auditOf(requestId, 'request.approve')).map((e) => e.outcome)).toEqual([
      'success',
    ]);
  });
});

describe('with app credentials, tokens not from Bot Framework', () => {
  const APP_ID = '00000000-0000-0000-0000-00000000b07a';
  const KEY_ID = 'bf-signing-key';
  let securedUrl: string;
  let signingKey: CryptoKey;
  let strangersKey: CryptoKey;

  beforeAll(async () => {
    const real = await generateKeyPair('RS256', { extractable: true });
    const stranger = await generateKeyPair('RS256');
    signingKey = real.privateKey;
    strangersKey = stranger.privateKey;

    // Bot Framework's OpenID metadata and key set, as login.botframework.com serves them.
    const keys = express();
    keys.get('/v1/.well-known/openidconfiguration', (_req, res) => {
      res.json({ issuer: 'https://api.botframework.com', jwks_uri: `${keysUrl}/v1/keys` });
    });
    keys.get('/v1/keys', async (_req, res) => {
      const jwk = await exportJWK(real.publicKey);
      res.json({ keys: [{ ...jwk, kid: KEY_ID, use: 'sig', endorsements: ['msteams'] }] });
    });
    const keysUrl = await serve(keys);

    const secured = createBot({
      approvals,
      db: handle.db,
      log: silentLogger,
      appType: 'MultiTenant',
      appId: APP_ID,
      appPassword: 'not-a-real-secret',
      openIdMetadataUrl: `${keysUrl}/v1/.well-known/openidconfiguration`,
    });
    const app = express();
    app.use(secured.router);
    securedUrl = await serve(app);
  });

  /** A token as Bot Framework issues it to this bot, or with one thing changed. */
  function token(change: { key?: CryptoKey; expiresAt?: string; audience?: string } = {}) {
    return new SignJWT({ serviceurl: connector.serviceUrl })
      .setProtectedHeader({ alg: 'RS256', kid: KEY_ID, typ: 'JWT' })
      .setIssuer('https://api.botframework.com')
      .setAudience(change.audience ?? APP_ID)
      .setIssuedAt()
      .setExpirationTime(change.expiresAt ?? '10m')
      .sign(change.key ?? signingKey);
  }

  /** A card action (answered inside the invoke, so nothing needs the bot's own credentials). */
  function statusClick(conversationId: string) {
    const activity = invokeActivity(
      megan,
      personalChat(megan),
      connector.serviceUrl,
      'request.status',
      {
        requestId: '00000000-0000-0000-0000-000000000000',
      },
    );
    return { ...activity, conversation: { ...activity.conversation, id: conversationId } };
  }

  const remembered = async (conversationId: string) =>
    handle.db
      .selectFrom('conversations')
      .select('id')
      .where('id', '=', conversationId)
      .executeTakeFirst();

  it('accepts a token Bot Framework signed for this bot', async () => {
    const response = await post(securedUrl, statusClick('a:signed'), await token());
    expect(response.status).toBe(200);
    expect(response.body.value).toContain('There is no request');
    expect(await remembered('a:signed')).toBeDefined();
  });

  it('refuses a forged token, signed by a key not in the published key set, with 401', async () => {
    const forged = await token({ key: strangersKey });
    const response = await post(securedUrl, statusClick('a:forged'), forged);
    expect(response.status).toBe(401);
    expect(response.body).toContain('Unauthorized');
    expect(await remembered('a:forged')).toBeUndefined();
  });

  it('refuses an expired token with 401', async () => {
    const expired = await token({ expiresAt: '-1h' });
    const response = await post(securedUrl, statusClick('a:expired'), expired);
    expect(response.status).toBe(401);
    expect(await remembered('a:expired')).toBeUndefined();
  });

  it("refuses a token for another bot's app id with 401", async () => {
    const otherApp = await token({ audience: '11111111-2222-3333-4444-555555555555' });
    const response = await post(securedUrl, statusClick('a:other-app'), otherApp);
    expect(response.status).toBe(401);
    expect(await remembered('a:other-app')).toBeUndefined();
  });
});

describe('a requester asks for disk, VM and SQL restores through forms', () => {
  const serverId =
    '/subscriptions/sub-contoso/resourceGroups/rg-data/providers/Microsoft.Sql/servers/sql-weu';

  beforeAll(async () => {
    await handle.db
      .insertInto('protected_items')
      .values(
        ['sales', 'inventory'].map((name) => ({
          id: `item-sql-${name}`,
          customer_id: 'contoso',
          kind: 'sql_database' as const,
          name: `sql-weu/${name}`,
          resource_id: `${serverId}/databases/${name}`,
        })),
      )
      .execute();
    await handle.db
      .insertInto('restore_points')
      .values(
        ['sales', 'inventory'].map((name) => ({
          id: `rp-sql-${name}`,
          customer_id: 'contoso',
          item_id: `item-sql-${name}`,
          created_at: '2026-12-02T03:00:00Z',
          expires_at: '2027-01-15T03:00:00Z',
          manifest_path: `manifests/rp-sql-${name}`,
          disks: '[]',
          size_bytes: 2 ** 20,
          stored_bytes: 2 ** 19,
        })),
      )
      .execute();
  });

  /** Every input of the card by id, wherever it sits. */
  function inputsOf(card: any): Map<string, any> {
    const inputs = new Map<string, any>();
    const walk = (node: any) => {
      if (Array.isArray(node)) return node.forEach(walk);
      if (!node || typeof node !== 'object') return;
      if (typeof node.type === 'string' && node.type.startsWith('Input.'))
        inputs.set(node.id, node);
      for (const value of Object.values(node)) walk(value);
    };
    walk(card.body);
    return inputs;
  }

  /** Presses the form's button with these inputs, as Teams sends it, and returns the request written. */
  async function submit(person: TeamsPerson, card: any, inputs: Record<string, unknown>) {
    const action = card.actions[0];
    const before = await handle.db.selectFrom('requests').select('id').execute();
    const response = await post(
      botUrl,
      invokeActivity(person, personalChat(person), connector.serviceUrl, action.verb, {
        ...action.data,
        ...inputs,
        reason: why,
      }),
    );
    expect(response.status).toBe(200);
    const written = await handle.db
      .selectFrom('requests')
      .selectAll()
      .where(
        'id',
        'not in',
        before.map((r) => r.id),
      )
      .execute();
    return { answer: response.body, written };
  }

  it('fills the disk form from web-01’s restore points and disks, and posts a pending disk restore', async () => {
    const form = await say(megan, 'restore disks of web-01');
    const inputs = inputsOf(form.card);
    expect(inputs.get('restorePointId').choices.map((c: any) => c.value)).toEqual([
      'rp-web-2',
      'rp-web-1',
      'rp-web-0',
    ]);
    expect(inputs.get('disks').choices).toEqual([{ title: 'web-01-os (OS disk)', value: 'os' }]);

    const { answer, written } = await submit(megan, form.card, {
      restorePointId: 'rp-web-1',
      disks: 'os',
      placement: 'new',
      resourceGroup: 'rg-restore',
    });

    expect(answer.type).toBe('application/vnd.microsoft.card.adaptive');
    expect(JSON.stringify(answer.value)).toContain('Disk restore request: waiting for approval');
    expect(written).toHaveLength(1);
    expect(written[0]).toMatchObject({ kind: 'disk_restore', status: 'pending' });
    expect(written[0]!.target).toEqual({
      itemId: 'item-web-01',
      vmName: 'web-01',
      restorePointId: 'rp-web-1',
      disks: ['os'],
      replaceOriginal: false,
      resourceGroup: 'rg-restore',
    });
  });

  it('posts a pending VM restore to a new VM from the VM form', async () => {
    const form = await say(megan, 'restore vm web-01');
    expect(
      inputsOf(form.card)
        .get('placement')
        .choices.map((c: any) => c.value),
    ).toEqual(['new', 'original']);

    const subnetId =
      '/subscriptions/sub-contoso/resourceGroups/rg-dr/providers/Microsoft.Network/virtualNetworks/vnet-dr/subnets/default';
    const { written } = await submit(megan, form.card, {
      restorePointId: 'rp-web-2',
      placement: 'new',
      newVmName: 'web-01-dr',
      resourceGroup: 'rg-dr',
      region: 'North Europe',
      subnetId,
      vmSize: 'Standard_D4s_v5',
    });

    expect(written[0]).toMatchObject({ kind: 'vm_restore', status: 'pending' });
    expect(written[0]!.target).toEqual({
      itemId: 'item-web-01',
      vmName: 'web-01',
      restorePointId: 'rp-web-2',
      replaceOriginal: false,
      newVmName: 'web-01-dr',
      resourceGroup: 'rg-dr',
      region: 'northeurope',
      subnetId,
      vmSize: 'Standard_D4s_v5',
    });
  });

  it('writes one request when the same form is sent twice (a double click)', async () => {
    const form = await say(megan, 'restore vm web-01');
    const inputs = {
      restorePointId: 'rp-web-1',
      placement: 'new',
      newVmName: 'web-01-twice',
      resourceGroup: 'rg-dr',
      region: 'northeurope',
      subnetId:
        '/subscriptions/sub-contoso/resourceGroups/rg-dr/providers/Microsoft.Network/virtualNetworks/vnet-dr/subnets/default',
    };
    const first = await submit(megan, form.card, inputs);
    const second = await submit(megan, form.card, inputs);

    expect(first.written).toHaveLength(1);
    expect(second.written).toHaveLength(0);
    expect(JSON.stringify(second.answer)).toContain('You sent this request a moment ago');
    expect(JSON.stringify(second.answer)).toContain(first.written[0]!.id);
  });

  it('posts a pending SQL restore of two databases over the originals from the SQL form', async () => {
    const form = await say(megan, 'restore databases of sql-weu');
    const inputs = inputsOf(form.card);
    expect([...inputs.keys()].filter((id) => id.startsWith('point.'))).toEqual([
      'point.inventory',
      'point.sales',
    ]);
    expect(inputs.get('point.sales').choices.map((c: any) => c.value)).toEqual(['rp-sql-sales']);

    const { written } = await submit(megan, form.card, {
      'point.sales': 'rp-sql-sales',
      'point.inventory': 'rp-sql-inventory',
      placement: 'original',
    });

    expect(written[0]).toMatchObject({ kind: 'sql_restore', status: 'pending' });
    expect(written[0]!.target).toEqual({
      server: 'sql-weu',
      databases: [
        {
          itemId: 'item-sql-sales',
          database: 'sales',
          restorePointId: 'rp-sql-sales',
          newName: 'sales',
        },
        {
          itemId: 'item-sql-inventory',
          database: 'inventory',
          restorePointId: 'rp-sql-inventory',
          newName: 'inventory',
        },
      ],
      replaceOriginal: true,
    });
  });

  it('validates again what a form sends: another customer’s restore point is not found, and nothing is written', async () => {
    const form = await say(megan, 'restore disks of web-01');
    const { answer, written } = await submit(megan, form.card, {
      restorePointId: 'rp-nw-0',
      disks: 'os',
    });

    expect(answer.type).toBe('application/vnd.microsoft.activity.message');
    expect(answer.value).toContain('Restore point rp-nw-0 of web-01 does not exist');
    expect(written).toEqual([]);
  });

  it("does not offer another customer's VM", async () => {
    const reply = await say(nora, 'restore vm web-01');
    expect(reply.text).toContain('There is no VM named "web-01" with a current backup');
    expect(reply.text).toContain('nw-app-01');
  });
});
