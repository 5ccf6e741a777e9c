// Licences against the sandbox: concurrent tasks bounded across engines
// sharing one database (on PostgreSQL, separate connection pools as separate
// worker processes would have), storage that warns at 90% and refuses at
// 100%, protected instances beyond the licence left alone, the operator's
// `acba licence` command, and usage per day.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type DatabaseHandle } from '../core/db/database.ts';
import type { Engine } from '../engine/engine.ts';
import { licenceView, setLicence, storedBytesOf, TB } from '../engine/licences.ts';
import { silentLogger } from '../core/log.ts';
import { applyPolicies, parsePolicyFile } from '../engine/policies.ts';
import type { BackupJob } from '../engine/queue.ts';
import { runPolicyNow } from '../engine/scheduler.ts';
import { listUsage, recordUsage, utcDay } from '../engine/usage.ts';
import { runAcba } from './support/cli.ts';
import { tempDir } from './support/database.ts';
import { startSandboxEngine, type SandboxEngineWorld } from './support/sandbox-engine.ts';
import { peakOverlap } from './support/task-intervals.ts';

let world: SandboxEngineWorld;
const extraHandles: DatabaseHandle[] = [];

beforeAll(async () => {
  world = await startSandboxEngine();
});

afterAll(async () => {
  for (const handle of extraHandles) await handle.close();
  await world?.dispose();
});

/** A second engine as another worker process would run it: its own pool on PostgreSQL. */
async function otherWorker(): Promise<Engine> {
  if (!world.database.url) return world.engine();
  const handle = await openDatabase({ url: world.database.url, dataDir: await tempDir() });
  extraHandles.push(handle);
  return world.engine({}, handle.db);
}

describe('concurrent tasks across workers', () => {
  it.each([1, 2])(
    'never runs more than %i task(s) of a customer at once, however many backups run in parallel',
    async (maxTasks) => {
      await setLicence(world.database.db, 'contoso', { tasks: maxTasks });
      const engines = [await world.engine(), await otherWorker()];
      const since = new Date();

      const runs = engines.flatMap((engine) =>
        ['web-01', 'win-01', 'web-01'].map((name) =>
          engine.backupVm(world.items[name]!.id, 'operator'),
        ),
      );
      const results = await Promise.allSettled(runs);

      expect(results.filter((r) => r.status === 'rejected')).toEqual([]);
      const { peak, tasks } = await peakOverlap(world.database.db, 'contoso', since);
      expect(tasks).toBeGreaterThanOrEqual(6);
      expect(peak).toBeLessThanOrEqual(maxTasks);
      expect(peak).toBeGreaterThanOrEqual(1);
      const slots = await world.database.db
        .selectFrom('task_slots')
        .select('holder')
        .where('customer_id', '=', 'contoso')
        .execute();
      expect(slots.every((s) => s.holder === null)).toBe(true);
    },
  );

  it('takes over the slot of a worker that died once its expiry passes', async () => {
    await setLicence(world.database.db, 'contoso', { tasks: 1 });
    await world.database.db
      .updateTable('task_slots')
      .set({ holder: 'a-worker-that-died', expires_at: new Date(Date.now() + 1500) })
      .where('customer_id', '=', 'contoso')
      .where('slot', '=', 0)
      .execute();
    const engine = await world.engine();

    const point = await engine.backupVm(world.items['win-01']!.id, 'operator');

    const task = await world.database.db
      .selectFrom('job_tasks as t')
      .innerJoin('job_sessions as s', 's.id', 't.session_id')
      .select(['t.slot', 't.status'])
      .where('s.restore_point_id', '=', point.id)
      .executeTakeFirstOrThrow();
    expect(task).toEqual({ slot: 0, status: 'succeeded' });
  });

  it('records the day’s peak of concurrent tasks in the usage', async () => {
    const [today] = await listUsage(world.database.db, { customerId: 'contoso', days: 1 });
    expect(today!.day).toBe(utcDay());
    expect(today!.peakTasks).toBeGreaterThanOrEqual(1);
    expect(today!.peakTasks).toBeLessThanOrEqual(2);
    expect(today!.protectedInstances).toBe(3);
    expect(today!.storedBytes).toBe(await storedBytesOf(world.database.db, 'contoso'));
  });
});

describe('allocated storage', () => {
  it('warns on the session, in the log and the audit trail from 90% of the allocation', async () => {
    const used = await storedBytesOf(world.database.db, 'contoso');
    await setLicence(world.database.db, 'contoso', { tasks: null, storageTb: used / 0.95 / TB });
    const engine = await world.engine();

    const point = await engine.backupVm(world.items['web-01']!.id, 'schedule');

    const session = await world.database.db
      .selectFrom('job_sessions')
      .selectAll()
      .where('restore_point_id', '=', point.id)
      .executeTakeFirstOrThrow();
    expect(session.status).toBe('warning');
    expect(session.warnings[0]).toMatch(/^Customer Contoso has used .* \(9[0-9]%\)/);
    const audit = await world.database.db
      .selectFrom('audit_log')
      .select('details')
      .where('action', '=', 'licence.storage_warning')
      .execute();
    expect(audit.at(-1)!.details).toMatchObject({ customerId: 'contoso', usedBytes: used });
  });

  it('refuses a backup at 100% with a message for the operators, recorded on the session and in the notice', async () => {
    const used = await storedBytesOf(world.database.db, 'contoso');
    await setLicence(world.database.db, 'contoso', { storageTb: used / TB });
    const engine = await world.engine();
    const itemId = world.items['win-01']!.id;

    const refusal = engine.backupVm(itemId, 'schedule');

    await expect(refusal).rejects.toMatchObject({ kind: 'limit_reached' });
    await expect(refusal).rejects.toThrow(
      /^Customer Contoso has used .* of its .* allocated TB; raise its licence with acba licence set contoso --storage-tb N or free space with acba repository prune\.$/,
    );
    const session = await world.database.db
      .selectFrom('job_sessions')
      .selectAll()
      .where('item_id', '=', itemId)
      .orderBy('started_at', 'desc')
      .limit(1)
      .executeTakeFirstOrThrow();
    expect(session).toMatchObject({ status: 'failed', error_kind: 'limit_reached' });
    const tasks = await world.database.db
      .selectFrom('job_tasks')
      .select('id')
      .where('session_id', '=', session.id)
      .execute();
    expect(tasks).toEqual([]);
    expect(world.failures.at(-1)).toMatchObject({
      itemName: 'win-01',
      kind: 'limit_reached',
      message: session.error,
    });
    await setLicence(world.database.db, 'contoso', { storageTb: null });
  });
});

describe('protected instances', () => {
  it('protects the first licensed instances and says which VM it skipped and why', async () => {
    await setLicence(world.database.db, 'contoso', { instances: 2 });
    const engine = await world.engine();

    await expect(engine.backupVm(world.items['win-01']!.id, 'operator')).rejects.toThrow(
      'win-01 is beyond the 2 protected instance(s) licensed for customer Contoso, so it is not backed up; raise the licence with acba licence set contoso --instances N.',
    );
    await engine.backupVm(world.items['web-01']!.id, 'operator');

    const skipped = await world.database.db
      .selectFrom('audit_log')
      .select(['resource', 'outcome', 'details'])
      .where('action', '=', 'licence.instance_skip')
      .execute();
    expect(skipped).toEqual([]);
    const synced = await engine.syncInventory(world.customer);
    expect(synced.map((i) => i.name)).toEqual(['legacy-01', 'web-01']);
    const after = await world.database.db
      .selectFrom('audit_log')
      .select(['resource', 'outcome', 'details'])
      .where('action', '=', 'licence.instance_skip')
      .execute();
    expect(after).toEqual([
      {
        resource: 'vm/contoso/win-01',
        outcome: 'refused',
        details: expect.objectContaining({
          reason: 'the licence covers 2 protected instance(s)',
        }),
      },
    ]);

    // A policy over both VMs backs up only the licensed one and names the other.
    await applyPolicies(
      world.database.db,
      parsePolicyFile(
        `name: contoso-all\ncustomer: contoso\ntype: backups\ntimeZone: UTC\nitems: { vms: [web-01, win-01] }\nschedules: { daily: { times: ["02:00"], retentionYears: 1 } }\n`,
        'contoso-all.yaml',
      ),
    );
    const jobs: BackupJob[] = [];
    const report = await runPolicyNow(
      {
        db: world.database.db,
        log: silentLogger,
        queue: { enqueueBackup: async (job) => void jobs.push(job) },
      },
      'contoso-all',
    );
    expect(jobs.map((j) => j.itemId)).toEqual([world.items['web-01']!.id]);
    expect(report.overLicence).toEqual([world.items['win-01']!.id]);

    await setLicence(world.database.db, 'contoso', { instances: null });
    const all = await engine.syncInventory(world.customer);
    expect(all.map((i) => i.name)).toEqual(['legacy-01', 'web-01', 'win-01']);
  });
});

describe('usage per day', () => {
  it('keeps the day’s highest values and adds egress, so recording the same state twice changes nothing', async () => {
    const day = new Date('2026-11-30T12:00:00Z');
    await recordUsage(world.database.db, 'contoso', { peakTasks: 3, storedBytes: 500 }, day);
    await recordUsage(world.database.db, 'contoso', { peakTasks: 2, storedBytes: 500 }, day);
    await recordUsage(world.database.db, 'contoso', { egressBytes: 40 }, day);
    await recordUsage(world.database.db, 'contoso', { egressBytes: 2 }, day);

    const row = await world.database.db
      .selectFrom('usage_daily')
      .select(['peak_tasks', 'stored_bytes', 'egress_bytes'])
      .where('customer_id', '=', 'contoso')
      .where('day', '=', '2026-11-30')
      .executeTakeFirstOrThrow();
    expect([row.peak_tasks, Number(row.stored_bytes), Number(row.egress_bytes)]).toEqual([
      3, 500, 42,
    ]);
  });
});

describe('acba licence', () => {
  // PGlite is one process's database: there the command opens its own, empty one.
  const acba = async (args: string[]) =>
    runAcba(args, {
      DATA_DIR: await tempDir('acba-licence-cli-'),
      ...(world.database.url ? { DATABASE_URL: world.database.url } : {}),
    });

  it('sets and shows a licence, and refuses a bad value in one line', async () => {
    const help = await acba(['licence', '--help']);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('acba licence set CUSTOMER');

    const bad = await acba(['licence', 'set', 'contoso', '--tasks', 'many']);
    expect(bad.code).not.toBe(0);
    expect(bad.stderr.trim().split('\n')).toHaveLength(1);
    expect(bad.stderr).toContain('--tasks takes a number or "none"; got "many".');

    const unknown = await acba(['licence', 'show', 'fabrikam']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('customer fabrikam does not exist');

    if (!world.database.url) return;
    const set = await acba([
      'licence',
      'set',
      'contoso',
      '--instances',
      '10',
      '--storage-tb',
      '2.5',
      '--tasks',
      '3',
    ]);
    expect(set.code).toBe(0);
    const shown = await acba(['licence', 'show', 'contoso', '--json']);
    expect(JSON.parse(shown.stdout)).toMatchObject({
      customerId: 'contoso',
      licensed: true,
      instances: 10,
      storageTb: 2.5,
      tasks: 3,
    });
    expect(await licenceView(world.database.db, 'contoso')).toMatchObject({ tasks: 3 });
  });
});
