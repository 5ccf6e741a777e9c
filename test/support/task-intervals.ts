/**
 * How many of a customer's tasks ran at once, read from the intervals the job
 * sessions recorded (each task's start and end), for tests of the licence's
 * bound on concurrent tasks.
 */
import type { Db } from '../../core/db/database.ts';

/** The most task intervals of the customer, made since `since`, that overlap at any instant. */
export async function peakOverlap(
  db: Db,
  customerId: string,
  since: Date,
): Promise<{ peak: number; tasks: number }> {
  const tasks = await db
    .selectFrom('job_tasks')
    .select(['started_at', 'finished_at'])
    .where('customer_id', '=', customerId)
    .where('created_at', '>=', since)
    .execute();
  const edges = tasks.flatMap((t) => [
    { at: t.started_at!.getTime(), delta: 1 },
    { at: t.finished_at!.getTime(), delta: -1 },
  ]);

  // At equal times an end comes before a start: touching intervals do not overlap.
  edges.sort((a, b) => a.at - b.at || a.delta - b.delta);
  let running = 0;
  let peak = 0;
  for (const edge of edges) {
    running += edge.delta;
    peak = Math.max(peak, running);
  }
  return { peak, tasks: tasks.length };
}
