/**
 * `acba policy apply FILE`, `acba policy list [--json]` and
 * `acba policy run NAME [--wait] [--json]`: operators keep backup policies as
 * YAML files and apply them here, and run one now outside its schedule.
 */
import fs from 'node:fs/promises';
import { parseArgs } from 'node:util';
import type { Config } from '../core/config.ts';
import { openDatabase, type Db } from '../core/db/database.ts';
import { badInput, unavailable } from '../core/errors.ts';
import { createLogger } from '../core/log.ts';
import { startJobQueue, type PgBossJobQueue } from '../engine/job-queue.ts';
import {
  applyPolicies,
  getPolicy,
  parsePolicyFile,
  policySchedules,
  resolvePolicyItems,
  type PolicySpec,
} from '../engine/policies.ts';
import { nextSlots } from '../engine/schedule.ts';
import { runPolicyNow, type RunReport } from '../engine/scheduler.ts';
import { workersAlive } from '../engine/worker-leases.ts';
import { printUsage } from './command-line.ts';
import { followBackups, progressLines, succeeded, summaryLine } from './policy-wait.ts';
import { terminalBoard } from './terminal-progress.ts';

export const policyUsage = `Usage:
  acba policy apply FILE
      Creates or updates the backup policies a YAML file describes.
  acba policy list [--json]
      Each policy with its customer, priority, type, schedules, items and next run.
  acba policy run NAME [--wait] [--json]
      Queues a backup of each item of the policy now. With --wait, follows the queued backups
      until they end (per-item progress on a terminal) and prints each item's outcome; exit code
      1 naming the failed items. The backups run on workers: with --wait, an "acba serve" or
      "acba worker" process must be running against the same database.`;

export async function policyCommand(config: Config, argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined) return printUsage(policyUsage, false);
  const { values, positionals } = parseArgs({
    args: rest,
    options: {
      json: { type: 'boolean' },
      wait: { type: 'boolean' },
    },
    allowPositionals: true,
  });
  if (sub !== 'apply' && sub !== 'list' && sub !== 'run') {
    throw badInput(
      `unknown policy command "${sub ?? ''}"; use "acba policy apply FILE", "acba policy list [--json]" or "acba policy run NAME".`,
    );
  }
  if ((sub === 'apply' || sub === 'run') && positionals.length !== 1) {
    throw badInput(
      sub === 'apply'
        ? 'name one policy file: acba policy apply FILE'
        : 'name one policy: acba policy run NAME',
    );
  }

  let specs: PolicySpec[] = [];
  if (sub === 'apply') {
    const file = positionals[0]!;
    const text = await fs.readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
      throw badInput(`cannot read ${file}: ${error.code ?? error.message}`);
    });
    specs = parsePolicyFile(text, file);
  }

  const handle = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir });
  try {
    if (sub === 'apply') {
      for (const result of await applyPolicies(handle.db, specs)) {
        process.stdout.write(`Policy ${result.name} ${result.created ? 'created' : 'updated'}.\n`);
        for (const overlap of result.overlaps) process.stdout.write(`  note: ${overlap}\n`);
      }
      return 0;
    }

    if (sub === 'run') {
      const log = createLogger({ level: config.logLevel });
      // Named first, so that a mistyped policy is reported as such even with no worker.
      if (values.wait) await getPolicy(handle.db, positionals[0]!);
      if (values.wait && (await workersAlive(handle.db)) === 0)
        throw unavailable(
          `no worker is running against this database, so policy ${positionals[0]} would wait forever; start "acba serve" or "acba worker" and run it again.`,
        );
      const queue = await startJobQueue({ executeSql: handle.executeSql, log });
      try {
        const report = await runPolicyNow({ db: handle.db, queue, log }, positionals[0]!);
        if (values.wait) return await waitForRun(handle.db, queue, report, values.json === true);
        if (values.json) process.stdout.write(`${JSON.stringify(report)}\n`);
        else printQueued(report);
      } finally {
        await queue.stop();
      }
      return 0;
    }

    const policies = await handle.db.selectFrom('policies').selectAll().orderBy('name').execute();
    const now = new Date();
    const rows = [];
    for (const policy of policies) {
      const spec = policy.spec as PolicySpec;
      const next = policySchedules(spec)
        .flatMap((s) => nextSlots(s.rule, policy.time_zone, now))
        .sort((a, b) => a.at.getTime() - b.at.getTime())[0];
      const { items, skipped } = await resolvePolicyItems(handle.db, policy);
      rows.push({
        name: policy.name,
        customer: policy.customer_id,
        priority: policy.priority,
        enabled: policy.enabled,
        type: policy.type,
        timeZone: policy.time_zone,
        schedules: Object.keys(spec.schedules).filter((k) => spec.schedules[k as 'daily']),
        items: items.map((i) => i.name),
        skipped: skipped.map((s) => ({ item: s.item.name, policy: s.policy })),
        nextRun: policy.enabled ? next?.at.toISOString() : undefined,
      });
    }
    if (values.json) process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
    else if (rows.length === 0)
      process.stdout.write('No policies yet. Apply one with "acba policy apply FILE".\n');
    else
      for (const r of rows)
        process.stdout.write(
          `${r.name}  customer ${r.customer}  priority ${r.priority}  ${r.type}  ${r.schedules.join('+')}  ${r.items.length} item(s)  next ${r.enabled ? (r.nextRun ?? 'none') : 'disabled'}\n`,
        );
    return 0;
  } finally {
    await handle.close();
  }
}

function printQueued(report: RunReport): void {
  process.stdout.write(
    `Policy ${report.policy}: ${report.items.length} backup(s) queued${report.expiresAt ? `, kept until ${report.expiresAt}` : ''}.\n`,
  );
  for (const s of report.skipped)
    process.stdout.write(`  skipped ${s.itemId}: protected by policy ${s.policy}\n`);
  for (const itemId of report.overLicence ?? [])
    process.stdout.write(`  skipped ${itemId}: beyond the customer's licensed instances\n`);
}

/** Follows the run's backups to their end; prints the summary; 1 when any failed. */
async function waitForRun(
  db: Db,
  queue: PgBossJobQueue,
  report: RunReport,
  json: boolean,
): Promise<number> {
  const run = await db
    .selectFrom('policy_runs')
    .select('started_at')
    .where('policy_name', '=', report.policy)
    .where('slot_key', '=', report.slots[0]!)
    .executeTakeFirstOrThrow();
  const items = report.items.length
    ? await db
        .selectFrom('protected_items')
        .select(['id', 'name'])
        .where('id', 'in', report.items)
        .orderBy('name')
        .execute()
    : [];

  const board = terminalBoard();
  const outcomes = await followBackups(
    {
      db,
      pendingBackups: (ids) => queue.pendingBackups(ids),
      since: run.started_at,
      onProgress: board && ((states, sessions) => board.draw(progressLines(states, sessions))),
    },
    items,
  );
  board?.clear();

  const failed = outcomes.filter((o) => !succeeded(o));
  if (json)
    process.stdout.write(
      `${JSON.stringify({ policy: report.policy, ok: failed.length === 0, items: outcomes, skipped: report.skipped, overLicence: report.overLicence ?? [] }, null, 2)}\n`,
    );
  else {
    process.stdout.write(
      `Policy ${report.policy}: ${outcomes.length - failed.length} of ${outcomes.length} backup(s) succeeded.\n`,
    );
    for (const outcome of outcomes) process.stdout.write(`  ${summaryLine(outcome)}\n`);
  }
  if (failed.length === 0) return 0;
  process.stderr.write(
    `acba: policy ${report.policy}: ${failed.length} backup(s) failed: ${failed.map((f) => f.itemName).join(', ')}; "acba jobs show SESSION_ID" gives each one's tasks and errors.\n`,
  );
  return 1;
}
