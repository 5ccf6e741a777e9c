/**
 * What the Teams stand-in remembers: every conversation's activities in the
 * order they arrived, both the bot's (through the connector API) and the
 * people's (sent from the chat page). Each change takes the next number of a
 * global change counter, so the page can poll for "everything changed after N".
 *
 * A card replaced by an invoke response is a per-user view, as in Teams: only
 * the person who pressed the button (or whose refresh ran) sees it. The bot's
 * PUT replaces the activity for everyone and drops those views.
 */

export interface StoredActivity {
  id: string;
  conversationId: string;
  /** 'bot' for what the bot sent, 'user' for what a person sent from the page. */
  origin: 'bot' | 'user';
  activity: any;
  /** The change number of the last change to this activity. */
  changed: number;
  /** Card contents shown to single users instead of the activity's own, keyed by object id. */
  userViews: Map<string, { card: unknown; changed: number }>;
  deleted: boolean;
}

/** One activity as one user sees it, for the page. */
export interface ActivityView {
  id: string;
  origin: 'bot' | 'user';
  activity: any;
  changed: number;
  deleted: boolean;
  /** True when the user sees their own view of the card (an invoke's answer), not the bot's message. */
  userView: boolean;
}

export class ActivityStore {
  private readonly conversations = new Map<string, StoredActivity[]>();
  private counter = 0;
  private nextId = Date.now();

  /** The latest change number. */
  get cursor(): number {
    return this.counter;
  }

  newActivityId(): string {
    this.nextId += 1;
    return String(this.nextId);
  }

  add(conversationId: string, origin: StoredActivity['origin'], activity: any): StoredActivity {
    const id =
      typeof activity.id === 'string' && activity.id !== '' && origin === 'user'
        ? activity.id
        : this.newActivityId();
    const stored: StoredActivity = {
      id,
      conversationId,
      origin,
      activity: { ...activity, id },
      changed: ++this.counter,
      userViews: new Map(),
      deleted: false,
    };
    this.list(conversationId).push(stored);
    return stored;
  }

  /** Replaces an activity's content for everyone; undefined when there is no such activity. */
  replace(conversationId: string, activityId: string, activity: any): StoredActivity | undefined {
    const stored = this.find(conversationId, activityId);
    if (!stored) return undefined;
    stored.activity = { ...activity, id: activityId };
    stored.userViews.clear();
    stored.changed = ++this.counter;
    return stored;
  }

  delete(conversationId: string, activityId: string): boolean {
    const stored = this.find(conversationId, activityId);
    if (!stored) return false;
    stored.deleted = true;
    stored.changed = ++this.counter;
    return true;
  }

  /** Shows `card` instead of the activity's card to one user. */
  setUserView(
    conversationId: string,
    activityId: string,
    objectId: string,
    card: unknown,
  ): boolean {
    const stored = this.find(conversationId, activityId);
    if (!stored) return false;
    const changed = ++this.counter;
    stored.userViews.set(objectId, { card, changed });
    stored.changed = changed;
    return true;
  }

  find(conversationId: string, activityId: string): StoredActivity | undefined {
    return this.conversations.get(conversationId)?.find((a) => a.id === activityId);
  }

  all(conversationId: string): StoredActivity[] {
    return [...(this.conversations.get(conversationId) ?? [])];
  }

  /** The activities changed after `after`, as `objectId` sees them. */
  viewsSince(conversationId: string, objectId: string, after: number): ActivityView[] {
    return this.all(conversationId)
      .filter((a) => a.changed > after)
      .map((a) => {
        const view = a.userViews.get(objectId);
        const activity = view ? withCard(a.activity, view.card) : a.activity;
        return {
          id: a.id,
          origin: a.origin,
          activity,
          changed: a.changed,
          deleted: a.deleted,
          userView: view !== undefined,
        };
      });
  }

  private list(conversationId: string): StoredActivity[] {
    let list = this.conversations.get(conversationId);
    if (!list) {
      list = [];
      this.conversations.set(conversationId, list);
    }
    return list;
  }
}

export const adaptiveCardType = 'application/vnd.microsoft.card.adaptive';

/** The activity with its (first) Adaptive Card attachment replaced by `card`. */
export function withCard(activity: any, card: unknown): any {
  const attachments: any[] = Array.isArray(activity.attachments) ? activity.attachments : [];
  let replaced = false;
  const next = attachments.map((a) => {
    if (replaced || a?.contentType !== adaptiveCardType) return a;
    replaced = true;
    return { ...a, content: card };
  });
  if (!replaced) next.push({ contentType: adaptiveCardType, content: card });
  return { ...activity, attachments: next };
}
