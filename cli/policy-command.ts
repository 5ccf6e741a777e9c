/**
 * `acba policy apply FILE`, `acba policy list [--json]` and `acba policy run NAME`:
 * operators keep backup policies as YAML files and apply them here.
 */
import fs from 'node:fs/promises';
import { parseArgs } from 'node:util';
import type { Config } from '../core/config.ts';
import { openDatabase } from '../core/db/database.ts';
import { badInput } from '../core/errors.ts';
import { createLogger } from '../core/log.ts';
import { startJobQueue } from '../engine/job-queue.ts';
import {
  applyPolicies,
  parsePolicyFile,
  policySchedules,
  resolvePolicyItems,
  type PolicySpec,
} from '../engine/policies.ts';
import { nextSlots } from '../engine/schedule.ts';
import { runPolicyNow } from '../engine/scheduler.ts';

export async function policyCommand(config: Config, argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: rest,
    options: { json: { type: 'boolean' } },
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
      const queue = await startJobQueue({ executeSql: handle.executeSql, log });
      try {
        const report = await runPolicyNow({ db: handle.db, queue, log }, positionals[0]!);
        if (values.json) process.stdout.write(`${JSON.stringify(report)}\n`);
        else {
          process.stdout.write(
            `Policy ${report.policy}: ${report.items.length} backup(s) queued${report.expiresAt ? `, kept until ${report.expiresAt}` : ''}.\n`,
          );
          for (const s of report.skipped)
            process.stdout.write(`  skipped ${s.itemId}: protected by policy ${s.policy}\n`);
          for (const itemId of report.overLicence ?? [])
            process.stdout.write(`  skipped ${itemId}: beyond the customer's licensed instances\n`);
        }
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
