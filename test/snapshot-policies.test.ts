// Snapshot policies against the sandbox over HTTPS: VMs chosen by their Azure
// tags, snapshots kept in the VM's resource group as restore points of their
// own and counted per schedule, `both` policies that back up and keep the
// snapshots, and operators' manual snapshots that retention never touches.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { ComputeManagementClient } from '@azure/arm-compute';
import { ClientSecretCredential } from '@azure/identity';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Customer, ProtectedItem, RestorePoint } from '../core/db/schema.ts';
import { isAcbaError } from '../core/errors.ts';
import { silentLogger } from '../core/log.ts';
import { createComputeClient } from '../engine/azure.ts';
import { findRestorePoint } from '../engine/catalog.ts';
import { createEngine, type Engine } from '../engine/engine.ts';
import {
  applyPolicies,
  parsePolicyFile,
  resolvePolicyItems,
  getPolicy,
} from '../engine/policies.ts';
import type { BackupJob } from '../engine/queue.ts';
import { readManifest } from '../engine/repository/manifest.ts';
import { Repository } from '../engine/repository/repository.ts';
import { expireRestorePoints } from '../engine/retention.ts';
import { runDuePolicies } from '../engine/scheduler.ts';
import {
  applySnapshotRetention,
  createManualSnapshot,
  deleteManualSnapshot,
} from '../engine/vm-snapshots.ts';
import { startSandbox, type Sandbox } from '../sandbox/index.ts';
import { openTestDatabase, tempDir, type TestDatabase } from './support/database.ts';

const CONTAINER = 'acba-snapshot-policies';
let sandbox: Sandbox;
let database: TestDatabase;
let engine: Engine;
let repository: Repository;
let compute: ComputeManagementClient;
let dataDir: string;
let customer: Customer;
let items: ProtectedItem[];
const item = (name: string) => items.find((i) => i.name === name)!;
const deps = () => ({
  db: database.db,
  log: silentLogger,
  compute: () => compute,
  pollIntervalMs: 50,
});

beforeAll(async () => {
  dataDir = await tempDir('acba-snapshot-policies-');
  sandbox = await startSandbox({
    dataDir,
    armPort: 0,
    blobPort: 0,
    imageCacheDir: 'test/.cache/images',
  });
  database = await openTestDatabase();
  const seeded = sandbox.seed.customers[0]!;
  customer = await database.db
    .insertInto('customers')
    .values({
      id: seeded.id,
      name: seeded.name,
      tenant_id: seeded.tenantId,
      subscription_id: seeded.subscriptionId,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
  const credential = new ClientSecretCredential(
    sandbox.servicePrincipal.tenantId,
    sandbox.servicePrincipal.clientId,
    sandbox.servicePrincipal.clientSecret,
    { authorityHost: sandbox.authorityHost, disableInstanceDiscovery: true },
  );
  compute = createComputeClient({
    credential,
    subscriptionId: seeded.subscriptionId,
    endpoint: sandbox.armUrl,
  });
  const kek = randomBytes(32);
  engine = await createEngine({
    db: database.db,
    log: silentLogger,
    credential,
    resourceManagerUrl: sandbox.armUrl,
    repository: { connectionString: sandbox.repositoryConnectionString, container: CONTAINER, kek },
    signer: undefined as never,
    publicUrl: 'http://127.0.0.1:1',
    diskResourceUrl: 'http://127.0.0.1:1/engine',
    downloadLinkMinutes: 60,
    notices: { restoreFinished: async () => undefined },
    workDir: path.join(dataDir, 'work'),
    azurePollIntervalMs: 50,
  });
  await engine.health();
  repository = await Repository.open({
    connectionString: sandbox.repositoryConnectionString,
    container: CONTAINER,
    kek,
    db: database.db,
  });
}, 300_000);

afterAll(async () => {
  await engine?.close();
  await database?.dispose();
  await sandbox?.close();
  if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
});

/** The names of ACBA's snapshots in the customer's resource group. */
async function azureSnapshots(): Promise<string[]> {
  const names: string[] = [];
  for await (const s of compute.snapshots.listByResourceGroup(
    sandbox.seed.customers[0]!.resourceGroup,
  ))
    if (s.name?.startsWith('acba-')) names.push(s.name);
  return names.sort();
}

/** Runs due policies at `now` and runs each job the way the worker does. */
async function runSlot(now: Date): Promise<RestorePoint[]> {
  const jobs: BackupJob[] = [];
  await runDuePolicies(
    {
      db: database.db,
      log: silentLogger,
      queue: { enqueueBackup: async (j) => void jobs.push(j) },
    },
    now,
  );
  const points: RestorePoint[] = [];
  for (const job of jobs)
    points.push(
      await engine.backupVm(job.itemId, job.trigger, {
        expiresAt: job.expiresAt ? new Date(job.expiresAt) : undefined,
        policyName: job.policyName,
        protection: job.protection,
        schedules: job.schedules,
      }),
    );
  return points;
}

const points = (itemId: string, type: RestorePoint['type']) =>
  database.db
    .selectFrom('restore_points')
    .selectAll()
    .where('item_id', '=', itemId)
    .where('type', '=', type)
    .orderBy('created_at')
    .execute();

const snapshotNamesOf = (point: RestorePoint) =>
  database.db
    .selectFrom('disk_snapshots')
    .select('snapshot_resource_id')
    .where((eb) =>
      eb.or([eb('snapshot_point_id', '=', point.id), eb('backup_point_id', '=', point.id)]),
    )
    .execute()
    .then((rows) => rows.map((r) => r.snapshot_resource_id.split('/').at(-1)!));

describe('tags', () => {
  it('inventory records each VM’s Azure tags, and a tag selector protects exactly the VMs carrying it', async () => {
    items = await engine.syncInventory(customer);
    expect(item('web-01').tags).toEqual({
      environment: 'production',
      owner: 'contoso-it',
      role: 'web',
    });
    expect(item('win-01').tags).toMatchObject({ role: 'file-server' });

    await applyPolicies(
      database.db,
      parsePolicyFile(
        `
name: web-snapshots
customer: contoso
type: snapshots
timeZone: UTC
items: { tags: { role: web } }
schedules:
  daily: { times: ["02:00"], keepSnapshots: 2 }
  weekly: { time: "02:00", weekdays: [mon], keepSnapshots: 1 }
`,
        'web.yaml',
      ),
    );
    const resolved = await resolvePolicyItems(
      database.db,
      await getPolicy(database.db, 'web-snapshots'),
    );
    expect(resolved.items.map((i) => i.name)).toEqual(['web-01']);
  });
});

describe('manual snapshots', () => {
  it('are refused for a VM that no policy protects, naming the next step', async () => {
    const error = await createManualSnapshot(deps(), 'win-01').catch((e) => e);
    expect(isAcbaError(error, 'bad_input')).toBe(true);
    expect(error.message).toMatch(/^VM win-01 is in no enabled policy.*acba policy apply FILE/);
    expect(await azureSnapshots()).toEqual([]);
  });
});

describe('snapshot policies', () => {
  it('keep snapshots in the VM’s resource group as restore points of their own, not in the repository', async () => {
    await database.db
      .updateTable('policies')
      .set({ active_from: new Date('2026-11-01T00:00:00Z') })
      .execute();
    // Monday 30 November 2026, 02:00: a daily and a weekly slot at once.
    const [point] = await runSlot(new Date('2026-11-30T02:00:30Z'));

    expect(point).toMatchObject({
      type: 'snapshot',
      item_id: item('web-01').id,
      policy_name: 'web-snapshots',
    });
    expect(Number(point!.stored_bytes)).toBe(0);
    expect(point!.schedules.sort()).toEqual(['daily', 'weekly']);
    expect(await azureSnapshots()).toEqual([`acba-${point!.id}-0`]);
    expect(await database.db.selectFrom('repository_blocks').select('id').execute()).toEqual([]);
    await expect(readManifest(repository, point!)).rejects.toThrow(/is a snapshot kept in Azure/);
  });

  it('keep each schedule’s newest snapshots by count and delete the rest in Azure', async () => {
    for (const day of ['2026-12-01', '2026-12-02', '2026-12-03'])
      await runSlot(new Date(`${day}T02:00:30Z`));

    const kept = await points(item('web-01').id, 'snapshot');
    // The weekly one of 30 November, and the two newest dailies.
    expect(kept.map((p) => [...p.schedules].sort().join('+'))).toEqual([
      'daily+weekly',
      'daily',
      'daily',
    ]);
    const names = (await Promise.all(kept.map(snapshotNamesOf))).flat().sort();
    expect(await azureSnapshots()).toEqual(names);
    expect(names).toHaveLength(3);
    const expired = await database.db
      .selectFrom('audit_log')
      .select('details')
      .where('action', '=', 'restore_point.expire')
      .execute();
    expect(expired).toEqual([{ details: expect.objectContaining({ reason: 'keep_snapshots' }) }]);
  });
});

describe('both', () => {
  it('backs up into the repository and keeps the snapshots as snapshot restore points', async () => {
    await applyPolicies(
      database.db,
      parsePolicyFile(
        `
name: files-both
customer: contoso
type: both
timeZone: UTC
items: { tags: { role: file-server } }
schedules:
  daily: { times: ["03:00"], retentionYears: 1, keepSnapshots: 1 }
`,
        'files.yaml',
      ),
    );
    await database.db
      .updateTable('policies')
      .set({ active_from: new Date('2026-11-01T00:00:00Z') })
      .where('name', '=', 'files-both')
      .execute();
    const before = await azureSnapshots();

    const [first] = await runSlot(new Date('2026-12-02T03:00:30Z'));
    const [second] = await runSlot(new Date('2026-12-03T03:00:30Z'));

    expect(first!.type).toBe('backup');
    const win = item('win-01').id;
    expect((await points(win, 'backup')).map((p) => p.id)).toEqual([first!.id, second!.id]);
    const snapshots = await points(win, 'snapshot');
    expect(snapshots).toHaveLength(1);
    // The one kept snapshot is both the newest backup's base and the snapshot restore point.
    expect(await snapshotNamesOf(snapshots[0]!)).toEqual([`acba-${second!.id}-0`]);
    // A file restore without a chosen restore point reads the newest backup, not the snapshot.
    expect((await findRestorePoint(database.db, win))!.id).toBe(second!.id);
    const after = await azureSnapshots();
    expect(after.filter((n) => !before.includes(n))).toEqual([`acba-${second!.id}-0`]);
  });
});

describe('manual snapshots of a VM in a policy', () => {
  let manual: RestorePoint;

  it('are listed as manual and survive both kinds of retention', async () => {
    manual = await createManualSnapshot(deps(), 'web-01');
    expect(manual).toMatchObject({ type: 'manual_snapshot', policy_name: 'web-snapshots' });
    expect(await azureSnapshots()).toContain(`acba-${manual.id}-0`);

    await applySnapshotRetention(deps(), item('web-01').id, 'web-snapshots');
    await expireRestorePoints({ ...deps(), repository }, new Date('9999-12-31T12:00:00Z'));
    expect((await points(item('web-01').id, 'manual_snapshot')).map((p) => p.id)).toEqual([
      manual.id,
    ]);
    expect(await azureSnapshots()).toContain(`acba-${manual.id}-0`);
  });

  it('are removed only by an operator’s delete, which refuses any other restore point', async () => {
    const policyPoint = (await points(item('web-01').id, 'snapshot'))[0]!;
    const refused = await deleteManualSnapshot(deps(), policyPoint.id).catch((e) => e);
    expect(isAcbaError(refused, 'bad_input')).toBe(true);
    expect(refused.message).toMatch(/not a manual snapshot/);

    await deleteManualSnapshot(deps(), manual.id);

    expect(await points(item('web-01').id, 'manual_snapshot')).toEqual([]);
    expect(await azureSnapshots()).not.toContain(`acba-${manual.id}-0`);
    const audit = await database.db
      .selectFrom('audit_log')
      .select(['action', 'resource'])
      .where('action', 'like', 'snapshot.%')
      .orderBy('seq')
      .execute();
    expect(audit.at(-1)).toEqual({
      action: 'snapshot.delete',
      resource: `restore-point/${manual.id}`,
    });
  });
});
