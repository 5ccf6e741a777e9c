/**
 * Managed disks made for an upload, the way Azure lets a client bring its own
 * disk data: PUT a disk with `creationData.createOption: Upload` and
 * `uploadSizeBytes` (the data plus a 512-byte VHD footer), grant `Write`
 * access to get a SAS URL to a page blob, write pages into it (Put Page,
 * `x-ms-page-write: update`), and revoke access. On revocation the blob must
 * end in a fixed-VHD footer stating the data's size; the footer is dropped and
 * the data becomes the disk's content, which reads and snapshots then see.
 * Disks that are not attached to a VM and have no active access can be
 * deleted.
 *
 * Upload SAS URLs live on their own `md-impexp-...` accounts, as Azure's do,
 * each grant in a random container; the signature is an HMAC with a key that
 * lives as long as the sandbox, checked on every page write with the expiry
 * and the write permission. Disks made here are kept in memory: a restarted
 * sandbox forgets them (their files stay under disks/created).
 */
import { createHmac, randomBytes, randomUUID, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs/promises';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import type { Logger } from '../core/log.ts';
import {
  accepted,
  ArmError,
  armErrorHandler,
  armPreamble,
  existingGroup,
  param,
  requireDisk,
} from './arm-compute.ts';
import { diskJson } from './compute-json.ts';
import type { IdentityProvider } from './identity.ts';
import type { LongRunningOperations } from './long-running.ts';
import type { DiskBlobService } from './page-blobs.ts';
import { diskResourceId, type ComputeResources, type DiskRecord } from './resources.ts';
import type { SandboxSeed } from './seed.ts';

export interface DiskUploadOptions {
  baseUrl: string;
  seed: SandboxSeed;
  resources: ComputeResources;
  identity: IdentityProvider;
  blobs: DiskBlobService;
  operations: LongRunningOperations;
  log: Logger;
}

const PAGE = 512;
const MIB = 1024 * 1024;
/** The largest Put Page Azure takes: 4 MiB. */
const MAX_PAGE_WRITE = 4 * MIB;
const DISK_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,78}[A-Za-z0-9_]$/;
const inGroup = '/resourceGroups/:resourceGroup/providers/Microsoft.Compute';

interface UploadGrant {
  diskId: string;
  container: string;
  expiresAt: Date;
}

/** Upload disks and their write SAS URLs; mount armRouter() before the compute routes and blobRouter() before the disk blobs. */
export class DiskUploadService {
  private readonly grants = new Map<string, UploadGrant>();
  private readonly key = randomBytes(32);

  constructor(private readonly options: DiskUploadOptions) {}

  /** PUT and DELETE of disks, and grant/revoke of write access to upload disks; everything else falls through. */
  armRouter(): Router {
    const router = express.Router({ mergeParams: true });
    const sub = express.Router({ mergeParams: true });
    router.use(
      '/subscriptions/:subscriptionId',
      armPreamble(this.options),
      express.json({ limit: '1mb' }),
      sub,
    );
    sub.put(`${inGroup}/disks/:name`, async (req, res) => this.createDisk(req, res));
    sub.delete(`${inGroup}/disks/:name`, (req, res) => this.deleteDisk(req, res));
    sub.post(`${inGroup}/disks/:name/beginGetAccess`, (req, res, next) => {
      if ((req.body as { access?: string } | undefined)?.access !== 'Write') return next();
      this.grantWrite(req, res);
    });
    sub.post(`${inGroup}/disks/:name/endGetAccess`, async (req, res, next) => {
      const disk = requireDisk(req, this.options);
      if (disk.upload?.state !== 'ActiveUpload') return next();
      await this.finishUpload(req, res, disk);
    });
    router.use(armErrorHandler(this.options.log));
    return router;
  }

  /** Serves Put Page on /md-impexp-.../{container}/abcd; other paths fall through. */
  blobRouter(): Router {
    const router = express.Router();
    router.all('/:account/:container/:blob', (req, res, next) => {
      if (!String(req.params.account).startsWith('md-impexp-')) return next();
      this.handleBlob(req, res).catch((error: unknown) => this.blobFailed(res, next, error));
    });
    return router;
  }

  private async createDisk(req: Request, res: Response): Promise<void> {
    const { resources, operations } = this.options;
    const subscriptionId = param(req, 'subscriptionId');
    const resourceGroup = existingGroup(req, this.options);
    const name = param(req, 'name');
    const body = (req.body ?? {}) as DiskBody;
    const creation = body.properties?.creationData;
    if (creation?.createOption !== 'Upload') {
      throw new ArmError(
        400,
        'InvalidParameter',
        `The sandbox creates disks with createOption 'Upload' only; got '${creation?.createOption ?? ''}'. Parameter name: creationData.createOption.`,
      );
    }
    const size = checkDiskRequest(name, body.location, creation.uploadSizeBytes);

    const id = diskResourceId(subscriptionId, resourceGroup, name);
    const existing = resources.getDisk(id);
    if (existing) {
      if (existing.upload?.sizeBytes !== size)
        throw new ArmError(
          409,
          'PropertyChangeNotAllowed',
          "Changing property 'creationData' is not allowed.",
        );
      return void res.status(200).json(diskJson(existing, this.options.blobs));
    }

    const disk = this.newUploadDisk(subscriptionId, resourceGroup, name, body, size);
    await fs.writeFile(disk.file, '');
    await fs.truncate(disk.file, size);
    resources.addDisk(disk);
    this.options.log.info({ diskId: id, uploadSizeBytes: size }, 'sandbox_upload_disk_created');
    accepted(
      res,
      operations.start({
        subscriptionId,
        location: disk.location,
        onFailed: async () => void (await resources.removeDisk(id)),
        output: () => diskJson(disk, this.options.blobs),
      }),
    );
  }

  private newUploadDisk(
    subscriptionId: string,
    resourceGroup: string,
    name: string,
    body: DiskBody,
    size: number,
  ): DiskRecord {
    return {
      id: diskResourceId(subscriptionId, resourceGroup, name),
      name,
      subscriptionId,
      resourceGroup,
      location: normaliseRegion(body.location!),
      osType: body.properties?.osType,
      hyperVGeneration: body.properties?.hyperVGeneration ?? 'V1',
      uniqueId: randomUUID(),
      managedBy: '',
      imageReferenceId: '',
      file: this.options.resources.newDiskFile(name),
      sizeBytes: size - PAGE,
      timeCreated: new Date().toISOString(),
      upload: { sizeBytes: size, state: 'ReadyToUpload' },
    };
  }

  private async deleteDisk(req: Request, res: Response): Promise<void> {
    const { resources, operations, blobs } = this.options;
    const resourceGroup = existingGroup(req, this.options);
    const id = diskResourceId(param(req, 'subscriptionId'), resourceGroup, param(req, 'name'));
    const disk = resources.getDisk(id);
    if (!disk) return void res.status(204).end();
    if (disk.managedBy)
      throw new ArmError(
        409,
        'OperationNotAllowed',
        `Disk ${disk.name} is attached to VM ${disk.managedBy}.`,
      );
    if (blobs.hasActiveGrant(id) || this.hasGrant(id))
      throw new ArmError(
        409,
        'OperationNotAllowed',
        `Disk ${disk.name} has an active SAS; revoke access before deleting it.`,
      );

    await resources.removeDisk(id);
    this.options.log.info({ diskId: id }, 'sandbox_disk_deleted');
    accepted(
      res,
      operations.start({ subscriptionId: disk.subscriptionId, location: disk.location }),
    );
  }

  private grantWrite(req: Request, res: Response): void {
    const disk = requireDisk(req, this.options);
    if (!disk.upload || disk.upload.state === 'Uploaded')
      throw new ArmError(
        409,
        'OperationNotAllowed',
        `Disk ${disk.name} is not ready for upload: write access is only granted to disks created with createOption 'Upload' before their upload ends.`,
      );
    const duration = Number((req.body as { durationInSeconds?: unknown }).durationInSeconds);
    if (!Number.isInteger(duration) || duration < 1)
      throw new ArmError(
        400,
        'InvalidParameter',
        'durationInSeconds must be a positive whole number of seconds. Parameter name: grantAccessData.durationInSeconds.',
      );

    const accessSAS = this.issueSas(disk.id, duration);
    disk.upload.state = 'ActiveUpload';
    this.options.log.info({ diskId: disk.id }, 'sandbox_upload_access_granted');
    accepted(
      res,
      this.options.operations.start({
        subscriptionId: disk.subscriptionId,
        location: disk.location,
        result: () => ({ accessSAS }),
        output: () => ({ accessSAS }),
      }),
    );
  }

  /** Ends the upload: the blob must end in a fixed-VHD footer for the data's size, which is then dropped. */
  private async finishUpload(req: Request, res: Response, disk: DiskRecord): Promise<void> {
    this.revoke(disk.id);
    const footer = Buffer.alloc(PAGE);
    const handle = await fs.open(disk.file, 'r');
    try {
      await handle.read(footer, 0, PAGE, disk.sizeBytes);
    } finally {
      await handle.close();
    }
    if (!isFixedFooterFor(footer, disk.sizeBytes)) {
      disk.upload!.state = 'ReadyToUpload';
      throw new ArmError(
        400,
        'InvalidUploadData',
        `The data uploaded to disk ${disk.name} does not end in a fixed VHD footer for ${disk.sizeBytes} bytes; upload it again as a fixed VHD.`,
      );
    }

    await fs.truncate(disk.file, disk.sizeBytes);
    disk.upload!.state = 'Uploaded';
    this.options.log.info({ diskId: disk.id, sizeBytes: disk.sizeBytes }, 'sandbox_upload_done');
    accepted(
      res,
      this.options.operations.start({
        subscriptionId: param(req, 'subscriptionId'),
        location: disk.location,
      }),
    );
  }

  private issueSas(diskId: string, durationSeconds: number): string {
    this.revoke(diskId);
    const container = randomBytes(6).toString('hex');
    const expiresAt = new Date(Math.ceil((Date.now() + durationSeconds * 1000) / 1000) * 1000);
    this.grants.set(container, { diskId, container, expiresAt });
    const account = `md-impexp-${randomBytes(6).toString('hex')}`;
    const se = expiresAt.toISOString().replace(/\.\d{3}Z$/, 'Z');
    const query = new URLSearchParams({ sv: '2018-03-28', sr: 'b', se, sp: 'w' });
    query.set('sig', this.signature(`${account}/${container}`, 'w', se));
    return `${this.options.baseUrl}/${account}/${container}/abcd?${query.toString()}`;
  }

  private revoke(diskId: string): void {
    for (const [container, grant] of this.grants)
      if (grant.diskId.toLowerCase() === diskId.toLowerCase()) this.grants.delete(container);
  }

  private hasGrant(diskId: string): boolean {
    return [...this.grants.values()].some((g) => g.diskId.toLowerCase() === diskId.toLowerCase());
  }

  private signature(path: string, permissions: string, expiry: string): string {
    return createHmac('sha256', this.key)
      .update(`${permissions}\n${expiry}\n${path}`)
      .digest('base64');
  }

  private async handleBlob(req: Request, res: Response): Promise<void> {
    const disk = this.authorizeWrite(req);
    const size = disk.upload!.sizeBytes;
    res.set({ 'x-ms-request-id': randomUUID(), 'x-ms-version': '2025-01-05' });
    if (req.method === 'HEAD' || (req.method === 'GET' && req.query.comp === 'properties')) {
      res.set({ 'Content-Length': String(size), 'x-ms-blob-type': 'PageBlob' });
      return void res.status(200).end();
    }
    if (req.method !== 'PUT' || req.query.comp !== 'page')
      throw new BlobError(
        400,
        'UnsupportedHttpVerb',
        'The sandbox takes only Put Page (PUT ?comp=page) on an upload SAS.',
      );

    const { start, end } = pageRange(req.header('x-ms-range') ?? req.header('range'), size);
    const mode = req.header('x-ms-page-write');
    if (mode !== 'update' && mode !== 'clear')
      throw new BlobError(400, 'InvalidHeaderValue', 'x-ms-page-write must be update or clear.');
    const body = await readBody(req, mode === 'clear' ? 0 : end - start + 1);
    const data = mode === 'clear' ? Buffer.alloc(end - start + 1) : body;

    const handle = await fs.open(disk.file, 'r+');
    try {
      await handle.write(data, 0, data.length, start);
    } finally {
      await handle.close();
    }
    res.status(201).set({
      ETag: `"0x${Date.now().toString(16).toUpperCase()}"`,
      'Last-Modified': new Date().toUTCString(),
      'x-ms-blob-sequence-number': '0',
      'x-ms-request-server-encrypted': 'true',
    });
    res.end();
  }

  private authorizeWrite(req: Request): DiskRecord {
    const url = new URL(req.originalUrl, 'https://sandbox.invalid');
    const [, account = '', container = ''] = url.pathname.split('/');
    const q = url.searchParams;
    const given = Buffer.from(q.get('sig') ?? '');
    const expected = Buffer.from(
      this.signature(`${account}/${container}`, q.get('sp') ?? '', q.get('se') ?? ''),
    );
    if (given.length !== expected.length || !timingSafeEqual(given, expected))
      throw new BlobError(403, 'AuthenticationFailed', 'Signature did not match.');
    if (!(new Date(q.get('se') ?? '').getTime() > Date.now()))
      throw new BlobError(403, 'AuthenticationFailed', 'Signed expiry time has passed.');
    if (!(q.get('sp') ?? '').includes('w'))
      throw new BlobError(
        403,
        'AuthorizationPermissionMismatch',
        'This request is not authorized to perform this operation using this permission.',
      );

    const grant = this.grants.get(container);
    const disk = grant && this.options.resources.getDisk(grant.diskId);
    if (!disk?.upload)
      throw new BlobError(
        403,
        'AuthenticationFailed',
        'The access grant for this disk was revoked. Grant access again.',
      );
    return disk;
  }

  private blobFailed(res: Response, next: NextFunction, error: unknown): void {
    if (!(error instanceof BlobError)) return next(error);
    res
      .status(error.status)
      .set({ 'x-ms-error-code': error.code, 'Content-Type': 'application/xml' });
    res.send(
      `<?xml version="1.0" encoding="utf-8"?><Error><Code>${error.code}</Code><Message>${error.message}</Message></Error>`,
    );
  }
}

interface DiskBody {
  location?: string;
  properties?: {
    osType?: 'Linux' | 'Windows';
    hyperVGeneration?: 'V1' | 'V2';
    creationData?: { createOption?: string; uploadSizeBytes?: number };
  };
}

class BlobError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

/** Checks a new upload disk's name, location and size the way Azure does; returns the size. */
function checkDiskRequest(name: string, location: string | undefined, size: unknown): number {
  if (!DISK_NAME.test(name))
    throw new ArmError(
      400,
      'InvalidResourceName',
      `The resource name '${name}' is invalid. Use 2 to 80 letters, digits, underscores, periods or hyphens, starting with a letter, digit or underscore.`,
    );
  if (!location || !/^[a-z][a-z0-9]*$/.test(normaliseRegion(location)))
    throw new ArmError(
      400,
      'LocationRequired',
      'The location property is required for this definition.',
    );
  if (
    typeof size !== 'number' ||
    !Number.isInteger(size) ||
    size < MIB + PAGE ||
    (size - PAGE) % MIB !== 0
  )
    throw new ArmError(
      400,
      'InvalidParameter',
      `uploadSizeBytes must be a whole number of MiB plus 512 bytes for the VHD footer; got ${String(size)}. Parameter name: creationData.uploadSizeBytes.`,
    );
  return size;
}

function normaliseRegion(location: string): string {
  return location.replace(/\s+/g, '').toLowerCase();
}

/** A fixed-VHD footer (cookie, fixed type) whose current size is `sizeBytes`. */
function isFixedFooterFor(footer: Buffer, sizeBytes: number): boolean {
  return (
    footer.toString('ascii', 0, 8) === 'conectix' &&
    footer.readUInt32BE(60) === 2 &&
    Number(footer.readBigUInt64BE(48)) === sizeBytes
  );
}

function pageRange(header: string | undefined, size: number): { start: number; end: number } {
  const match = /^bytes=(\d+)-(\d+)$/.exec(header?.trim() ?? '');
  const start = Number(match?.[1]);
  const end = Number(match?.[2]);
  if (!match || start % PAGE !== 0 || (end + 1) % PAGE !== 0 || end < start)
    throw new BlobError(
      416,
      'InvalidPageRange',
      'The page range specified is invalid: start and end+1 must be multiples of 512.',
    );
  if (end >= size || end - start + 1 > MAX_PAGE_WRITE)
    throw new BlobError(
      416,
      'InvalidPageRange',
      'The page range goes past the end of the blob or is larger than 4 MiB.',
    );
  return { start, end };
}

async function readBody(req: Request, expected: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of req as AsyncIterable<Buffer>) {
    length += chunk.length;
    if (length > expected) break;
    chunks.push(chunk);
  }
  if (length !== expected)
    throw new BlobError(
      400,
      'InvalidHeaderValue',
      `The body has ${length} bytes where the range names ${expected}.`,
    );
  return Buffer.concat(chunks);
}
