/**
 * The backup pipeline for one VM: ARM configuration, a snapshot per managed
 * disk, read access to it, written page ranges read in 1 MiB blocks, blocks
 * deduplicated, compressed, sealed and packed into the repository, then the
 * manifest, and only then the restore_points row that makes it visible.
 * Snapshots are revoked and deleted whatever happens. The run's job session,
 * licence admission, audit entries and failure notice come from ./backup-run.ts.
 */
import { createHash } from 'node:crypto';
import type { ComputeManagementClient } from '@azure/arm-compute';
import { AnonymousCredential, PageBlobClient } from '@azure/storage-blob';
import type { Customer, ProtectedItem, RestorePoint, RestorePointDisk } from '../core/db/schema.ts';
import { badInput } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { runBackupSession, type BackupOptions, type BackupRunDeps } from './backup-run.ts';
import type { JobSession } from './job-sessions.ts';
import { parseResourceId } from './resource-id.ts';
import { writeManifest, type ManifestDisk } from './repository/manifest.ts';
import type { PackWriter } from './repository/packs.ts';
import { BLOCK_SIZE, type Repository } from './repository/repository.ts';

/** How long a snapshot's read SAS lasts; a disk must be read within it. */
const ACCESS_SECONDS = 4 * 3600;
/** Page ranges are listed this many bytes at a time, so huge sparse disks stay cheap. */
const PAGE_RANGE_WINDOW = 1024 * 1024 * 1024;
/** Blocks downloaded at once. */
const READ_PARALLELISM = 8;
const DEFAULT_RETENTION_DAYS = 365;
const ZEROS = Buffer.alloc(BLOCK_SIZE);

export interface BackupDeps extends BackupRunDeps {
  repository: Repository;
  compute(subscriptionId: string): ComputeManagementClient;
  /** Poll interval for ARM long-running operations when ARM gives no Retry-After; the SDK's 2 s by default. */
  pollIntervalMs?: number;
}

interface VmDisk {
  name: string;
  role: 'os' | number;
  resourceId: string;
}

/** Backs up one protected VM and returns its new restore point. */
export async function backupVm(
  deps: BackupDeps,
  itemId: string,
  trigger: string,
  options: BackupOptions = {},
): Promise<RestorePoint> {
  return runBackupSession(deps, 'vm', itemId, trigger, options, (run) =>
    runBackup(deps, run.log, run.customer, run.item, run.restorePointId, options, run.session),
  );
}

async function runBackup(
  deps: BackupDeps,
  log: Logger,
  customer: Customer,
  item: ProtectedItem,
  restorePointId: string,
  options: BackupOptions,
  session: JobSession,
): Promise<RestorePoint> {
  const { resourceGroup, name: vmName } = parseResourceId(item.resource_id);
  const compute = deps.compute(customer.subscription_id);

  let rawVm: unknown;
  const vm = await compute.virtualMachines.get(resourceGroup, vmName, {
    onResponse: (response) => {
      if (response.bodyAsText) rawVm = JSON.parse(response.bodyAsText);
    },
  });
  const disks = vmDisks(vm, item);
  const createdAt = new Date();

  const writer = deps.repository.newWriter();
  const manifestDisks: ManifestDisk[] = [];
  const rowDisks: RestorePointDisk[] = [];
  for (const [index, disk] of disks.entries()) {
    const snapshotName = `acba-${restorePointId}-${index}`;
    const result = await session.runTask({ kind: 'disk', name: disk.name }, (task) =>
      withSnapshot(
        compute,
        log,
        deps.pollIntervalMs,
        resourceGroup,
        vm.location,
        snapshotName,
        disk,
        (sas) =>
          readDisk(sas, writer, log.child({ disk: disk.name }), (bytes) => task.progress(bytes)),
      ),
    );
    manifestDisks.push({
      name: disk.name,
      role: disk.role,
      resourceId: disk.resourceId,
      sizeBytes: result.sizeBytes,
      sha256: result.sha256,
      blocks: result.blocks,
    });
    rowDisks.push({
      name: disk.name,
      role: disk.role,
      sizeBytes: result.sizeBytes,
      storedBytes: result.storedBytes,
    });
  }
  await writer.flush();

  const manifestPath = await writeManifest(deps.repository, {
    version: 1,
    restorePointId,
    customerId: customer.id,
    itemId: item.id,
    vmName: item.name,
    createdAt: createdAt.toISOString(),
    blockSize: BLOCK_SIZE,
    vm: rawVm ?? vm,
    disks: manifestDisks,
  });

  const expiresAt =
    options.expiresAt ?? new Date(createdAt.getTime() + DEFAULT_RETENTION_DAYS * 24 * 3600 * 1000);
  return deps.db
    .insertInto('restore_points')
    .values({
      id: restorePointId,
      customer_id: customer.id,
      item_id: item.id,
      created_at: createdAt,
      expires_at: expiresAt,
      manifest_path: manifestPath,
      disks: JSON.stringify(rowDisks),
      size_bytes: rowDisks.reduce((sum, d) => sum + d.sizeBytes, 0),
      stored_bytes: rowDisks.reduce((sum, d) => sum + d.storedBytes, 0),
      policy_name: options.policyName ?? null,
    })
    .returningAll()
    .executeTakeFirstOrThrow();
}

function vmDisks(
  vm: Awaited<ReturnType<ComputeManagementClient['virtualMachines']['get']>>,
  item: ProtectedItem,
): VmDisk[] {
  const os = vm.storageProfile?.osDisk;
  const disks: VmDisk[] = [];
  if (!os?.managedDisk?.id) {
    throw badInput(
      `VM ${item.name} has no managed OS disk (unmanaged VHD disks are not supported); convert it to managed disks to back it up.`,
    );
  }
  disks.push({
    name: os.name ?? parseResourceId(os.managedDisk.id).name,
    role: 'os',
    resourceId: os.managedDisk.id,
  });
  for (const data of vm.storageProfile?.dataDisks ?? []) {
    if (!data.managedDisk?.id) {
      throw badInput(
        `Data disk LUN ${data.lun} of VM ${item.name} is not a managed disk; convert it to a managed disk to back the VM up.`,
      );
    }
    disks.push({
      name: data.name ?? parseResourceId(data.managedDisk.id).name,
      role: data.lun,
      resourceId: data.managedDisk.id,
    });
  }
  return disks;
}

/** Snapshots a disk, hands its read SAS to `read`, then revokes access and deletes the snapshot, also on failure. */
async function withSnapshot<T>(
  compute: ComputeManagementClient,
  log: Logger,
  updateIntervalInMs: number | undefined,
  resourceGroup: string,
  location: string,
  snapshotName: string,
  disk: VmDisk,
  read: (sas: string) => Promise<T>,
): Promise<T> {
  let created = false;
  let granted = false;
  try {
    await compute.snapshots.beginCreateOrUpdateAndWait(
      resourceGroup,
      snapshotName,
      {
        location,
        incremental: true,
        creationData: { createOption: 'Copy', sourceResourceId: disk.resourceId },
      },
      { updateIntervalInMs },
    );
    created = true;
    const access = await compute.snapshots.beginGrantAccessAndWait(
      resourceGroup,
      snapshotName,
      { access: 'Read', durationInSeconds: ACCESS_SECONDS },
      { updateIntervalInMs },
    );
    granted = true;
    if (!access.accessSAS)
      throw new Error(`Azure granted access to snapshot ${snapshotName} without a SAS URL.`);
    return await read(access.accessSAS);
  } finally {
    if (granted) {
      await compute.snapshots
        .beginRevokeAccessAndWait(resourceGroup, snapshotName, { updateIntervalInMs })
        .catch((err) => log.warn({ err, snapshotName }, 'snapshot_revoke_failed'));
    }
    if (created) {
      await compute.snapshots
        .beginDeleteAndWait(resourceGroup, snapshotName, { updateIntervalInMs })
        .catch((err) => log.warn({ err, snapshotName }, 'snapshot_delete_failed'));
    }
  }
}

export interface DiskReadResult {
  sizeBytes: number;
  sha256: string;
  blocks: (string | null)[];
  /** Bytes the repository gained for this disk. */
  storedBytes: number;
  /** Bytes downloaded from the snapshot. */
  readBytes: number;
}

/** Reads a disk's written ranges through its SAS URL into the repository, block by block; `onProgress` hears the bytes read so far. */
export async function readDisk(
  sasUrl: string,
  writer: PackWriter,
  log: Logger,
  onProgress?: (readBytes: number) => void,
): Promise<DiskReadResult> {
  const pageBlob = new PageBlobClient(sasUrl, new AnonymousCredential());
  const sizeBytes = (await pageBlob.getProperties()).contentLength ?? 0;
  const spans = await writtenSpans(pageBlob, sizeBytes);

  const blockCount = Math.ceil(sizeBytes / BLOCK_SIZE);
  const hash = createHash('sha256');
  const blocks: (string | null)[] = new Array(blockCount).fill(null);
  let storedBytes = 0;
  let readBytes = 0;

  for (let first = 0; first < blockCount; first += READ_PARALLELISM) {
    const indices = Array.from(
      { length: Math.min(READ_PARALLELISM, blockCount - first) },
      (_, i) => first + i,
    );
    const datas = await Promise.all(
      indices.map((index) => readBlock(pageBlob, index, sizeBytes, spans.get(index))),
    );

    // Hashing and storing go in disk order.
    for (const [i, data] of datas.entries()) {
      const index = indices[i]!;
      const length = Math.min(BLOCK_SIZE, sizeBytes - index * BLOCK_SIZE);
      if (!data) {
        hash.update(ZEROS.subarray(0, length));
        continue;
      }
      readBytes += spans.get(index)![1] - spans.get(index)![0] + 1;
      hash.update(data);
      if (data.equals(ZEROS.subarray(0, data.length))) continue;
      const stored = await writer.add(data);
      blocks[index] = stored.id;
      storedBytes += stored.storedBytes;
    }
    onProgress?.(readBytes);
  }

  log.info(
    {
      sizeBytes,
      readBytes,
      storedBytes,
      blocks: blockCount,
      nonZero: blocks.filter((b) => b !== null).length,
    },
    'disk_read',
  );
  return { sizeBytes, sha256: hash.digest('hex'), blocks, storedBytes, readBytes };
}

/** For each block holding written pages, the first and last written byte within it (block-relative, inclusive). */
async function writtenSpans(
  pageBlob: PageBlobClient,
  sizeBytes: number,
): Promise<Map<number, [number, number]>> {
  const spans = new Map<number, [number, number]>();
  for (let offset = 0; offset < sizeBytes; offset += PAGE_RANGE_WINDOW) {
    const count = Math.min(PAGE_RANGE_WINDOW, sizeBytes - offset);
    const response = await pageBlob.getPageRanges(offset, count);
    for (const range of response.pageRange ?? []) {
      if (range.count === undefined) continue;
      // The SDK turns the service's inclusive start/end into offset and count = end - start,
      // so the last written byte is offset + count, not offset + count - 1.
      const start = Math.max(range.offset, offset);
      const end = Math.min(range.offset + range.count, offset + count - 1);
      for (
        let index = Math.floor(start / BLOCK_SIZE);
        index <= Math.floor(end / BLOCK_SIZE);
        index++
      ) {
        const blockStart = index * BLOCK_SIZE;
        const lo = Math.max(start, blockStart) - blockStart;
        const hi = Math.min(end, blockStart + BLOCK_SIZE - 1) - blockStart;
        const span = spans.get(index);
        spans.set(index, span ? [Math.min(span[0], lo), Math.max(span[1], hi)] : [lo, hi]);
      }
    }
  }
  return spans;
}

/** Downloads one block's written span into a zeroed block buffer; undefined when nothing in it was written. */
async function readBlock(
  pageBlob: PageBlobClient,
  index: number,
  sizeBytes: number,
  span: [number, number] | undefined,
): Promise<Buffer | undefined> {
  if (!span) return undefined;
  const blockStart = index * BLOCK_SIZE;
  const data = Buffer.alloc(Math.min(BLOCK_SIZE, sizeBytes - blockStart));
  const [lo, hi] = span;
  await pageBlob.downloadToBuffer(data.subarray(lo, hi + 1), blockStart + lo, hi - lo + 1);
  return data;
}
