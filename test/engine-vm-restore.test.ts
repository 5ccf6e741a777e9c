// Whole-VM and disk restores from a backup, against the sandbox over HTTPS and
// Azurite: a VM with an OS disk and a data disk is backed up, then restored
// as a new VM elsewhere, as a new disk, and over itself (once failing halfway,
// once for real), each only after a written approval, with every restored
// disk compared byte for byte with what was backed up.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { ClientSecretCredential } from '@azure/identity';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApprovals, type Actor, type Approvals } from '../approvals/index.ts';
import type { Customer, ProtectedItem, RequestRow } from '../core/db/schema.ts';
import { isAcbaError } from '../core/errors.ts';
import { silentLogger } from '../core/log.ts';
import { LinkSigner } from '../core/signing.ts';
import { createComputeClient } from '../engine/azure.ts';
import { createEngine, type Engine } from '../engine/engine.ts';
import type { RestoreFinished } from '../engine/notices.ts';
import type { FileRestoreJob, JobQueue } from '../engine/queue.ts';
import { addVm } from '../sandbox/added-vms.ts';
import { startSandbox, type Sandbox } from '../sandbox/index.ts';
import { seedPeople } from './support/contoso.ts';
import { insertSeededCustomer, sandboxActor } from './support/sandbox-engine.ts';
import { openTestDatabase, tempDir, type TestDatabase } from './support/database.ts';

const MIB = 1024 * 1024;
const reason =
  'The application server was broken by a bad update; we need last night’s state back.';

let sandbox: Sandbox;
let database: TestDatabase;
let engine: Engine;
let approvals: Approvals;
let dataDir: string;
let customer: Customer;
let app01: ProtectedItem;
let compute: ReturnType<typeof createComputeClient>;
let requester: Actor;
let approver: Actor;
const notices: RestoreFinished[] = [];
const queued: FileRestoreJob[] = [];
/** SHA-256 of each disk of app-01 when it was backed up, by disk name. */
const backedUp = new Map<string, string>();

const queue: JobQueue = {
  enqueueFileRestore: async (job) => void queued.push(job),
  enqueueBackup: async () => {},
};

/** A disk image with data, a zero MiB and a lone sector in between: zero ranges are skipped on upload. */
function image(sizeMiB: number, seed: number): Buffer {
  const data = Buffer.alloc(sizeMiB * MIB);
  randomBytes(MIB).copy(data, 0);
  data.fill(seed, 2 * MIB + 512, 2 * MIB + 1024);
  randomBytes(MIB / 2).copy(data, (sizeMiB - 1) * MIB);
  return data;
}

const sha256 = async (file: string) =>
  createHash('sha256')
    .update(await fs.readFile(file))
    .digest('hex');

beforeAll(async () => {
  dataDir = await tempDir('acba-vm-restore-');
  sandbox = await startSandbox({
    dataDir,
    armPort: 0,
    blobPort: 0,
    imageCacheDir: 'test/.cache/images',
  });
  const os = path.join(dataDir, 'app-01-os.raw');
  const data = path.join(dataDir, 'app-01-data.raw');
  await fs.writeFile(os, image(4, 7));
  await fs.writeFile(data, image(3, 9));
  await addVm(dataDir, { name: 'app-01', disks: [os, data] });

  database = await openTestDatabase();
  const seeded = sandbox.seed.customers[0]!;
  customer = await insertSeededCustomer(database.db, sandbox);
  await seedPeople(database.db, sandbox.seed.users);
  requester = sandboxActor(sandbox, 'requester');
  approver = sandboxActor(sandbox, 'approver');

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
  engine = await createEngine({
    db: database.db,
    log: silentLogger,
    credential,
    resourceManagerUrl: sandbox.armUrl,
    repository: {
      connectionString: sandbox.repositoryConnectionString,
      container: 'acba-repository',
      kek: randomBytes(32),
    },
    signer: new LinkSigner(randomBytes(32)),
    publicUrl: 'http://127.0.0.1:9',
    diskResourceUrl: 'http://127.0.0.1:9/engine',
    downloadLinkMinutes: 60,
    notices: { restoreFinished: async (event) => void notices.push(event) },
    workDir: path.join(dataDir, 'work'),
    azurePollIntervalMs: 20,
    approvalCheck: { providerTenantId: sandbox.seed.provider.tenantId },
    jobSessions: { retry: { baseDelayMs: 100 } },
  });
  approvals = createApprovals({
    db: database.db,
    log: silentLogger,
    queue,
    providerTenantId: sandbox.seed.provider.tenantId,
  });

  const items = await engine.syncInventory(customer);
  app01 = items.find((i) => i.name === 'app-01')!;
  await engine.backupVm(app01.id, 'test');
  for (const disk of ['app-01_OsDisk_1', 'app-01_DataDisk_0'])
    backedUp.set(disk, await sha256(sandbox.diskFilePath(diskId('rg-prod', disk))!));
}, 240_000);

afterAll(async () => {
  await engine?.close();
  await database?.dispose();
  await sandbox?.close();
  if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
});

function diskId(resourceGroup: string, name: string): string {
  return `/subscriptions/${customer.subscription_id}/resourceGroups/${resourceGroup}/providers/Microsoft.Compute/disks/${name}`;
}

const subnet = (group: string) =>
  `/subscriptions/${sandbox.seed.customers[0]!.subscriptionId}/resourceGroups/${group}/providers/Microsoft.Network/virtualNetworks/vnet-dr/subnets/default`;

/** Writes, approves and runs a request through the queue's job, the way a worker would. */
async function approvedRestore(
  kind: 'vm_restore' | 'disk_restore',
  target: object,
): Promise<RequestRow> {
  const request = await approvals.createRequest(requester, { kind, target, reason });
  await approvals.decide(approver, request.id, 'approve', 'Checked with the customer by phone.');
  expect(queued.map((j) => j.requestId)).toContain(request.id);
  await engine.runRestore(request.id);
  return database.db
    .selectFrom('requests')
    .selectAll()
    .where('id', '=', request.id)
    .executeTakeFirstOrThrow();
}

async function diskNames(resourceGroup: string): Promise<string[]> {
  const names: string[] = [];
  for await (const disk of compute.disks.listByResourceGroup(resourceGroup)) names.push(disk.name!);
  return names.sort();
}

async function powerState(resourceGroup: string, name: string): Promise<string | undefined> {
  const view = await compute.virtualMachines.instanceView(resourceGroup, name);
  return view.statuses?.find((s) => s.code?.startsWith('PowerState/'))?.code;
}

describe('restoring app-01 as a new VM', () => {
  it('creates app-01-dr in another group, region, subnet and size, with every disk equal to the backup', async () => {
    const row = await approvedRestore('vm_restore', {
      vmName: 'app-01',
      newVmName: 'app-01-dr',
      resourceGroup: 'rg-restore',
      region: 'North Europe',
      subnetId: subnet('rg-restore'),
      vmSize: 'Standard_D4s_v5',
    });

    expect(row.status, JSON.stringify(row.result)).toBe('completed');
    const vm = await compute.virtualMachines.get('rg-restore', 'app-01-dr');
    expect(vm.location).toBe('northeurope');
    expect(vm.hardwareProfile?.vmSize).toBe('Standard_D4s_v5');
    expect(vm.storageProfile?.osDisk?.createOption).toBe('Attach');
    const nic = vm.networkProfile?.networkInterfaceConfigurations?.[0];
    expect(nic?.ipConfigurations?.[0]?.subnet?.id).toBe(subnet('rg-restore'));
    expect(vm.storageProfile?.osDisk?.name).toBe('app-01-dr-osdisk');
    expect(vm.storageProfile?.dataDisks?.map((d) => [d.lun, d.name])).toEqual([
      [0, 'app-01-dr-datadisk-0'],
    ]);
    expect(await sha256(sandbox.diskFilePath(diskId('rg-restore', 'app-01-dr-osdisk'))!)).toBe(
      backedUp.get('app-01_OsDisk_1'),
    );
    expect(await sha256(sandbox.diskFilePath(diskId('rg-restore', 'app-01-dr-datadisk-0'))!)).toBe(
      backedUp.get('app-01_DataDisk_0'),
    );

    const session = await database.db
      .selectFrom('job_sessions')
      .selectAll()
      .where('kind', '=', 'restore')
      .orderBy('started_at', 'desc')
      .executeTakeFirstOrThrow();
    expect(session.status).toBe('succeeded');
    const tasks = await database.db
      .selectFrom('job_tasks')
      .select(['subject_name', 'status'])
      .where('session_id', '=', session.id)
      .orderBy('subject_name')
      .execute();
    expect(tasks).toEqual([
      { subject_name: 'app-01-dr-datadisk-0', status: 'succeeded' },
      { subject_name: 'app-01-dr-osdisk', status: 'succeeded' },
    ]);
    const audit = await database.db
      .selectFrom('audit_log')
      .select('action')
      .where('resource', '=', `request/${row.id}`)
      .where('channel', '=', 'engine')
      .orderBy('seq')
      .execute();
    expect(audit.map((a) => a.action)).toEqual(['restore.start', 'restore.complete']);
    expect(notices.at(-1)).toMatchObject({ requestId: row.id, outcome: 'completed' });
    expect(notices.at(-1)!.message).toContain('app-01-dr');
  }, 120_000);

  it('refuses a VM name that exists before it creates anything', async () => {
    const before = await diskNames('rg-restore');
    const row = await approvedRestore('vm_restore', {
      vmName: 'app-01',
      newVmName: 'app-01-dr',
      resourceGroup: 'rg-restore',
      subnetId: subnet('rg-restore'),
    });

    expect(row.status).toBe('failed');
    expect(String(row.result?.message)).toContain(
      'A VM named app-01-dr already exists in resource group rg-restore; nothing was created.',
    );
    expect(await diskNames('rg-restore')).toEqual(before);
  }, 60_000);

  it('refuses a region outside the restore point’s geography', async () => {
    const before = await diskNames('rg-restore');
    const row = await approvedRestore('vm_restore', {
      vmName: 'app-01',
      newVmName: 'app-01-us',
      resourceGroup: 'rg-restore',
      region: 'eastus',
      subnetId: subnet('rg-restore'),
    });

    expect(row.status).toBe('failed');
    expect(String(row.result?.message)).toMatch(/stays in Europe; it cannot go to eastus/);
    expect(await diskNames('rg-restore')).toEqual(before);
  }, 60_000);
});

describe('restoring one disk of app-01 as a new disk', () => {
  it('writes the data disk into a new disk of rg-restore, through ARM throttling', async () => {
    const throttle = sandbox.faults.inject({
      method: 'PUT',
      pathPattern: /\/disks\//,
      status: 429,
      retryAfterSeconds: 1,
    });
    const row = await approvedRestore('disk_restore', {
      vmName: 'app-01',
      disks: [0],
      resourceGroup: 'rg-restore',
    });

    expect(row.status, JSON.stringify(row.result)).toBe('completed');
    const [faulted, retried] = throttle.hits();
    expect(retried!.at - faulted!.at).toBeGreaterThanOrEqual(900);
    const name = `app-01_DataDisk_0-restored-${row.id.slice(0, 8)}`;
    expect(row.result).toMatchObject({ disks: [name], resourceGroup: 'rg-restore' });
    expect(await sha256(sandbox.diskFilePath(diskId('rg-restore', name))!)).toBe(
      backedUp.get('app-01_DataDisk_0'),
    );
    const disk = await compute.disks.get('rg-restore', name);
    expect(disk.diskState).toBe('Unattached');
  }, 60_000);
});

describe('restoring app-01 over itself', () => {
  const changed = Buffer.alloc(MIB, 0x5a);

  it('puts the old disks back and deletes the new ones when the VM update fails', async () => {
    for (const disk of ['app-01_OsDisk_1', 'app-01_DataDisk_0'])
      await sandbox.writeDisk(diskId('rg-prod', disk), 0, changed);
    const failing = sandbox.faults.inject({
      method: 'PATCH',
      pathPattern: /\/virtualMachines\/app-01$/,
      operationFailed: { code: 'InternalOperationError', message: 'The disk swap failed.' },
    });

    const row = await approvedRestore('vm_restore', { vmName: 'app-01', replaceOriginal: true });

    expect(failing.hits()[0]).toMatchObject({ method: 'PATCH', faulted: true });
    expect(row.status).toBe('failed');
    expect(String(row.result?.message)).toContain('Swapping the restored disks into VM app-01');
    const vm = await compute.virtualMachines.get('rg-prod', 'app-01');
    expect(vm.storageProfile?.osDisk?.name).toBe('app-01_OsDisk_1');
    expect(vm.storageProfile?.dataDisks?.map((d) => d.name)).toEqual(['app-01_DataDisk_0']);
    expect(await powerState('rg-prod', 'app-01')).toBe('PowerState/running');
    expect((await diskNames('rg-prod')).filter((n) => n.includes('-restored-'))).toEqual([]);
    expect(row.result?.disksDeleted).toHaveLength(2);
  }, 120_000);

  it('swaps the restored disks in, keeps the old ones and names them', async () => {
    const row = await approvedRestore('vm_restore', { vmName: 'app-01', replaceOriginal: true });

    expect(row.status, JSON.stringify(row.result)).toBe('completed');
    const suffix = `-restored-${row.id.slice(0, 8)}`;
    expect(row.result?.keptDisks).toEqual(['app-01_OsDisk_1', 'app-01_DataDisk_0']);
    const vm = await compute.virtualMachines.get('rg-prod', 'app-01');
    expect(vm.storageProfile?.osDisk?.name).toBe(`app-01_OsDisk_1${suffix}`);
    expect(vm.storageProfile?.dataDisks?.map((d) => d.name)).toEqual([
      `app-01_DataDisk_0${suffix}`,
    ]);
    expect(await powerState('rg-prod', 'app-01')).toBe('PowerState/running');
    for (const disk of ['app-01_OsDisk_1', 'app-01_DataDisk_0']) {
      expect(await sha256(sandbox.diskFilePath(diskId('rg-prod', `${disk}${suffix}`))!)).toBe(
        backedUp.get(disk),
      );
      const old = await compute.disks.get('rg-prod', disk);
      expect(old.diskState).toBe('Unattached');
      const oldBytes = await fs.readFile(sandbox.diskFilePath(old.id!)!);
      expect(oldBytes.subarray(0, MIB).equals(changed)).toBe(true);
    }
    expect(notices.at(-1)!.message).toContain('app-01_OsDisk_1, app-01_DataDisk_0');
  }, 120_000);
});

describe('the engine’s own approval check', () => {
  it('refuses a VM restore marked approved without approvals, creating nothing', async () => {
    const request = await approvals.createRequest(requester, {
      kind: 'vm_restore',
      target: { vmName: 'app-01', newVmName: 'app-01-x', subnetId: subnet('rg-prod') },
      reason,
    });
    await database.db
      .updateTable('requests')
      .set({ status: 'approved' })
      .where('id', '=', request.id)
      .execute();
    const before = await diskNames('rg-prod');

    const error = await engine.runRestore(request.id).catch((e: unknown) => e);

    expect(isAcbaError(error, 'forbidden')).toBe(true);
    expect((error as Error).message).toMatch(/needs 1 approval/);
    expect(await diskNames('rg-prod')).toEqual(before);
    const last = await database.db
      .selectFrom('audit_log')
      .select(['action', 'outcome'])
      .where('resource', '=', `request/${request.id}`)
      .orderBy('seq', 'desc')
      .executeTakeFirstOrThrow();
    expect(last).toEqual({ action: 'restore.refuse', outcome: 'refused' });
  }, 60_000);
});

describe('an expired restore point', () => {
  it('is refused before anything is created', async () => {
    await database.db
      .updateTable('restore_points')
      .set({ expires_at: new Date(Date.now() - 60_000) })
      .where('item_id', '=', app01.id)
      .execute();
    const before = await diskNames('rg-prod');

    const row = await approvedRestore('disk_restore', { vmName: 'app-01', disks: ['os'] });

    expect(row.status).toBe('failed');
    expect(String(row.result?.message)).toMatch(/of app-01 expired on .* current restore point/);
    expect(await diskNames('rg-prod')).toEqual(before);
  }, 60_000);
});
