/**
 * ACBA's configuration, read once from the environment at the entry point into
 * one validated, typed object. Modules receive the parts they need; nothing
 * else reads process.env.
 */
import path from 'node:path';
import { z } from 'zod';
import { badInput } from './errors.ts';

const optionalString = z
  .string()
  .optional()
  .transform((value) => (value === undefined || value.trim() === '' ? undefined : value.trim()));

const envSchema = z.object({
  PORT: z.coerce.number().int().min(0).max(65535).default(3978),
  DATA_DIR: z.string().default('./data'),
  DATABASE_URL: optionalString,
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  ACBA_PUBLIC_URL: optionalString,
  ACBA_TRUST_PROXY: z
    .string()
    .trim()
    .regex(
      /^(\d{1,2}|true|false|[a-z0-9.:/,\s]+)$/i,
      'a number of proxy hops, true, false, or a comma-separated list of proxy addresses or subnets (loopback, uniquelocal, 10.0.0.0/8, ...)',
    )
    .optional(),
  ACBA_SIGNING_KEY: optionalString,
  ACBA_METRICS_TOKEN: optionalString,
  ACBA_EXPORT_DIR: optionalString,
  ACBA_REPOSITORY_KEK: optionalString,
  ACBA_KEY_VAULT_KEY_ID: optionalString.pipe(
    z
      .string()
      .regex(
        /^https:\/\/[^/\s]+\/keys\/[0-9a-zA-Z-]+(\/[0-9a-zA-Z]+)?\/?$/,
        'a Key Vault key id, https://<vault>/keys/<name> or https://<vault>/keys/<name>/<version>',
      )
      .optional(),
  ),
  ACBA_REPOSITORY_CONNECTION_STRING: optionalString,
  ACBA_REPOSITORY_CONTAINER: z.string().default('acba-repository'),
  ACBA_SQL_STAGING_CONTAINER: z
    .string()
    .regex(/^[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62}$/, 'a blob container name')
    .default('acba-staging'),
  ACBA_SQL_LOGINS_FILE: optionalString,
  ACBA_REPOSITORY_IMMUTABILITY: z.enum(['on', 'off']).default('off'),
  ACBA_PROVIDER_TENANT_ID: optionalString,
  ACBA_APPROVERS_CONVERSATION_ID: optionalString,
  ACBA_APPROVERS_SERVICE_URL: optionalString,
  ACBA_OPERATORS_CONVERSATION_ID: optionalString,
  ACBA_OPERATORS_SERVICE_URL: optionalString,
  ACBA_DOWNLOAD_LINK_MINUTES: z.coerce
    .number()
    .int()
    .min(1)
    .max(7 * 24 * 60)
    .default(60),
  ACBA_APPROVAL_RULES: optionalString,
  ACBA_ROLE_MAPPING: optionalString,
  ACBA_APPROVER_COOLDOWN_HOURS: z.coerce
    .number()
    .min(0)
    .max(24 * 365)
    .default(24),
  ACBA_REQUEST_TTL_HOURS: z.coerce
    .number()
    .min(0.01)
    .max(24 * 90)
    .default(24),
  ACBA_APPROVED_WORK_TTL_HOURS: z.coerce
    .number()
    .min(0.01)
    .max(24 * 90)
    .default(24),
  ACBA_AUDIT_ANCHOR_MINUTES: z.coerce
    .number()
    .int()
    .min(1)
    .max(24 * 60)
    .default(15),
  ACBA_BACKUP_ON_START: z.enum(['0', '1', 'true', 'false']).optional(),
  ACBA_SANDBOX: z.enum(['0', '1', 'true', 'false']).optional(),
  ACBA_SANDBOX_ARM_PORT: z.coerce.number().int().min(0).max(65535).default(3979),
  ACBA_SANDBOX_BLOB_PORT: z.coerce.number().int().min(0).max(65535).default(10000),
  ACBA_SANDBOX_URL: optionalString.pipe(
    z
      .string()
      .regex(
        /^https:\/\/[^/\s]+\/?$/,
        'the https address of a running sandbox, e.g. https://localhost:3979',
      )
      .optional(),
  ),
  ACBA_SANDBOX_CA_FILE: optionalString,
  ACBA_WORKER_LEASE_SECONDS: z.coerce.number().min(3).max(3600).default(30),
  ACBA_JOB_RETRY_DELAY_SECONDS: z.coerce.number().int().min(1).max(3600).default(30),
  ACBA_OIDC_ISSUER: optionalString,
  ACBA_OIDC_CLIENT_ID: optionalString,
  ACBA_OIDC_CLIENT_SECRET: optionalString,
  MICROSOFT_APP_ID: optionalString,
  MICROSOFT_APP_PASSWORD: optionalString,
  MICROSOFT_APP_TENANT_ID: optionalString,
  MICROSOFT_APP_TYPE: z.enum(['MultiTenant', 'SingleTenant', 'UserAssignedMSI']).optional(),
  AZURE_TENANT_ID: optionalString,
  AZURE_CLIENT_ID: optionalString,
  AZURE_CLIENT_SECRET: optionalString,
  AZURE_AUTHORITY_HOST: optionalString,
  AZURE_RESOURCE_MANAGER_URL: optionalString,
  ACBA_AZURE_POLL_INTERVAL_MS: z.coerce.number().int().min(10).max(60_000).optional(),
});

export interface BotConfig {
  /** Microsoft app id of the bot registration; unset means local mode (Bot Framework Emulator, sandbox chat). */
  appId?: string;
  appPassword?: string;
  appTenantId?: string;
  appType: 'MultiTenant' | 'SingleTenant' | 'UserAssignedMSI';
  /** Teams conversation (the provider's approvers channel) that receives approval cards. */
  approversConversationId?: string;
  /** Service URL for the approvers' conversation; learned from its stored reference when unset. */
  approversServiceUrl?: string;
  /** Teams conversation (the provider's operators channel) that receives backup failure cards. */
  operatorsConversationId?: string;
  /** Service URL for the operators' conversation; learned from its stored reference when unset. */
  operatorsServiceUrl?: string;
}

export interface AzureConfig {
  tenantId?: string;
  clientId?: string;
  clientSecret?: string;
  authorityHost?: string;
  /** Azure Resource Manager endpoint, https://management.azure.com by default. */
  resourceManagerUrl: string;
  /** Poll interval for long-running operations that give no Retry-After; the Azure SDK's 2 s when unset. */
  pollIntervalMs?: number;
}

export interface RepositoryConfig {
  /** Blob storage connection string of the provider's repository account. */
  connectionString?: string;
  container: string;
  /** Key-encryption key (32 bytes, base64) that wraps the repository's data keys. */
  kek?: string;
  /**
   * An RSA key in Azure Key Vault (https://<vault>/keys/<name>[/<version>]) that
   * wraps the repository's data keys instead of the local key-encryption key.
   */
  keyVaultKeyId?: string;
  /**
   * Give each restore point's manifest and packs an immutability policy until
   * it expires; the container needs version-level immutability enabled.
   */
  immutability: boolean;
}

/** Azure SQL database backups. */
export interface SqlConfig {
  /** Container in the repository's storage account where exports write their BACPACs for a backup's duration. */
  stagingContainer: string;
  /** JSON file with the SQL login of each logical server, by resource id (see engine/sql-logins.ts). */
  loginsFile?: string;
}

/** The built-in sandbox: started by this process, or served by another one on this machine. */
export interface SandboxConfig {
  enabled: boolean;
  /** HTTPS port of the sandbox this process starts, or of the one it attaches to. */
  armPort: number;
  /** Azurite's port, likewise. */
  blobPort: number;
  /**
   * Attach to the sandbox another ACBA process serves at this https address
   * instead of starting one (how `acba worker` uses the sandbox).
   */
  attachUrl?: string;
  /** The CA of the sandbox attached to; DATA_DIR/sandbox/tls/ca.pem by default. */
  caFile: string;
}

/** Queue workers' leases and job retries. */
export interface JobsConfig {
  /** Seconds a worker's lease lasts without renewal; after that its jobs are run again elsewhere. */
  workerLeaseSeconds: number;
  /** Seconds before a failed job's first retry (doubling, with jitter, after). */
  retryDelaySeconds: number;
}

/** Portal sign-in and API tokens with Entra ID over OpenID Connect. */
export interface OidcConfig {
  /** e.g. https://login.microsoftonline.com/organizations/v2.0 (multi-tenant) or one tenant's issuer. */
  issuer: string;
  /** The app registration's client id; API tokens must name it as audience. */
  clientId: string;
  clientSecret: string;
}

export interface Config {
  port: number;
  dataDir: string;
  databaseUrl?: string;
  logLevel: string;
  /** The address people reach ACBA on; download links point here. */
  publicUrl: string;
  /**
   * Which proxies in front of ACBA to believe about the client's address and
   * protocol (Express's "trust proxy"); needed behind a TLS-terminating proxy,
   * or secure session cookies are never sent.
   */
  trustProxy: boolean | number | string;
  /** Secret for signed links and sessions; generated under the data folder when unset. */
  signingKey?: string;
  /** Folder under which exit exports to a folder are written; DATA_DIR/exports by default. */
  exportDir: string;
  /** Bearer token a Prometheus scrape of /metrics must send; unset allows scrapes from this machine only. */
  metricsToken?: string;
  providerTenantId?: string;
  downloadLinkMinutes: number;
  /** Approval rules and their timing. */
  approvals: {
    /** Path of the JSON approval rules file; the built-in defaults when unset. */
    rulesFile?: string;
    /** Path of the JSON file mapping Entra app roles and group ids to ACBA roles; unset keeps roles in ACBA's table only. */
    roleMappingFile?: string;
    /** Hours after being granted the approver role before one may approve. */
    approverCooldownHours: number;
    /** Hours a request waits for its decisions before it expires. */
    requestTtlHours: number;
    /** Hours approved work may wait to be started before its approval expires. */
    approvedWorkTtlHours: number;
  };
  /** Minutes between copies of the audit chain's head to write-once storage in the repository. */
  auditAnchorMinutes: number;
  /** Back up every protected VM once at start-up. */
  backupOnStart: boolean;
  /** Run against the built-in sandbox instead of Azure. */
  sandbox: SandboxConfig;
  /** How queue workers prove they are alive and how failed jobs are retried. */
  jobs: JobsConfig;
  bot: BotConfig;
  azure: AzureConfig;
  repository: RepositoryConfig;
  sql: SqlConfig;
  /** Unset: no OpenID Connect sign-in (the sandbox then signs in through its own stand-in). */
  oidc?: OidcConfig;
}

const truthy = (value: string | undefined) => value === '1' || value === 'true';

function trustProxyOf(value: string | undefined): boolean | number | string {
  if (value === undefined || value === 'false') return false;
  if (value === 'true') return true;
  return /^\d+$/.test(value) ? Number(value) : value;
}

/** Reads and validates the configuration; throws a bad_input error naming each wrong variable. */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const problems = parsed.error.issues
      .map((issue) => `${issue.path.join('.')}: ${issue.message}`)
      .join('; ');
    throw badInput(
      `Configuration is invalid (${problems}). Fix these environment variables and start again.`,
    );
  }
  const e = parsed.data;

  const oidcSettings = [e.ACBA_OIDC_ISSUER, e.ACBA_OIDC_CLIENT_ID, e.ACBA_OIDC_CLIENT_SECRET];
  if (oidcSettings.some(Boolean) && !oidcSettings.every(Boolean)) {
    throw badInput(
      'OpenID Connect sign-in needs ACBA_OIDC_ISSUER, ACBA_OIDC_CLIENT_ID and ACBA_OIDC_CLIENT_SECRET together. Set all three, or none.',
    );
  }

  const azureConfigured =
    e.AZURE_CLIENT_ID !== undefined || e.AZURE_RESOURCE_MANAGER_URL !== undefined;
  const sandboxEnabled = e.ACBA_SANDBOX === undefined ? !azureConfigured : truthy(e.ACBA_SANDBOX);
  if (e.ACBA_SANDBOX_URL && !sandboxEnabled) {
    throw badInput(
      'ACBA_SANDBOX_URL is set but the sandbox is off (Azure settings or ACBA_SANDBOX=0). Remove ACBA_SANDBOX_URL to use Azure, or the Azure settings to use the sandbox.',
    );
  }
  const dataDir = path.resolve(e.DATA_DIR);

  return {
    port: e.PORT,
    dataDir,
    databaseUrl: e.DATABASE_URL,
    logLevel: e.LOG_LEVEL,
    publicUrl: (e.ACBA_PUBLIC_URL ?? `http://localhost:${e.PORT}`).replace(/\/+$/, ''),
    trustProxy: trustProxyOf(e.ACBA_TRUST_PROXY),
    signingKey: e.ACBA_SIGNING_KEY,
    metricsToken: e.ACBA_METRICS_TOKEN,
    exportDir: path.resolve(e.ACBA_EXPORT_DIR ?? path.join(e.DATA_DIR, 'exports')),
    providerTenantId: e.ACBA_PROVIDER_TENANT_ID,
    downloadLinkMinutes: e.ACBA_DOWNLOAD_LINK_MINUTES,
    approvals: {
      rulesFile: e.ACBA_APPROVAL_RULES,
      roleMappingFile: e.ACBA_ROLE_MAPPING,
      approverCooldownHours: e.ACBA_APPROVER_COOLDOWN_HOURS,
      requestTtlHours: e.ACBA_REQUEST_TTL_HOURS,
      approvedWorkTtlHours: e.ACBA_APPROVED_WORK_TTL_HOURS,
    },
    auditAnchorMinutes: e.ACBA_AUDIT_ANCHOR_MINUTES,
    backupOnStart:
      e.ACBA_BACKUP_ON_START === undefined ? sandboxEnabled : truthy(e.ACBA_BACKUP_ON_START),
    sandbox: {
      enabled: sandboxEnabled,
      armPort: e.ACBA_SANDBOX_ARM_PORT,
      blobPort: e.ACBA_SANDBOX_BLOB_PORT,
      attachUrl: e.ACBA_SANDBOX_URL?.replace(/\/+$/, ''),
      caFile: path.resolve(
        e.ACBA_SANDBOX_CA_FILE ?? path.join(dataDir, 'sandbox', 'tls', 'ca.pem'),
      ),
    },
    jobs: {
      workerLeaseSeconds: e.ACBA_WORKER_LEASE_SECONDS,
      retryDelaySeconds: e.ACBA_JOB_RETRY_DELAY_SECONDS,
    },
    bot: {
      appId: e.MICROSOFT_APP_ID,
      appPassword: e.MICROSOFT_APP_PASSWORD,
      appTenantId: e.MICROSOFT_APP_TENANT_ID,
      appType: e.MICROSOFT_APP_TYPE ?? 'MultiTenant',
      approversConversationId: e.ACBA_APPROVERS_CONVERSATION_ID,
      approversServiceUrl: e.ACBA_APPROVERS_SERVICE_URL,
      operatorsConversationId: e.ACBA_OPERATORS_CONVERSATION_ID,
      operatorsServiceUrl: e.ACBA_OPERATORS_SERVICE_URL,
    },
    azure: {
      tenantId: e.AZURE_TENANT_ID,
      clientId: e.AZURE_CLIENT_ID,
      clientSecret: e.AZURE_CLIENT_SECRET,
      authorityHost: e.AZURE_AUTHORITY_HOST,
      resourceManagerUrl: e.AZURE_RESOURCE_MANAGER_URL ?? 'https://management.azure.com',
      pollIntervalMs: e.ACBA_AZURE_POLL_INTERVAL_MS,
    },
    repository: {
      connectionString: e.ACBA_REPOSITORY_CONNECTION_STRING,
      container: e.ACBA_REPOSITORY_CONTAINER,
      kek: e.ACBA_REPOSITORY_KEK,
      keyVaultKeyId: e.ACBA_KEY_VAULT_KEY_ID,
      immutability: e.ACBA_REPOSITORY_IMMUTABILITY === 'on',
    },
    sql: { stagingContainer: e.ACBA_SQL_STAGING_CONTAINER, loginsFile: e.ACBA_SQL_LOGINS_FILE },
    oidc:
      e.ACBA_OIDC_ISSUER && e.ACBA_OIDC_CLIENT_ID && e.ACBA_OIDC_CLIENT_SECRET
        ? {
            issuer: e.ACBA_OIDC_ISSUER.replace(/\/+$/, ''),
            clientId: e.ACBA_OIDC_CLIENT_ID,
            clientSecret: e.ACBA_OIDC_CLIENT_SECRET,
          }
        : undefined,
  };
}
