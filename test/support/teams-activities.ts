/**
 * Activities in the shapes Microsoft Teams sends them to a bot (see the
 * personal-chat message and adaptiveCard/action invoke payloads Teams
 * documents), built for a given person and conversation.
 */
import { randomUUID } from 'node:crypto';

export interface TeamsPerson {
  objectId: string;
  tenantId: string;
  displayName: string;
}

export interface Conversation {
  id: string;
  type: 'personal' | 'channel';
}

export const personalChat = (person: TeamsPerson): Conversation => ({
  id: `a:e2e-${person.objectId}`,
  type: 'personal',
});

function base(person: TeamsPerson, conversation: Conversation, serviceUrl: string) {
  return {
    channelId: 'msteams',
    id: `f:${randomUUID()}`,
    timestamp: new Date().toISOString(),
    serviceUrl,
    from: { id: `29:${person.objectId}`, name: person.displayName, aadObjectId: person.objectId },
    recipient: { id: '28:acba-bot', name: 'ACBA' },
    conversation: {
      id: conversation.id,
      conversationType: conversation.type,
      tenantId: person.tenantId,
    },
    channelData: { tenant: { id: person.tenantId } },
    entities: [
      {
        type: 'clientInfo',
        locale: 'en-GB',
        country: 'GB',
        platform: 'Web',
        timezone: 'Europe/London',
      },
    ],
    locale: 'en-GB',
    localTimezone: 'Europe/London',
  };
}

export function messageActivity(
  person: TeamsPerson,
  conversation: Conversation,
  serviceUrl: string,
  text: string,
) {
  return { ...base(person, conversation, serviceUrl), type: 'message', textFormat: 'plain', text };
}

export function invokeActivity(
  person: TeamsPerson,
  conversation: Conversation,
  serviceUrl: string,
  verb: string,
  data: Record<string, unknown>,
) {
  return {
    ...base(person, conversation, serviceUrl),
    type: 'invoke',
    name: 'adaptiveCard/action',
    value: { action: { type: 'Action.Execute', verb, data }, trigger: 'manual' },
  };
}
