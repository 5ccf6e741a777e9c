/**
 * The Bot Framework connector's REST API, as far as the bot uses it: the
 * stand-in is the bot's serviceUrl. It records what the bot sends and answers
 * with ids, like Teams does. Conversation ids arrive URL-encoded
 * ("19%3Aabc%40thread.tacv2"); Express decodes route parameters.
 */
import express from 'express';
import type { Logger } from '../../core/log.ts';
import type { ActivityStore } from './store.ts';
import type { SeededUser } from './activities.ts';
import { personalConversationId, teamsUserId } from './activities.ts';

export function connectorRoutes(
  store: ActivityStore,
  users: SeededUser[],
  log: Logger,
): express.Router {
  const router = express.Router();
  router.use(express.json({ limit: '1mb' }));
  let created = 0;

  router.post('/v3/conversations', (req, res) => {
    const member = req.body?.members?.[0];
    // A personal chat with a seeded user is that user's existing chat, as in Teams.
    const user = users.find(
      (u) => member && (member.id === teamsUserId(u) || member.aadObjectId === u.objectId),
    );
    const id = user ? personalConversationId(user) : `a:sandbox-conversation-${++created}`;

    let activityId: string | undefined;
    if (req.body?.activity)
      activityId = store.add(id, 'bot', { ...req.body.activity, conversation: { id } }).id;
    log.debug({ conversationId: id }, 'teams_standin_conversation_created');
    res.status(201).json({ id, activityId, serviceUrl: req.body?.serviceUrl });
  });

  const record = (req: express.Request, res: express.Response) => {
    const conversationId = String(req.params.conversationId);
    const stored = store.add(conversationId, 'bot', {
      ...req.body,
      ...(req.params.activityId ? { replyToId: req.params.activityId } : {}),
    });
    log.debug(
      { conversationId, activityId: stored.id, type: req.body?.type },
      'teams_standin_activity_recorded',
    );
    res.status(201).json({ id: stored.id });
  };
  router.post('/v3/conversations/:conversationId/activities', record);
  router.post('/v3/conversations/:conversationId/activities/:activityId', record);

  router.put('/v3/conversations/:conversationId/activities/:activityId', (req, res) => {
    const { conversationId, activityId } = req.params;
    const stored = store.replace(conversationId, activityId, req.body);
    if (!stored) {
      res.status(404).json({
        error: {
          code: 'ActivityNotFound',
          message: `No activity ${activityId} in ${conversationId}`,
        },
      });
      return;
    }
    log.debug({ conversationId, activityId }, 'teams_standin_activity_updated');
    res.status(200).json({ id: activityId });
  });

  router.delete('/v3/conversations/:conversationId/activities/:activityId', (req, res) => {
    const found = store.delete(req.params.conversationId, req.params.activityId);
    res.status(found ? 200 : 404).json({});
  });

  // TeamsInfo.getMember and friends: the seeded users are the members.
  router.get('/v3/conversations/:conversationId/members/:memberId', (req, res) => {
    const user = users.find(
      (u) => teamsUserId(u) === req.params.memberId || u.objectId === req.params.memberId,
    );
    if (!user) {
      res.status(404).json({ error: { code: 'MemberNotFound', message: 'No such member' } });
      return;
    }
    res.json(memberOf(user));
  });
  router.get('/v3/conversations/:conversationId/members', (_req, res) => {
    res.json(users.map(memberOf));
  });

  return router;
}

function memberOf(user: SeededUser) {
  return {
    id: teamsUserId(user),
    name: user.displayName,
    aadObjectId: user.objectId,
    tenantId: user.tenantId,
    userRole: 'user',
  };
}
