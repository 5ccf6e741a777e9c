/**
 * Licensed concurrency: a customer licensed for N concurrent tasks has N slot
 * rows (customer_id, slot 0..N-1) in task_slots, and a task runs only while it
 * holds one. Every worker of every process claims slots in the same table, so
 * the limit holds across all of them.
 *
 * Claiming is one UPDATE of the lowest free slot, picked with
 * `FOR UPDATE SKIP LOCKED`: two workers racing for the last slot never both
 * win, and neither waits on the other's row lock. A held slot carries an
 * expiry that its holder renews while the task runs, so a worker that dies
 * frees its slot when the expiry passes. A task that finds every slot busy
 * waits and tries again; it does not fail. A slot also names its holder's
 * worker lease, so that when the worker dies the slot is freed as soon as the
 * lease is reclaimed (./worker-reclaim.ts), not only when its expiry passes.
 */
import { randomUUID } from 'node:crypto';
import { sql } from 'kysely';
import type { Db } from '../core/db/database.ts';

/** How long a slot is held without renewal before another worker may take it. */
export const SLOT_TTL_MS = 60_000;

export interface SlotOptions {
  /** Pause between tries while every slot is busy; 1 s by default. */
  pollMs?: number;
  ttlMs?: number;
  /** The worker lease of this process (./worker-leases.ts), recorded on the slot. */
  workerId?: string;
  /** Called once when the first try finds every slot busy. */
  onWait?: () => void;
}

export interface HeldSlot {
  slot: number;
  holder: string;
  /** Stops renewing and frees the slot; safe to call twice. */
  release(): Promise<void>;
}

/** Waits until one of the customer's `maxTasks` slots is free and takes it. */
export async function acquireSlot(
  db: Db,
  customerId: string,
  maxTasks: number,
  options: SlotOptions = {},
): Promise<HeldSlot> {
  const holder = randomUUID();
  const ttlMs = options.ttlMs ?? SLOT_TTL_MS;
  await ensureSlots(db, customerId, maxTasks);

  let waited = false;
  for (;;) {
    const slot = await tryClaim(db, customerId, maxTasks, { holder, ttlMs, ...options });
    if (slot !== undefined) return heldSlot(db, customerId, slot, holder, ttlMs);
    if (!waited) options.onWait?.();
    waited = true;
    await new Promise((resolve) => setTimeout(resolve, options.pollMs ?? 1000));
  }
}

/** How many of the customer's slots are held now (live expiry). */
export async function busySlots(db: Db, customerId: string): Promise<number> {
  const row = await db
    .selectFrom('task_slots')
    .select((eb) => eb.fn.countAll<string>().as('n'))
    .where('customer_id', '=', customerId)
    .where('holder', 'is not', null)
    .where('expires_at', '>', sql<Date>`now()`)
    .executeTakeFirstOrThrow();
  return Number(row.n);
}

async function ensureSlots(db: Db, customerId: string, maxTasks: number): Promise<void> {
  await db
    .insertInto('task_slots')
    .values(Array.from({ length: maxTasks }, (_, slot) => ({ customer_id: customerId, slot })))
    .onConflict((oc) => oc.columns(['customer_id', 'slot']).doNothing())
    .execute();
}

async function tryClaim(
  db: Db,
  customerId: string,
  maxTasks: number,
  claim: { holder: string; ttlMs: number; workerId?: string },
): Promise<number | undefined> {
  // Slots at or above a lowered licence stay in the table but are never claimed again.
  const row = await sql<{ slot: number }>`
    update task_slots set holder = ${claim.holder}, worker_id = ${claim.workerId ?? null},
      expires_at = now() + make_interval(secs => ${claim.ttlMs / 1000})
    where (customer_id, slot) = (
      select customer_id, slot from task_slots
      where customer_id = ${customerId} and slot < ${maxTasks}
        and (holder is null or expires_at < now())
      order by slot
      limit 1
      for update skip locked
    )
    returning slot`.execute(db);
  return row.rows[0]?.slot;
}

function heldSlot(
  db: Db,
  customerId: string,
  slot: number,
  holder: string,
  ttlMs: number,
): HeldSlot {
  const mine = () =>
    db
      .updateTable('task_slots')
      .where('customer_id', '=', customerId)
      .where('slot', '=', slot)
      .where('holder', '=', holder);
  const timer = setInterval(() => {
    mine()
      .set({ expires_at: sql<Date>`now() + make_interval(secs => ${ttlMs / 1000})` })
      .execute()
      .catch(() => undefined);
  }, ttlMs / 3);
  timer.unref();

  let released: Promise<void> | undefined;
  return {
    slot,
    holder,
    release: () => {
      clearInterval(timer);
      released ??= mine()
        .set({ holder: null, expires_at: null, worker_id: null })
        .execute()
        .then(() => undefined);
      return released;
    },
  };
}
