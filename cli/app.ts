/**
 * The composition root: builds every part from one validated configuration and
 * serves them on one HTTP port. Used by `acba serve` and by the end-to-end
 * tests, which start the real thing on random ports.
 *
 * With no Azure settings the built-in sandbox stands in for the customer's
 * Azure tenant (ARM over HTTPS, disk page blobs, Azurite for the repository)
 * and for Teams (a chat page and connector under /sandbox/teams).
 *
 * Roles: 'all' is everything in one process; split, 'web' processes serve
 * HTTP and run the scheduler, and 'worker' processes only take jobs. Every
 * process that takes jobs holds a worker lease, and every process sweeps for
 * dead workers' leases (engine/worker-reclaim.ts). A worker uses the sandbox
 * that a web process started on the same machine (ACBA_SANDBOX_URL).
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { ClientSecretCredential, type TokenCredential } from '@azure/identity';
import express from 'express';
import { sql } from 'kysely';
import {
  createApprovals,
  loadApprovalRules,
  loadRoleMapping,
  recordConfiguration,
} from '../approvals/index.ts';
import { createBot } from '../bot/index.ts';
import { verifyAuditChain } from '../core/audit.ts';
import { startAuditAnchoring } from '../core/audit-anchor.ts';
import type { Config } from '../core/config.ts';
import { openDatabase, type DatabaseHandle } from '../core/db/database.ts';
import { badInput, publicMessageOf, unavailable } from '../core/errors.ts';
import { createLogger, type Logger } from '../core/log.ts';
import { restoresFinished } from '../core/metrics.ts';
import { keyFromConfigOrDataDir } from '../core/secrets.ts';
import { LinkSigner } from '../core/signing.ts';
import { createComputeClient, createVhdBlobs } from '../engine/azure.ts';
import { createEngine, type Engine } from '../engine/engine.ts';
import { loadSqlLogins } from '../engine/sql-logins.ts';
import { startJobQueue } from '../engine/job-queue.ts';
import { startReclaimer } from '../engine/worker-reclaim.ts';
import { startWorkerLease, type WorkerLease } from '../engine/worker-leases.ts';
import { Repository } from '../engine/repository/repository.ts';
import { applyRetention } from '../engine/retention.ts';
import { startScheduler } from '../engine/scheduler.ts';
import type { EngineNotices } from '../engine/notices.ts';
import { createApi } from '../portal/api/index.ts';
import { createPortal } from '../portal/index.ts';
import { OidcSignIn } from '../portal/oidc.ts';
import { attachSandbox, type SandboxConnection } from '../sandbox/attach.ts';
import { startSandbox, type Sandbox } from '../sandbox/index.ts';
import { createTeamsStandIn } from '../sandbox/teams/index.ts';
import { azureCredential } from './azure-credential.ts';
import { repositoryKeyWrapping } from './repository-key.ts';
import { metricsRouter } from './metrics-router.ts';
import { sandboxSqlLogins, seedFromSandbox } from './sandbox-seed.ts';

/** The approvers' channel in the sandbox's stand-in Teams. */
export const SANDBOX_APPROVERS_CONVERSATION = '19:acba-approvers@thread.tacv2';
/** The operators' channel in the sandbox's stand-in Teams, where failed backups are posted. */
export const SANDBOX_OPERATORS_CONVERSATION = '19:acba-operators@thread.tacv2';

export interface RunningApp {
  /** Where the HTTP server listens, e.g. http://localhost:3978. */
  url: string;
  config: Config;
  database: DatabaseHandle;
  engine: Engine;
  sandbox?: Sandbox;
  log: Logger;
  close(): Promise<void>;
}

export interface StartOptions {
  log?: Logger;
  /** Where the sandbox caches its built disk images (tests share one cache). */
  sandboxImageCacheDir?: string;
  /**
   * 'all' serves everything and runs a worker (`acba serve`); 'web' serves
   * everything but takes no jobs (`acba web`); 'worker' only takes jobs from
   * the queue and answers /healthz (`acba worker`).
   */
  role?: AppRole;
  /**
   * Called when this process's worker lease was taken back while it still
   * ran: its jobs run elsewhere now, so `acba worker` exits at once.
   */
  onWorkerLeaseLost?: () => void;
}

export type AppRole = 'all' | 'web' | 'worker';

/** Starts ACBA: database, sandbox (when enabled), job queue, engine, approvals, bot, portal, health. */
export async function startApp(config: Config, options: StartOptions = {}): Promise<RunningApp> {
  const log = options.log ?? createLogger({ level: config.logLevel });
  const closers: Array<() => Promise<void>> = [];
  const role = options.role ?? 'all';
  const close = async () => {
    for (const closer of closers.reverse())
      await closer().catch((error) => log.warn({ err: error }, 'shutdown_step_failed'));
  };

  try {
    if (!config.sandbox.enabled && role !== 'worker' && !config.bot.appId) {
      // Without an app id the bot cannot check who sent an activity; that is
      // only acceptable against the sandbox's made-up people.
      throw badInput(
        'MICROSOFT_APP_ID and MICROSOFT_APP_PASSWORD are not set. Outside the sandbox the bot must validate Teams tokens: set them to the Azure Bot registration of this installation.',
      );
    }
    if (role !== 'all' && !config.databaseUrl) {
      throw badInput(
        `"acba ${role}" shares its database with other processes, and the embedded one cannot be shared: set DATABASE_URL to a PostgreSQL server, or run everything in one process with "acba serve".`,
      );
    }
    if (config.sandbox.enabled && role === 'worker' && !config.sandbox.attachUrl) {
      throw badInput(
        'A worker does not start a sandbox of its own: set ACBA_SANDBOX_URL (and ACBA_SANDBOX_CA_FILE, ACBA_SANDBOX_BLOB_PORT) to the sandbox that "acba serve" or "acba web" serves on this machine, or give real Azure settings.',
      );
    }

    // The HTTP server goes up first so that its real address (port 0 in tests)
    // is known to the parts that build links; /healthz answers 503 until ready.
    const app = express();
    app.disable('x-powered-by');
    app.set('trust proxy', config.trustProxy);
    let healthDeps: HealthDeps | undefined;
    app.get('/healthz', async (_req, res) => {
      const report = healthDeps ? await health(healthDeps) : starting();
      res.status(report.status === 'ok' ? 200 : 503).json(report);
    });
    const port = await listen(app, config.port, undefined, closers);

    // The restore point's disk resource is for libguestfs on this machine
    // only: it gets its own server, bound to the loopback interface.
    const internal = express();
    internal.disable('x-powered-by');
    const internalPort = await listen(internal, 0, '127.0.0.1', closers);
    const url = `http://localhost:${port}`;
    const publicUrl = config.port === 0 ? url : config.publicUrl;

    const database = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir });
    closers.push(() => database.close());
    const { db } = database;

    const signingKey = await keyFromConfigOrDataDir(
      config.signingKey,
      config.dataDir,
      'signing-key',
    );
    const signer = new LinkSigner(signingKey);

    let sandbox: Sandbox | undefined;
    let sandboxConnection: SandboxConnection | undefined;
    let credential: TokenCredential;
    let resourceManagerUrl = config.azure.resourceManagerUrl;
    let repositoryConnectionString = config.repository.connectionString;
    let providerTenantId = config.providerTenantId;
    let sqlLogins = config.sql.loginsFile ? loadSqlLogins(config.sql.loginsFile) : undefined;
    let approversConversationId = config.bot.approversConversationId;
    let approversServiceUrl = config.bot.approversServiceUrl;
    let operatorsConversationId = config.bot.operatorsConversationId;
    let operatorsServiceUrl = config.bot.operatorsServiceUrl;

    if (config.sandbox.enabled && config.sandbox.attachUrl) {
      sandboxConnection = await attachSandbox({
        armUrl: config.sandbox.attachUrl,
        caCertPath: config.sandbox.caFile,
        blobPort: config.sandbox.blobPort,
      });
    } else if (config.sandbox.enabled) {
      sandbox = await startSandbox({
        dataDir: config.dataDir,
        armPort: config.port === 0 ? 0 : config.sandbox.armPort,
        blobPort: config.port === 0 ? 0 : config.sandbox.blobPort,
        imageCacheDir: options.sandboxImageCacheDir,
        log: log.child({ part: 'sandbox' }),
      });
      closers.push(() => sandbox!.close());
      await seedFromSandbox(db, sandbox.seed);
      sandboxConnection = sandbox;
    }
    if (sandboxConnection) {
      const sp = sandboxConnection.servicePrincipal;
      credential = new ClientSecretCredential(sp.tenantId, sp.clientId, sp.clientSecret, {
        authorityHost: sandboxConnection.authorityHost,
        disableInstanceDiscovery: true,
      });
      resourceManagerUrl = sandboxConnection.armUrl;
      repositoryConnectionString ??= sandboxConnection.repositoryConnectionString;
      providerTenantId ??= sandboxConnection.seed.provider.tenantId;
      sqlLogins ??= sandboxSqlLogins(sandboxConnection.seed);
      // The Teams stand-in is served by the process that started the sandbox: for a worker, the public address.
      const teamsStandIn = `${sandbox ? url : publicUrl}/sandbox/teams`;
      approversConversationId ??= SANDBOX_APPROVERS_CONVERSATION;
      approversServiceUrl ??= teamsStandIn;
      operatorsConversationId ??= SANDBOX_OPERATORS_CONVERSATION;
      operatorsServiceUrl ??= teamsStandIn;
    } else {
      credential = azureCredential(config.azure);
    }

    const keyWrapping = await repositoryKeyWrapping(
      config,
      () => credential,
      sandboxConnection?.armUrl,
    );
    if (!repositoryConnectionString) {
      throw badInput(
        "No repository is configured. Set ACBA_REPOSITORY_CONNECTION_STRING to the provider's storage account, or run without Azure settings to use the sandbox.",
      );
    }
    if (!providerTenantId) {
      throw badInput(
        'ACBA_PROVIDER_TENANT_ID is not set. Set it to the Entra tenant id of the provider, whose staff approve requests.',
      );
    }

    // Processes that take jobs hold a lease; it ends after the queue has stopped (closers run in reverse).
    const leaseMs = config.jobs.workerLeaseSeconds * 1000;
    let lease: WorkerLease | undefined;
    if (role !== 'web') {
      lease = await startWorkerLease(db, {
        log: log.child({ part: 'worker' }),
        role,
        ttlMs: leaseMs,
        onLost: options.onWorkerLeaseLost,
      });
      closers.push(() => lease!.stop());
    }

    const queue = await startJobQueue({
      executeSql: database.executeSql,
      log: log.child({ part: 'queue' }),
      retry: { limit: 2, delaySeconds: config.jobs.retryDelaySeconds },
    });
    closers.push(() => queue.stop());
    // Every process sweeps for dead workers, web processes included.
    const reclaimLog = log.child({ part: 'reclaim' });
    const stopReclaimer = startReclaimer(db, queue.failJob, reclaimLog, leaseMs / 2);
    closers.push(async () => stopReclaimer());

    // The bot is built after the engine but the engine reports to it; this
    // forwarder closes the loop without the engine knowing about Teams.
    let botNotices: EngineNotices | undefined;
    const notices: EngineNotices = {
      restoreFinished: async (event) => {
        restoresFinished.inc({ kind: event.kind, outcome: event.outcome });
        await botNotices?.restoreFinished(event);
      },
      backupFailed: async (event) => botNotices?.backupFailed?.(event),
    };

    const engine = await createEngine({
      db,
      log: log.child({ part: 'engine' }),
      credential,
      resourceManagerUrl,
      repository: {
        connectionString: repositoryConnectionString,
        container: config.repository.container,
        keyWrapping,
        immutable: config.repository.immutability,
      },
      signer,
      publicUrl,
      diskResourceUrl: `http://127.0.0.1:${internalPort}/engine`,
      downloadLinkMinutes: config.downloadLinkMinutes,
      notices,
      workDir: path.join(config.dataDir, 'work'),
      approvalCheck: { providerTenantId, cooldownHours: config.approvals?.approverCooldownHours },
      sql: { stagingContainer: config.sql.stagingContainer, logins: sqlLogins },
      jobSessions: { workerId: lease?.id },
      azurePollIntervalMs: config.azure.pollIntervalMs,
    });
    closers.push(() => engine.close());

    const approvalSettings = config.approvals;
    const rules = approvalSettings?.rulesFile ? loadApprovalRules(approvalSettings.rulesFile) : [];
    const roleMapping = approvalSettings?.roleMappingFile
      ? loadRoleMapping(approvalSettings.roleMappingFile)
      : undefined;
    if (role !== 'worker') {
      await recordConfiguration(db, {
        name: 'approval_rules',
        file: approvalSettings?.rulesFile,
        summary: rules.map((r) => ({
          id: r.id,
          kinds: r.kinds,
          when: r.whenText,
          approvals: r.approvals,
        })),
      });
      await recordConfiguration(db, {
        name: 'role_mapping',
        file: approvalSettings?.roleMappingFile,
        summary: roleMapping ?? null,
      });
    }
    const approvals = createApprovals({
      db,
      log: log.child({ part: 'approvals' }),
      queue,
      providerTenantId,
      rules,
      approverCooldownHours: approvalSettings?.approverCooldownHours,
      requestTtlHours: approvalSettings?.requestTtlHours,
      approvedWorkTtlHours: approvalSettings?.approvedWorkTtlHours,
    });
    const bot = createBot({
      approvals,
      db,
      log: log.child({ part: 'bot' }),
      appId: config.bot.appId,
      appPassword: config.bot.appPassword,
      appTenantId: config.bot.appTenantId,
      appType: config.bot.appType,
      approversConversationId,
      approversServiceUrl,
      operatorsConversationId,
      operatorsServiceUrl,
    });
    botNotices = bot.notices;

    app.use(
      metricsRouter({
        db,
        log: log.child({ part: 'metrics' }),
        queueDepth: () => queue.depth(),
        token: config.metricsToken,
      }),
    );
    internal.use('/engine', engine.diskRouter());
    // Entra ID sign-in when configured; in the sandbox, its identity stand-in plays Entra ID.
    const oidcSettings = config.oidc ?? sandbox?.userSignIn;
    const oidc = oidcSettings
      ? new OidcSignIn({ ...oidcSettings, redirectUri: `${publicUrl}/portal/sign-in/callback` })
      : undefined;
    const decisions = { approvals, announce: bot.announceDecision };
    if (role !== 'worker') {
      app.use(
        '/api/v1',
        createApi({
          db,
          log: log.child({ part: 'api' }),
          providerTenantId,
          verifyAudit: () => verifyAuditChain(db),
          oidc,
          decisions,
          roleMapping,
        }),
      );
      app.use(bot.router);
      app.use('/downloads', engine.downloadRouter());
      app.use(
        '/portal',
        createPortal({
          db,
          log: log.child({ part: 'portal' }),
          providerTenantId,
          sessionSecret: signingKey,
          secureCookies: publicUrl.startsWith('https://'),
          verifyAudit: () => verifyAuditChain(db),
          // Picking who you are is only acceptable where every person is made up.
          signIn: oidc ? { mode: 'oidc', oidc } : { mode: sandbox ? 'picker' : 'none' },
          decisions,
          roleMapping,
        }),
      );
      if (sandbox) {
        const standIn = createTeamsStandIn({
          botEndpoint: `${url}/api/messages`,
          publicUrl: `${url}/sandbox/teams`,
          users: sandbox.seed.users.map((user) => ({
            ...user,
            organization:
              sandbox!.seed.customers.find((c) => c.tenantId === user.tenantId)?.name ??
              sandbox!.seed.provider.name,
          })),
          approversConversationId: approversConversationId!,
          operatorsConversationId,
          log: log.child({ part: 'sandbox-teams' }),
        });
        app.use('/sandbox/teams', standIn.router);
      }
      app.get('/', (_req, res) => res.redirect(sandbox ? '/sandbox/teams/' : '/portal'));
    }
    app.use(
      (
        error: unknown,
        _req: express.Request,
        res: express.Response,
        _next: express.NextFunction,
      ) => {
        log.error({ err: error }, 'request_failed');
        res.status(500).json({ error: publicMessageOf(error) });
      },
    );

    if (lease)
      await queue.work(
        {
          fileRestore: (job) => engine.runRestore(job.requestId),
          backup: async (job) => {
            await engine.backup(job.itemId, job.trigger, {
              expiresAt: job.expiresAt ? new Date(job.expiresAt) : undefined,
              policyName: job.policyName,
              protection: job.protection,
              schedules: job.schedules,
            });
          },
        },
        lease,
      );

    if (role !== 'worker') {
      // Requests nobody decided in time expire; the update is guarded by the
      // request's state, so several web processes doing this at once is safe.
      const timer = setInterval(() => {
        approvals
          .expireOverdue()
          .catch((error) => log.error({ err: error }, 'request_expiry_failed'));
      }, 60_000);
      timer.unref();
      closers.push(async () => clearInterval(timer));
    }

    if (role !== 'worker') {
      // Due policy slots are claimed per (policy, slot) in the database, so several processes may tick.
      const retentionRepository = await Repository.open({
        connectionString: repositoryConnectionString,
        container: config.repository.container,
        keyWrapping,
        immutable: config.repository.immutability,
        db,
      });
      const schedulerLog = log.child({ part: 'scheduler' });
      const scheduler = startScheduler({
        db,
        queue,
        log: schedulerLog,
        maintenance: {
          run: () =>
            applyRetention({
              db,
              repository: retentionRepository,
              log: schedulerLog,
              compute: (subscriptionId) =>
                createComputeClient({ credential, subscriptionId, endpoint: resourceManagerUrl }),
              vhdBlobs: createVhdBlobs({ credential, resourceManagerUrl }),
            }),
        },
      });
      closers.push(() => scheduler.stop());
    }

    if (role !== 'worker') {
      // The chain head goes to write-once storage regularly, so a rewritten database shows.
      const stopAnchoring = startAuditAnchoring({
        db,
        store: {
          connectionString: repositoryConnectionString,
          container: config.repository.container,
        },
        minutes: config.auditAnchorMinutes,
        log: log.child({ part: 'audit-anchor' }),
      });
      closers.push(async () => stopAnchoring());
    }

    if (config.backupOnStart && role !== 'worker') {
      for (const customer of await db.selectFrom('customers').selectAll().execute()) {
        const items = [
          ...(await engine.syncInventory(customer)),
          ...(await engine.syncSqlInventory(customer).catch((err) => {
            // A subscription without SQL access still gets its VMs backed up.
            log.warn({ err, customerId: customer.id }, 'sql_inventory_failed');
            return [];
          })),
        ];
        for (const item of items)
          await queue.enqueueBackup({ itemId: item.id, trigger: 'startup' });
      }
    }

    healthDeps = { log, database, queue, engine };
    log.info({ url, sandbox: Boolean(sandbox), database: database.engine }, 'acba_started');
    return { url, config, database, engine, sandbox, log, close };
  } catch (error) {
    await close();
    throw error;
  }
}

/** Listens on the port (0: any free one) and returns the port; closing is added to `closers`. */
async function listen(
  app: express.Express,
  port: number,
  host: string | undefined,
  closers: Array<() => Promise<void>>,
): Promise<number> {
  const server = http.createServer(app);
  await new Promise<void>((resolve, reject) => {
    server.once('error', (error: NodeJS.ErrnoException) =>
      reject(
        error.code === 'EADDRINUSE'
          ? unavailable(
              `Port ${port} is already in use (is ACBA already running?). Stop that program or set PORT to a free port.`,
            )
          : error,
      ),
    );
    server.listen(port, host, resolve);
  });
  closers.push(
    () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  );
  return (server.address() as AddressInfo).port;
}

interface HealthReport {
  status: 'ok' | 'unavailable';
  failing?: string[];
  parts: Record<string, { ok: boolean; error?: string }>;
}

interface HealthDeps {
  log: Logger;
  database: DatabaseHandle;
  queue: { health(): Promise<void> };
  engine: Engine;
}

function starting(): HealthReport {
  return {
    status: 'unavailable',
    failing: ['startup'],
    parts: { startup: { ok: false, error: 'ACBA is still starting' } },
  };
}

/** Asks every part at once; 200 only when all answer, else the failing parts are named. */
async function health(deps: HealthDeps): Promise<HealthReport> {
  const checks: Record<string, () => Promise<unknown>> = {
    database: () => sql`select 1`.execute(deps.database.db),
    queue: () => deps.queue.health(),
    repository: () => deps.engine.health(),
  };
  const parts: HealthReport['parts'] = {};
  await Promise.all(
    Object.entries(checks).map(async ([name, check]) => {
      try {
        await withTimeout(check(), 5000, `${name} did not answer within 5 s`);
        parts[name] = { ok: true };
      } catch (error) {
        // The report is public: it names the part; the details (host names,
        // accounts) go to the log for the operators.
        deps.log.warn({ part: name, err: error }, 'health_check_failed');
        parts[name] = {
          ok: false,
          error: `${name} is not answering; the service log has the details`,
        };
      }
    }),
  );
  const failing = Object.entries(parts)
    .filter(([, p]) => !p.ok)
    .map(([name]) => name);
  return failing.length === 0 ? { status: 'ok', parts } : { status: 'unavailable', failing, parts };
}

function withTimeout<T>(promise: Promise<T>, ms: number, message: string): Promise<T> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    promise,
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(message)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
