/**
 * Who is talking to the bot, read from the Teams activity. Teams puts the
 * tenant in conversation.tenantId in newer payloads and only in
 * channelData.tenant.id in older ones; both are read.
 */
import type { Activity } from 'botbuilder';
import type { Actor } from '../approvals/index.ts';

export function tenantOf(activity: Partial<Activity>): string | undefined {
  const fromConversation = (activity.conversation as { tenantId?: string } | undefined)?.tenantId;
  const fromChannelData = (activity.channelData as { tenant?: { id?: string } } | undefined)?.tenant
    ?.id;
  return fromConversation || fromChannelData || undefined;
}

/** The person behind the activity, or undefined when Teams did not say (not signed in, another channel). */
export function actorOf(activity: Partial<Activity>): Actor | undefined {
  const objectId = activity.from?.aadObjectId;
  const tenantId = tenantOf(activity);
  if (!objectId || !tenantId) return undefined;
  return { objectId, tenantId, name: activity.from?.name || objectId, channel: 'bot' };
}

export const NOT_SIGNED_IN =
  'I only work in Microsoft Teams, signed in with your work account, because every request records who asked and from which organization. Open me in Teams and try again.';
