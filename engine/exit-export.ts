/**
 * The exit export: everything a customer has in the repository, or the
 * restore points its approved request names, written in formats any tool
 * reads, to a folder or to the customer's blob container:
 *
 *   README.txt                                  the layout, in words
 *   manifest.json                               every file: size, SHA-256, restore point, date
 *   vms/<vm>/<time>_<restore point>/configuration.json   the VM as ARM described it
 *   vms/<vm>/<time>_<restore point>/<disk>.vhd           each disk as a fixed VHD
 *   sql/<server>/<database>/<time>_<restore point>/database.json
 *   sql/<server>/<database>/<time>_<restore point>/<database>.bacpac
 *
 * It runs only for an exit_export request whose approvals hold (checked here,
 * whoever calls), takes the request as running, and on a later run of the same
 * request skips the files already complete, so an interruption costs only the
 * file that was being written. The manifest goes last: an export without one
 * is not finished. Every byte written counts as the customer's egress.
 */
import { createHash } from 'node:crypto';
import { appendAudit, serviceActor } from '../core/audit.ts';
import { approvalProblem, type ApprovalCheckOptions } from '../core/approval-check.ts';
import type { Db } from '../core/db/database.ts';
import type { ExitExportTarget, RequestRow, RestorePoint } from '../core/db/schema.ts';
import { badInput, conflict, forbidden, notFound, publicMessageOf } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { restoresFinished } from '../core/metrics.ts';
import { readStoredFile } from './bacpac-blocks.ts';
import { DiskImage, LruCache } from './disk-image.ts';
import {
  checkDestination,
  containerDestination,
  folderDestination,
  isContainerDestination,
  type CompleteFile,
  type ExportDestination,
} from './export-destination.ts';
import { readAnyManifest, type AnyManifest } from './repository/manifest.ts';
import { BLOCK_SIZE, type Repository } from './repository/repository.ts';
import { recordUsage } from './usage.ts';
import { fixedVhdFooter } from './vhd.ts';

export interface ExitExportDeps {
  db: Db;
  log: Logger;
  repository: Repository;
  approvalCheck?: ApprovalCheckOptions;
  /** The folder under which folder destinations are made. */
  exportDir: string;
}

export interface ExitExportOptions {
  /** A SAS URL of the request's blob container; needed when it exports to one. */
  sasUrl?: string;
  /** Hears each file as it starts and ends. */
  onProgress?: (event: ExportProgress) => void;
  /** Stops between files (and between a disk's blocks); a later run resumes. */
  signal?: AbortSignal;
}

export interface ExportProgress {
  file: string;
  state: 'writing' | 'written' | 'skipped';
  bytes?: number;
  /** Files done so far, of all. */
  done: number;
  total: number;
}

/** One entry of the export's manifest.json. */
export interface ExportedFile {
  path: string;
  bytes: number;
  sha256: string;
  content: 'vm-configuration' | 'disk' | 'database-description' | 'bacpac';
  restorePointId: string;
  restorePointCreatedAt: string;
  item: string;
}

export interface ExportSummary {
  destination: string;
  files: number;
  /** Bytes written by this run (files already complete were skipped). */
  writtenBytes: number;
  skippedFiles: number;
}

export const EXPORT_MANIFEST = 'manifest.json';

/** Checks the approval of an exit_export request and writes (or resumes writing) the export. */
export async function runExitExport(
  deps: ExitExportDeps,
  requestId: string,
  options: ExitExportOptions = {},
): Promise<ExportSummary> {
  const log = deps.log.child({ requestId });
  const request = await claim(deps, requestId);
  const target = request.target as ExitExportTarget;
  const destination = await openDestination(deps, target, options.sasUrl);
  await audit(deps, request, 'export.start', 'success', { destination: destination.description });

  try {
    const summary = await writeExport(deps, request, destination, options);
    await deps.db
      .updateTable('requests')
      .set({ status: 'completed', finished_at: new Date(), result: JSON.stringify(summary) })
      .where('id', '=', requestId)
      .where('status', '=', 'running')
      .execute();
    await audit(deps, request, 'export.complete', 'success', { ...summary });
    restoresFinished.inc({ kind: 'exit_export', outcome: 'completed' });
    log.info({ files: summary.files, writtenBytes: summary.writtenBytes }, 'exit_export_complete');
    return summary;
  } catch (error) {
    // The request stays running: the next run resumes where this one stopped.
    await audit(deps, request, 'export.interrupt', 'failed', { message: publicMessageOf(error) });
    log.error({ err: error }, 'exit_export_interrupted');
    throw error;
  }
}

/** The approved request, now running; a running one again (to resume), after its approval is checked anew. */
async function claim(deps: ExitExportDeps, requestId: string): Promise<RequestRow> {
  const request = await deps.db
    .selectFrom('requests')
    .selectAll()
    .where('id', '=', requestId)
    .executeTakeFirst();
  if (!request) throw notFound(`Request ${requestId} does not exist, so nothing was exported.`);
  if (request.kind !== 'exit_export')
    throw badInput(`Request ${requestId} is a ${request.kind} request, not an exit export.`);
  if (request.status === 'completed')
    throw conflict(`The export of request ${requestId} is complete already; nothing was written.`);

  // A running export resumes under the approval it started with, even past its start-by time.
  const resuming = request.status === 'running';
  const checked = resuming ? { ...request, status: 'approved' as const, start_by: null } : request;
  const problem = await approvalProblem(deps.db, deps.approvalCheck ?? {}, checked);
  if (problem) {
    await audit(deps, request, 'export.refuse', 'refused', { reason: problem });
    throw forbidden(problem, { requestId });
  }
  if (!resuming) {
    const taken = await deps.db
      .updateTable('requests')
      .set({ status: 'running' })
      .where('id', '=', requestId)
      .where('status', '=', 'approved')
      .returning('id')
      .executeTakeFirst();
    if (!taken) throw conflict(`Request ${requestId} was started elsewhere a moment ago.`);
  }
  return request;
}

async function openDestination(
  deps: ExitExportDeps,
  target: ExitExportTarget,
  sasUrl: string | undefined,
): Promise<ExportDestination> {
  const destination = checkDestination(target.destination);
  if (!isContainerDestination(destination)) return folderDestination(deps.exportDir, destination);
  if (!sasUrl)
    throw badInput(
      `This export goes to the blob container ${destination}: give a SAS URL for it with write and create permissions (acba export run REQUEST --sas URL).`,
    );
  return containerDestination(destination, sasUrl);
}

async function writeExport(
  deps: ExitExportDeps,
  request: RequestRow,
  destination: ExportDestination,
  options: ExitExportOptions,
): Promise<ExportSummary> {
  const points = await restorePointsOf(deps.db, request);
  const plans: FilePlan[] = [];
  for (const point of points)
    plans.push(...planFiles(point, await readAnyManifest(deps.repository, point), deps.repository));

  const files: ExportedFile[] = [];
  let writtenBytes = 0;
  let skippedFiles = 0;
  const total = plans.length + 2;
  for (const [index, plan] of plans.entries()) {
    options.signal?.throwIfAborted();
    const progress = { file: plan.entry.path, done: index, total };
    let result = await destination.complete(plan.entry.path);
    if (result) {
      skippedFiles += 1;
      options.onProgress?.({ ...progress, state: 'skipped', bytes: result.bytes });
    } else {
      options.onProgress?.({ ...progress, state: 'writing' });
      result = await writeFile(destination, plan.entry.path, plan.data(), options.signal);
      writtenBytes += result.bytes;
      await recordUsage(deps.db, request.customer_id, { egressBytes: result.bytes });
      options.onProgress?.({ ...progress, state: 'written', bytes: result.bytes });
    }
    files.push({ ...plan.entry, bytes: result.bytes, sha256: result.sha256 });
  }

  const customer = await deps.db
    .selectFrom('customers')
    .select(['id', 'name'])
    .where('id', '=', request.customer_id)
    .executeTakeFirstOrThrow();
  const readme = await writeFile(destination, 'README.txt', once(describeLayout(customer.name)));
  const manifest = {
    format: 'acba-exit-export',
    version: 1,
    customer,
    requestId: request.id,
    exportedAt: new Date().toISOString(),
    restorePoints: points.map((p) => ({
      id: p.id,
      itemId: p.item_id,
      createdAt: new Date(p.created_at).toISOString(),
      expiresAt: new Date(p.expires_at).toISOString(),
    })),
    readme: { path: 'README.txt', ...readme },
    files,
  };
  const written = await writeFile(
    destination,
    EXPORT_MANIFEST,
    once(`${JSON.stringify(manifest, null, 2)}\n`),
  );
  writtenBytes += readme.bytes + written.bytes;
  await recordUsage(deps.db, request.customer_id, { egressBytes: readme.bytes + written.bytes });
  options.onProgress?.({ file: EXPORT_MANIFEST, state: 'written', done: total, total });
  return { destination: destination.description, files: files.length, writtenBytes, skippedFiles };
}

interface FilePlan {
  entry: Omit<ExportedFile, 'bytes' | 'sha256'>;
  data(): AsyncIterable<Buffer>;
}

/** The files one restore point becomes. */
function planFiles(point: RestorePoint, manifest: AnyManifest, repository: Repository): FilePlan[] {
  const at = new Date(point.created_at);
  const folderOf = (...parts: string[]) =>
    [
      ...parts.map(safeName),
      `${at.toISOString().slice(0, 19).replace(/:/g, '')}Z_${safeName(point.id)}`,
    ].join('/');
  const base = { restorePointId: point.id, restorePointCreatedAt: at.toISOString() };

  if (manifest.kind === 'sql_database') {
    const [server = '', database = ''] = manifest.databaseName.split('/');
    const folder = `sql/${folderOf(server, database)}`;
    const item = manifest.databaseName;
    return [
      {
        entry: { ...base, item, path: `${folder}/database.json`, content: 'database-description' },
        data: () => once(`${JSON.stringify(manifest.database, null, 2)}\n`),
      },
      {
        entry: { ...base, item, path: `${folder}/${safeName(database)}.bacpac`, content: 'bacpac' },
        data: () => readStoredFile(repository, manifest.bacpac, manifest.blockSize ?? BLOCK_SIZE),
      },
    ];
  }

  const folder = `vms/${folderOf(manifest.vmName)}`;
  const item = manifest.vmName;
  const cache = new LruCache<string, Promise<Buffer>>(64);
  return [
    {
      entry: { ...base, item, path: `${folder}/configuration.json`, content: 'vm-configuration' },
      data: () => once(`${JSON.stringify(manifest.vm, null, 2)}\n`),
    },
    ...manifest.disks.map((disk) => ({
      entry: {
        ...base,
        item,
        path: `${folder}/${safeName(disk.name)}.vhd`,
        content: 'disk' as const,
      },
      data: () => vhdOf(new DiskImage(repository, disk, manifest.blockSize ?? BLOCK_SIZE, cache)),
    })),
  ];
}

/** The disk's bytes followed by its fixed VHD footer. */
async function* vhdOf(image: DiskImage): AsyncGenerator<Buffer> {
  yield* image.chunks(0, image.size - 1);
  yield fixedVhdFooter(image.size);
}

/** Streams `data` to the destination, hashing and counting it on the way. */
async function writeFile(
  destination: ExportDestination,
  name: string,
  data: AsyncIterable<Buffer>,
  signal?: AbortSignal,
): Promise<CompleteFile> {
  const hash = createHash('sha256');
  let bytes = 0;
  async function* counted() {
    for await (const chunk of data) {
      signal?.throwIfAborted();
      hash.update(chunk);
      bytes += chunk.length;
      yield chunk;
    }
  }
  return destination.write(name, counted(), () => ({ bytes, sha256: hash.digest('hex') }));
}

async function restorePointsOf(db: Db, request: RequestRow): Promise<RestorePoint[]> {
  const target = request.target as ExitExportTarget;
  let query = db
    .selectFrom('restore_points')
    .selectAll()
    .where('customer_id', '=', request.customer_id)
    .where('type', '=', 'backup')
    .orderBy('created_at')
    .orderBy('id');
  if (target.restorePointIds) query = query.where('id', 'in', target.restorePointIds);
  const points = await query.execute();
  if (points.length === 0)
    throw notFound(
      `Customer ${request.customer_id} has no backup restore points${target.restorePointIds ? ' among those the request names (they may have expired)' : ''}; there is nothing to export.`,
    );
  return points;
}

/** A name safe as one path segment on every file system and in blob names. */
function safeName(name: string): string {
  return name.replace(/[^A-Za-z0-9._-]/g, '_').replace(/^\.+/, '_') || '_';
}

async function* once(text: string): AsyncGenerator<Buffer> {
  yield Buffer.from(text, 'utf8');
}

async function audit(
  deps: ExitExportDeps,
  request: RequestRow,
  action: string,
  outcome: 'success' | 'failed' | 'refused',
  details: Record<string, unknown>,
): Promise<void> {
  await appendAudit(deps.db, {
    actor: serviceActor,
    channel: 'engine',
    action,
    resource: `request/${request.id}`,
    outcome,
    details: { customerId: request.customer_id, ...details },
  });
}

function describeLayout(customerName: string): string {
  return `Exit export of ${customerName}'s backups, written by ACBA (Anycloud Backup for Azure).

manifest.json lists every file with its size in bytes, its SHA-256, the
restore point it came from and that restore point's date. Check the files
with "acba export verify DIR", or with any sha256 tool.

vms/<VM>/<time>_<restore point>/configuration.json
    The VM's configuration as Azure Resource Manager described it at backup
    time (size, disks, network interfaces, tags).
vms/<VM>/<time>_<restore point>/<disk>.vhd
    Each disk as a fixed VHD: the raw disk followed by a 512-byte footer.
    Azure uploads it as a managed disk; qemu-img, 7-Zip and Hyper-V open it,
    and any tool that reads raw disk images reads it as one. With qemu-img,
    take the size from the footer:
      qemu-img info --image-opts driver=vpc,force_size_calc=current_size,file.filename=DISK.vhd
sql/<server>/<database>/<time>_<restore point>/database.json
    The database's description as Azure Resource Manager gave it.
sql/<server>/<database>/<time>_<restore point>/<database>.bacpac
    The database as a BACPAC, from a transactionally consistent copy; import
    it with SqlPackage or the Azure portal.

Times are UTC.
`;
}
