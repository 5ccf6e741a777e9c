// The scheduler on a real database: policies from YAML, due slots started
// exactly once by two racing schedulers, one catch-up run after downtime,
// retention from the slot's schedule, and overlapping policies by priority.
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { isAcbaError } from '../core/errors.ts';
import { silentLogger } from '../core/log.ts';
import { applyPolicies, parsePolicyFile } from '../engine/policies.ts';
import type { BackupJob } from '../engine/queue.ts';
import { runDuePolicies, runPolicyNow, type SchedulerDeps } from '../engine/scheduler.ts';
import { openTestDatabase, type TestDatabase } from './support/database.ts';

let database: TestDatabase;

const gold = `
name: contoso-gold
customer: contoso
priority: 10
type: backups
timeZone: Europe/Berlin
items:
  vms: [web-01]
  tags: { tier: gold }
schedules:
  daily: { times: ["02:00", "14:00"], retentionYears: 1 }
  monthly: { time: "02:00", day: 1, retentionYears: 5 }
`;

function recordingDeps(): SchedulerDeps & { jobs: BackupJob[] } {
  const jobs: BackupJob[] = [];
  return {
    db: database.db,
    log: silentLogger,
    jobs,
    queue: { enqueueBackup: async (job) => void jobs.push(job) },
  };
}

beforeAll(async () => {
  database = await openTestDatabase();
  await database.db
    .insertInto('customers')
    .values({ id: 'contoso', name: 'Contoso', tenant_id: 't-contoso', subscription_id: 's-1' })
    .execute();
  await database.db
    .insertInto('protected_items')
    .values([
      {
        id: 'vm-web',
        customer_id: 'contoso',
        kind: 'vm',
        name: 'web-01',
        resource_id: '/r/web-01',
      },
      {
        id: 'vm-db',
        customer_id: 'contoso',
        kind: 'vm',
        name: 'db-01',
        resource_id: '/r/db-01',
        tags: JSON.stringify({ tier: 'gold' }),
      },
      {
        id: 'vm-win',
        customer_id: 'contoso',
        kind: 'vm',
        name: 'win-01',
        resource_id: '/r/win-01',
      },
    ])
    .execute();
});

afterAll(async () => {
  await database?.dispose();
});

beforeEach(async () => {
  await database.db.deleteFrom('policies').execute();
  await applyPolicies(database.db, parsePolicyFile(gold, 'gold.yaml'));
  // As if the policy had been applied on 2 December.
  await database.db
    .updateTable('policies')
    .set({ active_from: new Date('2026-12-02T00:00:00Z') })
    .execute();
});

describe('policy files', () => {
  it('names the file and the bad field', () => {
    const bad = gold
      .replace('"14:00"', '"25:00"')
      .replace('retentionYears: 5', 'retentionYears: 2')
      .replace('Europe/Berlin', 'Mars/Olympus');
    const error = (() => {
      try {
        parsePolicyFile(bad, 'gold.yaml');
      } catch (e) {
        return e;
      }
    })();
    expect(isAcbaError(error, 'bad_input')).toBe(true);
    const message = (error as Error).message;
    expect(message).toMatch(/^gold\.yaml: /);
    expect(message).toContain('timeZone must be an IANA time zone');
    expect(message).toContain('schedules.daily.times[1] must be a time of day as HH:MM');
    expect(message).toContain('schedules.monthly');
  });

  it('requires a retention for backups and refuses unknown fields', () => {
    expect(() => parsePolicyFile(gold.replace(', retentionYears: 1', ''), 'gold.yaml')).toThrow(
      /schedules\.daily\.retentionYears is required for backups/,
    );
    expect(() => parsePolicyFile(`${gold}colour: blue\n`, 'gold.yaml')).toThrow(/colour/);
  });
});

describe('scheduled runs', () => {
  it('two schedulers racing for the same slot start it exactly once', async () => {
    const a = recordingDeps();
    const b = recordingDeps();
    const now = new Date('2026-12-03T13:00:30Z'); // 14:00:30 in Berlin

    const [ra, rb] = await Promise.all([runDuePolicies(a, now), runDuePolicies(b, now)]);

    const jobs = [...a.jobs, ...b.jobs];
    expect(jobs.map((j) => j.itemId).sort()).toEqual(['vm-db', 'vm-web']);
    expect([...ra, ...rb].map((r) => r.slots)).toEqual([['daily@2026-12-03T14:00']]);
    expect(jobs[0]).toMatchObject({
      trigger: 'schedule',
      policyName: 'contoso-gold',
      expiresAt: '2027-12-03T13:00:00.000Z',
    });

    // A later tick in the same slot starts nothing more.
    expect(await runDuePolicies(a, new Date('2026-12-03T13:05:00Z'))).toEqual([]);
    const runs = await database.db.selectFrom('policy_runs').selectAll().execute();
    expect(runs).toHaveLength(1);
  });

  it('after downtime catches up once, not once per missed slot', async () => {
    const deps = recordingDeps();
    // Down from 3 December 10:00 to 6 December 09:00 Berlin time: six daily slots missed.
    await runDuePolicies(deps, new Date('2026-12-03T09:00:00Z'));
    deps.jobs.length = 0;

    const reports = await runDuePolicies(deps, new Date('2026-12-06T08:00:00Z'));

    expect(reports.map((r) => r.slots)).toEqual([['daily@2026-12-06T02:00']]);
    expect(deps.jobs).toHaveLength(2);
    expect(await runDuePolicies(deps, new Date('2026-12-06T08:30:00Z'))).toEqual([]);
    expect(deps.jobs).toHaveLength(2);
  });

  it('a daily and a monthly slot at the same time make one backup kept as long as the monthly', async () => {
    const deps = recordingDeps();
    const reports = await runDuePolicies(deps, new Date('2027-01-01T01:00:10Z'));

    expect(reports[0]!.slots.sort()).toEqual([
      'daily@2027-01-01T02:00',
      'monthly@2027-01-01T02:00',
    ]);
    expect(deps.jobs).toHaveLength(2);
    expect(deps.jobs[0]!.expiresAt).toBe('2032-01-01T01:00:00.000Z');
  });

  it('does not replay slots from before the policy existed', async () => {
    await database.db
      .updateTable('policies')
      .set({ active_from: new Date('2026-12-03T12:00:00Z') })
      .execute();
    const deps = recordingDeps();
    expect(await runDuePolicies(deps, new Date('2026-12-03T12:30:00Z'))).toEqual([]);
    expect(deps.jobs).toEqual([]);
  });

  it('runs a policy now on request', async () => {
    const deps = recordingDeps();
    const report = await runPolicyNow(deps, 'contoso-gold', new Date('2026-12-03T10:00:00Z'));
    expect(report.items.sort()).toEqual(['vm-db', 'vm-web']);
    expect(deps.jobs[0]).toMatchObject({
      trigger: 'operator',
      expiresAt: '2027-12-03T10:00:00.000Z',
    });
  });
});

describe('overlapping policies', () => {
  it('the higher-priority policy protects a shared item and the other skips it, saying so', async () => {
    const silver = `
name: contoso-silver
customer: contoso
priority: 1
type: backups
timeZone: UTC
items:
  vms: [web-01, win-01]
schedules:
  weekly: { time: "03:00", weekdays: [sun], retentionYears: 1 }
`;
    const [applied] = await applyPolicies(database.db, parsePolicyFile(silver, 'silver.yaml'));
    expect(applied!.overlaps).toEqual([
      'web-01 is protected by policy contoso-gold (higher priority), not by contoso-silver',
    ]);

    const deps = recordingDeps();
    const report = await runPolicyNow(deps, 'contoso-silver');
    expect(report.items).toEqual(['vm-win']);
    expect(report.skipped).toEqual([{ itemId: 'vm-web', policy: 'contoso-gold' }]);
  });
});

describe('snapshot policies', () => {
  it('enqueue a run per selected VM that says to keep snapshots, with the schedules whose slots are due', async () => {
    const snapshots = `
name: contoso-snapshots
customer: contoso
priority: 20
type: snapshots
timeZone: UTC
items:
  vms: [win-01]
schedules:
  daily: { times: ["04:00"], keepSnapshots: 7 }
  weekly: { time: "04:00", weekdays: [mon], keepSnapshots: 4 }
`;
    await applyPolicies(database.db, parsePolicyFile(snapshots, 'snapshots.yaml'));
    await database.db
      .updateTable('policies')
      .set({ active_from: new Date('2026-12-01T00:00:00Z') })
      .where('name', '=', 'contoso-snapshots')
      .execute();
    const deps = recordingDeps();

    // Monday 7 December 2026, 04:00 UTC: a daily and a weekly slot at once.
    const reports = await runDuePolicies(deps, new Date('2026-12-07T04:00:10Z'));

    expect(reports.find((r) => r.policy === 'contoso-snapshots')!.items).toEqual(['vm-win']);
    const job = deps.jobs.find((j) => j.policyName === 'contoso-snapshots')!;
    expect(job).toMatchObject({ itemId: 'vm-win', protection: 'snapshots', expiresAt: undefined });
    expect(job.schedules!.sort()).toEqual(['daily', 'weekly']);
  });
});
