/**
 * The sandbox as the engine will meet it: the real Azure SDK clients, over
 * HTTPS trusted through NODE_EXTRA_CA_CERTS, sign in as the provider's app,
 * find Contoso's VMs, snapshot a disk and read its data through a SAS URL.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { ComputeManagementClient } from '@azure/arm-compute';
import { ClientSecretCredential } from '@azure/identity';
import { AnonymousCredential, BlobServiceClient, PageBlobClient } from '@azure/storage-blob';
import { decodeJwt } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSandbox, type Sandbox, type SandboxCustomer } from '../sandbox/index.ts';

let sandbox: Sandbox;
let dataDir: string;
let credential: ClientSecretCredential;
let client: ComputeManagementClient;
let contoso: SandboxCustomer;

beforeAll(async () => {
  dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'acba-sandbox-test-'));
  sandbox = await startSandbox({
    dataDir,
    armPort: 0,
    blobPort: 0,
    imageCacheDir: 'test/.cache/images',
  });
  contoso = sandbox.seed.customers[0]!;

  const sp = sandbox.servicePrincipal;
  credential = new ClientSecretCredential(sp.tenantId, sp.clientId, sp.clientSecret, {
    authorityHost: sandbox.authorityHost,
    disableInstanceDiscovery: true,
  });
  client = new ComputeManagementClient(credential, contoso.subscriptionId, {
    endpoint: sandbox.armUrl,
  });
});

afterAll(async () => {
  await sandbox?.close();
  if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
});

describe('the Azure sandbox', () => {
  it('issues the provider app a token for Azure Resource Manager', async () => {
    const token = await credential.getToken('https://management.azure.com/.default');

    const claims = decodeJwt(token.token);
    expect(claims.aud).toBe('https://management.azure.com/');
    expect(claims.tid).toBe(sandbox.servicePrincipal.tenantId);
    expect(token.expiresOnTimestamp).toBeGreaterThan(Date.now());
  });

  it('refuses a wrong client secret with an AADSTS error', async () => {
    const sp = sandbox.servicePrincipal;
    const wrong = new ClientSecretCredential(sp.tenantId, sp.clientId, 'not-the-secret', {
      authorityHost: sandbox.authorityHost,
      disableInstanceDiscovery: true,
    });

    await expect(wrong.getToken('https://management.azure.com/.default')).rejects.toThrow(
      /AADSTS7000215/,
    );
  });

  it('refuses an app it does not know', async () => {
    const stranger = new ClientSecretCredential(
      sandbox.servicePrincipal.tenantId,
      '00000000-0000-0000-0000-000000000001',
      'whatever',
      {
        authorityHost: sandbox.authorityHost,
        disableInstanceDiscovery: true,
      },
    );

    await expect(stranger.getToken('https://management.azure.com/.default')).rejects.toThrow(
      /AADSTS700016/,
    );
  });

  it('seeds a provider, one customer and people in both tenants', () => {
    expect(sandbox.seed.provider.name).toBe('Fabrikam Managed Services');
    expect(contoso).toMatchObject({
      name: 'Contoso',
      resourceGroup: 'rg-prod',
      location: 'westeurope',
    });
    expect(contoso.vms.map((vm) => vm.name)).toEqual(['web-01', 'win-01', 'legacy-01']);

    const customerUsers = sandbox.seed.users.filter((user) => user.tenantId === contoso.tenantId);
    expect(customerUsers.map((user) => user.role)).toEqual(['requester', 'requester']);
    const approvers = sandbox.seed.users.filter((user) => user.role === 'approver');
    expect(approvers.every((user) => user.tenantId === sandbox.seed.provider.tenantId)).toBe(true);
  });

  it('lists the VMs across pages and describes their OS disks', async () => {
    const vms = [];
    for await (const vm of client.virtualMachines.listAll()) vms.push(vm);
    expect(vms.map((vm) => vm.name).sort()).toEqual(['legacy-01', 'web-01', 'win-01']);

    const web = await client.virtualMachines.get(contoso.resourceGroup, 'web-01');
    expect(web.id).toBe(contoso.vms[0]!.resourceId);
    expect(web.storageProfile?.osDisk?.osType).toBe('Linux');

    const diskId = web.storageProfile?.osDisk?.managedDisk?.id ?? '';
    const disk = await client.disks.get(contoso.resourceGroup, diskId.split('/').pop()!);
    expect(disk.id).toBe(diskId);
    expect(disk.provisioningState).toBe('Succeeded');
    expect(disk.diskSizeBytes).toBe(64 * 1024 * 1024);
  });

  it('snapshots a disk incrementally and serves its bytes through a SAS URL', async () => {
    const web = await client.virtualMachines.get(contoso.resourceGroup, 'web-01');
    const diskId = web.storageProfile!.osDisk!.managedDisk!.id!;

    const snapshot = await client.snapshots.beginCreateOrUpdateAndWait(
      contoso.resourceGroup,
      'web-01-backup-1',
      {
        location: contoso.location,
        incremental: true,
        creationData: { createOption: 'Copy', sourceResourceId: diskId },
      },
      { updateIntervalInMs: 10 },
    );
    expect(snapshot).toMatchObject({
      name: 'web-01-backup-1',
      type: 'Microsoft.Compute/snapshots',
      provisioningState: 'Succeeded',
      incremental: true,
    });
    expect(snapshot.incrementalSnapshotFamilyId).toBeTruthy();

    const { accessSAS } = await client.snapshots.beginGrantAccessAndWait(
      contoso.resourceGroup,
      'web-01-backup-1',
      { access: 'Read', durationInSeconds: 600 },
      { updateIntervalInMs: 10 },
    );
    expect(accessSAS).toMatch(/^https:\/\/localhost:\d+\/md-[0-9a-f]+\/[0-9a-f]+\/abcd\?.*sig=/);
    const blob = new PageBlobClient(accessSAS!, new AnonymousCredential());

    const properties = await blob.getProperties();
    expect(properties.blobType).toBe('PageBlob');
    expect(properties.contentLength).toBe(64 * 1024 * 1024);

    const { pageRange = [] } = await blob.getPageRanges(0, properties.contentLength);
    expect(pageRange.length).toBeGreaterThan(0);
    // The SDK reports count as End - Start of the inclusive XML range, one less than the byte count.
    const byteLength = (range: { count?: number }) => (range.count ?? -1) + 1;
    for (const range of pageRange) {
      expect(range.offset % 512).toBe(0);
      expect(byteLength(range) % 512).toBe(0);
    }

    const diskFile = await fs.readFile(sandbox.diskFilePath(diskId)!);
    const first = pageRange[0]!;
    const length = Math.min(byteLength(first), 1024 * 1024);
    const downloaded = await blob.downloadToBuffer(first.offset, length);
    expect(downloaded.equals(diskFile.subarray(first.offset, first.offset + length))).toBe(true);

    const gptHeader = await blob.downloadToBuffer(512, 8);
    expect(gptHeader.toString('latin1')).toBe('EFI PART');

    await client.snapshots.beginRevokeAccessAndWait(contoso.resourceGroup, 'web-01-backup-1', {
      updateIntervalInMs: 10,
    });
    await expect(blob.getProperties()).rejects.toMatchObject({ statusCode: 403 });
  });

  it('reports no differences between two snapshots of an unchanged disk', async () => {
    const web = await client.virtualMachines.get(contoso.resourceGroup, 'web-01');
    const diskId = web.storageProfile!.osDisk!.managedDisk!.id!;
    const take = (name: string) =>
      client.snapshots.beginCreateOrUpdateAndWait(
        contoso.resourceGroup,
        name,
        {
          location: contoso.location,
          incremental: true,
          creationData: { createOption: 'Copy', sourceResourceId: diskId },
        },
        { updateIntervalInMs: 10 },
      );
    await take('web-01-diff-a');
    await take('web-01-diff-b');

    const grant = (name: string) =>
      client.snapshots.beginGrantAccessAndWait(
        contoso.resourceGroup,
        name,
        { access: 'Read', durationInSeconds: 600 },
        { updateIntervalInMs: 10 },
      );
    const earlier = (await grant('web-01-diff-a')).accessSAS!;
    const later = (await grant('web-01-diff-b')).accessSAS!;

    const diff = await new PageBlobClient(
      later,
      new AnonymousCredential(),
    ).getPageRangesDiffForManagedDisks(0, 64 * 1024 * 1024, earlier);
    expect(diff.pageRange ?? []).toEqual([]);
    expect(diff.clearRange ?? []).toEqual([]);

    await client.snapshots.beginDeleteAndWait(contoso.resourceGroup, 'web-01-diff-a', {
      updateIntervalInMs: 10,
    });
    await expect(
      client.snapshots.get(contoso.resourceGroup, 'web-01-diff-a'),
    ).rejects.toMatchObject({ statusCode: 404 });
  });

  it('refuses a SAS URL whose signature was tampered with', async () => {
    const disk = await osDiskName('web-01');
    const { accessSAS } = await client.disks.beginGrantAccessAndWait(
      contoso.resourceGroup,
      disk,
      { access: 'Read', durationInSeconds: 600 },
      { updateIntervalInMs: 10 },
    );
    const url = new URL(accessSAS!);
    url.searchParams.set('sig', Buffer.alloc(32, 1).toString('base64'));

    const response = await fetch(url, { method: 'GET', headers: { 'x-ms-range': 'bytes=0-511' } });
    expect(response.status).toBe(403);
    expect(await response.text()).toContain('<Code>AuthenticationFailed</Code>');

    await client.disks.beginRevokeAccessAndWait(contoso.resourceGroup, disk, {
      updateIntervalInMs: 10,
    });
  });

  it('refuses ARM calls without a bearer token', async () => {
    const response = await fetch(
      `${sandbox.armUrl}/subscriptions/${contoso.subscriptionId}/providers/Microsoft.Compute/virtualMachines?api-version=2024-07-01`,
    );
    expect(response.status).toBe(401);
    expect(await response.json()).toMatchObject({ error: { code: 'AuthenticationFailed' } });

    const forged = await fetch(
      `${sandbox.armUrl}/subscriptions/${contoso.subscriptionId}/providers/Microsoft.Compute/virtualMachines?api-version=2024-07-01`,
      {
        headers: { authorization: 'Bearer eyJhbGciOiJSUzI1NiJ9.eyJ0aWQiOiJ4In0.c2lnbmF0dXJl' },
      },
    );
    expect(forged.status).toBe(401);
    expect(await forged.json()).toMatchObject({ error: { code: 'InvalidAuthenticationToken' } });
  });

  it('answers 404 ResourceNotFound for a VM that does not exist', async () => {
    await expect(
      client.virtualMachines.get(contoso.resourceGroup, 'no-such-vm'),
    ).rejects.toMatchObject({ statusCode: 404, code: 'ResourceNotFound' });
  });

  it('stops serving a SAS URL once it expires', async () => {
    const disk = await osDiskName('win-01');
    const { accessSAS } = await client.disks.beginGrantAccessAndWait(
      contoso.resourceGroup,
      disk,
      { access: 'Read', durationInSeconds: 1 },
      { updateIntervalInMs: 10 },
    );
    const blob = new PageBlobClient(accessSAS!, new AnonymousCredential());
    const mbr = await blob.downloadToBuffer(510, 2);
    expect(mbr.toString('hex')).toBe('55aa');

    const expiry = new Date(new URL(accessSAS!).searchParams.get('se')!).getTime();
    expect(expiry - Date.now()).toBeGreaterThan(0);
    await new Promise((resolve) => setTimeout(resolve, expiry - Date.now() + 200));
    await expect(blob.getProperties()).rejects.toMatchObject({ statusCode: 403 });
  });

  it('diffs two incremental snapshots into written and cleared ranges', async () => {
    const web = await client.virtualMachines.get(contoso.resourceGroup, 'web-01');
    const diskId = web.storageProfile!.osDisk!.managedDisk!.id!;
    const take = async (name: string) => {
      await client.snapshots.beginCreateOrUpdateAndWait(
        contoso.resourceGroup,
        name,
        {
          location: contoso.location,
          incremental: true,
          creationData: { createOption: 'Copy', sourceResourceId: diskId },
        },
        { updateIntervalInMs: 10 },
      );
      return (
        await client.snapshots.beginGrantAccessAndWait(
          contoso.resourceGroup,
          name,
          { access: 'Read', durationInSeconds: 600 },
          { updateIntervalInMs: 10 },
        )
      ).accessSAS!;
    };
    const before = await take('web-01-change-a');

    // The VM "writes": 4 KiB of new data at 48 MiB, and one sector that held data becomes zero.
    const { pageRange = [] } = await new PageBlobClient(
      before,
      new AnonymousCredential(),
    ).getPageRanges();
    const lastWritten = pageRange[pageRange.length - 1]!;
    const zeroedSector = lastWritten.offset + (lastWritten.count ?? 0) + 1 - 512;
    const handle = await fs.open(sandbox.diskFilePath(diskId)!, 'r+');
    await handle.write(Buffer.alloc(4096, 0xab), 0, 4096, 48 * 1024 * 1024);
    await handle.write(Buffer.alloc(512), 0, 512, zeroedSector);
    await handle.close();

    const after = await take('web-01-change-b');
    const diff = await new PageBlobClient(
      after,
      new AnonymousCredential(),
    ).getPageRangesDiffForManagedDisks(0, 64 * 1024 * 1024, before);
    expect(diff.pageRange).toEqual([{ offset: 48 * 1024 * 1024, count: 4095 }]);
    expect(diff.clearRange).toEqual([{ offset: zeroedSector, count: 511 }]);
  });

  it('gives the repository a working Azurite account', async () => {
    const container = BlobServiceClient.fromConnectionString(
      sandbox.repositoryConnectionString,
    ).getContainerClient('acba-repository');
    await container.createIfNotExists();
    await container.getBlockBlobClient('config').upload('{}', 2);

    const names = [];
    for await (const blob of container.listBlobsFlat()) names.push(blob.name);
    expect(names).toEqual(['config']);
  });
});

async function osDiskName(vmName: string): Promise<string> {
  const vm = await client.virtualMachines.get(contoso.resourceGroup, vmName);
  return vm.storageProfile!.osDisk!.name!;
}
