/**
 * The engine: inventory, backup (VMs and Azure SQL databases), the disk
 * byte-range resource, file-level recovery and downloads, VM, disk and SQL
 * restores of approved requests, composed from their
 * own modules over one database, one repository and one set of Azure clients.
 */
import type { ComputeManagementClient } from '@azure/arm-compute';
import type { SqlManagementClient } from '@azure/arm-sql';
import type { TokenCredential } from '@azure/identity';
import type express from 'express';
import type { Db } from '../core/db/database.ts';
import type { Customer, ProtectedItem, RestorePoint } from '../core/db/schema.ts';
import { notFound, unavailable } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { LinkSigner } from '../core/signing.ts';
import { createComputeClient, createSqlClient, createVhdBlobs } from './azure.ts';
import { backupVm } from './backup.ts';
import type { BackupOptions } from './backup-run.ts';
import { backupItem } from './backup-item.ts';
import { DiskImage, LruCache } from './disk-image.ts';
import { runDiskRestore } from './disk-restore.ts';
import { createDiskRouter } from './disk-router.ts';
import { createDownloadRouter } from './download-router.ts';
import { listFolder, type FolderListing } from './file-recovery.ts';
import { runFileRestore } from './file-restore.ts';
import { syncInventory } from './inventory.ts';
import type { JobSessionOptions } from './job-sessions.ts';
import type { EngineNotices } from './notices.ts';
import { readManifest, type Manifest } from './repository/manifest.ts';
import { BLOCK_SIZE, Repository, type RepositoryOptions } from './repository/repository.ts';
import type { RestoreDeps } from './restore-run.ts';
import { backupSqlDatabase } from './sql-backup.ts';
import type { SqlLogins } from './sql-logins.ts';
import { syncSqlInventory } from './sql-inventory.ts';
import { runSqlRestore } from './sql-restore-request.ts';
import { SqlStaging } from './sql-staging.ts';
import { runVmRestore } from './vm-restore.ts';

export interface EngineOptions {
  db: Db;
  log: Logger;
  credential: TokenCredential;
  /** ARM endpoint (the sandbox's https URL in tests). */
  resourceManagerUrl: string;
  /** The provider's blob repository (Azurite in the sandbox) and what wraps its keys (a 32-byte kek, or keyWrapping). */
  repository: Omit<RepositoryOptions, 'db' | 'packTargetBytes'>;
  signer: LinkSigner;
  /** Where /downloads links point, e.g. http://localhost:3978. */
  publicUrl: string;
  /** Base URL at which diskRouter is reachable for libguestfs, e.g. http://127.0.0.1:3978/engine. */
  diskResourceUrl: string;
  downloadLinkMinutes: number;
  notices: EngineNotices;
  /** Scratch space under the data folder. */
  workDir: string;
  /** Limit for one file recovery, appliance start included; 3 minutes by default. */
  recoveryTimeoutMs?: number;
  /** The segregation rules the engine re-checks approvals against (the provider's tenant, the approver cooldown). */
  approvalCheck?: { providerTenantId?: string; cooldownHours?: number };
  /** Poll interval for ARM long-running operations that give no Retry-After (the SDK's 2 s by default; tests use less). */
  azurePollIntervalMs?: number;
  /** Retries and progress pacing of backup tasks (tests shorten the backoff). */
  jobSessions?: JobSessionOptions;
  /** Azure SQL database backups: the staging container for BACPACs (in the repository's storage account) and the servers' SQL logins. */
  sql?: { stagingContainer?: string; logins?: SqlLogins };
}

export interface Engine {
  /** Lists the VMs of the customer's subscription and upserts protected items (id stable per resource id). */
  syncInventory(customer: Customer): Promise<ProtectedItem[]>;
  /** Lists the Azure SQL databases of the customer's subscription (not `master`) and upserts protected items. */
  syncSqlInventory(customer: Customer): Promise<ProtectedItem[]>;
  /** Backs up one protected VM; the restore point is visible once everything it references is stored. */
  backupVm(itemId: string, trigger: string, options?: BackupOptions): Promise<RestorePoint>;
  /** Backs up one protected item, VM or SQL database, with its kind's pipeline; refuses what ACBA does not back up. */
  backup(itemId: string, trigger: string, options?: BackupOptions): Promise<RestorePoint>;
  /** Runs an approved file restore after the engine's own approval check; throws forbidden when refused. */
  runFileRestore(requestId: string): Promise<void>;
  /** Runs an approved whole-VM restore (new VM, or over the original) after the same check. */
  runVmRestore(requestId: string): Promise<void>;
  /** Runs an approved restore of disks of a VM (new disks, or swapped in) after the same check. */
  runDiskRestore(requestId: string): Promise<void>;
  /** Runs an approved restore of SQL databases (new databases, or over the originals) after the same check. */
  runSqlRestore(requestId: string): Promise<void>;
  /** Runs an approved restore of whatever kind the request is; the queue's jobs come here. */
  runRestore(requestId: string): Promise<void>;
  /** Lists a folder of one disk of a restore point (no approval check: callers must authorize). */
  listFolder(restorePointId: string, diskIndex: number, path: string): Promise<FolderListing[]>;
  /** Mounted at /engine: GET/HEAD /engine/disks/:token/disk.raw with Range. */
  diskRouter(): express.Router;
  /** Mounted at /downloads: GET /downloads/:token streams the recovered file. */
  downloadRouter(): express.Router;
  /** Throws unavailable('repository ...') when the repository does not answer. */
  health(): Promise<void>;
  close(): Promise<void>;
}

/** Blocks kept decrypted in memory for the disk resource (1 MiB each). */
const BLOCK_CACHE_ENTRIES = 64;

export async function createEngine(options: EngineOptions): Promise<Engine> {
  const log = options.log.child({ component: 'engine' });
  const computeClients = new Map<string, ComputeManagementClient>();
  const compute = (subscriptionId: string) => {
    let client = computeClients.get(subscriptionId);
    if (!client) {
      client = createComputeClient({
        credential: options.credential,
        subscriptionId,
        endpoint: options.resourceManagerUrl,
      });
      computeClients.set(subscriptionId, client);
    }
    return client;
  };

  const sqlClients = new Map<string, SqlManagementClient>();
  const sql = (subscriptionId: string) => {
    let client = sqlClients.get(subscriptionId);
    if (!client) {
      client = createSqlClient({
        credential: options.credential,
        subscriptionId,
        endpoint: options.resourceManagerUrl,
      });
      sqlClients.set(subscriptionId, client);
    }
    return client;
  };
  const vhdBlobs = createVhdBlobs({
    credential: options.credential,
    resourceManagerUrl: options.resourceManagerUrl,
  });
  const staging = new SqlStaging({
    connectionString: options.repository.connectionString,
    container: options.sql?.stagingContainer ?? 'acba-staging',
  });

  // Opened on first use and again after a failure, so a repository outage at start-up heals.
  let opening: Promise<Repository> | undefined;
  const repository = () => {
    opening ??= Repository.open({ ...options.repository, db: options.db }).catch((error) => {
      opening = undefined;
      throw error;
    });
    return opening;
  };

  const blockCache = new LruCache<string, Promise<Buffer>>(BLOCK_CACHE_ENTRIES);
  const manifests = new LruCache<string, Promise<Manifest>>(16);
  const openDisk = async (restorePointId: string, diskIndex: number): Promise<DiskImage> => {
    let manifest = manifests.get(restorePointId);
    if (!manifest) {
      manifest = loadManifest(restorePointId);
      manifests.set(restorePointId, manifest);
      manifest.catch(() => manifests.delete(restorePointId));
    }
    const loaded = await manifest;
    const disk = loaded.disks[diskIndex];
    if (!disk) throw notFound(`Restore point ${restorePointId} has no disk ${diskIndex}.`);
    return new DiskImage(await repository(), disk, loaded.blockSize ?? BLOCK_SIZE, blockCache);
  };
  const loadManifest = async (restorePointId: string): Promise<Manifest> => {
    const row = await options.db
      .selectFrom('restore_points')
      .selectAll()
      .where('id', '=', restorePointId)
      .executeTakeFirst();
    if (!row)
      throw notFound(`Restore point ${restorePointId} does not exist (it may have expired).`);
    return readManifest(await repository(), row);
  };

  const backupDatabase = async (itemId: string, trigger: string, backupOptions?: BackupOptions) =>
    backupSqlDatabase(
      {
        db: options.db,
        log,
        repository: await repository(),
        sql,
        staging,
        logins: options.sql?.logins ?? (() => undefined),
        notices: options.notices,
        pollIntervalMs: options.azurePollIntervalMs,
        sessions: options.jobSessions,
      },
      itemId,
      trigger,
      backupOptions,
    );

  const diskUrl = (restorePointId: string, diskIndex: number, minutes: number): URL => {
    const token = options.signer.sign({
      purpose: 'disk',
      subject: `${restorePointId}/${diskIndex}`,
      expiresAt: Date.now() + minutes * 60 * 1000,
    });
    return new URL(`${options.diskResourceUrl.replace(/\/+$/, '')}/disks/${token}/disk.raw`);
  };

  const restoreDeps = (): RestoreDeps => ({
    db: options.db,
    log,
    notices: options.notices,
    approvalCheck: options.approvalCheck,
    compute,
    repository,
    openDisk,
    pollIntervalMs: options.azurePollIntervalMs,
    sessions: options.jobSessions,
  });

  const engine: Engine = {
    syncInventory: (customer) =>
      syncInventory(options.db, log, compute(customer.subscription_id), customer),

    syncSqlInventory: (customer) =>
      syncSqlInventory(options.db, log, sql(customer.subscription_id), customer),

    backupVm: async (itemId, trigger, backupOptions) =>
      backupVm(
        {
          db: options.db,
          log,
          repository: await repository(),
          compute,
          vhdBlobs,
          notices: options.notices,
          pollIntervalMs: options.azurePollIntervalMs,
          sessions: options.jobSessions,
        },
        itemId,
        trigger,
        backupOptions,
      ),

    backup: (itemId, trigger, backupOptions) =>
      backupItem(
        {
          db: options.db,
          log,
          pipelines: { vm: (...args) => engine.backupVm(...args), sql_database: backupDatabase },
        },
        itemId,
        trigger,
        backupOptions,
      ),

    runFileRestore: (requestId) =>
      runFileRestore(
        {
          db: options.db,
          log,
          repository,
          signer: options.signer,
          notices: options.notices,
          publicUrl: options.publicUrl.replace(/\/+$/, ''),
          downloadLinkMinutes: options.downloadLinkMinutes,
          workDir: options.workDir,
          diskUrl,
          recoveryTimeoutMs: options.recoveryTimeoutMs,
          approvalCheck: options.approvalCheck,
        },
        requestId,
      ),

    runVmRestore: (requestId) => runVmRestore(restoreDeps(), requestId),
    runDiskRestore: (requestId) => runDiskRestore(restoreDeps(), requestId),
    runSqlRestore: (requestId) =>
      runSqlRestore(
        {
          ...restoreDeps(),
          sql,
          staging,
          logins: options.sql?.logins ?? (() => undefined),
        },
        requestId,
      ),

    runRestore: async (requestId) => {
      const request = await options.db
        .selectFrom('requests')
        .select('kind')
        .where('id', '=', requestId)
        .executeTakeFirst();
      if (request?.kind === 'vm_restore') return engine.runVmRestore(requestId);
      if (request?.kind === 'disk_restore') return engine.runDiskRestore(requestId);
      if (request?.kind === 'sql_restore') return engine.runSqlRestore(requestId);
      // File restores, and anything else, meet the file restore's own refusal of other kinds.
      return engine.runFileRestore(requestId);
    },

    listFolder: async (restorePointId, diskIndex, path) => {
      await openDisk(restorePointId, diskIndex);
      return listFolder(
        { workDir: options.workDir, log, timeoutMs: options.recoveryTimeoutMs },
        diskUrl(restorePointId, diskIndex, 10),
        path,
      );
    },

    diskRouter: () => createDiskRouter({ signer: options.signer, log, openDisk }),
    downloadRouter: () =>
      createDownloadRouter({ db: options.db, log, signer: options.signer, repository }),

    health: async () => {
      let repo: Repository;
      try {
        repo = await repository();
      } catch (error) {
        throw unavailable(
          `repository ${options.repository.container} is not usable: ${(error as Error).message}`,
        );
      }
      await repo.health();
    },

    close: async () => {
      computeClients.clear();
      sqlClients.clear();
    },
  };
  return engine;
}
