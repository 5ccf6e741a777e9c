/**
 * Each process that takes jobs records itself in `workers` and renews its
 * heartbeat, so that any process (a web process serving /metrics, say) can
 * count the workers alive. A worker that dies stops beating and drops out of
 * the count once its heartbeat is older than the allowed silence; a worker
 * that stops cleanly removes its row.
 */
import { randomUUID } from 'node:crypto';
import os from 'node:os';
import { sql } from 'kysely';
import type { Db } from '../core/db/database.ts';
import type { Logger } from '../core/log.ts';

/** How often a worker renews its heartbeat. */
export const HEARTBEAT_MS = 15_000;
/** A worker whose heartbeat is older than this is taken for dead. */
export const WORKER_SILENCE_MS = 3 * HEARTBEAT_MS;

export interface WorkerHeartbeat {
  id: string;
  /** Stops beating and removes this worker's row. */
  stop(): Promise<void>;
}

/** Records this process as a worker and keeps its heartbeat fresh until stopped. */
export async function startWorkerHeartbeat(
  db: Db,
  role: string,
  log: Logger,
  intervalMs = HEARTBEAT_MS,
): Promise<WorkerHeartbeat> {
  const id = randomUUID();
  await db
    .insertInto('workers')
    .values({ id, role, host: os.hostname(), pid: process.pid })
    .execute();
  // Rows of workers silent for a day are history, not workers.
  await db
    .deleteFrom('workers')
    .where('seen_at', '<', sql<Date>`now() - interval '1 day'`)
    .execute();

  const timer = setInterval(() => {
    db.updateTable('workers')
      .set({ seen_at: sql`now()` })
      .where('id', '=', id)
      .execute()
      .catch((err) => log.warn({ err }, 'worker_heartbeat_failed'));
  }, intervalMs);
  timer.unref();

  return {
    id,
    stop: async () => {
      clearInterval(timer);
      await db.deleteFrom('workers').where('id', '=', id).execute();
    },
  };
}

/** Workers whose heartbeat is recent. */
export async function workersAlive(db: Db, silenceMs = WORKER_SILENCE_MS): Promise<number> {
  const row = await db
    .selectFrom('workers')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('seen_at', '>', sql<Date>`now() - make_interval(secs => ${silenceMs / 1000})`)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}
