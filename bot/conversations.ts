/**
 * Conversation references the bot has seen, kept for proactive messages:
 * approval cards to the approvers' channel, notices to requesters. Every
 * activity refreshes its conversation's row.
 */
import {
  CardFactory,
  MessageFactory,
  TurnContext,
  type Activity,
  type CloudAdapter,
  type ConversationReference,
} from 'botbuilder';
import type { ConnectorClient } from 'botframework-connector';
import type { Db } from '../core/db/database.ts';
import type { ConversationPointer } from '../core/db/schema.ts';
import { actorOf, tenantOf } from './identity.ts';
import type { Card } from './cards.ts';

/** Stores (or refreshes) the activity's conversation reference. */
export async function rememberConversation(db: Db, activity: Activity): Promise<void> {
  const reference = TurnContext.getConversationReference(activity);
  const id = reference.conversation?.id;
  if (!id) return;

  const personal = activity.conversation?.conversationType === 'personal';
  const row = {
    id,
    tenant_id: tenantOf(activity) ?? 'unknown',
    object_id: personal ? (actorOf(activity)?.objectId ?? null) : null,
    reference: JSON.stringify(reference),
    updated_at: new Date(),
  };
  await db
    .insertInto('conversations')
    .values(row)
    .onConflict((oc) =>
      oc.column('id').doUpdateSet({
        tenant_id: row.tenant_id,
        object_id: row.object_id,
        reference: row.reference,
        updated_at: row.updated_at,
      }),
    )
    .execute();
}

/**
 * A reference to send to: the stored one for the conversation when the bot has
 * seen it, otherwise one built from the id and service URL alone.
 */
export async function referenceFor(
  db: Db,
  conversationId: string,
  serviceUrl: string | undefined,
  botId: string,
): Promise<Partial<ConversationReference> | undefined> {
  const stored = await db
    .selectFrom('conversations')
    .select('reference')
    .where('id', '=', conversationId)
    .executeTakeFirst();
  if (stored) {
    return stored.reference as Partial<ConversationReference>;
  }
  if (!serviceUrl) return undefined;
  return {
    channelId: 'msteams',
    serviceUrl,
    conversation: { id: conversationId, isGroup: true, conversationType: 'channel', name: '' },
    bot: { id: botId, name: 'ACBA' },
  };
}

export function pointerOf(
  reference: Partial<ConversationReference>,
  activityId?: string,
): ConversationPointer {
  return {
    conversationId: reference.conversation!.id,
    serviceUrl: reference.serviceUrl!,
    activityId,
  };
}

export const cardActivity = (card: Card): Partial<Activity> =>
  MessageFactory.attachment(CardFactory.adaptiveCard(card));

/** Proactive sending through the adapter: new messages and updates of earlier ones. */
export class Outbox {
  constructor(
    private readonly adapter: CloudAdapter,
    private readonly botAppId: string,
  ) {}

  /**
   * Posts one activity as a new message in the conversation (not as a reply)
   * and returns the id the channel gave it.
   */
  async send(
    reference: Partial<ConversationReference>,
    activity: Partial<Activity> | string,
  ): Promise<string | undefined> {
    let id: string | undefined;
    await this.adapter.continueConversationAsync(this.botAppId, reference, async (context) => {
      // context.sendActivity would reply to the continuation's made-up activity id; post to the conversation instead.
      const client = context.turnState.get<ConnectorClient>(this.adapter.ConnectorClientKey);
      const here = {
        ...TurnContext.getConversationReference(context.activity),
        activityId: undefined,
      };
      const outgoing = TurnContext.applyConversationReference(
        typeof activity === 'string'
          ? MessageFactory.text(activity)
          : { type: 'message', ...activity },
        here,
      );
      id = (
        await client.conversations.sendToConversation(
          context.activity.conversation.id,
          outgoing as Activity,
        )
      ).id;
    });
    return id;
  }

  /** Replaces an activity the bot sent earlier, e.g. an approval card once it is decided. */
  async update(
    reference: Partial<ConversationReference>,
    activityId: string,
    activity: Partial<Activity>,
  ): Promise<void> {
    await this.adapter.continueConversationAsync(this.botAppId, reference, async (context) => {
      await context.updateActivity({ ...activity, id: activityId, type: 'message' });
    });
  }
}
