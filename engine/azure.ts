/**
 * Azure SDK clients as the engine builds them: one place that knows the ARM
 * endpoint (Azure, or the sandbox in development and tests).
 */
import { ComputeManagementClient } from '@azure/arm-compute';
import { SqlManagementClient } from '@azure/arm-sql';
import type { TokenCredential } from '@azure/identity';

export interface ComputeClientOptions {
  credential: TokenCredential;
  subscriptionId: string;
  /** ARM endpoint, e.g. https://management.azure.com or the sandbox's URL. */
  endpoint: string;
}

/** A compute client for one subscription at the given ARM endpoint. */
export function createComputeClient(opts: ComputeClientOptions): ComputeManagementClient {
  return new ComputeManagementClient(opts.credential, opts.subscriptionId, {
    endpoint: opts.endpoint.replace(/\/+$/, ''),
  });
}

/** An Azure SQL management client for one subscription at the given ARM endpoint. */
export function createSqlClient(opts: ComputeClientOptions): SqlManagementClient {
  const endpoint = opts.endpoint.replace(/\/+$/, '');
  // This SDK builds request URLs from $host, not from endpoint, and would ask for tokens for
  // the endpoint; ARM's audience is the same whatever the endpoint (the sandbox's included).
  return new SqlManagementClient(opts.credential, opts.subscriptionId, {
    endpoint,
    $host: endpoint,
    credentialScopes: ['https://management.azure.com/.default'],
  });
}
