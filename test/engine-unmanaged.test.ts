// Backups of legacy-01, the sandbox's VM on unmanaged disks (VHD page blobs in
// a storage account), over HTTPS with the service's own storage token: the
// first backup stores each raw disk (the VHD footer left out) and reads back
// byte for byte; the next reads only the pages changed since the previous
// blob snapshot; a lost blob snapshot falls back to a full read; snapshot
// mode keeps blob snapshots in the storage account.
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { Writable } from 'node:stream';
import type { ComputeManagementClient } from '@azure/arm-compute';
import { ClientSecretCredential } from '@azure/identity';
import type { TokenCredential } from '@azure/identity';
import { AnonymousCredential, PageBlobClient } from '@azure/storage-blob';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ProtectedItem, RestorePoint } from '../core/db/schema.ts';
import { createComputeClient, createVhdBlobs } from '../engine/azure.ts';
import { DiskImage, LruCache } from '../engine/disk-image.ts';
import { createEngine, type Engine } from '../engine/engine.ts';
import { readManifest } from '../engine/repository/manifest.ts';
import { BLOCK_SIZE, Repository } from '../engine/repository/repository.ts';
import { expireRestorePoints } from '../engine/retention.ts';
import { startSandbox, type Sandbox } from '../sandbox/index.ts';
import { openTestDatabase, tempDir, type TestDatabase } from './support/database.ts';

const CONTAINER = 'acba-unmanaged';
const FOOTER = 512;
let sandbox: Sandbox;
let database: TestDatabase;
let engine: Engine;
let repository: Repository;
let compute: ComputeManagementClient;
let credential: ClientSecretCredential;
let dataDir: string;
let legacy: ProtectedItem;
let osVhd: string;
let dataVhd: string;
let vmJson: Record<string, any>;
const logs: Array<Record<string, unknown>> = [];

beforeAll(async () => {
  dataDir = await tempDir('acba-unmanaged-');
  sandbox = await startSandbox({
    dataDir,
    armPort: 0,
    blobPort: 0,
    imageCacheDir: 'test/.cache/images',
  });
  database = await openTestDatabase();
  const seeded = sandbox.seed.customers[0]!;
  const customer = await database.db
    .insertInto('customers')
    .values({
      id: seeded.id,
      name: seeded.name,
      tenant_id: seeded.tenantId,
      subscription_id: seeded.subscriptionId,
    })
    .returningAll()
    .executeTakeFirstOrThrow();

  credential = new ClientSecretCredential(
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

  legacy = (await engine.syncInventory(customer)).find((i) => i.name === 'legacy-01')!;
  await compute.virtualMachines.get(seeded.resourceGroup, 'legacy-01', {
    onResponse: (response) => (vmJson = JSON.parse(response.bodyAsText!)),
  });
  osVhd = vmJson.properties.storageProfile.osDisk.vhd.uri;
  dataVhd = vmJson.properties.storageProfile.dataDisks[0].vhd.uri;
}, 300_000);

afterAll(async () => {
  await engine?.close();
  await database?.dispose();
  await sandbox?.close();
  if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
});

const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** A disk of a restore point reassembled from its manifest's blocks. */
async function restoredDisk(point: RestorePoint, index: number): Promise<Buffer> {
  const manifest = await readManifest(repository, point);
  const disk = manifest.disks[index]!;
  return new DiskImage(repository, disk, BLOCK_SIZE, new LruCache(4)).read(0, disk.sizeBytes);
}

/** The VHD's disk as the VM sees it: the page blob without its footer. */
async function currentDisk(vhdUrl: string): Promise<Buffer> {
  const vhd = await fs.readFile(sandbox.diskFilePath(vhdUrl)!);
  return vhd.subarray(0, vhd.length - FOOTER);
}

async function backup(): Promise<{ point: RestorePoint; bytesRead: number }> {
  const before = sandbox.diskBytesServed();
  const point = await engine.backupVm(legacy.id, 'test');
  return { point, bytesRead: sandbox.diskBytesServed() - before };
}

const fullReads = (from: number) =>
  logs
    .slice(from)
    .filter((l) => l.msg === 'disk_full_read')
    .map((l) => `${l.disk}: ${l.reason}`);

const snapshotIdOf = (vhdUrl: string, time: string) =>
  `${vhdUrl}?snapshot=${encodeURIComponent(time)}`;

let first: { point: RestorePoint; bytesRead: number };
let second: { point: RestorePoint; bytesRead: number };

describe('legacy-01 on unmanaged disks', () => {
  it('is described by ARM with VHD URIs in a storage account, like Azure describes such VMs', () => {
    const { osDisk, dataDisks } = vmJson.properties.storageProfile;
    expect(osDisk).not.toHaveProperty('managedDisk');
    expect(osDisk.vhd.uri).toMatch(/\/contosolegacyvhds\/vhds\/legacy-01-os\.vhd$/);
    expect(dataDisks).toMatchObject([{ lun: 0, vhd: { uri: expect.stringMatching(/\.vhd$/) } }]);
    expect(dataDisks[0]).not.toHaveProperty('managedDisk');
  });

  it('the first backup reads each VHD in full and stores the raw disk, which reads back byte for byte', async () => {
    await sandbox.writeDisk(osVhd, 8 * BLOCK_SIZE, randomBytes(6 * BLOCK_SIZE));
    await sandbox.writeDisk(dataVhd, 2 * BLOCK_SIZE + 4096, randomBytes(BLOCK_SIZE));
    const mark = logs.length;

    first = await backup();

    expect(fullReads(mark)).toEqual([
      'legacy-01-os: no_kept_snapshot',
      'legacy-01-data-0: no_kept_snapshot',
    ]);
    for (const [index, vhd] of [osVhd, dataVhd].entries()) {
      const disk = await currentDisk(vhd);
      const restored = await restoredDisk(first.point, index);
      expect(restored).toHaveLength(disk.length);
      expect(sha(restored)).toBe(sha(disk));
    }
    const manifest = await readManifest(repository, first.point);
    expect(manifest.disks.map((d) => d.resourceId)).toEqual([osVhd, dataVhd]);
    // One blob snapshot per VHD is kept in the storage account as the next backup's base.
    const rows = await database.db.selectFrom('disk_snapshots').selectAll().execute();
    expect(rows.map((r) => r.snapshot_resource_id).sort()).toEqual(
      [
        snapshotIdOf(osVhd, sandbox.vhdSnapshots(osVhd)[0]!),
        snapshotIdOf(dataVhd, sandbox.vhdSnapshots(dataVhd)[0]!),
      ].sort(),
    );
    expect(sandbox.vhdSnapshots(osVhd)).toHaveLength(1);
  });

  it('after a few pages change, the next backup reads only the changed ranges and restores the changed disk byte for byte', async () => {
    const before = await currentDisk(osVhd);
    const changes: Array<[number, number]> = [
      [3 * BLOCK_SIZE + 512, 8192],
      [10 * BLOCK_SIZE, 64 * 1024],
      [20 * BLOCK_SIZE - 4096, 8192],
    ];
    for (const [offset, length] of changes)
      await sandbox.writeDisk(osVhd, offset, randomBytes(length));
    const changedBytes = changes.reduce((sum, [, length]) => sum + length, 0);
    const previousSnapshot = sandbox.vhdSnapshots(osVhd)[0]!;
    const mark = logs.length;

    second = await backup();

    expect(fullReads(mark)).toEqual([]);
    // The changed pages, and each VHD's footer, checked when the snapshot is opened.
    expect(second.bytesRead).toBeGreaterThanOrEqual(changedBytes);
    expect(second.bytesRead).toBeLessThanOrEqual(changedBytes + 2 * FOOTER);
    expect(sha(await restoredDisk(second.point, 0))).toBe(sha(await currentDisk(osVhd)));
    expect(sha(await restoredDisk(second.point, 1))).toBe(sha(await currentDisk(dataVhd)));
    expect(sha(await restoredDisk(first.point, 0))).toBe(sha(before));
    // The older blob snapshot went; the new one stays for the next backup.
    expect(sandbox.vhdSnapshots(osVhd)).toHaveLength(1);
    expect(sandbox.vhdSnapshots(osVhd)[0]).not.toBe(previousSnapshot);
  });

  it('when the kept blob snapshot was deleted, the next backup reads that disk in full, says why, and yields the same bytes', async () => {
    const kept = sandbox.vhdSnapshots(osVhd)[0]!;
    await new PageBlobClient(osVhd, credential).withSnapshot(kept).delete();
    await sandbox.writeDisk(osVhd, 12 * BLOCK_SIZE, randomBytes(4096));
    const mark = logs.length;

    const third = await backup();

    expect(fullReads(mark)).toEqual(['legacy-01-os: previous_snapshot_gone']);
    expect(third.bytesRead).toBeGreaterThan(6 * BLOCK_SIZE);
    expect(sha(await restoredDisk(third.point, 0))).toBe(sha(await currentDisk(osVhd)));
    expect(sandbox.vhdSnapshots(osVhd)).toHaveLength(1);
  });

  it('snapshot mode keeps a blob snapshot of each VHD in the storage account as a restore point', async () => {
    const before = { os: sandbox.vhdSnapshots(osVhd), data: sandbox.vhdSnapshots(dataVhd) };

    const point = await engine.backupVm(legacy.id, 'test', { protection: 'snapshots' });

    expect(point.type).toBe('snapshot');
    const added = sandbox.vhdSnapshots(osVhd).filter((s) => !before.os.includes(s));
    expect(added).toHaveLength(1);
    expect(sandbox.vhdSnapshots(dataVhd).filter((s) => !before.data.includes(s))).toHaveLength(1);
    const snapshot = new PageBlobClient(osVhd, credential).withSnapshot(added[0]!);
    const properties = await snapshot.getProperties();
    expect(properties.metadata).toEqual({ acbasnapshot: `acba-${point.id}-0` });
    expect(point.disks[0]!.sizeBytes).toBe((properties.contentLength ?? 0) - FOOTER);
    const row = await database.db
      .selectFrom('disk_snapshots')
      .selectAll()
      .where('snapshot_point_id', '=', point.id)
      .where('disk_role', '=', 'os')
      .executeTakeFirstOrThrow();
    expect(row.snapshot_resource_id).toBe(snapshotIdOf(osVhd, added[0]!));
    // Nothing went to the resource group: unmanaged disks have no snapshot resources.
    const resources = [];
    for await (const s of compute.snapshots.list()) resources.push(s.name);
    expect(resources).toEqual([]);
  });

  it('when the newest backup expires, retention deletes its blob snapshots and keeps those of the snapshot restore point', async () => {
    const snapshotPoint = await database.db
      .selectFrom('disk_snapshots')
      .select('snapshot_resource_id')
      .where('snapshot_point_id', 'is not', null)
      .execute();
    const newest = await database.db
      .selectFrom('restore_points')
      .selectAll()
      .where('type', '=', 'backup')
      .orderBy('created_at', 'desc')
      .executeTakeFirstOrThrow();
    await database.db
      .updateTable('restore_points')
      .set({ expires_at: new Date(Date.now() - 1000) })
      .where('id', '=', newest.id)
      .execute();

    const expired = await expireRestorePoints({
      db: database.db,
      repository,
      log: pino({ level: 'silent' }),
      compute: () => compute,
      vhdBlobs: createVhdBlobs({ credential, resourceManagerUrl: sandbox.armUrl }),
      pollIntervalMs: 50,
    });

    expect(expired).toEqual([newest.id]);
    const left = [osVhd, dataVhd].flatMap((vhd) =>
      sandbox.vhdSnapshots(vhd).map((time) => snapshotIdOf(vhd, time)),
    );
    expect(left.sort()).toEqual(snapshotPoint.map((r) => r.snapshot_resource_id).sort());
  });

  it("the storage account refuses callers without a storage token, and nobody deletes the VM's own VHD", async () => {
    const anonymous = new PageBlobClient(osVhd, new AnonymousCredential());
    await expect(anonymous.getProperties()).rejects.toMatchObject({ statusCode: 401 });
    const armToken: TokenCredential = {
      getToken: () => credential.getToken('https://management.azure.com/.default'),
    };
    await expect(new PageBlobClient(osVhd, armToken).getProperties()).rejects.toMatchObject({
      statusCode: 401,
    });
    await expect(new PageBlobClient(osVhd, credential).delete()).rejects.toMatchObject({
      statusCode: 412,
      code: 'LeaseIdMissing',
    });
    const properties = await new PageBlobClient(osVhd, credential).getProperties();
    expect(properties).toMatchObject({ blobType: 'PageBlob', leaseState: 'leased' });
  });

  it('the service sends its storage token only to Azure blob endpoints over https, or the sandbox', () => {
    const vhdBlobs = createVhdBlobs({ credential, resourceManagerUrl: sandbox.armUrl });
    expect(vhdBlobs(osVhd).url).toBe(osVhd);
    expect(vhdBlobs('https://contoso.blob.core.windows.net/vhds/a.vhd').url).toContain('contoso');
    expect(() => vhdBlobs('http://contoso.blob.core.windows.net/vhds/a.vhd')).toThrow(
      /not on an Azure blob endpoint over https/,
    );
    expect(() => vhdBlobs('https://attacker.example/vhds/a.vhd')).toThrow(
      /not on an Azure blob endpoint/,
    );
  });
});
