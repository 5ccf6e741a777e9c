/**
 * Who is talking to the bot, read from the Teams activity. Teams puts the
 * tenant in conversation.tenantId in newer payloads and only in
 * channelData.tenant.id in older ones; both are read, and an activity in which
 * the two name different tenants is not trusted at all: the tenant decides
 * whose data a person sees and whether they may approve.
 *
 * Only strings count: a field of another type is treated as absent, so that
 * an odd payload is refused politely instead of failing deep in a query.
 */
import type { Activity } from 'botbuilder';
import type { Actor } from '../approvals/index.ts';
import { clip } from '../core/clip.ts';

/** The longest Entra object or tenant id accepted; real ones are 36-character GUIDs. */
const MAX_ENTRA_ID_LENGTH = 100;
/** The longest display name kept; longer ones are cut. */
const MAX_NAME_LENGTH = 200;

const plainId = (value: unknown): string | undefined =>
  typeof value === 'string' &&
  value !== '' &&
  value.length <= MAX_ENTRA_ID_LENGTH &&
  !/[\u0000-\u001f\u007f-\u009f]/.test(value)
    ? value
    : undefined;

/** The tenant as each part of the activity names it. */
function namedTenants(activity: Partial<Activity>): {
  conversation?: string;
  channelData?: string;
} {
  const conversation = (activity.conversation as { tenantId?: unknown } | undefined)?.tenantId;
  const channelData = (activity.channelData as { tenant?: { id?: unknown } } | undefined)?.tenant
    ?.id;
  return { conversation: plainId(conversation), channelData: plainId(channelData) };
}

/** True when conversation.tenantId and channelData.tenant.id are both given and differ. */
export function tenantsDisagree(activity: Partial<Activity>): boolean {
  const named = namedTenants(activity);
  return (
    named.conversation !== undefined &&
    named.channelData !== undefined &&
    named.conversation.toLowerCase() !== named.channelData.toLowerCase()
  );
}

export function tenantOf(activity: Partial<Activity>): string | undefined {
  if (tenantsDisagree(activity)) return undefined;
  const named = namedTenants(activity);
  return named.conversation ?? named.channelData;
}

/** The person behind the activity, or undefined when Teams did not say (not signed in, another channel). */
export function actorOf(activity: Partial<Activity>): Actor | undefined {
  const objectId = plainId(activity.from?.aadObjectId);
  const tenantId = tenantOf(activity);
  if (!objectId || !tenantId) return undefined;
  const name = typeof activity.from?.name === 'string' ? activity.from.name.trim() : '';
  return {
    objectId,
    tenantId,
    name: name === '' ? objectId : clip(name, MAX_NAME_LENGTH),
    channel: 'bot',
  };
}

export const NOT_SIGNED_IN =
  'I only work in Microsoft Teams, signed in with your work account, because every request records who asked and from which organization. Open me in Teams and try again.';

export const TENANTS_DISAGREE =
  'I cannot tell which organization you are signed in to: this message names two different tenants. Nothing was done. Open me again from Teams; if it keeps happening, tell your provider.';

/** What to answer someone actorOf() does not accept. */
export function unidentifiedReply(activity: Partial<Activity>): string {
  return tenantsDisagree(activity) ? TENANTS_DISAGREE : NOT_SIGNED_IN;
}
