/**
 * Builds the activities Teams would send to the bot, in Teams' own shape
 * (see /work/shared/fixtures/teams): always from a seeded user, never from
 * whatever the page claims.
 */
import { randomUUID } from 'node:crypto';

export interface SeededUser {
  objectId: string;
  tenantId: string;
  displayName: string;
  role: string;
  /** The person's organisation as people know it, e.g. "Contoso"; shown in the user picker. */
  organization?: string;
}

/** A conversation as the stand-in offers it to a user. */
export interface ConversationInfo {
  id: string;
  conversationType: 'personal' | 'channel';
  title: string;
}

/** The bot as Teams names it in `recipient`. */
export const botAccount = { id: '28:acba-sandbox-bot', name: 'ACBA' };

/** The user's id in Teams' own format ("29:..."), derived from the object id so it is stable. */
export function teamsUserId(user: SeededUser): string {
  return `29:sandbox-${user.objectId}`;
}

export function personalConversationId(user: SeededUser): string {
  return `a:sandbox-${user.objectId}`;
}

interface Envelope {
  user: SeededUser;
  conversation: ConversationInfo;
  serviceUrl: string;
}

function common({ user, conversation, serviceUrl }: Envelope) {
  const now = new Date().toISOString();
  const channelData: Record<string, unknown> = { tenant: { id: user.tenantId } };
  if (conversation.conversationType === 'channel') {
    channelData.channel = { id: conversation.id };
    channelData.team = { id: conversation.id };
  }
  return {
    timestamp: now,
    localTimestamp: now.replace('Z', '+00:00'),
    serviceUrl,
    channelId: 'msteams',
    from: { id: teamsUserId(user), name: user.displayName, aadObjectId: user.objectId },
    conversation: {
      conversationType: conversation.conversationType,
      id: conversation.id,
      tenantId: user.tenantId,
      ...(conversation.conversationType === 'channel' ? { isGroup: true } : {}),
    },
    recipient: botAccount,
    entities: [
      { locale: 'en-US', country: 'US', platform: 'Web', timezone: 'UTC', type: 'clientInfo' },
    ],
    channelData,
    locale: 'en-US',
    localTimezone: 'UTC',
  };
}

export function messageActivity(envelope: Envelope, id: string, text: string) {
  return { type: 'message', id, ...common(envelope), textFormat: 'plain', text };
}

export function invokeActivity(
  envelope: Envelope,
  replyToId: string,
  action: { verb: string; data: unknown; title?: string },
  trigger: 'manual' | 'automatic',
) {
  const base = common(envelope);
  return {
    type: 'invoke',
    id: `f:${randomUUID()}`,
    ...base,
    channelData: { ...base.channelData, source: { name: 'message' }, legacy: { replyToId } },
    name: 'adaptiveCard/action',
    value: {
      action: {
        type: 'Action.Execute',
        ...(action.title ? { title: action.title } : {}),
        verb: action.verb,
        data: action.data ?? {},
      },
      trigger,
    },
    replyToId,
  };
}

/** What Teams sends when the app is added to a chat or channel. */
export function installActivity(envelope: Envelope) {
  const base = common(envelope);
  return {
    type: 'conversationUpdate',
    id: `f:${randomUUID()}`,
    ...base,
    membersAdded: [{ id: botAccount.id }],
    channelData: {
      ...base.channelData,
      eventType:
        envelope.conversation.conversationType === 'channel' ? 'teamMemberAdded' : undefined,
    },
  };
}
