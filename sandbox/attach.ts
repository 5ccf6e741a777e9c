/**
 * Using a sandbox that another process serves: `acba worker` processes on
 * the same machine as an `acba serve` (or `acba web`) that started the
 * sandbox share its Azure stand-in instead of starting one each.
 *
 * Everything a client needs follows from three facts: the sandbox's HTTPS
 * address (ARM, identity and Key Vault), its CA file, and Azurite's port.
 * The seeded tenants, the provider's app registration and Azurite's
 * development account are the same in every sandbox (./seed.ts), so they
 * are not fetched; a first request only checks that a sandbox answers and
 * that this process trusts its CA.
 */
import fs from 'node:fs';
import { badInput, unavailable } from '../core/errors.ts';
import { azuriteConnectionString } from './azurite.ts';
import type { Sandbox } from './index.ts';
import { buildSeed } from './seed.ts';

/** What a client of the sandbox needs, whether this process started it or another did. */
export type SandboxConnection = Pick<
  Sandbox,
  | 'armUrl'
  | 'authorityHost'
  | 'caCertPath'
  | 'servicePrincipal'
  | 'repositoryConnectionString'
  | 'seed'
>;

export interface AttachOptions {
  /** The sandbox's HTTPS address, e.g. https://localhost:3979. */
  armUrl: string;
  /** The sandbox's CA certificate (PEM); this process must trust it through NODE_EXTRA_CA_CERTS. */
  caCertPath: string;
  /** The port of the sandbox's Azurite on this machine. */
  blobPort: number;
}

/** Connects to a running sandbox; unavailable when none answers at `armUrl`. */
export async function attachSandbox(options: AttachOptions): Promise<SandboxConnection> {
  if (!fs.existsSync(options.caCertPath))
    throw badInput(
      `The sandbox CA file ${options.caCertPath} does not exist. Set ACBA_SANDBOX_CA_FILE to the ca.pem of the process serving the sandbox (its DATA_DIR/sandbox/tls/ca.pem).`,
    );

  const { seed, application } = buildSeed();
  const armUrl = options.armUrl.replace(/\/+$/, '');
  const probe = `${armUrl}/${application.tenantId}/v2.0/.well-known/openid-configuration`;
  const answer = await fetch(probe).catch((error: Error) => error);
  if (answer instanceof Error || !answer.ok)
    throw unavailable(
      `No sandbox answers at ${armUrl} (${answer instanceof Error ? String(answer.cause ?? answer.message) : `HTTP ${answer.status}`}). Start "acba serve" or "acba web" with the sandbox first, and check ACBA_SANDBOX_URL and that NODE_EXTRA_CA_CERTS names its CA.`,
    );

  return {
    armUrl,
    authorityHost: armUrl,
    caCertPath: options.caCertPath,
    servicePrincipal: {
      tenantId: application.tenantId,
      clientId: application.clientId,
      clientSecret: application.clientSecret,
    },
    repositoryConnectionString: azuriteConnectionString(options.blobPort),
    seed,
  };
}
