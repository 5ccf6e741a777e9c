/**
 * How the bot holds up when many people talk to it at once: the real bot
 * (createBot, the approval workflow, an embedded PostgreSQL under a temporary
 * folder) on a loopback HTTP server in local mode, and a stand-in Bot Framework
 * connector that receives its replies. Each of N conversations (50 by default)
 * sends, one after another, `help`, `status`, `restore points of web-01`,
 * `restore file ... from web-01` and an approve (an Action.Execute invoke on a
 * request made beforehand); all conversations run at once. A message counts
 * from its POST to /api/messages until its reply reaches the connector, an
 * invoke until its HTTP response returns. The same messages are then sent one
 * at a time as the peer figure. Prints figures and ratios; not a test.
 *
 *   npm run bench:bot [-- --conversations 50]
 *
 * Exit code 0, or 1 naming each kind the bot did not answer (or answered with
 * its apology).
 */
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import express from 'express';
import { pino } from 'pino';
import { createApprovals } from '../approvals/index.ts';
import { createBot } from '../bot/index.ts';
import { openDatabase } from '../core/db/database.ts';
import type { JobQueue } from '../engine/queue.ts';
import { CONTOSO_TENANT, seedContoso, seedPeople } from '../test/support/contoso.ts';
import {
  invokeActivity,
  messageActivity,
  personalChat,
  type Conversation,
  type TeamsPerson,
} from '../test/support/teams-activities.ts';

const { values: args } = parseArgs({
  options: { conversations: { type: 'string', default: '50' } },
});
const CONVERSATIONS = Number(args.conversations);
if (!Number.isInteger(CONVERSATIONS) || CONVERSATIONS < 1) {
  console.error('--conversations must be a whole number of at least 1');
  process.exit(1);
}

/** The goal: every reply or card update within this many milliseconds. */
const GOAL_MS = 1000;
/** A reply that has not arrived after this long counts as not answered. */
const REPLY_TIMEOUT_MS = 60_000;
const PROVIDER = 'tenant-provider';
const APPROVERS = '19:bench-approvers@thread.tacv2';
const REASON = 'The nginx config was overwritten by a bad deploy on Monday, incident INC-4711.';
const APOLOGY = 'Sorry, something went wrong on our side';

const KINDS = ['help', 'status', 'restore points', 'restore file', 'approve'] as const;
type Kind = (typeof KINDS)[number];

interface Person extends TeamsPerson {
  conversation: Conversation;
}

const requester = (i: number): Person => {
  const person = {
    objectId: `bench-user-${i}`,
    tenantId: CONTOSO_TENANT,
    displayName: `User ${i}`,
  };
  return { ...person, conversation: personalChat(person) };
};
const approver: Person = {
  objectId: 'bench-approver',
  tenantId: PROVIDER,
  displayName: 'Adele Vance',
  conversation: { id: APPROVERS, type: 'channel' },
};

/**
 * The connector stand-in: answers every POST and PUT as Teams does, and
 * resolves the waiter of a reply (keyed by conversation and replied-to id)
 * the moment it arrives.
 */
async function startConnector(): Promise<{
  url: string;
  replyTo(conversationId: string, activityId: string): Promise<any>;
  close(): void;
}> {
  const waiters = new Map<string, (activity: any) => void>();
  let next = 0;
  const app = express();
  app.use(express.json({ limit: '5mb' }));
  app.post('/v3/conversations/:conversationId/activities{/:replyToId}', (req, res) => {
    const key = `${req.params.conversationId}|${req.params.replyToId ?? req.body?.replyToId}`;
    waiters.get(key)?.(req.body);
    waiters.delete(key);
    res.status(201).json({ id: `bench-activity-${++next}` });
  });
  app.put('/v3/conversations/:conversationId/activities/:activityId', (req, res) => {
    res.status(200).json({ id: req.params.activityId });
  });
  const server = http.createServer(app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`,
    replyTo: (conversationId, activityId) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(`${conversationId}|${activityId}`);
          reject(new Error(`no reply within ${REPLY_TIMEOUT_MS / 1000} s`));
        }, REPLY_TIMEOUT_MS);
        waiters.set(`${conversationId}|${activityId}`, (activity) => {
          clearTimeout(timer);
          resolve(activity);
        });
      }),
    close: () => {
      server.closeAllConnections();
      server.close();
    },
  };
}

interface Harness {
  botUrl: string;
  connector: Awaited<ReturnType<typeof startConnector>>;
}

async function postActivity(h: Harness, activity: unknown): Promise<{ status: number; body: any }> {
  const response = await fetch(`${h.botUrl}/api/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(activity),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : undefined };
}

/** Sends a message and waits for its reply at the connector; returns milliseconds. */
async function timedMessage(h: Harness, person: Person, text: string): Promise<number> {
  const activity = messageActivity(person, person.conversation, h.connector.url, text);
  const reply = h.connector.replyTo(person.conversation.id, activity.id);
  // Awaited below; this only keeps a failed POST from leaving it unhandled.
  reply.catch(() => undefined);
  const started = performance.now();
  const posted = await postActivity(h, activity);
  if (posted.status >= 300)
    throw new Error(`HTTP ${posted.status}: ${JSON.stringify(posted.body)}`);
  const answer = await reply;
  const ms = performance.now() - started;
  if (String(answer.text ?? '').startsWith(APOLOGY)) throw new Error('answered with the apology');
  return ms;
}

/** Sends an invoke and returns its response and the milliseconds until it came. */
async function timedInvoke(
  h: Harness,
  person: Person,
  verb: string,
  data: Record<string, unknown>,
): Promise<{ ms: number; body: any }> {
  const started = performance.now();
  const activity = invokeActivity(person, person.conversation, h.connector.url, verb, data);
  const posted = await postActivity(h, activity);
  const ms = performance.now() - started;
  if (posted.status >= 300)
    throw new Error(`HTTP ${posted.status}: ${JSON.stringify(posted.body)}`);
  return { ms, body: posted.body };
}

/** A pending file-restore request of the person, made through the bot's own form. */
async function submitRequest(h: Harness, person: Person, file: string): Promise<string> {
  const { body } = await timedInvoke(h, person, 'fileRestore.submit', {
    vmName: 'web-01',
    path: file,
    restorePointId: 'rp-web-01-2',
    reason: REASON,
  });
  const id = JSON.stringify(body?.value).match(/"requestId":"([0-9a-f-]{36})"/)?.[1];
  if (!id) throw new Error(`the bot made no request for ${file}: ${JSON.stringify(body)}`);
  return id;
}

/** One conversation's five steps, in order; records each step's time or its failure. */
async function conversation(
  h: Harness,
  person: Person,
  requestId: string,
  times: Map<Kind, number[]>,
  failures: string[],
): Promise<void> {
  const steps: Array<[Kind, () => Promise<number>]> = [
    ['help', () => timedMessage(h, person, 'help')],
    ['status', () => timedMessage(h, person, 'status')],
    ['restore points', () => timedMessage(h, person, 'restore points of web-01')],
    [
      'restore file',
      () => timedMessage(h, person, 'restore file /etc/nginx/nginx.conf from web-01'),
    ],
    [
      'approve',
      async () => {
        const { ms, body } = await timedInvoke(h, approver, 'request.approve', {
          requestId,
          comment: 'Checked INC-4711 with the customer.',
        });
        if (body?.type !== 'application/vnd.microsoft.card.adaptive')
          throw new Error(`answered without the decided card: ${JSON.stringify(body?.value)}`);
        return ms;
      },
    ],
  ];
  for (const [kind, step] of steps) {
    try {
      times.get(kind)!.push(await step());
    } catch (error) {
      failures.push(`${kind} in ${person.conversation.id}: ${(error as Error).message}`);
    }
  }
}

async function round(
  h: Harness,
  people: Person[],
  requestIds: string[],
  concurrent: boolean,
): Promise<{ times: Map<Kind, number[]>; failures: string[]; seconds: number }> {
  const times = new Map<Kind, number[]>(KINDS.map((k) => [k, []]));
  const failures: string[] = [];
  const started = performance.now();
  if (concurrent) {
    await Promise.all(people.map((p, i) => conversation(h, p, requestIds[i]!, times, failures)));
  } else {
    for (const [i, p] of people.entries())
      await conversation(h, p, requestIds[i]!, times, failures);
  }
  return { times, failures, seconds: (performance.now() - started) / 1000 };
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.max(0, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

function figures(values: number[]) {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    count: sorted.length,
    median: percentile(sorted, 50),
    p95: percentile(sorted, 95),
    max: sorted[sorted.length - 1] ?? NaN,
  };
}

/** One table row: the kind, then right-aligned cells of 9 characters. */
const row = (first: string, cells: string[]) =>
  `${first.padEnd(15)}${cells.map((c) => c.padStart(9)).join(' ')}`;
const ms = (value: number) => `${value.toFixed(0)} ms`;
const ratio = (a: number, b: number) => `${(a / b).toFixed(1)}x`;

function report(
  concurrent: Awaited<ReturnType<typeof round>>,
  sequential: Awaited<ReturnType<typeof round>>,
): void {
  console.log(`\nconcurrent: all conversations at once; sequential: one message at a time`);
  console.log(
    row('kind', [
      'count',
      'median',
      'p95',
      'max',
      'seq med',
      'seq p95',
      'seq max',
      'x median',
      'x p95',
      `≤ ${GOAL_MS} ms`,
    ]),
  );
  for (const kind of KINDS) {
    const c = figures(concurrent.times.get(kind)!);
    const s = figures(sequential.times.get(kind)!);
    const verdict = c.count === CONVERSATIONS && c.max <= GOAL_MS ? 'ok' : 'SLOW';
    console.log(
      row(kind, [
        String(c.count),
        ms(c.median),
        ms(c.p95),
        ms(c.max),
        ms(s.median),
        ms(s.p95),
        ms(s.max),
        ratio(c.median, s.median),
        ratio(c.p95, s.p95),
        verdict,
      ]),
    );
  }
  console.log(
    `\nwall time: ${concurrent.seconds.toFixed(1)} s concurrent, ${sequential.seconds.toFixed(1)} s sequential`,
  );
}

async function main(): Promise<number> {
  const dir = await fs.mkdtemp(path.join(os.tmpdir(), 'acba-bench-bot-'));
  const database = await openDatabase({ dataDir: dir });
  const connector = await startConnector();
  let server: http.Server | undefined;
  try {
    await seedContoso(database.db);
    // Requesters 0..N-1 talk in the rounds, requester N warms up.
    const requesters = Array.from({ length: CONVERSATIONS + 1 }, (_, i) => requester(i));
    await seedPeople(database.db, [
      ...requesters.map((p) => ({ ...p, role: 'requester' as const })),
      { ...approver, role: 'approver' },
    ]);
    const queue: JobQueue = { enqueueFileRestore: async () => {}, enqueueBackup: async () => {} };
    const log = pino({ level: 'error' }, pino.destination(2));
    const approvals = createApprovals({ db: database.db, log, queue, providerTenantId: PROVIDER });
    const bot = createBot({
      approvals,
      db: database.db,
      log,
      appType: 'MultiTenant',
      approversConversationId: APPROVERS,
      approversServiceUrl: connector.url,
    });
    const app = express();
    app.use(bot.router);
    server = http.createServer(app);
    await new Promise<void>((resolve) => server!.listen(0, '127.0.0.1', resolve));
    const h: Harness = {
      botUrl: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
      connector,
    };

    // Requests for both rounds and the warm-up, made beforehand and not timed.
    const people = requesters.slice(0, CONVERSATIONS);
    const warmUp = requesters[CONVERSATIONS]!;
    const ids = { concurrent: [] as string[], sequential: [] as string[] };
    for (const p of people) {
      ids.concurrent.push(await submitRequest(h, p, `/var/log/bench-concurrent-${p.objectId}.log`));
      ids.sequential.push(await submitRequest(h, p, `/var/log/bench-sequential-${p.objectId}.log`));
    }
    const warmUpId = await submitRequest(h, warmUp, '/var/log/bench-warm-up.log');
    await round(h, [warmUp], [warmUpId], false);

    console.log(
      `bench:bot: ${CONVERSATIONS} conversations, each ${KINDS.join(', ')}; embedded PostgreSQL, local mode, loopback`,
    );
    const concurrent = await round(h, people, ids.concurrent, true);
    const sequential = await round(h, people, ids.sequential, false);
    report(concurrent, sequential);

    const failures = [...concurrent.failures, ...sequential.failures];
    if (failures.length > 0) {
      console.error(`\nThe bot failed to answer ${failures.length} time(s):`);
      for (const failure of failures.slice(0, 20)) console.error(`  ${failure}`);
      return 1;
    }
    return 0;
  } finally {
    server?.closeAllConnections();
    server?.close();
    connector.close();
    await database.close();
    await fs.rm(dir, { recursive: true, force: true });
  }
}

// Exits at once: idle keep-alive sockets would otherwise hold the process for seconds.
process.exit(await main());
