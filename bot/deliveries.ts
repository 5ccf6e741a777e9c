/**
 * Teams delivers an activity again when the bot answered too slowly or the
 * connection dropped, with the same activity id. A repeated delivery must not
 * act twice: a second approve would be refused and audited as a refusal, a
 * second message would be answered twice. This remembers, per process, the
 * activities handled in the last few minutes; a repeat waits for the first
 * delivery and gets the same answer.
 *
 * Across several web processes a repeat may land elsewhere; the workflow's own
 * checks (one decision per approver, pending only) still keep it from acting
 * twice there.
 */

/** How long a handled activity is remembered. */
const REMEMBER_MS = 10 * 60_000;
/** At most this many are remembered; the oldest are forgotten first. */
const MAX_REMEMBERED = 5000;

export class RecentDeliveries {
  private readonly seen = new Map<string, { at: number; result: Promise<unknown> }>();

  /**
   * Runs `work` for the first delivery of `key`; a repeat within the window gets the
   * first delivery's result (its failure too) and `work` does not run again.
   */
  once<T>(key: string | undefined, work: () => Promise<T>): Promise<T> {
    if (!key) return work();
    const now = Date.now();
    this.forgetOld(now);
    const earlier = this.seen.get(key);
    if (earlier) return earlier.result as Promise<T>;

    const result = work();
    this.seen.set(key, { at: now, result });
    return result;
  }

  private forgetOld(now: number): void {
    for (const [key, entry] of this.seen) {
      if (now - entry.at < REMEMBER_MS && this.seen.size < MAX_REMEMBERED) break;
      this.seen.delete(key);
    }
  }
}

/** The key of a delivery: the activity id within its conversation, when Teams gave one. */
export function deliveryKey(activity: {
  id?: unknown;
  conversation?: { id?: unknown };
}): string | undefined {
  return typeof activity.id === 'string' && activity.id !== ''
    ? `${String(activity.conversation?.id)}\u0000${activity.id}`
    : undefined;
}
