/**
 * The monthly usage report a provider invoices from: figures per customer
 * taken from what the engine recorded day by day, to the byte, with days of
 * the months before and after left out; and `acba usage report` printing the
 * same figures as CSV and JSON, with a one-line reason for a bad month.
 */
import fs from 'node:fs/promises';
import { parse as parseCsv } from 'csv-parse/sync';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type DatabaseHandle } from '../core/db/database.ts';
import { setLicence, TB } from '../engine/licences.ts';
import { monthlyUsage } from '../engine/usage-report.ts';
import { recordUsage } from '../engine/usage.ts';
import { runAcba } from './support/cli.ts';
import { seedContoso } from './support/contoso.ts';
import { createServerDatabase, tempDir, type ScratchDatabase } from './support/database.ts';

let dataDir: string;
let server: ScratchDatabase | undefined;
let database: DatabaseHandle;

const at = (iso: string) => new Date(iso);

beforeAll(async () => {
  dataDir = await tempDir('acba-usage-report-');
  server = await createServerDatabase();
  database = await openDatabase({ url: server?.url, dataDir });
  const { db } = database;
  await seedContoso(db);
  await db
    .insertInto('customers')
    .values({ id: 'northwind', name: 'Northwind', tenant_id: 't-nw', subscription_id: 'sub-nw' })
    .execute();
  await setLicence(db, 'contoso', { instances: 20, storageTb: 5, tasks: 4 });

  // The last hour of October and the first of December (UTC) belong to other months.
  await recordUsage(
    db,
    'contoso',
    { protectedInstances: 30, storedBytes: 9 * TB, egressBytes: 5 },
    at('2026-10-31T23:59:59Z'),
  );
  await recordUsage(
    db,
    'contoso',
    { protectedInstances: 12, storedBytes: 1_000_000_007, peakTasks: 2 },
    at('2026-11-01T00:00:00Z'),
  );
  await recordUsage(db, 'contoso', { egressBytes: 123_456_789 }, at('2026-11-01T08:00:00Z'));
  // Two workers record the same day: the day keeps the highest, egress adds up.
  await recordUsage(
    db,
    'contoso',
    { protectedInstances: 14, storedBytes: 2_500_000_011, peakTasks: 4, egressBytes: 1 },
    at('2026-11-15T10:00:00Z'),
  );
  await recordUsage(
    db,
    'contoso',
    { protectedInstances: 13, storedBytes: 2_400_000_000, peakTasks: 3, egressBytes: 2 },
    at('2026-11-15T11:00:00Z'),
  );
  await recordUsage(
    db,
    'contoso',
    {
      protectedInstances: 13,
      storedBytes: 2_450_000_000,
      peakTasks: 1,
      egressBytes: 10_000_000_000,
    },
    at('2026-11-30T23:59:59Z'),
  );
  await recordUsage(
    db,
    'contoso',
    { protectedInstances: 40, storedBytes: 8 * TB, peakTasks: 9, egressBytes: 7 },
    at('2026-12-01T00:00:00Z'),
  );
  await recordUsage(
    db,
    'northwind',
    { protectedInstances: 1, storedBytes: 42, egressBytes: 0 },
    at('2026-10-02T00:00:00Z'),
  );
}, 60_000);

afterAll(async () => {
  await database?.close().catch(() => undefined);
  await server?.drop();
  await fs.rm(dataDir, { recursive: true, force: true });
});

const november = {
  month: '2026-11',
  customerId: 'contoso',
  customerName: 'Contoso',
  protectedInstances: 14,
  licensedInstances: 20,
  usedBytes: 2_500_000_011,
  allocatedBytes: 5 * TB,
  peakTasks: 4,
  licensedTasks: 4,
  egressBytes: 123_456_789 + 1 + 2 + 10_000_000_000,
  daysRecorded: 3,
};

describe('the monthly usage report', () => {
  it("counts each customer's month as recorded: the busiest day's instances, storage and tasks, and every egress byte", async () => {
    const report = await monthlyUsage(database.db, { month: '2026-11' });

    expect(report).toEqual([
      november,
      {
        month: '2026-11',
        customerId: 'northwind',
        customerName: 'Northwind',
        protectedInstances: 0,
        licensedInstances: null,
        usedBytes: 0,
        allocatedBytes: null,
        peakTasks: 0,
        licensedTasks: null,
        egressBytes: 0,
        daysRecorded: 0,
      },
    ]);
  });

  it('names a bad month or an unknown customer and what to give instead', async () => {
    await expect(monthlyUsage(database.db, { month: '2026-13' })).rejects.toThrow(
      '"2026-13" is not a month; give it as YYYY-MM, e.g. 2026-11.',
    );
    await expect(monthlyUsage(database.db, { month: 'november' })).rejects.toThrow('YYYY-MM');
    await expect(
      monthlyUsage(database.db, { month: '2026-11', customerId: 'fabrikam' }),
    ).rejects.toThrow('There is no customer "fabrikam"');
  });
});

describe('acba usage report', () => {
  const acba = (args: string[]) =>
    runAcba(args, { DATA_DIR: dataDir, ...(server ? { DATABASE_URL: server.url } : {}) });

  beforeAll(async () => {
    // The embedded database belongs to one process at a time: hand it to the command.
    if (!server) await database.close();
  });

  it('prints the month as CSV with exact byte counts, and as JSON', async () => {
    const csv = await acba(['usage', 'report', '--month', '2026-11', '--format', 'csv']);
    expect(csv.stderr).toBe('');
    expect(csv.code).toBe(0);
    const rows = parseCsv(csv.stdout, { columns: true }) as Record<string, string>[];
    expect(rows.map((r) => r.customerId)).toEqual(['contoso', 'northwind']);
    expect(rows[0]).toEqual(
      Object.fromEntries(Object.entries(november).map(([k, v]) => [k, String(v)])),
    );
    expect(rows[1]).toMatchObject({ licensedInstances: '', egressBytes: '0' });

    const json = await acba([
      'usage',
      'report',
      '--month',
      '2026-11',
      '--customer',
      'contoso',
      '--json',
    ]);
    expect(json.code).toBe(0);
    expect(JSON.parse(json.stdout)).toEqual({ customers: [november] });
  }, 60_000);

  it('refuses a bad month or format in one line, naming the form to use', async () => {
    const month = await acba(['usage', 'report', '--month', '11/2026']);
    expect(month.code).toBe(1);
    expect(month.stderr).toBe(
      'acba: "11/2026" is not a month; give it as YYYY-MM, e.g. 2026-11.\n',
    );

    const format = await acba(['usage', 'report', '--month', '2026-11', '--format', 'xlsx']);
    expect(format.code).toBe(1);
    expect(format.stderr).toBe('acba: unknown format "xlsx"; use --format csv, json or text.\n');

    const missing = await acba(['usage', 'report']);
    expect(missing.stderr).toBe('acba: give the month: acba usage report --month YYYY-MM\n');
  }, 60_000);
});
