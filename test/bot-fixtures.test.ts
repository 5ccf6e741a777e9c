/**
 * Replays the Teams activities in ../shared/fixtures/teams (real payloads
 * from Microsoft's docs and SDK tests) through the bot, with their serviceUrl
 * pointed at a stand-in connector. Skipped where that folder is absent.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import express from 'express';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createApprovals } from '../approvals/index.ts';
import { createBot } from '../bot/index.ts';
import { openTestDatabase, type TestDatabase } from './support/database.ts';
import { silentLogger } from '../core/log.ts';

const fixtureDir = path.resolve(
  path.dirname(fileURLToPath(import.meta.url)),
  '../../shared/fixtures/teams',
);
const exists = existsSync(fixtureDir);
const files = exists
  ? readdirSync(fixtureDir)
      .filter((f) => f.endsWith('.json'))
      .sort()
  : [];

describe.skipIf(!exists)('Teams fixtures replayed through the bot', () => {
  let dir: string;
  let handle: TestDatabase;
  let botUrl: string;
  let connectorUrl: string;
  const calls: { method: string; path: string; body: any }[] = [];
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
    dir = await fs.mkdtemp(path.join(os.tmpdir(), 'acba-bot-fixtures-'));
    handle = await openTestDatabase();

    const connector = express();
    connector.use(express.json());
    connector.use((req, res) => {
      calls.push({ method: req.method, path: decodeURIComponent(req.path), body: req.body });
      res.json({ id: `sent-${calls.length}` });
    });
    connectorUrl = `${await listen(connector)}/`;

    const approvals = createApprovals({
      db: handle.db,
      log: silentLogger,
      queue: { enqueueFileRestore: async () => {}, enqueueBackup: async () => {} },
      providerTenantId: 'tenant-provider',
    });
    const bot = createBot({ approvals, db: handle.db, log: silentLogger, appType: 'MultiTenant' });
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

  async function replay(file: string) {
    const activity = JSON.parse(readFileSync(path.join(fixtureDir, file), 'utf8'));
    activity.serviceUrl = connectorUrl;
    const response = await fetch(`${botUrl}/api/messages`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(activity),
    });
    const text = await response.text();
    return { activity, status: response.status, body: text ? JSON.parse(text) : undefined };
  }

  it.each(files)('%s is accepted and answered sensibly', async (file) => {
    const { activity, status, body } = await replay(file);
    expect(status).toBe(200);

    const stored = await handle.db
      .selectFrom('conversations')
      .selectAll()
      .where('id', '=', activity.conversation.id)
      .executeTakeFirst();
    expect(stored?.tenant_id).toBe(
      activity.conversation.tenantId ?? activity.channelData.tenant.id,
    );

    if (activity.type === 'message') {
      // Not a command: the help card, as a reply in the same conversation.
      expect(calls).toHaveLength(1);
      expect(calls[0]!.path).toBe(
        `/v3/conversations/${activity.conversation.id}/activities/${activity.id}`,
      );
      expect(JSON.stringify(calls[0]!.body.attachments[0].content)).toContain('restore file');
      expect(calls[0]!.body.attachments[0].content.version).toBe('1.5');
    }
    if (activity.type === 'invoke') {
      // Action.Execute without a verb: a helpful message inside the invoke response, nothing sent elsewhere.
      expect(body).toMatchObject({
        statusCode: 200,
        type: 'application/vnd.microsoft.activity.message',
      });
      expect(body.value).toContain('did not tell me what to do');
      expect(calls).toHaveLength(0);
    }
    if (activity.type === 'conversationUpdate') {
      // The bot was added to a team: its reference is stored for later, and it says hello.
      expect(stored?.object_id).toBeNull();
      expect(calls).toHaveLength(1);
      expect(calls[0]!.body.text).toContain('personal chat');
    }
  });
});
