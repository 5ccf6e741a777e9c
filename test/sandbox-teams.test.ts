/**
 * The Teams stand-in between a person's page and a tiny fake bot: a message
 * typed on the page reaches the bot in Teams' shape, the bot's reply through
 * the connector API comes back to the page's poll, a PUT replaces it, and a
 * card button becomes an adaptiveCard/action invoke whose card answer
 * replaces the card for that user.
 */
import type { AddressInfo } from 'node:net';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../core/log.ts';
import { createTeamsStandIn } from '../sandbox/teams/index.ts';

const customer = {
  objectId: 'oid-alice',
  tenantId: 'tenant-contoso',
  displayName: 'Alice Contoso',
  role: 'requester',
};
const approver = {
  objectId: 'oid-pat',
  tenantId: 'tenant-provider',
  displayName: 'Pat Approver',
  role: 'approver',
};
const approversChannel = '19:approvers@thread.tacv2';

let server: ReturnType<express.Express['listen']>;
let baseUrl: string;
let standIn: ReturnType<typeof createTeamsStandIn>;
const botReceived: any[] = [];
let invokeAnswer: unknown;

/** The fake bot: records what it gets and replies through the connector at the activity's serviceUrl. */
function fakeBot(): express.Router {
  const bot = express.Router();
  bot.post('/api/messages', express.json(), async (req, res) => {
    const activity = req.body;
    botReceived.push(activity);
    if (activity.type === 'message') {
      const conversation = encodeURIComponent(activity.conversation.id);
      await fetch(
        `${activity.serviceUrl}/v3/conversations/${conversation}/activities/${activity.id}`,
        {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({
            type: 'message',
            text: `You said: ${activity.text}`,
            replyToId: activity.id,
          }),
        },
      );
    }
    if (activity.type === 'invoke') {
      res.status(200).json(invokeAnswer);
      return;
    }
    res.status(200).end();
  });
  return bot;
}

async function call(method: string, path: string, body?: unknown) {
  const response = await fetch(`${baseUrl}/sandbox/teams/api/${path}`, {
    method,
    headers: body ? { 'content-type': 'application/json' } : {},
    body: body ? JSON.stringify(body) : undefined,
  });
  return { status: response.status, json: (await response.json()) as any };
}

beforeAll(async () => {
  const app = express();
  server = app.listen(0);
  await new Promise((resolve) => server.once('listening', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  standIn = createTeamsStandIn({
    botEndpoint: `${baseUrl}/api/messages`,
    publicUrl: `${baseUrl}/sandbox/teams`,
    users: [customer, approver],
    approversConversationId: approversChannel,
    log: silentLogger,
  });
  app.use('/sandbox/teams', standIn.router);
  app.use(fakeBot());
});

afterAll(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
});

describe('Teams stand-in', () => {
  it('offers the approvers channel to provider staff only', async () => {
    const { json: users } = await call('GET', 'users');
    const alice = users.find((u: any) => u.objectId === customer.objectId);
    const pat = users.find((u: any) => u.objectId === approver.objectId);
    expect(alice.conversations.map((c: any) => c.id)).toEqual(['a:sandbox-oid-alice']);
    expect(pat.conversations.map((c: any) => c.id)).toEqual([
      'a:sandbox-oid-pat',
      approversChannel,
    ]);

    const refused = await call('POST', 'send', {
      user: customer.objectId,
      conversationId: approversChannel,
      text: 'hi',
    });
    expect(refused.status).toBe(403);
  });

  it('delivers a typed message in Teams shape, and returns the bot reply and its update to the poll', async () => {
    const conversationId = 'a:sandbox-oid-alice';
    const sent = await call('POST', 'send', {
      user: customer.objectId,
      conversationId,
      text: 'status of web01',
    });
    expect(sent.status).toBe(200);

    const message = botReceived.find((a) => a.type === 'message' && a.text === 'status of web01');
    expect(message).toMatchObject({
      channelId: 'msteams',
      serviceUrl: `${baseUrl}/sandbox/teams`,
      from: { id: '29:sandbox-oid-alice', aadObjectId: 'oid-alice', name: 'Alice Contoso' },
      recipient: { id: expect.stringMatching(/^28:/) },
      conversation: {
        id: conversationId,
        conversationType: 'personal',
        tenantId: 'tenant-contoso',
      },
      channelData: { tenant: { id: 'tenant-contoso' } },
      locale: 'en-US',
      textFormat: 'plain',
    });
    expect(message.localTimezone).toBeTypeOf('string');

    const replies = standIn.activities(conversationId);
    expect(replies).toHaveLength(1);
    const reply = replies[0];
    expect(reply.text).toBe('You said: status of web01');

    const poll = await call(
      'GET',
      `activities?user=oid-alice&conversationId=${encodeURIComponent(conversationId)}&after=0`,
    );
    expect(poll.json.activities.map((a: any) => [a.origin, a.activity.text])).toEqual([
      ['user', 'status of web01'],
      ['bot', 'You said: status of web01'],
    ]);

    const put = await fetch(
      `${baseUrl}/sandbox/teams/v3/conversations/${encodeURIComponent(conversationId)}/activities/${reply.id}`,
      {
        method: 'PUT',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ type: 'message', text: 'Updated answer' }),
      },
    );
    expect(put.status).toBe(200);
    expect(await put.json()).toEqual({ id: reply.id });

    const next = await call(
      'GET',
      `activities?user=oid-alice&conversationId=${encodeURIComponent(conversationId)}&after=${poll.json.cursor}`,
    );
    expect(next.json.activities).toHaveLength(1);
    expect(next.json.activities[0]).toMatchObject({
      id: reply.id,
      activity: { text: 'Updated answer' },
    });
    expect(standIn.activities(conversationId)[0].text).toBe('Updated answer');
  });

  it('records a card in a URL-encoded channel id and turns its button into an adaptiveCard/action invoke', async () => {
    const card = {
      type: 'AdaptiveCard',
      version: '1.4',
      body: [{ type: 'TextBlock', text: 'Approve request 42?' }],
    };
    const posted = await fetch(
      `${baseUrl}/sandbox/teams/v3/conversations/${encodeURIComponent(approversChannel)}/activities`,
      {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({
          type: 'message',
          attachments: [{ contentType: 'application/vnd.microsoft.card.adaptive', content: card }],
        }),
      },
    );
    const { id } = (await posted.json()) as { id: string };
    expect(standIn.activities(approversChannel).map((a) => a.id)).toEqual([id]);

    const approved = { ...card, body: [{ type: 'TextBlock', text: 'Approved by Pat Approver' }] };
    invokeAnswer = {
      statusCode: 200,
      type: 'application/vnd.microsoft.card.adaptive',
      value: approved,
    };
    const result = await call('POST', 'invoke', {
      user: approver.objectId,
      conversationId: approversChannel,
      replyToId: id,
      verb: 'approve',
      data: { requestId: '42', comment: 'ok' },
    });
    expect(result.json.card).toBe(true);

    const invoke = botReceived.at(-1);
    expect(invoke).toMatchObject({
      type: 'invoke',
      name: 'adaptiveCard/action',
      replyToId: id,
      value: {
        action: {
          type: 'Action.Execute',
          verb: 'approve',
          data: { requestId: '42', comment: 'ok' },
        },
        trigger: 'manual',
      },
      conversation: {
        id: approversChannel,
        conversationType: 'channel',
        tenantId: 'tenant-provider',
      },
      from: { aadObjectId: 'oid-pat' },
    });

    const poll = await call(
      'GET',
      `activities?user=oid-pat&conversationId=${encodeURIComponent(approversChannel)}&after=0`,
    );
    expect(poll.json.activities[0].activity.attachments[0].content.body[0].text).toBe(
      'Approved by Pat Approver',
    );

    invokeAnswer = {
      statusCode: 200,
      type: 'application/vnd.microsoft.activity.message',
      value: 'Already decided.',
    };
    const message = await call('POST', 'invoke', {
      user: approver.objectId,
      conversationId: approversChannel,
      replyToId: id,
      verb: 'approve',
      data: {},
    });
    expect(message.json.message).toBe('Already decided.');
  });

  it("answers the conversation creation of a proactive personal message with the user's chat", async () => {
    const response = await fetch(`${baseUrl}/sandbox/teams/v3/conversations`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({
        members: [{ id: '29:sandbox-oid-alice' }],
        tenantId: 'tenant-contoso',
        isGroup: false,
      }),
    });
    expect(response.status).toBe(201);
    expect(((await response.json()) as any).id).toBe('a:sandbox-oid-alice');
  });

  it('serves the chat page, its script and the Adaptive Cards renderer', async () => {
    for (const path of [
      '/sandbox/teams/',
      '/sandbox/teams/static/chat.js',
      '/sandbox/teams/static/adaptivecards.min.js',
    ]) {
      const response = await fetch(`${baseUrl}${path}`);
      expect(response.status, path).toBe(200);
    }
  });
});
