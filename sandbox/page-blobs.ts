/**
 * Managed-disk data behind SAS URLs, the way Azure hands out disk and snapshot
 * contents after a "grant access": a read-only page blob that the storage SDK
 * reads with plain HTTP (properties, ranged downloads, page ranges, and the
 * managed-disk page-range diff that Azurite does not offer).
 *
 * A grant gets its own random container name, so revoking it (endGetAccess)
 * simply forgets that name and every URL issued for it stops working. The SAS
 * signature is an HMAC over the permissions, validity and path with a key
 * that lives only as long as the sandbox, and it is checked on every request,
 * as are expiry and the read permission.
 * Page ranges come from page-ranges.ts.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs/promises';
import express, { type Request, type Response, type Router } from 'express';
import type { Logger } from '../core/log.ts';
import {
  pageListRange,
  sendDownload,
  sendPageList,
  sendProperties,
  setCommonHeaders,
  StorageError,
  storageErrorAnswer,
} from './blob-protocol.ts';
import { diffPageRanges, writtenPageRanges } from './page-ranges.ts';
import type { ComputeResources } from './resources.ts';

const sasVersion = '2018-03-28';
const blobName = 'abcd';

interface Grant {
  resourceId: string;
  account: string;
  container: string;
  expiresAt: Date;
}

export class DiskBlobService {
  private readonly grantsByContainer = new Map<string, Grant>();
  private readonly key = randomBytes(32);
  private readonly answerError: ReturnType<typeof storageErrorAnswer>;
  /** Disk and snapshot bytes sent in downloads since start, for tests that measure how much a backup reads. */
  bytesServed = 0;

  constructor(
    private readonly baseUrl: string,
    private readonly resources: ComputeResources,
    log: Logger,
  ) {
    this.answerError = storageErrorAnswer(log, 'sandbox_disk_blob_refused');
  }

  /** Issues a read SAS URL for a disk or snapshot, replacing any earlier grant for it. */
  grant(resourceId: string, durationSeconds: number): string {
    this.revoke(resourceId);
    const grant: Grant = {
      resourceId,
      account: `md-${createHash('sha256').update(resourceId.toLowerCase()).digest('hex').slice(0, 12)}`,
      container: randomBytes(6).toString('hex'),
      // The SAS states its expiry in whole seconds: round up, so a grant lasts at least as asked.
      expiresAt: new Date(Math.ceil((Date.now() + durationSeconds * 1000) / 1000) * 1000),
    };
    this.grantsByContainer.set(grant.container, grant);

    const fields = {
      sv: sasVersion,
      sr: 'b',
      sk: 'system-1',
      st: isoSeconds(new Date(Date.now() - 5 * 60_000)),
      se: isoSeconds(grant.expiresAt),
      sp: 'r',
    };
    const sig = this.sign(fields, blobPath(grant));
    const query = new URLSearchParams({ ...fields, sig });
    return `${this.baseUrl}${blobPath(grant)}?${query.toString()}`;
  }

  /** Ends access for a resource; its SAS URLs answer 403 from now on. Returns whether a grant existed. */
  revoke(resourceId: string): boolean {
    let revoked = false;
    for (const [container, grant] of this.grantsByContainer) {
      if (grant.resourceId.toLowerCase() === resourceId.toLowerCase()) {
        this.grantsByContainer.delete(container);
        revoked = true;
      }
    }
    return revoked;
  }

  hasActiveGrant(resourceId: string): boolean {
    const now = Date.now();
    return [...this.grantsByContainer.values()].some(
      (grant) =>
        grant.resourceId.toLowerCase() === resourceId.toLowerCase() &&
        grant.expiresAt.getTime() > now,
    );
  }

  /** Serves /md-.../{container}/{blob}; other paths fall through. */
  router(): Router {
    const router = express.Router();
    router.all('/:account/:container/:blob', (req, res, next) => {
      if (!String(req.params.account).startsWith('md-')) return next();
      this.handle(req, res).catch((error: unknown) => this.answerError(req, res, next, error));
    });
    return router;
  }

  private async handle(req: Request, res: Response): Promise<void> {
    const grant = this.authorize(req.originalUrl);
    const file = this.resources.fileOf(grant.resourceId);
    if (!file) throw new StorageError(404, 'BlobNotFound', 'The specified blob does not exist.');
    const stat = await fs.stat(file);
    setCommonHeaders(res, stat);

    const comp = typeof req.query.comp === 'string' ? req.query.comp : undefined;
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      throw new StorageError(
        403,
        'AuthorizationPermissionMismatch',
        'This request is not authorized to perform this operation using this permission.',
      );
    }
    if (req.method === 'HEAD' || comp === 'properties') return sendProperties(res, stat.size);
    if (comp === 'pagelist') return this.pageList(req, res, file, stat.size, grant);
    if (comp !== undefined)
      throw new StorageError(
        400,
        'UnsupportedQueryParameter',
        `The query parameter comp=${comp} is not supported by the sandbox's disk endpoint.`,
      );
    this.bytesServed += sendDownload(req, res, file, stat.size);
  }

  private async pageList(
    req: Request,
    res: Response,
    file: string,
    size: number,
    grant: Grant,
  ): Promise<void> {
    const range = pageListRange(req, size);
    const previousUrl = req.header('x-ms-previous-snapshot-url');
    const entries = previousUrl
      ? await diffPageRanges(
          file,
          this.previousSnapshotFile(previousUrl, grant),
          range.start,
          range.end,
        )
      : await writtenPageRanges(file, range.start, range.end);
    sendPageList(res, entries, size);
  }

  /**
   * The file of the snapshot named by x-ms-previous-snapshot-url: it must be a
   * live SAS URL of an earlier snapshot of the same disk.
   */
  private previousSnapshotFile(previousUrl: string, target: Grant): string {
    let previous: Grant;
    try {
      const url = new URL(previousUrl);
      previous = this.authorize(url.pathname + url.search);
    } catch (error) {
      if (error instanceof StorageError)
        throw new StorageError(
          409,
          'PreviousSnapshotNotFound',
          'The previous snapshot is not found or its access URL is no longer valid. Grant access to it again and retry.',
        );
      throw new StorageError(
        400,
        'InvalidHeaderValue',
        'The value for the header x-ms-previous-snapshot-url is not a URL.',
      );
    }

    const earlier = this.resources.getSnapshot(previous.resourceId);
    if (!earlier)
      throw new StorageError(
        409,
        'PreviousSnapshotNotFound',
        'The previous snapshot URL does not refer to a snapshot.',
      );
    const targetSnapshot = this.resources.getSnapshot(target.resourceId);
    const sameDisk = targetSnapshot
      ? targetSnapshot.incremental &&
        earlier.incremental &&
        targetSnapshot.incrementalSnapshotFamilyId === earlier.incrementalSnapshotFamilyId
      : earlier.sourceResourceId.toLowerCase() === target.resourceId.toLowerCase();
    if (!sameDisk) {
      throw new StorageError(
        400,
        'PreviousSnapshotOperationNotSupported',
        'The previous snapshot must be an earlier incremental snapshot of the same disk.',
      );
    }
    if (targetSnapshot && earlier.timeCreated > targetSnapshot.timeCreated) {
      throw new StorageError(
        400,
        'PreviousSnapshotCannotBeNewer',
        'The previous snapshot was taken after this one.',
      );
    }
    return earlier.file;
  }

  /** Checks the SAS in a request path+query and returns its live grant; throws 403 AuthenticationFailed otherwise. */
  private authorize(pathAndQuery: string): Grant {
    const url = new URL(pathAndQuery, 'https://sandbox.invalid');
    const [, account = '', container = '', blob = ''] = decodeURIComponent(url.pathname).split('/');
    const q = url.searchParams;
    const fields = {
      sv: q.get('sv') ?? '',
      sr: q.get('sr') ?? '',
      sk: q.get('sk') ?? '',
      st: q.get('st') ?? '',
      se: q.get('se') ?? '',
      sp: q.get('sp') ?? '',
    };
    const denied = (detail: string) =>
      new StorageError(
        403,
        'AuthenticationFailed',
        'Server failed to authenticate the request. Make sure the value of Authorization header is formed correctly including the signature.',
        detail,
      );

    const given = Buffer.from(q.get('sig') ?? '');
    const expected = Buffer.from(this.sign(fields, `/${account}/${container}/${blob}`));
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      throw denied('Signature did not match. String to sign used was not accepted.');
    }
    if (!(new Date(fields.se).getTime() > Date.now()))
      throw denied(`Signed expiry time [${fields.se}] must be after current time.`);
    if (!fields.sp.includes('r'))
      throw new StorageError(
        403,
        'AuthorizationPermissionMismatch',
        'This request is not authorized to perform this operation using this permission.',
      );

    const grant = this.grantsByContainer.get(container);
    if (!grant || grant.account !== account || blob !== blobName)
      throw denied('The access grant for this disk was revoked. Grant access again.');
    return grant;
  }

  private sign(fields: Record<string, string>, resourcePath: string): string {
    const stringToSign = [
      fields.sp,
      fields.st,
      fields.se,
      resourcePath,
      fields.sv,
      fields.sr,
      fields.sk,
    ].join('\n');
    return createHmac('sha256', this.key).update(stringToSign).digest('base64');
  }
}

function blobPath(grant: Grant): string {
  return `/${grant.account}/${grant.container}/${blobName}`;
}

function isoSeconds(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}
