/**
 * The Blob service of the storage accounts that hold unmanaged disks
 * (./vhd-store.ts), the operations a backup of such a disk uses, answered in
 * Azure Blob REST's shapes: Get Blob Properties, Get Blob (ranged), Get Page
 * Ranges (of the blob or a snapshot, and with `prevsnapshot` the diff against
 * an earlier snapshot of the same blob), Snapshot Blob, and Delete Blob for
 * snapshots. A VHD in use is leased by its VM, as in Azure, so deleting the
 * blob itself is refused.
 *
 * Callers sign in with Entra ID: a bearer token for Azure Storage from the
 * identity stand-in, of the account's customer tenant or of the provider's.
 * The page lists come from page-ranges.ts, as for managed disks.
 */
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
import { ArmAuthError, storageAudience, type IdentityProvider } from './identity.ts';
import { diffPageRanges, writtenPageRanges } from './page-ranges.ts';
import type { SandboxSeed } from './seed.ts';
import type { BlobSnapshot, VhdBlob, VhdStore } from './vhd-store.ts';

const acceptedAudiences = [storageAudience, `${storageAudience}/`];

export class VhdBlobService {
  /** Bytes sent in downloads of VHDs and their snapshots, for tests that measure how much a backup reads. */
  bytesServed = 0;
  private readonly answerError: ReturnType<typeof storageErrorAnswer>;

  constructor(
    private readonly store: VhdStore,
    private readonly identity: IdentityProvider,
    private readonly seed: SandboxSeed,
    private readonly log: Logger,
  ) {
    this.answerError = storageErrorAnswer(log, 'sandbox_vhd_blob_refused');
  }

  /** Serves /{account}/{container}/{blob} of the storage accounts holding VHDs; other paths fall through. */
  router(): Router {
    const router = express.Router();
    router.all('/:account/:container/:blob', (req, res, next) => {
      if (!this.store.hasAccount(String(req.params.account))) return next();
      this.handle(req, res).catch((error: unknown) => this.answerError(req, res, next, error));
    });
    return router;
  }

  private async handle(req: Request, res: Response): Promise<void> {
    const { account, container, blob: name } = req.params as Record<string, string>;
    const blob = this.store.getBlob(account!, container!, name!);
    await this.authenticate(req, blob?.subscriptionId);
    if (!blob) throw new StorageError(404, 'BlobNotFound', 'The specified blob does not exist.');

    const comp = query(req, 'comp');
    const snapshotTime = query(req, 'snapshot');
    if (req.method === 'PUT' && comp === 'snapshot' && !snapshotTime)
      return this.snapshot(req, res, blob);
    if (req.method === 'DELETE') return this.delete(res, blob, snapshotTime);
    if (req.method !== 'GET' && req.method !== 'HEAD')
      throw new StorageError(
        400,
        'UnsupportedHttpVerb',
        `The sandbox's VHD blobs answer ${req.method} only to take a snapshot (PUT ?comp=snapshot).`,
      );

    const target = snapshotTime ? this.requireSnapshot(blob, snapshotTime) : blob;
    setCommonHeaders(res, await fs.stat(target.file));
    if (req.method === 'HEAD' || comp === 'properties')
      return sendProperties(res, target.sizeBytes, propertyHeaders(target));
    if (comp === 'pagelist') return this.pageList(req, res, blob, target);
    if (comp !== undefined)
      throw new StorageError(
        400,
        'UnsupportedQueryParameter',
        `The query parameter comp=${comp} is not supported by the sandbox's VHD blobs.`,
      );
    this.bytesServed += sendDownload(req, res, target.file, target.sizeBytes);
  }

  private async snapshot(req: Request, res: Response, blob: VhdBlob): Promise<void> {
    const metadata: Record<string, string> = {};
    for (const [header, value] of Object.entries(req.headers))
      if (header.startsWith('x-ms-meta-') && typeof value === 'string')
        metadata[header.slice('x-ms-meta-'.length)] = value;

    const snapshot = await this.store.createSnapshot(blob, metadata);
    this.log.info(
      { blob: `${blob.account}/${blob.container}/${blob.name}`, snapshot: snapshot.snapshot },
      'sandbox_blob_snapshot_created',
    );
    setCommonHeaders(res, await fs.stat(snapshot.file));
    res.status(201).set('x-ms-snapshot', snapshot.snapshot).end();
  }

  private async delete(res: Response, blob: VhdBlob, snapshotTime?: string): Promise<void> {
    if (!snapshotTime)
      throw new StorageError(
        412,
        'LeaseIdMissing',
        'There is currently a lease on the blob and no lease ID was specified in the request.',
      );
    const snapshot = this.requireSnapshot(blob, snapshotTime);
    await this.store.deleteSnapshot(snapshot);
    this.log.info(
      { blob: `${blob.account}/${blob.container}/${blob.name}`, snapshot: snapshotTime },
      'sandbox_blob_snapshot_deleted',
    );
    res
      .status(202)
      .set({ 'x-ms-delete-type-permanent': 'true', Date: new Date().toUTCString() })
      .end();
  }

  private async pageList(
    req: Request,
    res: Response,
    blob: VhdBlob,
    target: VhdBlob | BlobSnapshot,
  ): Promise<void> {
    const range = pageListRange(req, target.sizeBytes);
    const previousTime = query(req, 'prevsnapshot');
    if (!previousTime)
      return sendPageList(
        res,
        await writtenPageRanges(target.file, range.start, range.end),
        target.sizeBytes,
      );

    const previous = this.store.getSnapshot(blob, previousTime);
    if (!previous)
      throw new StorageError(
        409,
        'PreviousSnapshotNotFound',
        'The previous snapshot is not found.',
      );
    if ('snapshot' in target && previous.snapshot > target.snapshot)
      throw new StorageError(
        400,
        'PreviousSnapshotCannotBeNewer',
        'The prevsnapshot query parameter value cannot be newer than snapshot query parameter value.',
      );
    const entries = await diffPageRanges(target.file, previous.file, range.start, range.end);
    sendPageList(res, entries, target.sizeBytes);
  }

  private requireSnapshot(blob: VhdBlob, snapshotTime: string): BlobSnapshot {
    const snapshot = this.store.getSnapshot(blob, snapshotTime);
    if (!snapshot)
      throw new StorageError(404, 'BlobNotFound', 'The specified blob does not exist.');
    return snapshot;
  }

  /** Accepts a storage token of the account's customer tenant or of the provider's tenant. */
  private async authenticate(req: Request, subscriptionId: string | undefined): Promise<void> {
    const customer = this.seed.customers.find(
      (c) => c.subscriptionId.toLowerCase() === subscriptionId?.toLowerCase(),
    );
    const refused = (detail: string) =>
      new StorageError(
        401,
        'InvalidAuthenticationInfo',
        'Server failed to authenticate the request. Please refer to the information in the www-authenticate header.',
        detail,
        {
          'WWW-Authenticate': `Bearer authorization_uri=https://login.microsoftonline.com/${customer?.tenantId ?? 'common'}/oauth2/authorize resource_id=${storageAudience}`,
        },
      );
    let tenantId: string;
    try {
      ({ tenantId } = await this.identity.verifyToken(
        req.header('authorization'),
        acceptedAudiences,
      ));
    } catch (error) {
      if (error instanceof ArmAuthError) throw refused(error.message);
      throw error;
    }
    const allowed = [customer?.tenantId, this.seed.provider.tenantId].map((id) =>
      id?.toLowerCase(),
    );
    if (!allowed.includes(tenantId.toLowerCase()))
      throw refused('Issuer validation failed. Issuer did not match.');
  }
}

function propertyHeaders(target: VhdBlob | BlobSnapshot): Record<string, string> {
  if ('snapshot' in target)
    return Object.fromEntries(
      Object.entries(target.metadata).map(([name, value]) => [`x-ms-meta-${name}`, value]),
    );
  // The VM holds an infinite lease on the VHD it runs from.
  return {
    'x-ms-lease-state': 'leased',
    'x-ms-lease-status': 'locked',
    'x-ms-lease-duration': 'infinite',
  };
}

function query(req: Request, name: string): string | undefined {
  const value = req.query[name];
  return typeof value === 'string' ? value : undefined;
}
