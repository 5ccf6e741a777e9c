/**
 * The operator's command line without the portal: customers, job sessions
 * and restore points listed as text and as JSON, help for each command, a
 * bad value refused in one line that names it, and `policy run --wait`
 * following a policy's backups on a real worker to their end.
 *
 * PGlite is one process's database, so the seeding handle closes before any
 * `acba` child opens it; the wait against a running worker needs a
 * PostgreSQL server that both processes share.
 */
import fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../core/db/database.ts';
import { badInput } from '../core/errors.ts';
import { createLogger } from '../core/log.ts';
import { startJobQueue } from '../engine/job-queue.ts';
import { JobSession } from '../engine/job-sessions.ts';
import { setLicence } from '../engine/licences.ts';
import { applyPolicies, parsePolicyFile } from '../engine/policies.ts';
import { startWorkerLease } from '../engine/worker-leases.ts';
import { runAcba, type CliResult } from './support/cli.ts';
import { seedContoso } from './support/contoso.ts';
import { createServerDatabase, tempDir, type ScratchDatabase } from './support/database.ts';

let dataDir: string;
let server: ScratchDatabase | undefined;

function acba(args: string[]): Promise<CliResult> {
  return runAcba(args, { DATA_DIR: dataDir, ...(server ? { DATABASE_URL: server.url } : {}) });
}

const GiB = 2 ** 30;
const started = new Date('2026-12-02T02:00:00Z');
const later = (seconds: number) => new Date(started.getTime() + seconds * 1000);

beforeAll(async () => {
  dataDir = await tempDir('acba-operator-cli-');
  server = await createServerDatabase();
  const handle = await openDatabase({ url: server?.url, dataDir });
  const { db } = handle;
  await seedContoso(db);
  await db
    .insertInto('customers')
    .values({
      id: 'northwind',
      name: 'Northwind',
      tenant_id: 'tenant-northwind',
      subscription_id: 'sub-northwind',
      service_model: 'unmanaged',
    })
    .execute();
  await db
    .insertInto('protected_items')
    .values([
      {
        id: 'item-app-01',
        customer_id: 'contoso',
        kind: 'vm',
        name: 'app-01',
        resource_id:
          '/subscriptions/sub-contoso/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/app-01',
      },
      {
        id: 'item-nw-01',
        customer_id: 'northwind',
        kind: 'vm',
        name: 'nw-01',
        resource_id:
          '/subscriptions/sub-northwind/resourceGroups/rg-nw/providers/Microsoft.Compute/virtualMachines/nw-01',
      },
    ])
    .execute();
  await db
    .insertInto('restore_points')
    .values(
      (['snapshot', 'manual_snapshot'] as const).map((type, i) => ({
        id: `rp-nw-${i}`,
        customer_id: 'northwind',
        item_id: 'item-nw-01',
        created_at: later(3600 * (i + 1)),
        expires_at: '2027-06-30T00:00:00Z',
        manifest_path: '',
        disks: JSON.stringify([
          { name: 'nw-01-os', role: 'os', sizeBytes: 8 * GiB, storedBytes: 0 },
        ]),
        size_bytes: 8 * GiB,
        stored_bytes: 0,
        type,
      })),
    )
    .execute();
  await setLicence(db, 'contoso', { instances: 5, storageTb: 2, tasks: 2 });

  await db
    .insertInto('job_sessions')
    .values([
      {
        id: 'job-web',
        customer_id: 'contoso',
        item_id: 'item-web-01',
        item_name: 'web-01',
        trigger: 'schedule',
        policy_name: 'daily-30',
        status: 'running',
        started_at: started,
        bytes_read: 4 * GiB,
      },
      {
        id: 'job-nw',
        customer_id: 'northwind',
        item_id: 'item-nw-01',
        item_name: 'nw-01',
        trigger: 'operator',
        status: 'failed',
        started_at: later(-60),
        finished_at: later(-30),
        error_kind: 'unavailable',
        error: 'Azure did not answer creating the snapshot of nw-01-os',
      },
    ])
    .execute();
  await db
    .insertInto('job_tasks')
    .values([
      {
        id: 'task-web-os',
        session_id: 'job-web',
        customer_id: 'contoso',
        subject_kind: 'disk',
        subject_name: 'web-01-os',
        status: 'succeeded',
        created_at: started,
        attempts: 2,
        total_bytes: 4 * GiB,
        bytes_done: 4 * GiB,
        bytes_stored: GiB,
        started_at: started,
        finished_at: later(40),
      },
      {
        id: 'task-web-data',
        session_id: 'job-web',
        customer_id: 'contoso',
        subject_kind: 'disk',
        subject_name: 'web-01-data',
        status: 'failed',
        created_at: later(40),
        attempts: 3,
        bytes_done: GiB,
        started_at: later(40),
        finished_at: later(50),
        error: 'Azure throttled reading web-01-data',
      },
    ])
    .execute();
  await applyPolicies(
    db,
    parsePolicyFile(
      `
name: contoso-now
customer: contoso
type: backups
timeZone: UTC
items: { vms: [web-01, app-01] }
schedules:
  daily: { times: ["02:00"], retentionYears: 1 }
`,
      'contoso.yaml',
    ),
  );
  await handle.close();
}, 180_000);

afterAll(async () => {
  await server?.drop();
  if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
});

/** A failure as the operator sees it: exit code 1 and one line on stderr naming `value`. */
function expectRefusal(result: CliResult, value: string) {
  expect(result.code).toBe(1);
  expect(result.stdout).toBe('');
  expect(result.stderr.trim().split('\n')).toHaveLength(1);
  expect(result.stderr).toContain(value);
}

describe('acba customers list', () => {
  it('prints each customer on one line with tenant, subscription, model, items, bytes and licence', async () => {
    const result = await acba(['customers', 'list']);

    expect(result.code).toBe(0);
    expect(result.stdout.trim().split('\n')).toEqual([
      'contoso  Contoso  tenant tenant-contoso  subscription sub-contoso  managed  2 item(s)  3.0 GiB stored  licence 5 instances, 2 TB, 2 tasks',
      'northwind  Northwind  tenant tenant-northwind  subscription sub-northwind  unmanaged  1 item(s)  0 bytes stored  no licence (unlimited)',
    ]);
  });

  it('gives an array with exact byte counts in JSON', async () => {
    const result = await acba(['customers', 'list', '--json']);

    expect(JSON.parse(result.stdout)).toEqual([
      {
        id: 'contoso',
        name: 'Contoso',
        tenantId: 'tenant-contoso',
        subscriptionId: 'sub-contoso',
        serviceModel: 'managed',
        protectedItems: 2,
        storedBytes: 3 * GiB,
        licence: { licensed: true, instances: 5, storageTb: 2, tasks: 2 },
      },
      {
        id: 'northwind',
        name: 'Northwind',
        tenantId: 'tenant-northwind',
        subscriptionId: 'sub-northwind',
        serviceModel: 'unmanaged',
        protectedItems: 1,
        storedBytes: 0,
        licence: { licensed: false, instances: null, storageTb: null, tasks: null },
      },
    ]);
  });
});

describe('acba jobs', () => {
  it('lists sessions newest first, filtered by customer and status', async () => {
    const all = await acba(['jobs', 'list']);
    expect(all.code).toBe(0);
    expect(all.stdout.trim().split('\n')).toEqual([
      'job-web  2026-12-02T02:00:00.000Z  contoso  web-01  backup  running  4.0 GiB read  0 bytes stored  policy daily-30',
      'job-nw  2026-12-02T01:59:00.000Z  northwind  nw-01  backup  failed  0 bytes read  0 bytes stored  error: Azure did not answer creating the snapshot of nw-01-os',
    ]);

    const failed = await acba(['jobs', 'list', '--status', 'failed', '--json']);
    expect((JSON.parse(failed.stdout) as { id: string }[]).map((j) => j.id)).toEqual(['job-nw']);
    const contoso = await acba(['jobs', 'list', '--customer', 'contoso', '--limit', '5', '--json']);
    expect((JSON.parse(contoso.stdout) as { id: string }[]).map((j) => j.id)).toEqual(['job-web']);
    const none = await acba(['jobs', 'list', '--customer', 'northwind', '--status', 'running']);
    expect(none.stdout).toBe('No job sessions match.\n');
  });

  it('shows one session with each task: status, attempts, bytes, throughput and error', async () => {
    const text = await acba(['jobs', 'show', 'job-web']);
    expect(text.code).toBe(0);
    expect(text.stdout).toContain(
      'Job session job-web: backup of web-01 (item item-web-01) for Contoso (contoso)',
    );
    // 4 GiB in 40 s is 102 MiB/s; 1 GiB in 10 s is 102 MiB/s too.
    expect(text.stdout).toContain(
      '    disk web-01-os  succeeded  attempt 2  4.0 GiB of 4.0 GiB done  1.0 GiB stored  102 MiB/s\n',
    );
    expect(text.stdout).toContain(
      '    disk web-01-data  failed  attempt 3  1.0 GiB done  0 bytes stored  102 MiB/s  error: Azure throttled reading web-01-data',
    );

    const json = await acba(['jobs', 'show', 'job-web', '--json']);
    expect(JSON.parse(json.stdout)).toMatchObject({
      id: 'job-web',
      status: 'running',
      tasks: [
        {
          name: 'web-01-os',
          status: 'succeeded',
          attempts: 2,
          bytesDone: 4 * GiB,
          bytesStored: GiB,
        },
        {
          name: 'web-01-data',
          status: 'failed',
          attempts: 3,
          error: 'Azure throttled reading web-01-data',
        },
      ],
    });
  });

  it('refuses an unknown status, session, customer or limit in one line naming it', async () => {
    expectRefusal(await acba(['jobs', 'list', '--status', 'exploded']), '"exploded"');
    expectRefusal(await acba(['jobs', 'show', 'job-missing']), '"job-missing"');
    expectRefusal(await acba(['jobs', 'list', '--customer', 'fabrikam']), '"fabrikam"');
    expectRefusal(await acba(['jobs', 'list', '--limit', 'many']), '"many"');
  });
});

describe('acba restore-points list', () => {
  it('lists every restore point newest first with its type, dates, size and stored bytes', async () => {
    const result = await acba(['restore-points', 'list']);

    expect(result.code).toBe(0);
    expect(result.stdout.trim().split('\n')).toEqual([
      'rp-nw-1  nw-01  manual  created 2026-12-02T04:00:00.000Z  expires 2027-06-30T00:00:00.000Z  8.0 GiB  0 bytes stored',
      'rp-nw-0  nw-01  snapshot  created 2026-12-02T03:00:00.000Z  expires 2027-06-30T00:00:00.000Z  8.0 GiB  0 bytes stored',
      'rp-web-01-2  web-01  backup  created 2026-12-02T02:00:00.000Z  expires 2027-12-31T00:00:00.000Z  32 GiB  1.0 GiB stored',
      'rp-web-01-1  web-01  backup  created 2026-12-01T02:00:00.000Z  expires 2027-12-31T00:00:00.000Z  32 GiB  1.0 GiB stored',
      'rp-web-01-0  web-01  backup  created 2026-11-30T02:00:00.000Z  expires 2027-12-31T00:00:00.000Z  32 GiB  1.0 GiB stored',
    ]);
  });

  it('filters by customer and by item name or id, in JSON', async () => {
    const byName = await acba(['restore-points', 'list', '--item', 'WEB-01', '--json']);
    const points = JSON.parse(byName.stdout) as Record<string, unknown>[];
    expect(points.map((p) => p.id)).toEqual(['rp-web-01-2', 'rp-web-01-1', 'rp-web-01-0']);
    expect(points[0]).toEqual({
      id: 'rp-web-01-2',
      customerId: 'contoso',
      itemId: 'item-web-01',
      itemName: 'web-01',
      type: 'backup',
      createdAt: '2026-12-02T02:00:00.000Z',
      expiresAt: '2027-12-31T00:00:00.000Z',
      sizeBytes: 32 * GiB,
      storedBytes: GiB,
      policyName: 'daily-30',
    });

    const byCustomer = await acba(['restore-points', 'list', '--customer', 'northwind', '--json']);
    expect((JSON.parse(byCustomer.stdout) as { type: string }[]).map((p) => p.type)).toEqual([
      'manual',
      'snapshot',
    ]);
    const empty = await acba(['restore-points', 'list', '--item', 'item-app-01']);
    expect(empty.stdout).toBe('No restore points match.\n');
  });

  it('refuses an item the customer does not have, naming it', async () => {
    expectRefusal(
      await acba(['restore-points', 'list', '--customer', 'northwind', '--item', 'web-01']),
      'web-01',
    );
  });
});

describe('help', () => {
  it('answers --help for each command with exit code 0', async () => {
    for (const command of [
      ['customers', '--help'],
      ['jobs', 'list', '--help'],
      ['restore-points', '--help'],
      ['policy', 'run', '--help'],
      ['audit', '--help'],
      ['serve', '--help'],
    ]) {
      const result = await acba(command);
      expect(result.code, command.join(' ')).toBe(0);
      expect(result.stdout, command.join(' ')).toMatch(/^Usage:\n {2}acba /);
    }
    const policy = await acba(['policy', '--help']);
    expect(policy.stdout).toContain('must be running against the same database');

    const main = await acba(['--help']);
    for (const line of ['customers list', 'jobs show SESSION_ID', 'restore-points list', '--wait'])
      expect(main.stdout).toContain(line);
  });
});

describe('acba policy run --wait', () => {
  it('refuses an unknown policy, naming it', async () => {
    expectRefusal(await acba(['policy', 'run', 'no-such-policy', '--wait']), 'no-such-policy');
  });

  it('refuses to wait when no worker runs against the database, before queueing anything', async () => {
    const result = await acba(['policy', 'run', 'contoso-now', '--wait']);
    expectRefusal(result, 'contoso-now');
    expect(result.stderr).toContain('no worker is running');
  });

  it.skipIf(!process.env.ACBA_TEST_DATABASE_URL)(
    'follows the backups on a running worker to their end and names the failed item',
    async () => {
      const handle = await openDatabase({ url: server!.url, dataDir });
      const log = createLogger({ level: 'silent' });
      const lease = await startWorkerLease(handle.db, { log, role: 'worker' });
      const queue = await startJobQueue({
        executeSql: handle.executeSql,
        log,
        pollingIntervalSeconds: 0.5,
      });
      // A stand-in for the engine's backup: one disk each; app-01's disk cannot be read.
      await queue.work(
        {
          fileRestore: async () => {},
          backup: async (job) => {
            const item = await handle.db
              .selectFrom('protected_items')
              .selectAll()
              .where('id', '=', job.itemId)
              .executeTakeFirstOrThrow();
            const session = await JobSession.open(handle.db, log, {
              customerId: item.customer_id,
              itemId: item.id,
              itemName: item.name,
              resource: `vm/${item.customer_id}/${item.name}`,
              trigger: job.trigger,
              policyName: job.policyName,
            });
            try {
              await session.runTask(
                { kind: 'disk', name: `${item.name}-os`, totalBytes: GiB },
                async (task) => {
                  task.progress(GiB / 2);
                  await new Promise((r) => setTimeout(r, 1500));
                  if (item.name === 'app-01')
                    throw badInput('disk app-01-os has no readable pages');
                  return { readBytes: GiB, storedBytes: GiB / 4 };
                },
              );
              await session.succeed(`rp-${item.name}-now`);
            } catch (error) {
              await session.fail(error);
              throw error;
            }
          },
        },
        lease,
      );
      try {
        const result = await acba(['policy', 'run', 'contoso-now', '--wait', '--json']);

        expect(result.code).toBe(1);
        // Piped, so no progress: only the one-line reason.
        expect(result.stderr).toBe(
          'acba: policy contoso-now: 1 backup(s) failed: app-01; "acba jobs show SESSION_ID" gives each one\'s tasks and errors.\n',
        );
        const summary = JSON.parse(result.stdout);
        expect(summary).toMatchObject({
          policy: 'contoso-now',
          ok: false,
          items: [
            { itemName: 'app-01', status: 'failed', error: 'disk app-01-os has no readable pages' },
            {
              itemName: 'web-01',
              status: 'succeeded',
              restorePointId: 'rp-web-01-now',
              bytesRead: GiB,
              bytesStored: GiB / 4,
            },
          ],
        });

        const shown = await acba(['jobs', 'show', summary.items[1].sessionId]);
        expect(shown.stdout).toContain('disk web-01-os  succeeded  attempt 1');
      } finally {
        await queue.stop();
        await lease.stop();
        await handle.close();
      }
    },
    120_000,
  );
});
