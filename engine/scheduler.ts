/**
 * The scheduler: every tick, each enabled policy's schedules are asked for
 * their latest due slot, and a slot not yet run is claimed by inserting its
 * policy_runs row. The unique (policy, slot) constraint lets exactly one
 * process win a slot, however many schedulers tick at once; only the winner
 * enqueues the backups.
 *
 * Catching up: only the latest due slot of each schedule is ever considered,
 * so after downtime a policy runs once for what it missed, not once per missed
 * slot. Slots before the policy was first applied never run.
 *
 * When several schedules of one policy are due in the same tick (the 1st of
 * the month at 02:00 is a daily and a monthly slot), their runs are merged:
 * one backup per item, kept as long as the longest of their retentions.
 * Snapshot policies run the same way; their jobs carry the schedule kinds,
 * by which the engine counts the snapshots each schedule keeps.
 */
import { randomUUID } from 'node:crypto';
import { DateTime } from 'luxon';
import { appendAudit, serviceActor } from '../core/audit.ts';
import type { Db } from '../core/db/database.ts';
import type { Policy } from '../core/db/schema.ts';
import type { Logger } from '../core/log.ts';
import { licensedItemIds } from './licences.ts';
import { getPolicy, policySchedules, resolvePolicyItems, type PolicySpec } from './policies.ts';
import type { JobQueue } from './queue.ts';
import { latestSlot, type Slot } from './schedule.ts';

export interface SchedulerDeps {
  db: Db;
  queue: Pick<JobQueue, 'enqueueBackup'>;
  log: Logger;
}

export interface RunReport {
  policy: string;
  slots: string[];
  /** Item ids whose backups were enqueued. */
  items: string[];
  /** Items left to a higher-priority policy. */
  skipped: { itemId: string; policy: string }[];
  /** Items beyond the customer's licensed protected instances, not backed up. */
  overLicence?: string[];
  expiresAt?: string;
}

/** Claims and starts every due, not yet run slot of every enabled policy. */
export async function runDuePolicies(deps: SchedulerDeps, now = new Date()): Promise<RunReport[]> {
  const policies = await deps.db
    .selectFrom('policies')
    .selectAll()
    .where('enabled', '=', true)
    .orderBy('name')
    .execute();
  const reports: RunReport[] = [];
  for (const policy of policies) {
    try {
      const report = await runDueSlots(deps, policy, now);
      if (report) reports.push(report);
    } catch (error) {
      // One broken policy must not keep the others from running.
      deps.log.error({ err: error, policy: policy.name }, 'policy_run_failed');
    }
  }
  return reports;
}

async function runDueSlots(
  deps: SchedulerDeps,
  policy: Policy,
  now: Date,
): Promise<RunReport | undefined> {
  const spec = policy.spec as PolicySpec;
  const claimed: { slot: Slot; kind: string; retentionYears?: number }[] = [];
  for (const schedule of policySchedules(spec)) {
    const slot = latestSlot(schedule.rule, policy.time_zone, now);
    if (!slot || slot.at.getTime() < policy.active_from.getTime()) continue;
    const won = await claimSlot(deps.db, policy.name, slot.key, slot.at, 'schedule');
    if (won)
      claimed.push({ slot, kind: schedule.rule.kind, retentionYears: schedule.retentionYears });
  }
  if (claimed.length === 0) return undefined;

  const years = Math.max(0, ...claimed.map((c) => c.retentionYears ?? 0));
  const latest = claimed.map((c) => c.slot.at).sort((a, b) => b.getTime() - a.getTime())[0]!;
  const expiresAt = years
    ? DateTime.fromJSDate(latest, { zone: policy.time_zone }).plus({ years }).toJSDate()
    : undefined;
  return startRun(
    deps,
    policy,
    claimed.map((c) => c.slot.key),
    [...new Set(claimed.map((c) => c.kind))],
    expiresAt,
    'schedule',
  );
}

/** Runs a policy now, outside its schedule, with the retention of its first schedule. */
export async function runPolicyNow(
  deps: SchedulerDeps,
  name: string,
  now = new Date(),
): Promise<RunReport> {
  const policy = await getPolicy(deps.db, name);
  const first = policySchedules(policy.spec as PolicySpec)[0];
  const key = `operator@${now.toISOString()}`;
  await claimSlot(deps.db, policy.name, key, now, 'operator');
  const expiresAt = first?.retentionYears
    ? DateTime.fromJSDate(now, { zone: policy.time_zone })
        .plus({ years: first.retentionYears })
        .toJSDate()
    : undefined;
  return startRun(deps, policy, [key], first ? [first.rule.kind] : [], expiresAt, 'operator');
}

/** Inserts the run row; true for the one process whose insert created it. */
async function claimSlot(
  db: Db,
  policyName: string,
  slotKey: string,
  slotAt: Date,
  trigger: string,
): Promise<boolean> {
  const row = await db
    .insertInto('policy_runs')
    .values({
      id: randomUUID(),
      policy_name: policyName,
      slot_key: slotKey,
      slot_at: slotAt,
      trigger,
    })
    .onConflict((oc) => oc.columns(['policy_name', 'slot_key']).doNothing())
    .returning('id')
    .executeTakeFirst();
  return row !== undefined;
}

async function startRun(
  deps: SchedulerDeps,
  policy: Policy,
  slotKeys: string[],
  schedules: string[],
  expiresAt: Date | undefined,
  trigger: string,
): Promise<RunReport> {
  const log = deps.log.child({ policy: policy.name, slots: slotKeys });
  const resolved = await resolvePolicyItems(deps.db, policy);
  const { skipped } = resolved;
  for (const s of skipped)
    log.info({ itemId: s.item.id, vm: s.item.name, winner: s.policy }, 'policy_item_skipped');
  const licensed = await licensedItemIds(deps.db, policy.customer_id);
  const items = resolved.items.filter((i) => !licensed || licensed.has(i.id));
  const overLicence = resolved.items.filter((i) => !items.includes(i));
  for (const i of overLicence)
    log.warn({ itemId: i.id, vm: i.name, instances: licensed?.size }, 'policy_item_over_licence');

  const enqueued = items;
  for (const item of enqueued) {
    await deps.queue.enqueueBackup({
      itemId: item.id,
      trigger,
      expiresAt: expiresAt?.toISOString(),
      policyName: policy.name,
      protection: policy.type,
      schedules,
    });
  }

  const report: RunReport = {
    policy: policy.name,
    slots: slotKeys,
    items: enqueued.map((i) => i.id),
    skipped: skipped.map((s) => ({ itemId: s.item.id, policy: s.policy })),
    ...(overLicence.length > 0 ? { overLicence: overLicence.map((i) => i.id) } : {}),
    expiresAt: expiresAt?.toISOString(),
  };
  await deps.db
    .updateTable('policy_runs')
    .set({
      items: JSON.stringify(report.items),
      skipped: JSON.stringify(report.skipped),
      expires_at: expiresAt ?? null,
    })
    .where('policy_name', '=', policy.name)
    .where('slot_key', 'in', slotKeys)
    .execute();
  await appendAudit(deps.db, {
    actor: serviceActor,
    channel: 'scheduler',
    action: 'policy.run',
    resource: `policy/${policy.name}`,
    outcome: 'success',
    details: { ...report },
  });
  log.info({ items: report.items.length, skipped: report.skipped.length }, 'policy_run_started');
  return report;
}

export interface SchedulerOptions extends SchedulerDeps {
  /** How often due slots are looked for; 30 s by default. */
  intervalMs?: number;
  /** Repository upkeep (retention), run every `everyMs` (an hour by default). */
  maintenance?: { run(): Promise<unknown>; everyMs?: number };
}

/** Ticks until stopped; a tick never overlaps the previous one in this process. */
export function startScheduler(options: SchedulerOptions): { stop(): Promise<void> } {
  const log = options.log.child({ component: 'scheduler' });
  let running: Promise<unknown> = Promise.resolve();
  let busy = false;
  // Retention first runs one period after start, keeping start-up light.
  let lastMaintenance = Date.now();
  const tick = () => {
    if (busy) return;
    busy = true;
    running = (async () => {
      await runDuePolicies({ ...options, log });
      const every = options.maintenance?.everyMs ?? 3600_000;
      if (options.maintenance && Date.now() - lastMaintenance >= every) {
        lastMaintenance = Date.now();
        await options.maintenance.run();
      }
    })()
      .catch((error) => log.error({ err: error }, 'scheduler_tick_failed'))
      .finally(() => {
        busy = false;
      });
  };
  const timer = setInterval(tick, options.intervalMs ?? 30_000);
  timer.unref();
  tick();
  return {
    stop: async () => {
      clearInterval(timer);
      await running;
    },
  };
}
