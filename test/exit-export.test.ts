/**
 * The exit export of a seeded customer, as its provider runs it after two
 * approvals: a VM backup and a SQL database backup come out as a fixed VHD
 * that qemu-img opens and libguestfs lists files from, the VM's configuration
 * as JSON, and the very BACPAC that was backed up; the manifest's checksums
 * verify, a damaged file is named, an interrupted export resumes without
 * writing complete files again, a blob container gets the same files through
 * a SAS, and without a complete approval nothing is written.
 */
import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { ContainerClient, ContainerSASPermissions } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApprovals, type Actor } from '../approvals/index.ts';
import { silentLogger } from '../core/log.ts';
import { sandboxSqlLogins } from '../cli/sandbox-seed.ts';
import type { RestorePoint } from '../core/db/schema.ts';
import { runExitExport, type ExitExportDeps, type ExportProgress } from '../engine/exit-export.ts';
import { verifyExport } from '../engine/export-verify.ts';
import { readAnyManifest } from '../engine/repository/manifest.ts';
import type { Repository } from '../engine/repository/repository.ts';
import { isFixedVhdFooter, vhdFooterSize } from '../engine/vhd.ts';
import { runAcba } from './support/cli.ts';
import { seedPeople } from './support/contoso.ts';
import { tempDir } from './support/database.ts';
import { startSandboxEngine, type SandboxEngineWorld } from './support/sandbox-engine.ts';

const run = promisify(execFile);
const PROVIDER = 'tenant-provider-exports';

let world: SandboxEngineWorld;
let repository: Repository;
let exportDir: string;
let vmPoint: RestorePoint;
let sqlPoint: RestorePoint;
let approvals: ReturnType<typeof createApprovals>;
const requester: Actor = {
  objectId: 'u-req',
  tenantId: '',
  name: 'Megan Bowen',
  channel: 'portal',
};
const approverA: Actor = {
  objectId: 'u-a',
  tenantId: PROVIDER,
  name: 'Isaiah Langer',
  channel: 'portal',
};
const approverB: Actor = {
  objectId: 'u-b',
  tenantId: PROVIDER,
  name: 'Lidia Holloway',
  channel: 'portal',
};

beforeAll(async () => {
  world = await startSandboxEngine();
  const engine = await world.engine({
    sql: { stagingContainer: 'acba-staging', logins: sandboxSqlLogins(world.sandbox.seed) },
  });
  repository = await world.repository();
  exportDir = await tempDir('acba-exports-');
  const { db } = world.database;

  vmPoint = await engine.backup(world.items['web-01']!.id, 'operator');
  const databases = await engine.syncSqlInventory(world.customer);
  sqlPoint = await engine.backup(databases.find((d) => d.name.endsWith('/sales'))!.id, 'operator');

  requester.tenantId = world.customer.tenant_id;
  await seedPeople(db, [
    { ...requester, displayName: requester.name, role: 'requester' },
    { ...approverA, displayName: approverA.name, role: 'approver' },
    { ...approverB, displayName: approverB.name, role: 'approver' },
  ]);
  approvals = createApprovals({
    db,
    log: silentLogger,
    queue: { enqueueBackup: async () => {}, enqueueFileRestore: async () => {} },
    providerTenantId: PROVIDER,
  });
}, 600_000);

afterAll(async () => {
  await world?.dispose();
  if (exportDir) await fs.rm(exportDir, { recursive: true, force: true });
});

const deps = (): ExitExportDeps => ({
  db: world.database.db,
  log: silentLogger,
  repository,
  exportDir,
  approvalCheck: { providerTenantId: PROVIDER },
});

async function exportRequest(destination: string, approvers = [approverA, approverB]) {
  const request = await approvals.createRequest(requester, {
    kind: 'exit_export',
    target: { destination },
    reason: 'We are moving to another provider and need every backup in open formats.',
  });
  for (const approver of approvers)
    await approvals.decide(approver, request.id, 'approve', 'Exit agreed in the contract.');
  return request;
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

describe('an exit export to a folder', () => {
  let dir: string;
  let requestId: string;

  it('writes each disk as a fixed VHD, each configuration as JSON and each BACPAC, with a manifest that verifies', async () => {
    const request = await exportRequest('contoso-exit');
    requestId = request.id;
    expect(request.approvals_required).toBe(2);

    const summary = await runExitExport(deps(), request.id);
    dir = path.join(exportDir, 'contoso-exit');
    expect(summary).toMatchObject({ files: 4, skippedFiles: 0, destination: dir });

    const manifest = JSON.parse(await fs.readFile(path.join(dir, 'manifest.json'), 'utf8'));
    expect(manifest.files.map((f: { content: string }) => f.content).sort()).toEqual([
      'bacpac',
      'database-description',
      'disk',
      'vm-configuration',
    ]);
    for (const file of manifest.files)
      expect(file.restorePointId).toBe(
        file.content.includes('a') && file.path.startsWith('sql/') ? sqlPoint.id : vmPoint.id,
      );
    expect(await verifyExport(dir)).toMatchObject({ checked: 5, problems: [] });

    // The BACPAC is byte for byte the one the backup stored.
    const stored = await readAnyManifest(repository, sqlPoint);
    const bacpac = manifest.files.find((f: { content: string }) => f.content === 'bacpac');
    expect(stored.kind).toBe('sql_database');
    if (stored.kind === 'sql_database') expect(bacpac.sha256).toBe(stored.bacpac.sha256);

    // The VHD is the restore point's disk plus a fixed VHD footer.
    const disk = manifest.files.find((f: { content: string }) => f.content === 'disk');
    const vhd = await fs.readFile(path.join(dir, disk.path));
    const vmManifest = await readAnyManifest(repository, vmPoint);
    if (vmManifest.kind !== 'sql_database') {
      const size = vmManifest.disks[0]!.sizeBytes;
      expect(vhd.length).toBe(size + 512);
      expect(isFixedVhdFooter(vhd.subarray(size))).toBe(true);
      expect(vhdFooterSize(vhd.subarray(size))).toBe(size);
      const source = await fs.readFile(
        world.sandbox.diskFilePath(vmManifest.disks[0]!.resourceId)!,
      );
      expect(sha256(vhd.subarray(0, size))).toBe(sha256(source));
    }
    const usage = await world.database.db.selectFrom('usage_daily').selectAll().execute();
    expect(usage.reduce((n, u) => n + Number(u.egress_bytes), 0)).toBe(summary.writtenBytes);
  }, 300_000);

  it('gives VHDs that qemu-img opens and whose files libguestfs lists', async () => {
    const manifest = JSON.parse(await fs.readFile(path.join(dir, 'manifest.json'), 'utf8'));
    const disk = path.join(
      dir,
      manifest.files.find((f: { content: string }) => f.content === 'disk').path,
    );
    const { stdout } = await run('qemu-img', [
      'info',
      '--output=json',
      '--image-opts',
      `driver=vpc,force_size_calc=current_size,file.filename=${disk}`,
    ]);
    const info = JSON.parse(stdout);
    expect(info.format).toBe('vpc');
    expect(info['virtual-size'] + 512).toBe((await fs.stat(disk)).size);

    const { stdout: listing } = await run(
      'guestfish',
      ['--ro', '--format=raw', '-a', disk, '-m', '/dev/sda1', 'ls', '/etc'],
      { env: { ...process.env, LIBGUESTFS_BACKEND_SETTINGS: 'force_tcg' }, timeout: 280_000 },
    );
    expect(listing.split('\n')).toContain('hostname');
  }, 300_000);

  it('names each damaged or missing file, and acba export verify exits 1 saying so', async () => {
    const manifest = JSON.parse(await fs.readFile(path.join(dir, 'manifest.json'), 'utf8'));
    const config = manifest.files.find(
      (f: { content: string }) => f.content === 'vm-configuration',
    );
    const original = await fs.readFile(path.join(dir, config.path));
    await fs.writeFile(
      path.join(dir, config.path),
      original.toString().replace('web-01', 'web-02'),
    );

    const result = await verifyExport(dir);
    expect(result.problems).toEqual([
      expect.objectContaining({ path: config.path, problem: 'checksum' }),
    ]);
    const cli = await runAcba(['export', 'verify', dir], { DATA_DIR: exportDir });
    expect(cli.code).toBe(1);
    expect(cli.stdout).toContain(`${config.path} has SHA-256`);
    await fs.writeFile(path.join(dir, config.path), original);
    expect((await runAcba(['export', 'verify', dir], { DATA_DIR: exportDir })).code).toBe(0);
  }, 120_000);

  it('refuses to export the same request again once complete', async () => {
    await expect(runExitExport(deps(), requestId)).rejects.toThrow('complete already');
  });
});

describe('an interrupted exit export', () => {
  it('resumes: files already complete are not written again', async () => {
    const request = await exportRequest('contoso-resume');
    const abort = new AbortController();
    const seen: ExportProgress[] = [];
    await expect(
      runExitExport(deps(), request.id, {
        signal: abort.signal,
        onProgress: (event) => {
          seen.push(event);
          if (event.state === 'written' && event.done === 1)
            abort.abort(new Error('operator stopped'));
        },
      }),
    ).rejects.toThrow('operator stopped');
    const dir = path.join(exportDir, 'contoso-resume');
    await expect(fs.stat(path.join(dir, 'manifest.json'))).rejects.toThrow();

    const events: ExportProgress[] = [];
    const summary = await runExitExport(deps(), request.id, { onProgress: (e) => events.push(e) });
    expect(summary.skippedFiles).toBe(2);
    expect(events.filter((e) => e.state === 'skipped').map((e) => e.file)).toEqual(
      seen.filter((e) => e.state === 'written').map((e) => e.file),
    );
    expect((await verifyExport(dir)).problems).toEqual([]);
  }, 300_000);
});

describe('an exit export to a blob container', () => {
  it('writes the same files through a SAS given at run time, and refuses a SAS for another container', async () => {
    const service = world.sandbox.repositoryConnectionString;
    const container = new ContainerClient(service, 'contoso-exit');
    await container.createIfNotExists();
    const sas = await container.generateSasUrl({
      permissions: ContainerSASPermissions.parse('rcwl'),
      expiresOn: new Date(Date.now() + 3600_000),
    });
    const request = await exportRequest(container.url);

    await expect(
      runExitExport(deps(), request.id, { sasUrl: sas.replace('/contoso-exit?', '/other?') }),
    ).rejects.toThrow('Give a SAS for that container');
    const summary = await runExitExport(deps(), request.id, { sasUrl: sas });
    expect(summary.files).toBe(4);

    const names: string[] = [];
    for await (const blob of container.listBlobsFlat({ includeMetadata: true }))
      names.push(blob.name);
    expect(names).toContain('manifest.json');
    const manifest = JSON.parse(
      (await container.getBlobClient('manifest.json').downloadToBuffer()).toString(),
    );
    for (const file of manifest.files) {
      const data = await container.getBlobClient(file.path).downloadToBuffer();
      expect(sha256(data)).toBe(file.sha256);
    }
  }, 300_000);

  it('will not take a SAS inside the request, where it would be stored and shown', async () => {
    await expect(
      approvals.createRequest(requester, {
        kind: 'exit_export',
        target: { destination: 'https://acct.blob.core.windows.net/exit?sv=2024&sig=secret' },
        reason: 'We are moving to another provider and need every backup in open formats.',
      }),
    ).rejects.toThrow('without its SAS');
  });
});

describe('an exit export without a complete approval', () => {
  it('writes nothing with one approval of two', async () => {
    const request = await exportRequest('contoso-half', [approverA]);
    await expect(runExitExport(deps(), request.id)).rejects.toThrow('not approved');
    await expect(fs.stat(path.join(exportDir, 'contoso-half'))).rejects.toThrow();
  });
});
