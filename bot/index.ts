/**
 * The Teams bot: Bot Framework's CloudAdapter behind an Express router on
 * POST /api/messages. Messages become previews and forms, card actions become
 * calls on the approval workflow, and engine notices become proactive
 * messages. With no app id the adapter runs in local mode (no token checks,
 * replies go unauthenticated to the activity's serviceUrl), as the Bot
 * Framework Emulator and the sandbox chat need; with one, it validates
 * Teams' tokens (./authentication.ts).
 * Local mode is limited to this machine (./local-mode.ts). An activity Teams
 * delivers twice acts once (./deliveries.ts).
 */
import { ActivityTypes, CloudAdapter, type Activity, type TurnContext } from 'botbuilder';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { Approvals } from '../approvals/index.ts';
import type { Db } from '../core/db/database.ts';
import type { Decision, RequestRow } from '../core/db/schema.ts';
import type { Logger } from '../core/log.ts';
import type { EngineNotices } from '../engine/notices.ts';
import { handleCardAction, messageResponse } from './actions.ts';
import { botAuthentication, type AuthenticationOptions } from './authentication.ts';
import { Outbox, rememberConversation } from './conversations.ts';
import { announceDecision } from './decisions.ts';
import { deliveryKey, RecentDeliveries } from './deliveries.ts';
import type { BotDeps } from './deps.ts';
import { tenantsDisagree } from './identity.ts';
import { localModeProblem } from './local-mode.ts';
import { handleConversationUpdate, handleMessage } from './messages.ts';
import { createNotices } from './notices.ts';

export interface BotOptions extends AuthenticationOptions {
  approvals: Approvals;
  db: Db;
  log: Logger;
  /** The provider's approvers' Teams conversation, which receives approval cards. */
  approversConversationId?: string;
  /** Its service URL, used until the bot has seen (and stored) that conversation itself. */
  approversServiceUrl?: string;
  /** The provider's operators' Teams conversation, which receives a card for each failed backup run. */
  operatorsConversationId?: string;
  /** Its service URL, used until the bot has seen (and stored) that conversation itself. */
  operatorsServiceUrl?: string;
}

const APOLOGY =
  'Sorry, something went wrong on our side and nothing was changed. Please try again in a minute; if it keeps happening, tell your provider.';

/** Why an activity cannot be processed, or undefined when it has what the bot needs. */
export function activityProblem(body: unknown): string | undefined {
  if (body === null || typeof body !== 'object' || Array.isArray(body))
    return 'The request body must be a Bot Framework activity (a JSON object).';
  const activity = body as Partial<Activity>;
  const missing: string[] = [];
  if (typeof activity.type !== 'string' || activity.type === '') missing.push('type');
  if (
    !activity.conversation ||
    typeof activity.conversation.id !== 'string' ||
    activity.conversation.id === ''
  )
    missing.push('conversation.id');
  if (!activity.from || typeof activity.from.id !== 'string' || activity.from.id === '')
    missing.push('from.id');
  if (typeof activity.serviceUrl !== 'string' || activity.serviceUrl === '')
    missing.push('serviceUrl');
  if (missing.length > 0)
    return `The activity is missing ${missing.join(', ')}. Send a Bot Framework activity as Teams or the Emulator does.`;

  const odd = [
    ['conversation.id', activity.conversation!.id],
    ['from.id', activity.from!.id],
  ].filter(([, value]) => value!.length > MAX_CHANNEL_ID_LENGTH || CONTROL.test(value!));
  if (odd.length > 0)
    return `The activity's ${odd.map(([name]) => name).join(' and ')} must be plain text of at most ${MAX_CHANNEL_ID_LENGTH} characters, as Teams sends them.`;
  if (activity.text !== undefined && activity.text !== null && typeof activity.text !== 'string')
    return "The activity's text must be a string, as Teams sends it.";
  return undefined;
}

/**
 * Removes optional account fields that are not strings (names, Entra ids,
 * tenant ids), so that the turn treats them as absent: Bot Framework would
 * otherwise fail to send the reply, which echoes them back.
 */
export function dropOddFields(activity: Partial<Activity>): void {
  const accounts = [activity.from, activity.recipient, activity.conversation] as Array<
    Record<string, unknown> | undefined
  >;
  for (const account of accounts) {
    if (!account || typeof account !== 'object') continue;
    for (const field of ['name', 'aadObjectId', 'tenantId', 'role', 'conversationType']) {
      if (account[field] !== undefined && typeof account[field] !== 'string') delete account[field];
    }
  }
}

/** Conversation and user ids from Teams are well under this length. */
const MAX_CHANNEL_ID_LENGTH = 1024;
const CONTROL = /[\u0000-\u001f\u007f-\u009f]/;

export interface Bot {
  router: express.Router;
  notices: EngineNotices;
  /** Shows a decision taken in the portal or the API on the approval card and to the requester. */
  announceDecision: (request: RequestRow, decision: Decision) => Promise<void>;
}

export function createBot(o: BotOptions): Bot {
  const log = o.log.child({ module: 'bot' });
  const adapter = new CloudAdapter(botAuthentication(o, log));
  const deps: BotDeps = {
    approvals: o.approvals,
    db: o.db,
    log,
    outbox: new Outbox(adapter, o.appId ?? ''),
    botAppId: o.appId ?? '',
    approvers: { conversationId: o.approversConversationId, serviceUrl: o.approversServiceUrl },
    operators: { conversationId: o.operatorsConversationId, serviceUrl: o.operatorsServiceUrl },
  };

  const deliveries = new RecentDeliveries();

  adapter.onTurnError = async (context: TurnContext, error: Error) => {
    log.error(
      {
        err: error,
        activityType: context.activity.type,
        conversationId: context.activity.conversation?.id,
      },
      'bot_turn_failed',
    );
    try {
      if (context.activity.type === ActivityTypes.Invoke) {
        await context.sendActivity({
          type: ActivityTypes.InvokeResponse,
          value: messageResponse(APOLOGY),
        });
      } else {
        await context.sendActivity(APOLOGY);
      }
    } catch (sendError) {
      log.error({ err: sendError }, 'bot_apology_failed');
    }
  };

  const logic = async (context: TurnContext) => {
    if (tenantsDisagree(context.activity)) {
      log.warn(
        { conversationId: context.activity.conversation?.id, from: context.activity.from?.id },
        'bot_tenants_disagree',
      );
    }
    await rememberConversation(o.db, context.activity);

    // A repeated delivery of the same activity acts once (./deliveries.ts).
    const key = deliveryKey(context.activity);
    switch (context.activity.type) {
      case ActivityTypes.Message:
        return deliveries.once(key, () => handleMessage(deps, context));
      case ActivityTypes.ConversationUpdate:
        return handleConversationUpdate(deps, context);
      case ActivityTypes.Invoke:
        if (context.activity.name === 'adaptiveCard/action') {
          // Each delivery is answered, the repeat with the first one's response.
          const response = await deliveries.once(key, () => handleCardAction(deps, context));
          await context.sendActivity({ type: ActivityTypes.InvokeResponse, value: response });
        }
        return;
      default:
        return;
    }
  };

  const router = express.Router();
  router.post(
    '/api/messages',
    express.json({ limit: '1mb' }),
    (req: Request, res: Response, next: NextFunction) => {
      const problem = activityProblem(req.body);
      if (problem) {
        res.status(400).json({ error: problem });
        return;
      }
      dropOddFields(req.body as Partial<Activity>);
      if (!o.appId) {
        const refusal = localModeProblem(req);
        if (refusal) {
          log.warn({ ip: req.socket.remoteAddress }, 'bot_local_mode_refused');
          res.status(403).json({ error: refusal });
          return;
        }
      }
      // The adapter would refuse too, but print the failure to the console instead of our log.
      if (o.appId && !req.headers.authorization) {
        log.warn({ ip: req.ip }, 'bot_request_without_token');
        res.status(401).json({
          error:
            'This endpoint takes activities from the Bot Framework only; the request has no token.',
        });
        return;
      }
      next();
    },
    async (req: Request, res: Response) => {
      await adapter.process(req, res, logic);
    },
  );
  router.use(
    '/api/messages',
    (error: unknown, _req: Request, res: Response, next: NextFunction) => {
      const status = (error as { status?: number; type?: string }).status;
      if (status === 400 || (error as { type?: string }).type === 'entity.parse.failed') {
        res.status(400).json({
          error:
            'The request body is not valid JSON. Send a Bot Framework activity as Teams or the Emulator does.',
        });
        return;
      }
      if (status === 413) {
        res.status(413).json({ error: 'The activity is too large (over 1 MB).' });
        return;
      }
      next(error);
    },
  );

  return {
    router,
    notices: createNotices(deps),
    announceDecision: (request, decision) => announceDecision(deps, request, decision),
  };
}
