/**
 * `acba jobs list [--customer ID] [--status S] [--limit N] [--json]` and
 * `acba jobs show SESSION_ID [--json]`: the job sessions operators watch in
 * the portal, from a shell (../engine/job-catalog.ts listJobs).
 */
import { parseArgs } from 'node:util';
import type { Config } from '../core/config.ts';
import { openDatabase } from '../core/db/database.ts';
import type { JobStatus } from '../core/db/schema.ts';
import { badInput, notFound } from '../core/errors.ts';
import { formatBytes } from '../core/format.ts';
import {
  JOB_STATUSES,
  listJobs,
  type JobListing,
  type TaskListing,
} from '../engine/job-catalog.ts';
import { printRows, printUsage, requireCustomer, wholeNumberOption } from './command-line.ts';

export const jobsUsage = `Usage:
  acba jobs list [--customer ID] [--status running|succeeded|warning|failed] [--limit N] [--json]
      Job sessions (backups and restores), newest first, 50 unless --limit says otherwise: id,
      start, customer, item, kind, status, bytes read and stored, and the error of a failed one.
  acba jobs show SESSION_ID [--json]
      One session with its tasks (a disk or a database each): status, attempts, bytes done and
      stored, throughput, and the last attempt's error.`;

export async function jobsCommand(config: Config, argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined) return printUsage(jobsUsage, false);
  if (sub !== 'list' && sub !== 'show')
    throw badInput(
      `unknown jobs command "${sub}"; use "acba jobs list [--status S]" or "acba jobs show SESSION_ID".`,
    );
  const { values, positionals } = parseArgs({
    args: rest,
    options: {
      customer: { type: 'string' },
      status: { type: 'string' },
      limit: { type: 'string' },
      json: { type: 'boolean' },
    },
    allowPositionals: sub === 'show',
  });
  if (sub === 'show' && positionals.length !== 1)
    throw badInput('name one job session: acba jobs show SESSION_ID');
  const filter = {
    customerId: values.customer,
    status: statusOf(values.status),
    limit: wholeNumberOption('limit', values.limit, 1) ?? 50,
  };

  const handle = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir });
  try {
    if (sub === 'show') {
      const [job] = await listJobs(handle.db, { sessionId: positionals[0]! });
      if (!job)
        throw notFound(
          `There is no job session "${positionals[0]!.slice(0, 60)}"; "acba jobs list" shows the session ids.`,
        );
      if (values.json) process.stdout.write(`${JSON.stringify(job, null, 2)}\n`);
      else process.stdout.write(`${describeJob(job)}\n`);
      return 0;
    }

    await requireCustomer(handle.db, filter.customerId);
    const jobs = await listJobs(handle.db, filter);
    printRows(jobs, values.json === true, jobLine, 'No job sessions match.');
    return 0;
  } finally {
    await handle.close();
  }
}

function statusOf(raw: string | undefined): JobStatus | undefined {
  if (raw === undefined || (JOB_STATUSES as readonly string[]).includes(raw))
    return raw as JobStatus | undefined;
  throw badInput(`unknown status "${raw.slice(0, 40)}"; use --status ${JOB_STATUSES.join(', ')}.`);
}

/** A session on one line, as `jobs list` prints it. */
export function jobLine(job: JobListing): string {
  const policy = job.policyName ? `  policy ${job.policyName}` : '';
  const error = job.error ? `  error: ${job.error}` : '';
  return `${job.id}  ${job.startedAt.toISOString()}  ${job.customerId}  ${job.itemName}  ${job.kind}  ${job.status}  ${formatBytes(job.bytesRead)} read  ${formatBytes(job.bytesStored)} stored${policy}${error}`;
}

function describeJob(job: JobListing): string {
  const lines = [
    `Job session ${job.id}: ${job.kind} of ${job.itemName} (item ${job.itemId}) for ${job.customerName} (${job.customerId})`,
    `  status      ${job.status}${job.errorKind ? ` (${job.errorKind})` : ''}`,
    `  trigger     ${job.trigger}${job.policyName ? `, policy ${job.policyName}` : ''}`,
    `  started     ${job.startedAt.toISOString()}`,
    `  finished    ${job.finishedAt?.toISOString() ?? 'not yet'}`,
    `  bytes       ${formatBytes(job.bytesRead)} read, ${formatBytes(job.bytesStored)} stored`,
  ];
  if (job.restorePointId) lines.push(`  restore point ${job.restorePointId}`);
  for (const warning of job.warnings) lines.push(`  warning: ${warning}`);
  if (job.error) lines.push(`  error: ${job.error}`);
  lines.push(job.tasks.length === 0 ? '  no tasks yet' : `  tasks (${job.tasks.length}):`);
  for (const task of job.tasks) lines.push(`    ${taskLine(task)}`);
  return lines.join('\n');
}

/** A task on one line: subject, status, attempts, bytes, throughput and error. */
export function taskLine(task: TaskListing): string {
  const total = task.totalBytes === null ? '' : ` of ${formatBytes(task.totalBytes)}`;
  const speed = task.throughput === null ? '' : `  ${formatBytes(task.throughput)}/s`;
  const error = task.error ? `  error: ${task.error}` : '';
  return `${task.kind} ${task.name}  ${task.status}  attempt ${task.attempts}  ${formatBytes(task.bytesDone)}${total} done  ${formatBytes(task.bytesStored)} stored${speed}${error}`;
}
