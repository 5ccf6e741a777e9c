/**
 * A stand-in for Microsoft Teams, for the sandbox. It plays both sides:
 * the connector the bot replies to (./connector.ts, its serviceUrl) and the
 * client a person chats in (a page with the official Adaptive Cards
 * renderer). The page only names which seeded user it acts as; the stand-in
 * builds every activity from that user's record and posts it to the bot, so
 * nobody can make up an identity from the browser.
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import express from 'express';
import type { Logger } from '../../core/log.ts';
import {
  installActivity,
  invokeActivity,
  messageActivity,
  personalConversationId,
  type ConversationInfo,
  type SeededUser,
} from './activities.ts';
import { connectorRoutes } from './connector.ts';
import { ActivityStore, adaptiveCardType } from './store.ts';

export interface TeamsStandInOptions {
  /** The bot's messaging endpoint, e.g. http://localhost:3978/api/messages. */
  botEndpoint: string;
  /** Where this router is reachable, e.g. http://localhost:3978/sandbox/teams; the serviceUrl of its activities. */
  publicUrl: string;
  users: SeededUser[];
  /** The provider's approvers channel. */
  approversConversationId: string;
  /** The provider's operators channel, where the bot posts failed backups; none when unset. */
  operatorsConversationId?: string;
  log: Logger;
}

const publicDir = path.join(import.meta.dirname, 'public');
const adaptiveCardsBundle = path.join(
  path.dirname(createRequire(import.meta.url).resolve('adaptivecards/package.json')),
  'dist',
  'adaptivecards.min.js',
);

/** Users of the tenants that hold approvers or operators see the approvers and operators channels. */
function providerTenants(users: SeededUser[]): Set<string> {
  return new Set(
    users.filter((u) => u.role === 'approver' || u.role === 'operator').map((u) => u.tenantId),
  );
}

export function createTeamsStandIn(options: TeamsStandInOptions): {
  router: express.Router;
  /** Recorded outgoing activities of the bot, for tests. */
  activities(conversationId: string): any[];
} {
  const log = options.log.child({ component: 'teams-standin' });
  const serviceUrl = options.publicUrl.replace(/\/+$/, '');
  const store = new ActivityStore();
  const opened = new Set<string>();
  const staffTenants = providerTenants(options.users);

  const conversationsOf = (user: SeededUser): ConversationInfo[] => {
    const list: ConversationInfo[] = [
      { id: personalConversationId(user), conversationType: 'personal', title: 'Chat with ACBA' },
    ];
    if (staffTenants.has(user.tenantId)) {
      list.push({
        id: options.approversConversationId,
        conversationType: 'channel',
        title: 'Approvers channel',
      });
      if (options.operatorsConversationId) {
        list.push({
          id: options.operatorsConversationId,
          conversationType: 'channel',
          title: 'Operators channel',
        });
      }
    }
    return list;
  };

  /** The seeded user and one of their conversations, from the page's request; throws a 4xx otherwise. */
  const resolve = (objectId: unknown, conversationId: unknown) => {
    const user = options.users.find((u) => u.objectId === objectId);
    if (!user) throw new HttpError(404, 'Pick a seeded user first.');
    const conversation = conversationsOf(user).find((c) => c.id === conversationId);
    if (!conversation)
      throw new HttpError(403, `${user.displayName} is not a member of that conversation.`);
    return { user, conversation, serviceUrl };
  };

  const postToBot = async (activity: unknown): Promise<{ status: number; body: any }> => {
    const response = await fetch(options.botEndpoint, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(activity),
    });
    const text = await response.text();
    let body: any = undefined;
    try {
      body = text ? JSON.parse(text) : undefined;
    } catch {
      body = text;
    }
    if (!response.ok)
      log.warn(
        { status: response.status, type: (activity as any).type },
        'teams_standin_bot_refused',
      );
    return { status: response.status, body };
  };

  const router = express.Router();
  // botbuilder joins serviceUrl and path with a slash of its own; accept the doubled one.
  router.use((req, _res, next) => {
    if (req.url.startsWith('//')) req.url = req.url.replace(/^\/+/, '/');
    next();
  });
  router.use(connectorRoutes(store, options.users, log));

  // The page links its script, styles and API relatively, so it must be served under a trailing slash.
  router.get('/', (req, res) => {
    if (!req.originalUrl.split('?')[0]!.endsWith('/')) {
      const [pathname, query] = req.originalUrl.split('?');
      res.redirect(301, `${pathname}/${query ? `?${query}` : ''}`);
      return;
    }
    res.sendFile(path.join(publicDir, 'index.html'));
  });
  router.get('/static/adaptivecards.min.js', (_req, res) => res.sendFile(adaptiveCardsBundle));
  router.use('/static', express.static(publicDir));

  const api = express.Router();
  api.use(express.json({ limit: '256kb' }));

  api.get('/users', (_req, res) => {
    res.json(options.users.map((u) => ({ ...u, conversations: conversationsOf(u) })));
  });

  // Opening a conversation for the first time installs the app there, as Teams announces with a conversationUpdate.
  api.post('/open', async (req, res) => {
    const envelope = resolve(req.body?.user, req.body?.conversationId);
    const key = `${envelope.user.objectId}|${envelope.conversation.id}`;
    if (!opened.has(key)) {
      opened.add(key);
      const result = await postToBot(installActivity(envelope));
      res.json({ installed: true, botStatus: result.status, cursor: store.cursor });
      return;
    }
    res.json({ installed: false, cursor: store.cursor });
  });

  api.get('/activities', (req, res) => {
    const { user } = resolve(req.query.user, req.query.conversationId);
    const after = Number(req.query.after ?? 0) || 0;
    const conversationId = String(req.query.conversationId);
    res.json({
      cursor: store.cursor,
      activities: store.viewsSince(conversationId, user.objectId, after),
    });
  });

  api.post('/send', async (req, res) => {
    const envelope = resolve(req.body?.user, req.body?.conversationId);
    const text = String(req.body?.text ?? '').trim();
    if (text === '') throw new HttpError(400, 'Type a message first.');

    const activity = messageActivity(envelope, store.newActivityId(), text);
    store.add(envelope.conversation.id, 'user', activity);
    const result = await postToBot(activity);
    res.json({ id: activity.id, botStatus: result.status });
  });

  api.post('/invoke', async (req, res) => {
    const envelope = resolve(req.body?.user, req.body?.conversationId);
    const replyToId = String(req.body?.replyToId ?? '');
    const trigger = req.body?.trigger === 'automatic' ? 'automatic' : 'manual';
    const verb = String(req.body?.verb ?? '');
    if (!store.find(envelope.conversation.id, replyToId))
      throw new HttpError(404, 'That card is gone.');

    const activity = invokeActivity(
      envelope,
      replyToId,
      { verb, data: req.body?.data, title: req.body?.title },
      trigger,
    );
    const result = await postToBot(activity);
    const response = result.body as
      { statusCode?: number; type?: string; value?: unknown } | undefined;

    if (response?.type === adaptiveCardType && response.value) {
      store.setUserView(
        envelope.conversation.id,
        replyToId,
        envelope.user.objectId,
        response.value,
      );
      res.json({ botStatus: result.status, card: true });
      return;
    }
    const message = typeof response?.value === 'string' ? response.value : undefined;
    res.json({ botStatus: result.status, statusCode: response?.statusCode, message });
  });

  api.use(
    (error: unknown, _req: express.Request, res: express.Response, next: express.NextFunction) => {
      if (res.headersSent) return next(error);
      if (error instanceof HttpError) {
        res.status(error.status).json({ message: error.message });
        return;
      }
      log.error({ err: error }, 'teams_standin_failed');
      res.status(502).json({ message: `The bot did not answer: ${(error as Error).message}` });
    },
  );
  router.use('/api', api);

  return {
    router,
    activities: (conversationId) =>
      store
        .all(conversationId)
        .filter((a) => a.origin === 'bot' && !a.deleted)
        .map((a) => a.activity),
  };
}

/** A refusal with the status the page should see; local to the stand-in. */
class HttpError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}
