/**
 * `acba usage report --month YYYY-MM [--customer ID] [--format csv|json|text]`:
 * the monthly figures a provider invoices from (../engine/usage-report.ts).
 * CSV and JSON are for billing systems; the default on a terminal is a table.
 */
import { parseArgs } from 'node:util';
import type { Config } from '../core/config.ts';
import { openDatabase } from '../core/db/database.ts';
import { badInput } from '../core/errors.ts';
import { formatBytes } from '../core/format.ts';
import { monthlyUsage, usageCsv, type MonthlyUsage } from '../engine/usage-report.ts';

export const usageUsage = `Usage:
  acba usage report --month YYYY-MM [--customer ID] [--format csv|json|text]
      Each customer's usage in the month: protected instances (the most on any day), used
      against allocated storage, peak concurrent tasks against the licence, and the bytes
      restores and exports delivered. CSV and JSON give exact byte counts.`;

const FORMATS = ['csv', 'json', 'text'] as const;
type Format = (typeof FORMATS)[number];

export async function usageCommand(config: Config, argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    process.stdout.write(`${usageUsage}\n`);
    return sub === undefined ? 1 : 0;
  }
  if (sub !== 'report')
    throw badInput(`unknown usage command "${sub}"; use "acba usage report --month YYYY-MM".`);
  const { values } = parseArgs({
    args: rest,
    options: {
      month: { type: 'string' },
      customer: { type: 'string' },
      format: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    process.stdout.write(`${usageUsage}\n`);
    return 0;
  }
  if (!values.month) throw badInput('give the month: acba usage report --month YYYY-MM');
  const format = formatOf(values.json ? 'json' : values.format);

  const handle = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir });
  try {
    const report = await monthlyUsage(handle.db, {
      month: values.month,
      customerId: values.customer,
    });
    process.stdout.write(render(report, format));
    return 0;
  } finally {
    await handle.close();
  }
}

function formatOf(value: string | undefined): Format {
  if (value === undefined) return process.stdout.isTTY ? 'text' : 'csv';
  if ((FORMATS as readonly string[]).includes(value)) return value as Format;
  throw badInput(`unknown format "${value.slice(0, 20)}"; use --format csv, json or text.`);
}

function render(report: MonthlyUsage[], format: Format): string {
  if (format === 'json') return `${JSON.stringify({ customers: report }, null, 2)}\n`;
  if (format === 'csv') return usageCsv(report);
  if (report.length === 0) return 'No customers yet.\n';
  return report.map(describe).join('\n');
}

function describe(row: MonthlyUsage): string {
  const limit = (value: number | null, shown = String(value)) =>
    value === null ? 'no limit' : shown;
  return [
    `${row.customerName} (${row.customerId}), ${row.month}, ${row.daysRecorded} days recorded`,
    `  protected instances  ${row.protectedInstances} of ${limit(row.licensedInstances)}`,
    `  storage              ${formatBytes(row.usedBytes)} of ${limit(row.allocatedBytes, formatBytes(row.allocatedBytes ?? 0))}`,
    `  peak tasks           ${row.peakTasks} of ${limit(row.licensedTasks)}`,
    `  egress               ${formatBytes(row.egressBytes)}`,
    '',
  ].join('\n');
}
