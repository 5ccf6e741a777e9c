/**
 * The Azure sandbox: a local stand-in for the provider's and the customer's
 * Azure tenants that the real SDK clients talk to unchanged.
 *
 * One HTTPS server (default port 3979) carries five surfaces, told apart by
 * path: the identity stand-in (`/{tenantId}/...`, see identity.ts), Azure
 * Resource Manager's compute and SQL APIs (`/subscriptions/...`, arm-compute.ts,
 * disk-upload.ts, vm-writes.ts and arm-sql.ts), the disk data that access
 * grants hand out (`/md-.../...`, page-blobs.ts; uploads on `/md-impexp-.../...`,
 * disk-upload.ts), the storage accounts holding unmanaged disks' VHDs
 * (`/{account}/{container}/{blob}`, vhd-blobs.ts), and a Key Vault holding the
 * key that can wrap the repository's keys (`/keys/...`, key-vault.ts).
 * Azurite, a child process, serves the repository's blob storage over HTTP.
 * State lives under dataDir/sandbox: disks, VHDs, snapshots, Azurite's data, the
 * token signing key and, by default, the TLS files.
 *
 * Trust: clients must trust the sandbox CA through NODE_EXTRA_CA_CERTS, which
 * Node reads only at start-up. The TLS folder is chosen by one rule:
 *   1. options.tlsDir when given;
 *   2. else the folder of NODE_EXTRA_CA_CERTS when that names a `ca.pem`
 *      with `ca-key.pem` beside it (a CA made by ensureSandboxCa), so the
 *      server certificate is signed by the CA this process already trusts;
 *   3. else dataDir/sandbox/tls (then start the clients' process with
 *      NODE_EXTRA_CA_CERTS=<caCertPath>; a warning says so).
 * This module is the one place in the sandbox that looks at process.env.
 */
import { once } from 'node:events';
import fs from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import express from 'express';
import { silentLogger, type Logger } from '../core/log.ts';
import { armComputeRouter } from './arm-compute.ts';
import { armSqlRouter } from './arm-sql.ts';
import type { SqlContent } from './bacpac.ts';
import { startAzurite, type AzuriteProcess } from './azurite.ts';
import { ensureDiskImages } from './disk-images.ts';
import { SandboxFaults } from './faults.ts';
import { entraFetch, entraHost, IdentityProvider } from './identity.ts';
import { SandboxKeyVault } from './key-vault.ts';
import { LongRunningOperations } from './long-running.ts';
import { DiskUploadService } from './disk-upload.ts';
import { DiskBlobService } from './page-blobs.ts';
import { ComputeResources } from './resources.ts';
import { buildSeed, type SandboxSeed } from './seed.ts';
import { SqlResources, type SqlExportRecord } from './sql-resources.ts';
import { ensureSandboxCa, ensureServerCertificate, hasCaWithKey } from './tls.ts';
import { vmWritesRouter } from './vm-writes.ts';
import { VhdBlobService } from './vhd-blobs.ts';
import { VhdStore } from './vhd-store.ts';

export type { FaultSpec, InjectedFault } from './faults.ts';
export type { SandboxCustomer, SandboxSeed, SandboxUser } from './seed.ts';
export type { SqlContent } from './bacpac.ts';
export type { SqlExportRecord } from './sql-resources.ts';
export { ensureSandboxCa } from './tls.ts';

export interface SandboxOptions {
  /** Sandbox state goes under dataDir/sandbox. */
  dataDir: string;
  /** HTTPS port for ARM, identity and disk blobs; 0 picks a free port. Default 3979. */
  armPort?: number;
  /** Azurite's blob port; 0 picks a free port. Default 10000. */
  blobPort?: number;
  /** Where built disk images are cached (default dataDir/sandbox/images); tests share one. */
  imageCacheDir?: string;
  /** Folder of the CA and server certificate; see the module note for the default. */
  tlsDir?: string;
  /** Items per page in VM lists (default 1, so that clients really follow nextLink). */
  listPageSize?: number;
  log?: Logger;
}

export interface Sandbox {
  /** e.g. https://localhost:3979; pass as `endpoint` to ComputeManagementClient. */
  armUrl: string;
  /** Pass as authorityHost to ClientSecretCredential (with disableInstanceDiscovery: true). */
  authorityHost: string;
  /** PEM of the sandbox CA. */
  caCertPath: string;
  /** The provider's app registration. */
  servicePrincipal: { tenantId: string; clientId: string; clientSecret: string };
  /**
   * OpenID Connect sign-in of the seeded people: Entra's multi-tenant issuer,
   * the provider's app, and a fetch that routes Entra's host to the stand-in.
   */
  userSignIn: { issuer: string; clientId: string; clientSecret: string; fetch: typeof fetch };
  /** Azurite blob connection string (http, shared key) for the provider's repository. */
  repositoryConnectionString: string;
  /**
   * Full id (with version) of the seeded RSA key in the Key Vault stand-in,
   * https://localhost:<port>/keys/acba-repository/<version>; Key Vault clients
   * need disableChallengeResourceVerification here.
   */
  keyVaultKeyId: string;
  seed: SandboxSeed;
  /** Faults to inject into ARM and disk-data answers (throttling, 5xx, failed operations). */
  faults: SandboxFaults;
  /**
   * The file behind a managed disk or snapshot resource id (the raw disk), or
   * behind a VHD URL or blob snapshot URL (the disk and its 512-byte VHD
   * footer), for tests that compare bytes; undefined when unknown.
   */
  diskFilePath(resourceId: string): string | undefined;
  /** The snapshot times of the VHD blob at a URL, oldest first; empty when there is none. */
  vhdSnapshots(vhdUrl: string): string[];
  /** The SQL stand-in, for tests that compare data or need a failing export. */
  sql: {
    /** Every export run so far, oldest first. */
    exports(): SqlExportRecord[];
    /** The next `count` exports write half their BACPAC, then fail. */
    failNextExports(count: number): void;
    /** The tables of the database with this resource id; undefined when there is none. */
    databaseContent(resourceId: string): SqlContent | undefined;
  };
  /** Writes bytes into a managed disk (by resource id) or a VHD's disk (by URL), as its VM would (tests of incremental backups). */
  writeDisk(resourceId: string, offset: number, data: Buffer): Promise<void>;
  /** Grows a managed disk (tests of backups across a resize). */
  resizeDisk(resourceId: string, sizeBytes: number): Promise<void>;
  /** Disk and snapshot bytes downloaded (through access grants and from VHD blobs) since the sandbox started. */
  diskBytesServed(): number;
  /** Stops the HTTPS server and the Azurite child process. */
  close(): Promise<void>;
}

export async function startSandbox(options: SandboxOptions): Promise<Sandbox> {
  const log = (options.log ?? silentLogger).child({ component: 'sandbox' });
  const stateDir = path.join(path.resolve(options.dataDir), 'sandbox');
  await fs.mkdir(stateDir, { recursive: true });

  const tlsDir = chooseTlsDir(options, stateDir);
  const ca = ensureSandboxCa(tlsDir);
  const serverCert = ensureServerCertificate(tlsDir);
  warnIfUntrusted(ca.caCertPath, log);

  const world = buildSeed();
  const images = await ensureDiskImages(
    options.imageCacheDir ?? path.join(stateDir, 'images'),
    log,
  );
  const resources = await ComputeResources.open(stateDir, world.virtualMachines, images);
  const sql = new SqlResources(world.sqlServers);

  let app: express.Express | undefined;
  const servers = await listenOnLoopback(
    options.armPort ?? 3979,
    { cert: serverCert.certPem, key: serverCert.keyPem },
    (req, res) => {
      if (app) app(req, res);
      else res.writeHead(503).end();
    },
  );
  const port = (servers[0]!.address() as AddressInfo).port;
  const baseUrl = `https://localhost:${port}`;

  try {
    const identity = await IdentityProvider.open({
      baseUrl,
      stateDir,
      tenantIds: [world.seed.provider.tenantId, ...world.seed.customers.map((c) => c.tenantId)],
      application: world.application,
      users: world.seed.users.map((user) => ({
        ...user,
        organization:
          world.seed.customers.find((c) => c.tenantId === user.tenantId)?.name ??
          world.seed.provider.name,
      })),
    });
    const keyVault = await SandboxKeyVault.open({
      baseUrl,
      stateDir,
      identity,
      tenantId: world.application.tenantId,
    });
    const blobs = new DiskBlobService(baseUrl, resources, log);
    const vhds = await VhdStore.open(baseUrl, stateDir, world.virtualMachines, images);
    const vhdBlobs = new VhdBlobService(vhds, identity, world.seed, log);
    const operations = new LongRunningOperations(baseUrl, 1);
    const faults = new SandboxFaults((id, error) => operations.fail(id, error));
    const uploads = new DiskUploadService({
      baseUrl,
      seed: world.seed,
      resources,
      identity,
      blobs,
      operations,
      log,
    });
    // The SQL routes come before the compute routes, whose catch-all answers any other ARM path.
    app = buildApp([
      keyVault.router(),
      identity.router(),
      faults.middleware(),
      uploads.blobRouter(),
      blobs.router(),
      uploads.armRouter(),
      vmWritesRouter({ seed: world.seed, resources, identity, operations, vhds, log }),
      vhdBlobs.router(),
      armSqlRouter({
        baseUrl,
        seed: world.seed,
        sql,
        identity,
        operations,
        pageSize: options.listPageSize ?? 1,
        log,
      }),
      armComputeRouter({
        baseUrl,
        seed: world.seed,
        resources,
        vhds,
        identity,
        blobs,
        operations,
        pageSize: options.listPageSize ?? 1,
        log,
      }),
    ]);

    const azurite = await startAzurite({
      location: path.join(stateDir, 'azurite'),
      port: options.blobPort ?? 10000,
      log,
    });
    log.info({ armUrl: baseUrl, blobPort: azurite.port, stateDir }, 'sandbox_started');
    return sandboxHandle({
      baseUrl,
      caCertPath: ca.caCertPath,
      world,
      resources,
      sql,
      servers,
      azurite,
      faults,
      blobs,
      vhds,
      vhdBlobs,
      keyVaultKeyId: await keyVault.seededKeyId(),
      log,
    });
  } catch (error) {
    await closeServers(servers);
    throw error;
  }
}

function sandboxHandle(parts: {
  baseUrl: string;
  caCertPath: string;
  world: ReturnType<typeof buildSeed>;
  resources: ComputeResources;
  sql: SqlResources;
  servers: https.Server[];
  azurite: AzuriteProcess;
  faults: SandboxFaults;
  blobs: DiskBlobService;
  vhds: VhdStore;
  vhdBlobs: VhdBlobService;
  keyVaultKeyId: string;
  log: Logger;
}): Sandbox {
  const { application, seed } = parts.world;
  let closing: Promise<void> | undefined;
  return {
    armUrl: parts.baseUrl,
    authorityHost: parts.baseUrl,
    caCertPath: parts.caCertPath,
    servicePrincipal: {
      tenantId: application.tenantId,
      clientId: application.clientId,
      clientSecret: application.clientSecret,
    },
    userSignIn: {
      issuer: `${entraHost}/organizations/v2.0`,
      clientId: application.clientId,
      clientSecret: application.clientSecret,
      fetch: entraFetch(parts.baseUrl),
    },
    repositoryConnectionString: parts.azurite.connectionString,
    keyVaultKeyId: parts.keyVaultKeyId,
    seed,
    faults: parts.faults,
    diskFilePath: (resourceId) =>
      isUrl(resourceId) ? parts.vhds.fileAt(resourceId) : parts.resources.fileOf(resourceId),
    vhdSnapshots: (vhdUrl) => {
      const blob = parts.vhds.blobAt(vhdUrl);
      return blob ? parts.vhds.snapshotsOf(blob).map((s) => s.snapshot) : [];
    },
    sql: {
      exports: () => [...parts.sql.exports],
      failNextExports: (count) => parts.sql.failNextExports(count),
      databaseContent: (resourceId) => parts.sql.getDatabaseById(resourceId)?.content,
    },
    writeDisk: (resourceId, offset, data) =>
      isUrl(resourceId)
        ? parts.vhds.writeDisk(resourceId, offset, data)
        : parts.resources.writeDisk(resourceId, offset, data),
    resizeDisk: (resourceId, sizeBytes) => parts.resources.resizeDisk(resourceId, sizeBytes),
    diskBytesServed: () => parts.blobs.bytesServed + parts.vhdBlobs.bytesServed,
    close() {
      closing ??= (async () => {
        await Promise.all([closeServers(parts.servers), parts.azurite.stop()]);
        parts.log.info('sandbox_stopped');
      })();
      return closing;
    },
  };
}

function isUrl(id: string): boolean {
  return /^https?:\/\//i.test(id);
}

function buildApp(routers: express.RequestHandler[]): express.Express {
  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  for (const router of routers) app.use(router);
  app.use((req, res) => {
    res.status(404).json({
      error: {
        code: 'NotFound',
        message: `The sandbox has nothing at ${req.method} ${req.path}.`,
      },
    });
  });
  return app;
}

function chooseTlsDir(options: SandboxOptions, stateDir: string): string {
  if (options.tlsDir) return path.resolve(options.tlsDir);
  const trusted = process.env.NODE_EXTRA_CA_CERTS;
  if (trusted && hasCaWithKey(path.resolve(trusted))) return path.dirname(path.resolve(trusted));
  return path.join(stateDir, 'tls');
}

function warnIfUntrusted(caCertPath: string, log: Logger): void {
  const trusted = process.env.NODE_EXTRA_CA_CERTS;
  if (trusted && path.resolve(trusted) === caCertPath) return;
  log.warn(
    { caCertPath, hint: 'start client processes with NODE_EXTRA_CA_CERTS set to caCertPath' },
    'sandbox_ca_not_trusted_by_this_process',
  );
}

/**
 * Listens on 127.0.0.1 and, where the host has it, on ::1 at the same port:
 * "localhost" may resolve to either, and the sandbox should not be reachable
 * from other machines.
 */
async function listenOnLoopback(
  port: number,
  tls: https.ServerOptions,
  handler: Parameters<typeof https.createServer>[1],
): Promise<https.Server[]> {
  const v4 = https.createServer(tls, handler);
  v4.listen(port, '127.0.0.1');
  await Promise.race([
    once(v4, 'listening'),
    once(v4, 'error').then(([error]) => Promise.reject(portError(error as Error, port))),
  ]);
  const bound = (v4.address() as AddressInfo).port;

  const v6 = https.createServer(tls, handler);
  try {
    v6.listen(bound, '::1');
    await Promise.race([
      once(v6, 'listening'),
      once(v6, 'error').then(([error]) => Promise.reject(error)),
    ]);
    return [v4, v6];
  } catch {
    // No IPv6 loopback here (or the port is taken on it): 127.0.0.1 alone serves.
    v6.close();
    return [v4];
  }
}

function portError(error: Error, port: number): Error {
  if ((error as NodeJS.ErrnoException).code === 'EADDRINUSE') {
    return new Error(
      `The sandbox's HTTPS port ${port} is in use. Stop the other sandbox or choose another port (0 picks a free one).`,
    );
  }
  return error;
}

async function closeServers(servers: https.Server[]): Promise<void> {
  await Promise.all(
    servers.map(
      (server) =>
        new Promise<void>((resolve) => {
          server.close(() => resolve());
          server.closeAllConnections();
        }),
    ),
  );
}
