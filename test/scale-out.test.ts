// Scale-out with real processes: one `acba web` (HTTP, scheduler and the
// sandbox) and three `acba worker` processes share one PostgreSQL database
// and one repository. Three customers licensed for 1, 2 and 3 concurrent
// tasks get thirty backups of small VMs; one worker is killed with SIGKILL
// in the middle of a backup task. Every backup must end with exactly one
// restore point, no customer may ever run more tasks at once than licensed,
// and the repository check must find every restore point's blocks.
// Runs only against a PostgreSQL server (ACBA_TEST_DATABASE_URL): the
// embedded database cannot be shared between processes.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type DatabaseHandle } from '../core/db/database.ts';
import { silentLogger } from '../core/log.ts';
import { BACKUP_QUEUE, startJobQueue, type PgBossJobQueue } from '../engine/job-queue.ts';
import { setLicence } from '../engine/licences.ts';
import { WORKER_STOPPED } from '../engine/worker-reclaim.ts';
import { addVm } from '../sandbox/added-vms.ts';
import { azuriteConnectionString } from '../sandbox/azurite.ts';
import { ensureSandboxCa } from '../sandbox/index.ts';
import { buildSeed, stableGuid, vmResourceId } from '../sandbox/seed.ts';
import {
  freePort,
  startAcba,
  stopAcba,
  tail,
  waitHealthy,
  type AcbaProcess,
} from './support/acba-processes.ts';
import { createScratchDatabase, tempDir, type ScratchDatabase } from './support/database.ts';
import { peakOverlap } from './support/task-intervals.ts';

const base = process.env.ACBA_TEST_DATABASE_URL;
const run = promisify(execFile);

/** Customers, their licensed concurrent tasks and how many VMs (one backup each) they get. */
const CUSTOMERS = [
  { id: 'scale-one', tasks: 1, vms: 6 },
  { id: 'scale-two', tasks: 2, vms: 10 },
  { id: 'scale-three', tasks: 3, vms: 14 },
];
const DISKS_PER_VM = 2;
const DISK_BYTES = 1024 * 1024;

let scratch: ScratchDatabase;
let handle: DatabaseHandle;
let queue: PgBossJobQueue;
let root: string;
let env: Record<string, string>;
const processes: AcbaProcess[] = [];
const items: { id: string; customerId: string; name: string }[] = [];

async function until<T>(
  what: string,
  probe: () => Promise<T | undefined>,
  timeoutMs: number,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await probe();
    if (value !== undefined) return value;
    if (Date.now() > end)
      throw new Error(
        `${what} did not happen in time.\n${processes.map((p) => `--- ${p.name}\n${tail(p)}`).join('\n')}`,
      );
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** Registers the customers with their licences, and one protected VM with small disks per backup. */
async function seedCustomersAndVms(webDataDir: string): Promise<void> {
  const { seed } = buildSeed();
  const subscription = seed.customers[0]!;
  const imagesDir = path.join(root, 'disk-files');
  await fs.mkdir(imagesDir);
  for (const customer of CUSTOMERS) {
    await handle.db
      .insertInto('customers')
      .values({
        id: customer.id,
        name: customer.id,
        tenant_id: stableGuid(`tenant:${customer.id}`),
        subscription_id: subscription.subscriptionId,
      })
      .execute();
    await setLicence(handle.db, customer.id, { tasks: customer.tasks });

    for (let n = 1; n <= customer.vms; n++) {
      const name = `${customer.id}-vm${String(n).padStart(2, '0')}`;
      const disks: string[] = [];
      for (let d = 0; d < DISKS_PER_VM; d++) {
        const file = path.join(imagesDir, `${name}-${d}.raw`);
        await fs.writeFile(file, randomBytes(DISK_BYTES));
        disks.push(file);
      }
      await addVm(webDataDir, { name, disks });
      const id = `item-${name}`;
      await handle.db
        .insertInto('protected_items')
        .values({
          id,
          customer_id: customer.id,
          kind: 'vm',
          name,
          resource_id: vmResourceId(subscription.subscriptionId, subscription.resourceGroup, name),
        })
        .execute();
      items.push({ id, customerId: customer.id, name });
    }
  }
}

/** Queues the backups in runs of three per customer, so workers often race for one customer's slots. */
async function queueBackups(): Promise<void> {
  const byCustomer = CUSTOMERS.map((c) => items.filter((i) => i.customerId === c.id));
  while (byCustomer.some((list) => list.length > 0)) {
    for (const list of byCustomer)
      for (const item of list.splice(0, 3))
        await queue.enqueueBackup({ itemId: item.id, trigger: 'operator' });
  }
}

describe.skipIf(!base)(
  'scale-out across processes (runs only with ACBA_TEST_DATABASE_URL: worker processes need a shared PostgreSQL server)',
  () => {
    beforeAll(async () => {
      scratch = await createScratchDatabase(base!, 'acba_scale');
      root = await tempDir('acba-scale-');
      const webDataDir = path.join(root, 'web');
      // The sandbox's disk images, built once for all tests, and a CA this test's processes trust from the start.
      await fs.cp(path.resolve('test/.cache/images'), path.join(webDataDir, 'sandbox', 'images'), {
        recursive: true,
      });
      const { caCertPath } = ensureSandboxCa(path.join(webDataDir, 'sandbox', 'tls'));
      const [webPort, armPort, blobPort] = [await freePort(), await freePort(), await freePort()];
      env = {
        DATABASE_URL: scratch.url,
        LOG_LEVEL: 'warn',
        NODE_EXTRA_CA_CERTS: caCertPath,
        ACBA_SIGNING_KEY: randomBytes(32).toString('base64'),
        ACBA_REPOSITORY_KEK: randomBytes(32).toString('base64'),
        ACBA_BACKUP_ON_START: '0',
        ACBA_SANDBOX_ARM_PORT: String(armPort),
        ACBA_SANDBOX_BLOB_PORT: String(blobPort),
        ACBA_WORKER_LEASE_SECONDS: '4',
        ACBA_JOB_RETRY_DELAY_SECONDS: '1',
        ACBA_AZURE_POLL_INTERVAL_MS: '100',
        ACBA_PUBLIC_URL: `http://localhost:${webPort}`,
      };

      const web = startAcba(
        'web',
        ['web'],
        { ...env, PORT: String(webPort), DATA_DIR: webDataDir },
        root,
      );
      processes.push(web);
      await waitHealthy(web, `http://localhost:${webPort}`);

      handle = await openDatabase({ url: scratch.url, dataDir: root });
      queue = await startJobQueue({
        executeSql: handle.executeSql,
        log: silentLogger,
        retry: { limit: 2, delaySeconds: 1 },
      });
      await seedCustomersAndVms(webDataDir);

      const workerEnv = {
        ...env,
        ACBA_SANDBOX_URL: `https://localhost:${armPort}`,
        ACBA_SANDBOX_CA_FILE: caCertPath,
      };
      const workers = [];
      for (const n of [1, 2, 3]) {
        const port = await freePort();
        const dataDir = path.join(root, `worker-${n}`);
        const worker = startAcba(
          `worker-${n}`,
          ['worker'],
          { ...workerEnv, PORT: String(port), DATA_DIR: dataDir },
          root,
        );
        processes.push(worker);
        workers.push(waitHealthy(worker, `http://localhost:${port}`));
      }
      await Promise.all(workers);
    }, 180_000);

    afterAll(async () => {
      await queue?.stop();
      await Promise.all(processes.map((p) => stopAcba(p)));
      await handle?.close();
      await scratch?.drop();
      if (root) await fs.rm(root, { recursive: true, force: true });
    }, 60_000);

    it('runs every backup once within each licence, through a worker killed mid-task', async () => {
      const since = new Date(Date.now() - 1000);
      await queueBackups();

      // Kill a worker while one of its tasks is reading a disk, once the run is well under way.
      await until(
        'a third of the backups',
        async () => ((await succeededItems()) >= 10 ? true : undefined),
        120_000,
      );
      const victim = await until(
        'a running task of a worker process',
        async () => {
          const row = await handle.db
            .selectFrom('job_tasks')
            .innerJoin('job_sessions', 'job_sessions.id', 'job_tasks.session_id')
            .innerJoin('workers', 'workers.id', 'job_sessions.worker_id')
            .select([
              'workers.pid',
              'job_sessions.id as sessionId',
              'job_sessions.item_id as itemId',
            ])
            .where('job_tasks.status', '=', 'running')
            .where('workers.role', '=', 'worker')
            .executeTakeFirst();
          return row && processes.find((p) => p.pid === row.pid) ? row : undefined;
        },
        30_000,
      );
      const killed = processes.find((p) => p.pid === victim.pid)!;
      killed.child.kill('SIGKILL');
      await killed.exited;

      await until(
        'every backup to finish',
        async () => ((await succeededItems()) === items.length ? true : undefined),
        150_000,
      );

      // Exactly one restore point per backup, and one succeeded session each.
      const points = await handle.db
        .selectFrom('restore_points')
        .select(['item_id'])
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .groupBy('item_id')
        .execute();
      expect(points.length).toBe(items.length);
      expect(points.every((p) => Number(p.n) === 1)).toBe(true);
      const sessions = await handle.db.selectFrom('job_sessions').selectAll().execute();
      for (const item of items) {
        const succeeded = sessions.filter((s) => s.item_id === item.id && s.status === 'succeeded');
        expect(succeeded, item.name).toHaveLength(1);
      }

      // The killed worker's session ended as stopped, and its backup ran again on another worker.
      const stopped = sessions.find((s) => s.id === victim.sessionId)!;
      expect(stopped).toMatchObject({ status: 'failed', error: WORKER_STOPPED });
      const rerun = sessions.find((s) => s.item_id === victim.itemId && s.status === 'succeeded')!;
      expect(rerun.worker_id).not.toBe(stopped.worker_id);

      // The queue ran each job to completion, and nothing is left held.
      const jobs = await handle.executeSql(
        `select state, count(*)::int as n from pgboss.job where name = $1 group by state`,
        [BACKUP_QUEUE],
      );
      expect(jobs.rows).toEqual([{ state: 'completed', n: items.length }]);
      const held = await handle.db
        .selectFrom('task_slots')
        .select('holder')
        .where('holder', 'is not', null)
        .execute();
      expect(held).toEqual([]);
      expect(await handle.db.selectFrom('worker_jobs').selectAll().execute()).toEqual([]);

      // No customer ever ran more tasks at once than licensed.
      for (const customer of CUSTOMERS) {
        const { peak, tasks } = await peakOverlap(handle.db, customer.id, since);
        expect(tasks, customer.id).toBeGreaterThanOrEqual(customer.vms * DISKS_PER_VM);
        expect(peak, customer.id).toBeLessThanOrEqual(customer.tasks);
        expect(peak, customer.id).toBeGreaterThanOrEqual(1);
      }

      // Every restore point's blocks are in the repository and read back.
      const check = await run(
        process.execPath,
        [path.resolve('bin/acba.js'), 'repository', 'check', '--read-data', '--json'],
        {
          env: {
            PATH: process.env.PATH ?? '',
            HOME: process.env.HOME ?? '',
            ...env,
            DATA_DIR: path.join(root, 'check'),
            ACBA_REPOSITORY_CONNECTION_STRING: azuriteConnectionString(
              Number(env.ACBA_SANDBOX_BLOB_PORT),
            ),
          },
        },
      );
      const report = JSON.parse(check.stdout) as { ok: boolean; restorePoints: number };
      expect(report).toMatchObject({ ok: true, restorePoints: items.length });
    }, 300_000);
  },
);

async function succeededItems(): Promise<number> {
  const row = await handle.db
    .selectFrom('job_sessions')
    .select((eb) => eb.fn.count<string>('item_id').distinct().as('n'))
    .where('status', '=', 'succeeded')
    .executeTakeFirstOrThrow();
  return Number(row.n);
}
