// Incremental backups against the sandbox over HTTPS: the second backup of
// web-01 reads only the blocks changed since the first, yet its restore point
// holds the changed disk byte for byte; a lost snapshot chain and a pruned
// previous backup fall back to a full read with the same result, and
// retention releases kept snapshots without losing blocks still referenced.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { ComputeManagementClient } from '@azure/arm-compute';
import { ClientSecretCredential } from '@azure/identity';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Customer, ProtectedItem, RestorePoint } from '../core/db/schema.ts';
import { createComputeClient } from '../engine/azure.ts';
import { DiskImage, LruCache } from '../engine/disk-image.ts';
import { createEngine, type Engine } from '../engine/engine.ts';
import { readManifest } from '../engine/repository/manifest.ts';
import { BLOCK_SIZE, Repository } from '../engine/repository/repository.ts';
import { expireRestorePoints, prune } from '../engine/retention.ts';
import { startSandbox, type Sandbox } from '../sandbox/index.ts';
import { openTestDatabase, tempDir, type TestDatabase } from './support/database.ts';

const CONTAINER = 'acba-incremental';
let sandbox: Sandbox;
let database: TestDatabase;
let engine: Engine;
let repository: Repository;
let compute: ComputeManagementClient;
let dataDir: string;
let customer: Customer;
let web01: ProtectedItem;
let diskId: string;
const logs: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  dataDir = await tempDir('acba-incremental-');
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
  const log = pino(
    { level: 'info' },
    new Writable({
      write(chunk, _encoding, done) {
        logs.push(JSON.parse(String(chunk)));
        done();
      },
    }),
  );
  engine = await createEngine({
    db: database.db,
    log,
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

  web01 = (await engine.syncInventory(customer)).find((i) => i.name === 'web-01')!;
  const vm = sandbox.seed.customers[0]!.vms.find((v) => v.name === 'web-01')!;
  const { storageProfile } = await compute.virtualMachines.get(seeded.resourceGroup, 'web-01');
  expect(vm.resourceId).toBe(web01.resource_id);
  diskId = storageProfile!.osDisk!.managedDisk!.id!;
}, 300_000);

afterAll(async () => {
  await engine?.close();
  await database?.dispose();
  await sandbox?.close();
  if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
});

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** The restore point's OS disk reassembled from its manifest's blocks. */
async function restoredDisk(point: RestorePoint): Promise<Buffer> {
  const manifest = await readManifest(repository, point);
  const disk = manifest.disks[0]!;
  return new DiskImage(repository, disk, BLOCK_SIZE, new LruCache(4)).read(0, disk.sizeBytes);
}

async function currentDisk(): Promise<Buffer> {
  return fs.readFile(sandbox.diskFilePath(diskId)!);
}

/** Backs up web-01 and returns the restore point with the disk bytes the sandbox served meanwhile. */
async function backup(): Promise<{ point: RestorePoint; bytesRead: number }> {
  const before = sandbox.diskBytesServed();
  const point = await engine.backupVm(web01.id, 'test');
  return { point, bytesRead: sandbox.diskBytesServed() - before };
}

async function keptSnapshots(): Promise<string[]> {
  const names: string[] = [];
  for await (const s of compute.snapshots.listByResourceGroup(
    sandbox.seed.customers[0]!.resourceGroup,
  ))
    if (s.name?.startsWith('acba-')) names.push(s.name);
  return names.sort();
}

/** The reasons the engine logged for reading a disk in full, since `from`. */
const fullReadReasons = (from: number) =>
  logs
    .slice(from)
    .filter((l) => l.msg === 'disk_full_read')
    .map((l) => l.reason);

let first: { point: RestorePoint; bytesRead: number };
let second: { point: RestorePoint; bytesRead: number };

describe('incremental backups of web-01', () => {
  it('the first backup reads every written block and keeps its snapshot for the next one', async () => {
    // A disk in use: 40 MiB of data besides the file system's own.
    await sandbox.writeDisk(diskId, 12 * BLOCK_SIZE, randomBytes(40 * BLOCK_SIZE));
    const mark = logs.length;
    first = await backup();

    expect(fullReadReasons(mark)).toEqual(['no_kept_snapshot']);
    expect(first.bytesRead).toBeGreaterThan(40 * BLOCK_SIZE);
    expect(await keptSnapshots()).toEqual([`acba-${first.point.id}-0`]);
    const rows = await database.db.selectFrom('disk_snapshots').selectAll().execute();
    expect(rows).toMatchObject([{ item_id: web01.id, backup_point_id: first.point.id }]);
    expect(sha(await restoredDisk(first.point))).toBe(sha(await currentDisk()));
  });

  it('after a few MiB change, the next backup reads only the changed blocks and restores the changed disk byte for byte', async () => {
    const original = await currentDisk();
    // New data across three blocks, a small write inside one more, and a written block cleared.
    const written = Array.from({ length: original.length / BLOCK_SIZE }, (_, i) => i).filter((i) =>
      original.subarray(i * BLOCK_SIZE, (i + 1) * BLOCK_SIZE).some((b) => b !== 0),
    );
    const cleared = written.at(-1)!;
    await sandbox.writeDisk(diskId, 40 * BLOCK_SIZE + 4096, randomBytes(3 * BLOCK_SIZE - 8192));
    await sandbox.writeDisk(diskId, 50 * BLOCK_SIZE + 7, randomBytes(1000));
    await sandbox.writeDisk(diskId, cleared * BLOCK_SIZE, Buffer.alloc(BLOCK_SIZE));
    const changed = await currentDisk();
    expect(sha(changed)).not.toBe(sha(original));

    const mark = logs.length;
    second = await backup();

    expect(fullReadReasons(mark)).toEqual([]);
    expect(second.bytesRead).toBeLessThanOrEqual(3 * BLOCK_SIZE);
    expect(second.bytesRead).toBeLessThan(first.bytesRead / 10);
    console.info(
      `web-01: first backup read ${first.bytesRead} bytes, the incremental one ${second.bytesRead}`,
    );

    expect(sha(await restoredDisk(second.point))).toBe(sha(changed));
    const manifest = await readManifest(repository, second.point);
    expect(manifest.disks[0]!.blocks[cleared]).toBeNull();
    // The first restore point still holds the disk as it was.
    expect(sha(await restoredDisk(first.point))).toBe(sha(original));
    // The older snapshot went; the new one is kept for the next backup.
    expect(await keptSnapshots()).toEqual([`acba-${second.point.id}-0`]);
  });

  it('when someone deleted the kept snapshot (a lost chain), the next backup reads in full, says why, and yields the same bytes', async () => {
    const rg = sandbox.seed.customers[0]!.resourceGroup;
    await compute.snapshots.beginDeleteAndWait(rg, `acba-${second.point.id}-0`, {
      updateIntervalInMs: 50,
    });
    await sandbox.writeDisk(diskId, 30 * BLOCK_SIZE, randomBytes(BLOCK_SIZE));

    const mark = logs.length;
    const third = await backup();

    expect(fullReadReasons(mark)).toEqual(['previous_snapshot_gone']);
    expect(third.bytesRead).toBeGreaterThan(second.bytesRead * 2);
    expect(sha(await restoredDisk(third.point))).toBe(sha(await currentDisk()));
    expect(await keptSnapshots()).toEqual([`acba-${third.point.id}-0`]);

    // And the chain starts again from here.
    await sandbox.writeDisk(diskId, 31 * BLOCK_SIZE, randomBytes(512));
    const fourth = await backup();
    expect(fourth.bytesRead).toBeLessThanOrEqual(4096);
    expect(sha(await restoredDisk(fourth.point))).toBe(sha(await currentDisk()));
  });

  it('when the previous backup was pruned, its kept snapshot goes with it and the next backup reads in full with the same bytes', async () => {
    const points = await database.db
      .selectFrom('restore_points')
      .selectAll()
      .orderBy('created_at', 'desc')
      .execute();
    const newest = points[0]!;
    const older = points.slice(1);
    await database.db
      .updateTable('restore_points')
      .set({ expires_at: new Date(Date.now() - 1000) })
      .where('id', '=', newest.id)
      .execute();
    const deps = {
      db: database.db,
      repository,
      log: pino({ level: 'silent' }),
      compute: () => compute,
      pollIntervalMs: 50,
    };

    expect(await expireRestorePoints(deps)).toEqual([newest.id]);
    expect(await keptSnapshots()).toEqual([]);
    expect(await database.db.selectFrom('disk_snapshots').selectAll().execute()).toEqual([]);
    expect((await prune(deps)).ran).toBe(true);
    // Blocks the older restore points share with the pruned one are still there.
    for (const point of older.slice(0, 2))
      await expect(restoredDisk(point)).resolves.toHaveLength(64 * BLOCK_SIZE);

    await sandbox.writeDisk(diskId, 32 * BLOCK_SIZE, randomBytes(4096));
    const mark = logs.length;
    const next = await backup();

    expect(fullReadReasons(mark)).toEqual(['no_kept_snapshot']);
    expect(sha(await restoredDisk(next.point))).toBe(sha(await currentDisk()));
    expect(await keptSnapshots()).toEqual([`acba-${next.point.id}-0`]);
  });

  it('after the disk grew, the next backup reads in full, says why, and restores the larger disk byte for byte', async () => {
    await sandbox.resizeDisk(diskId, 80 * BLOCK_SIZE);
    await sandbox.writeDisk(diskId, 70 * BLOCK_SIZE, randomBytes(BLOCK_SIZE));
    const mark = logs.length;

    const grown = await backup();

    expect(fullReadReasons(mark)).toEqual(['disk_resized']);
    const disk = await restoredDisk(grown.point);
    expect(disk).toHaveLength(80 * BLOCK_SIZE);
    expect(sha(disk)).toBe(sha(await currentDisk()));
  });
});
