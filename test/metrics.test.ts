/**
 * GET /metrics as a Prometheus server scrapes it from a running ACBA: after
 * the start-up backups, the job, task and byte counters match what the job
 * sessions recorded; the state read from the database (workers alive, queue
 * depth, repository size by customer, requests waiting) is there; a decided
 * request shows its waiting time; and a scrape without the token is refused
 * once a token is configured.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApprovals, type Actor } from '../approvals/index.ts';
import { startApp, type RunningApp } from '../cli/app.ts';
import { loadConfig } from '../core/config.ts';
import { silentLogger } from '../core/log.ts';
import { storedBytesOf } from '../engine/licences.ts';
import type { SandboxUser } from '../sandbox/index.ts';
import { createServerDatabase, tempDir, type ScratchDatabase } from './support/database.ts';

let app: RunningApp;
let dataDir: string;
let server: ScratchDatabase | undefined;
const TOKEN = 'scrape-token-for-tests-0123456789';

beforeAll(async () => {
  dataDir = await tempDir('acba-metrics-');
  server = await createServerDatabase();
  const config = loadConfig({
    PORT: '0',
    DATA_DIR: dataDir,
    LOG_LEVEL: 'silent',
    ACBA_BACKUP_ON_START: '1',
    ...(server ? { DATABASE_URL: server.url } : {}),
  });
  app = await startApp(config, { sandboxImageCacheDir: path.resolve('test/.cache/images') });

  // The start-up backups of the seeded VMs and databases run on the worker; wait for them to end.
  const deadline = Date.now() + 300_000;
  for (;;) {
    const sessions = await app.database.db.selectFrom('job_sessions').select('status').execute();
    const queued = await sql<{
      n: string;
    }>`select count(*) as n from pgboss.job where state in ('created', 'retry', 'active')`.execute(
      app.database.db,
    );
    const idle = Number(queued.rows[0]!.n) === 0;
    if (idle && sessions.length > 0 && sessions.every((s) => s.status !== 'running')) break;
    if (Date.now() > deadline) throw new Error('the start-up backups did not end in 5 minutes');
    await new Promise((r) => setTimeout(r, 1000));
  }
}, 420_000);

afterAll(async () => {
  await app?.close();
  await server?.drop();
  await fs.rm(dataDir, { recursive: true, force: true });
});

/** The scrape as Prometheus reads it: `name{labels} value` lines, comments left out. */
async function scrape(headers: Record<string, string> = {}): Promise<Map<string, number>> {
  const res = await fetch(`${app.url}/metrics`, { headers });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  const samples = new Map<string, number>();
  for (const line of (await res.text()).split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}

function sum(samples: Map<string, number>, prefix: string): number {
  let total = 0;
  for (const [key, value] of samples) if (key.startsWith(prefix)) total += value;
  return total;
}

describe('GET /metrics', () => {
  it('counts the finished jobs, tasks and bytes exactly as the job sessions recorded them', async () => {
    const sessions = await app.database.db.selectFrom('job_sessions').selectAll().execute();
    const tasks = await app.database.db.selectFrom('job_tasks').selectAll().execute();
    const samples = await scrape();

    const succeeded = sessions.filter((s) => s.status === 'succeeded' || s.status === 'warning');
    expect(succeeded.length).toBeGreaterThan(0);
    expect(sum(samples, 'acba_jobs_total{')).toBe(sessions.length);
    expect(sum(samples, 'acba_job_duration_seconds_count{')).toBe(sessions.length);
    const vms = await app.database.db
      .selectFrom('protected_items')
      .select('id')
      .where('kind', '=', 'vm')
      .execute();
    const vmIds = new Set(vms.map((v) => v.id));
    expect(samples.get('acba_jobs_total{item="vm",outcome="succeeded"}')).toBe(
      sessions.filter((s) => s.status === 'succeeded' && vmIds.has(s.item_id)).length,
    );
    expect(sum(samples, 'acba_tasks_total{')).toBe(tasks.reduce((n, t) => n + t.attempts, 0));
    expect(sum(samples, 'acba_bytes_read_total{')).toBe(
      sessions.reduce((n, s) => n + Number(s.bytes_read), 0),
    );
    expect(sum(samples, 'acba_bytes_written_total{')).toBe(
      sessions.reduce((n, s) => n + Number(s.bytes_stored), 0),
    );
  });

  it('reads the shared state from the database: workers alive, queues, repository size by customer', async () => {
    const samples = await scrape();
    const customers = await app.database.db.selectFrom('customers').select('id').execute();

    expect(samples.get('acba_workers_alive')).toBe(1);
    expect(samples.get('acba_job_sessions_running')).toBe(0);
    expect(samples.get('acba_queue_depth{queue="engine-backup"}')).toBe(0);
    for (const { id } of customers)
      expect(samples.get(`acba_repository_stored_bytes{customer="${id}"}`)).toBe(
        await storedBytesOf(app.database.db, id),
      );
    expect(sum(samples, 'acba_repository_stored_bytes{')).toBeGreaterThan(0);
  });

  it('shows a request waiting for approval, then how long it waited once decided', async () => {
    const seed = app.sandbox!.seed;
    const person = (role: SandboxUser['role']): Actor => {
      const user = seed.users.find(
        (u) => u.role === role && (role !== 'requester' || u.tenantId !== seed.provider.tenantId),
      )!;
      return {
        objectId: user.objectId,
        tenantId: user.tenantId,
        name: user.displayName,
        channel: 'portal',
      };
    };
    const approvals = createApprovals({
      db: app.database.db,
      log: silentLogger,
      queue: {
        enqueueBackup: async () => {},
        enqueueFileRestore: async () => {
          throw new Error('a rejected request must not be queued');
        },
      },
      providerTenantId: seed.provider.tenantId,
    });
    const vm = seed.customers[0]!.vms[0]!;
    const request = await approvals.requestFileRestore(person('requester'), {
      vmName: vm.name,
      path: '/etc/hostname',
      reason: 'The host name file was overwritten by a faulty deployment script.',
    });

    const waiting = await scrape();
    expect(waiting.get('acba_approval_requests_waiting{kind="file_restore"}')).toBe(1);
    expect(waiting.get('acba_approval_oldest_waiting_seconds')).toBeGreaterThanOrEqual(0);

    await approvals.decide(
      person('approver'),
      request.id,
      'reject',
      'Not needed: redeploy instead.',
    );
    const decided = await scrape();
    expect(decided.get('acba_approval_requests_waiting{kind="file_restore"}')).toBeUndefined();
    expect(
      decided.get('acba_approval_wait_seconds_count{kind="file_restore",decision="rejected"}'),
    ).toBe(1);
  });
});

describe('a scrape from elsewhere', () => {
  it('needs the configured bearer token, and says how to send it', async () => {
    const own = await createServerDatabase();
    const guarded = await startApp(
      loadConfig({
        PORT: '0',
        DATA_DIR: await tempDir('acba-metrics-token-'),
        LOG_LEVEL: 'silent',
        ACBA_BACKUP_ON_START: '0',
        ACBA_METRICS_TOKEN: TOKEN,
        ...(own ? { DATABASE_URL: own.url } : {}),
      }),
      { sandboxImageCacheDir: path.resolve('test/.cache/images') },
    );
    try {
      const refused = await fetch(`${guarded.url}/metrics`);
      expect(refused.status).toBe(401);
      expect(await refused.text()).toContain('Authorization: Bearer TOKEN');
      const forged = await fetch(`${guarded.url}/metrics`, {
        headers: { authorization: `Bearer ${TOKEN.replace(/.$/, 'x')}` },
      });
      expect(forged.status).toBe(401);
      const allowed = await fetch(`${guarded.url}/metrics`, {
        headers: { authorization: `Bearer ${TOKEN}` },
      });
      expect(allowed.status).toBe(200);
      expect(await allowed.text()).toContain('acba_workers_alive');
    } finally {
      await guarded.close();
      await own?.drop();
    }
  }, 300_000);
});
