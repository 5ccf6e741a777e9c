// The engine against the sandbox over HTTPS: inventory, a backup of web-01,
// its disk served back as a byte-range resource, and file restores that the
// engine runs only with a valid written approval.
import { execFile } from 'node:child_process';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { ClientSecretCredential } from '@azure/identity';
import { BlobServiceClient } from '@azure/storage-blob';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type {
  Customer,
  FileRestoreTarget,
  ProtectedItem,
  RestorePoint,
  RestorePointDisk,
} from '../core/db/schema.ts';
import { isAcbaError } from '../core/errors.ts';
import { silentLogger } from '../core/log.ts';
import { requestContentHash } from '../core/request-hash.ts';
import { LinkSigner } from '../core/signing.ts';
import { createComputeClient } from '../engine/azure.ts';
import { createEngine, type Engine, type EngineOptions } from '../engine/engine.ts';
import type { RestoreFinished } from '../engine/notices.ts';
import { startSandbox, type Sandbox } from '../sandbox/index.ts';
import { openTestDatabase, tempDir, type TestDatabase } from './support/database.ts';

let sandbox: Sandbox;
let database: TestDatabase;
let engine: Engine;
let server: ReturnType<express.Express['listen']>;
let baseUrl: string;
let dataDir: string;
let customer: Customer;
const signer = new LinkSigner(randomBytes(32));
const kek = randomBytes(32);
const notices: RestoreFinished[] = [];
const credential = () =>
  new ClientSecretCredential(
    sandbox.servicePrincipal.tenantId,
    sandbox.servicePrincipal.clientId,
    sandbox.servicePrincipal.clientSecret,
    { authorityHost: sandbox.authorityHost, disableInstanceDiscovery: true },
  );

function engineOptions(repository: Partial<EngineOptions['repository']> = {}): EngineOptions {
  return {
    db: database.db,
    log: silentLogger,
    credential: credential(),
    resourceManagerUrl: sandbox.armUrl,
    repository: {
      connectionString: sandbox.repositoryConnectionString,
      container: 'acba-repository',
      kek,
      ...repository,
    },
    signer,
    publicUrl: baseUrl,
    diskResourceUrl: `${baseUrl}/engine`,
    downloadLinkMinutes: 60,
    notices: { restoreFinished: async (event) => void notices.push(event) },
    workDir: path.join(dataDir, 'work'),
    azurePollIntervalMs: 50,
  };
}

beforeAll(async () => {
  dataDir = await tempDir('acba-engine-');
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
  await database.db
    .insertInto('principals')
    .values(
      sandbox.seed.users.map((u) => ({
        tenant_id: u.tenantId,
        object_id: u.objectId,
        display_name: u.displayName,
        role: u.role,
      })),
    )
    .execute();

  const app = express();
  server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

  engine = await createEngine(engineOptions());
  app.use('/engine', engine.diskRouter());
  app.use('/downloads', engine.downloadRouter());
});

afterAll(async () => {
  await engine?.close();
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await database?.dispose();
  await sandbox?.close();
  if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
});

let web01: ProtectedItem;
let restorePoint: RestorePoint;

describe('backing up web-01', () => {
  it('syncs the inventory from ARM with stable item ids', async () => {
    const items = await engine.syncInventory(customer);
    expect(items.map((i) => i.name).sort()).toEqual(['legacy-01', 'web-01', 'win-01']);

    const again = await engine.syncInventory(customer);
    expect(again.map((i) => i.id).sort()).toEqual(items.map((i) => i.id).sort());
    web01 = items.find((i) => i.name === 'web-01')!;
    expect(web01.resource_id).toBe(
      sandbox.seed.customers[0]!.vms.find((v) => v.name === 'web-01')!.resourceId,
    );
  });

  it('takes a restore point and keeps one snapshot per disk for the next backup', async () => {
    const started = Date.now();
    restorePoint = await engine.backupVm(web01.id, 'test');
    const seconds = (Date.now() - started) / 1000;

    const disks = restorePoint.disks as unknown as RestorePointDisk[];
    console.info(
      `web-01 backup: ${seconds.toFixed(1)} s, ${restorePoint.size_bytes} bytes raw, ${restorePoint.stored_bytes} bytes stored, disks ${JSON.stringify(disks)}`,
    );
    expect(disks[0]!.role).toBe('os');
    expect(Number(restorePoint.stored_bytes)).toBeGreaterThan(0);
    expect(Number(restorePoint.stored_bytes)).toBeLessThan(Number(restorePoint.size_bytes) / 4);

    const seeded = sandbox.seed.customers[0]!;
    const compute = createComputeClient({
      credential: credential(),
      subscriptionId: seeded.subscriptionId,
      endpoint: sandbox.armUrl,
    });
    const snapshots: string[] = [];
    for await (const s of compute.snapshots.listByResourceGroup(seeded.resourceGroup))
      snapshots.push(s.name!);
    expect(snapshots.filter((n) => n.startsWith('acba-'))).toEqual([`acba-${restorePoint.id}-0`]);

    const audit = await database.db
      .selectFrom('audit_log')
      .select(['action', 'details'])
      .where('channel', '=', 'engine')
      .orderBy('seq')
      .execute();
    expect(audit.map((a) => a.action)).toEqual(['backup.start', 'backup.finish']);
    expect(audit[1]!.details).toMatchObject({
      customerId: 'contoso',
      restorePointId: restorePoint.id,
    });
  });

  it('a second backup of unchanged disks stores almost nothing (deduplication)', async () => {
    const second = await engine.backupVm(web01.id, 'test');
    console.info(`web-01 second backup: ${second.stored_bytes} bytes stored`);
    expect(Number(second.stored_bytes)).toBeLessThan(Number(restorePoint.stored_bytes) / 10);
  });

  it('a backup that fails leaves no new snapshot and no restore point behind', async () => {
    const failing = await createEngine(engineOptions({ container: 'acba-vanishing' }));
    await failing.health();
    await BlobServiceClient.fromConnectionString(sandbox.repositoryConnectionString)
      .getContainerClient('acba-vanishing')
      .delete();
    const before = await database.db.selectFrom('restore_points').select('id').execute();
    const seeded = sandbox.seed.customers[0]!;
    const compute = createComputeClient({
      credential: credential(),
      subscriptionId: seeded.subscriptionId,
      endpoint: sandbox.armUrl,
    });
    const snapshotNames = async () => {
      const names: string[] = [];
      for await (const s of compute.snapshots.listByResourceGroup(seeded.resourceGroup))
        names.push(s.name!);
      return names.sort();
    };
    const snapshotsBefore = await snapshotNames();

    await expect(failing.backupVm(web01.id, 'test')).rejects.toThrow();

    expect(await database.db.selectFrom('restore_points').select('id').execute()).toEqual(before);
    expect(await snapshotNames()).toEqual(snapshotsBefore);
    const last = await database.db
      .selectFrom('audit_log')
      .selectAll()
      .orderBy('seq', 'desc')
      .limit(1)
      .executeTakeFirstOrThrow();
    expect(last).toMatchObject({
      action: 'backup.fail',
      outcome: 'failed',
      resource: 'vm/contoso/web-01',
    });
  });

  it('serves the disk as a byte-range resource with the same bytes as the sandbox disk', async () => {
    const disks = restorePoint.disks as unknown as RestorePointDisk[];
    const seeded = sandbox.seed.customers[0]!;
    const diskId = `/subscriptions/${seeded.subscriptionId}/resourceGroups/${seeded.resourceGroup}/providers/Microsoft.Compute/disks/${disks[0]!.name}`;
    const original = await fs.readFile(sandbox.diskFilePath(diskId)!);
    const token = signer.sign({
      purpose: 'disk',
      subject: `${restorePoint.id}/0`,
      expiresAt: Date.now() + 60_000,
    });
    const url = `${baseUrl}/engine/disks/${token}/disk.raw`;

    const head = await fetch(url, { method: 'HEAD' });
    expect(head.status).toBe(200);
    expect(head.headers.get('accept-ranges')).toBe('bytes');
    expect(Number(head.headers.get('content-length'))).toBe(original.length);

    const whole = Buffer.from(await (await fetch(url)).arrayBuffer());
    expect(whole.length).toBe(original.length);
    expect(createHash('sha256').update(whole).digest('hex')).toBe(
      createHash('sha256').update(original).digest('hex'),
    );

    const start = 1024 * 1024 - 100;
    const ranged = await fetch(url, { headers: { Range: `bytes=${start}-${start + 4095}` } });
    expect(ranged.status).toBe(206);
    expect(ranged.headers.get('content-range')).toBe(
      `bytes ${start}-${start + 4095}/${original.length}`,
    );
    expect(
      Buffer.from(await ranged.arrayBuffer()).equals(original.subarray(start, start + 4096)),
    ).toBe(true);

    expect((await fetch(url, { headers: { Range: `bytes=${original.length}-` } })).status).toBe(
      416,
    );
    expect((await fetch(`${baseUrl}/engine/disks/${token}x/disk.raw`)).status).toBe(403);
    const expired = signer.sign({
      purpose: 'disk',
      subject: `${restorePoint.id}/0`,
      expiresAt: Date.now() - 1,
    });
    expect((await fetch(`${baseUrl}/engine/disks/${expired}/disk.raw`)).status).toBe(403);
  });
});

describe('health', () => {
  it('answers when the repository does, and names the repository when it does not', async () => {
    await expect(engine.health()).resolves.toBeUndefined();

    const broken = await createEngine(
      engineOptions({
        connectionString:
          'DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=AAAA;BlobEndpoint=http://127.0.0.1:1/devstoreaccount1;',
      }),
    );
    const error = await broken.health().catch((e) => e);
    expect(isAcbaError(error, 'unavailable')).toBe(true);
    expect(error.message).toMatch(/^repository acba-repository /);
  });
});

describe('file restore', () => {
  const users = () => sandbox.seed.users;
  const requester = () => users().find((u) => u.role === 'requester')!;
  const approver = () => users().find((u) => u.role === 'approver')!;

  async function insertRequest(
    options: {
      status?: 'approved' | 'pending';
      path?: string;
      item?: ProtectedItem;
      restorePoint?: RestorePoint;
    } = {},
  ) {
    const id = randomUUID();
    const rp = options.restorePoint ?? restorePoint;
    const target: FileRestoreTarget = {
      itemId: (options.item ?? web01).id,
      vmName: (options.item ?? web01).name,
      path: options.path ?? '/etc/nginx/nginx.conf',
      restorePointId: rp.id,
      restorePointTime: rp.created_at.toISOString(),
    };
    const reason =
      'The nginx configuration was overwritten by a bad deploy; we need yesterday’s copy.';
    const contentHash = requestContentHash({
      id,
      customerId: customer.id,
      kind: 'file_restore',
      target,
      reason,
      requesterObjectId: requester().objectId,
      requesterTenantId: requester().tenantId,
    });
    await database.db
      .insertInto('requests')
      .values({
        id,
        customer_id: customer.id,
        kind: 'file_restore',
        status: options.status ?? 'approved',
        target: JSON.stringify(target),
        reason,
        requester_object_id: requester().objectId,
        requester_tenant_id: requester().tenantId,
        requester_name: requester().displayName,
        content_hash: contentHash,
        approvals_required: 1,
        expires_at: new Date(Date.now() + 86400_000),
      })
      .execute();
    return { id, contentHash };
  }

  async function approve(requestId: string, requestHash: string) {
    await database.db
      .insertInto('decisions')
      .values({
        id: randomUUID(),
        request_id: requestId,
        decision: 'approve',
        comment: 'Checked with the customer by phone.',
        approver_object_id: approver().objectId,
        approver_tenant_id: approver().tenantId,
        approver_name: approver().displayName,
        request_hash: requestHash,
      })
      .execute();
  }

  const requestRow = (id: string) =>
    database.db.selectFrom('requests').selectAll().where('id', '=', id).executeTakeFirstOrThrow();
  const lastAudit = async () =>
    database.db
      .selectFrom('audit_log')
      .selectAll()
      .orderBy('seq', 'desc')
      .limit(1)
      .executeTakeFirstOrThrow();

  it('refuses an approved request that has no approval decision, and closes it', async () => {
    const { id } = await insertRequest();
    const error = await engine.runFileRestore(id).catch((e) => e);

    expect(isAcbaError(error, 'forbidden')).toBe(true);
    expect(error.message).toMatch(/needs 1 approval/);
    expect((await requestRow(id)).status).toBe('failed');
    expect(await lastAudit()).toMatchObject({
      action: 'restore.refuse',
      outcome: 'refused',
      resource: `request/${id}`,
    });
  });

  it('refuses a request still pending, and leaves it pending', async () => {
    const { id, contentHash } = await insertRequest({ status: 'pending' });
    await approve(id, contentHash);
    const error = await engine.runFileRestore(id).catch((e) => e);

    expect(isAcbaError(error, 'forbidden')).toBe(true);
    expect((await requestRow(id)).status).toBe('pending');
  });

  it('refuses when the approval was given on different content', async () => {
    const { id } = await insertRequest();
    await approve(id, createHash('sha256').update('another version of the request').digest('hex'));
    const error = await engine.runFileRestore(id).catch((e) => e);

    expect(isAcbaError(error, 'forbidden')).toBe(true);
    expect((await lastAudit()).action).toBe('restore.refuse');
  });

  it('refuses when the request was edited after approval', async () => {
    const { id, contentHash } = await insertRequest();
    await approve(id, contentHash);
    await database.db
      .updateTable('requests')
      .set({ reason: 'something else entirely' })
      .where('id', '=', id)
      .execute();
    const error = await engine.runFileRestore(id).catch((e) => e);

    expect(isAcbaError(error, 'forbidden')).toBe(true);
    expect(error.message).toMatch(/changed after it was written/);
  });

  it('recovers /etc/nginx/nginx.conf with a valid approval once, even when two workers run the job at once, and delivers it through a signed link', async () => {
    const { id, contentHash } = await insertRequest();
    await approve(id, contentHash);

    // Two workers take the same job at once: the state check in the UPDATE lets one restore.
    await Promise.all([engine.runFileRestore(id), engine.runFileRestore(id)]);
    await engine.runFileRestore(id); // and a late retry does nothing

    const row = await requestRow(id);
    expect(row.status).toBe('completed');
    const result = row.result as {
      deliveryId: string;
      fileName: string;
      sizeBytes: number;
      sha256: string;
    };
    expect(result.fileName).toBe('nginx.conf');
    expect(
      await database.db
        .selectFrom('deliveries')
        .select('id')
        .where('request_id', '=', id)
        .execute(),
    ).toHaveLength(1);

    const notice = notices.find((n) => n.requestId === id)!;
    expect(notice.outcome).toBe('completed');
    const response = await fetch(notice.downloadUrl!);
    expect(response.status).toBe(200);
    expect(response.headers.get('content-disposition')).toMatch(
      /^attachment; filename="?nginx\.conf"?$/,
    );
    const body = Buffer.from(await response.arrayBuffer());
    expect(createHash('sha256').update(body).digest('hex')).toBe(result.sha256);

    // The bytes that left count as Contoso's egress of the day, recorded once the response is out.
    const egress = async () =>
      Number(
        (
          await database.db
            .selectFrom('usage_daily')
            .select('egress_bytes')
            .where('customer_id', '=', 'contoso')
            .executeTakeFirst()
        )?.egress_bytes ?? 0,
      );
    for (let i = 0; i < 50 && (await egress()) < body.length; i++)
      await new Promise((resolve) => setTimeout(resolve, 100));
    expect(await egress()).toBe(body.length);

    // The same file read straight from the sandbox's disk image.
    const disks = restorePoint.disks as unknown as RestorePointDisk[];
    const seeded = sandbox.seed.customers[0]!;
    const file = sandbox.diskFilePath(
      `/subscriptions/${seeded.subscriptionId}/resourceGroups/${seeded.resourceGroup}/providers/Microsoft.Compute/disks/${disks[0]!.name}`,
    )!;
    const { stdout } = await promisify(execFile)(
      'guestfish',
      [
        '--ro',
        '-a',
        file,
        'run',
        ':',
        'mount-ro',
        '/dev/sda1',
        '/',
        ':',
        'download',
        '/etc/nginx/nginx.conf',
        '-',
      ],
      {
        env: {
          ...process.env,
          LIBGUESTFS_BACKEND: 'direct',
          LIBGUESTFS_BACKEND_SETTINGS: 'force_tcg',
        },
      },
    );
    expect(body.toString('utf8')).toBe(stdout);
    expect(body.toString('utf8')).toContain('user www-data;');

    const audit = await database.db
      .selectFrom('audit_log')
      .select('action')
      .where('resource', 'in', [`request/${id}`, `delivery/${result.deliveryId}`])
      .orderBy('seq')
      .execute();
    expect(audit.map((a) => a.action)).toEqual(['restore.complete', 'delivery.download']);

    expect((await fetch(`${notice.downloadUrl!}x`)).status).toBe(403);
    await database.db
      .updateTable('deliveries')
      .set({ expires_at: new Date(Date.now() - 1000) })
      .where('id', '=', result.deliveryId)
      .execute();
    expect((await fetch(notice.downloadUrl!)).status).toBe(404);
    // Two libguestfs appliances start under software emulation: minutes on a busy machine.
  }, 360_000);

  it('fails the request with a clear message when the file is not in the backup', async () => {
    const { id, contentHash } = await insertRequest({ path: '/etc/nginx/missing.conf' });
    await approve(id, contentHash);

    await engine.runFileRestore(id);

    const row = await requestRow(id);
    expect(row.status).toBe('failed');
    expect((row.result as { message: string }).message).toMatch(
      /^`\/etc\/nginx\/missing.conf` was not found in the backup of web-01 taken at/,
    );
    expect(notices.find((n) => n.requestId === id)).toMatchObject({ outcome: 'failed' });
  }, 240_000);

  it('recovers a file from the NTFS disk of win-01 given a Windows path in another letter case', async () => {
    const win01 = (await engine.syncInventory(customer)).find((i) => i.name === 'win-01')!;
    const winPoint = await engine.backupVm(win01.id, 'test');
    const { id, contentHash } = await insertRequest({
      item: win01,
      restorePoint: winPoint,
      path: 'C:\\windows\\system32\\drivers\\etc\\HOSTS',
    });
    await approve(id, contentHash);

    await engine.runFileRestore(id);

    const row = await requestRow(id);
    expect(row.status).toBe('completed');
    const notice = notices.find((n) => n.requestId === id)!;
    const body = await (await fetch(notice.downloadUrl!)).text();
    expect(body).toContain('10.0.1.4\tweb-01.contoso.internal');
  });

  it('fails cleanly, naming the path, when the folder of a Windows path does not exist', async () => {
    const win01 = (await engine.syncInventory(customer)).find((i) => i.name === 'win-01')!;
    const winPoint = await engine.backupVm(win01.id, 'test');
    const { id, contentHash } = await insertRequest({
      item: win01,
      restorePoint: winPoint,
      path: 'C:\\inetpub\\web.config',
    });
    await approve(id, contentHash);

    await engine.runFileRestore(id);

    const row = await requestRow(id);
    expect(row.status).toBe('failed');
    expect((row.result as { message: string }).message).toMatch(
      /was not found in the backup of win-01 taken at/,
    );
  });

  it('lists a folder of a restore point disk', async () => {
    const listings = await engine.listFolder(restorePoint.id, 0, '/etc/nginx');
    expect(listings).toHaveLength(1);
    expect(listings[0]!.entries).toContainEqual({
      name: 'nginx.conf',
      type: 'file',
      sizeBytes: expect.any(Number),
    });
  });
});
