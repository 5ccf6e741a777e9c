/**
 * Azure SDK clients as the engine builds them: one place that knows the ARM
 * endpoint (Azure, or the sandbox in development and tests) and which blob
 * endpoints may receive the service's credential.
 */
import { ComputeManagementClient } from '@azure/arm-compute';
import { SqlManagementClient } from '@azure/arm-sql';
import type { TokenCredential } from '@azure/identity';
import { PageBlobClient } from '@azure/storage-blob';
import { badInput } from '../core/errors.ts';
import type { VhdBlobs } from './vhd-snapshots.ts';

/** Blob endpoints of Azure's public and national clouds. */
const AZURE_BLOB_HOST = /\.blob\.core\.(windows\.net|usgovcloudapi\.net|chinacloudapi\.cn)$/i;

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

/**
 * Page blob clients for unmanaged disks' VHDs, signed in with the service's
 * credential. The VHD URL comes from the VM's configuration, so the token goes
 * only to an Azure blob endpoint over https, or to the ARM endpoint's own host
 * (the sandbox serves both).
 */
export function createVhdBlobs(opts: {
  credential: TokenCredential;
  resourceManagerUrl: string;
}): VhdBlobs {
  const armHost = new URL(opts.resourceManagerUrl).host;
  return (url) => {
    const parsed = new URL(url);
    const trusted =
      parsed.protocol === 'https:' &&
      (AZURE_BLOB_HOST.test(parsed.hostname) || parsed.host === armHost);
    if (!trusted)
      throw badInput(
        `The VHD ${parsed.origin}${parsed.pathname} is not on an Azure blob endpoint over https (https://<account>.blob.core.windows.net/...); ACBA sends its credential nowhere else, so check the VM's vhd.uri.`,
      );
    return new PageBlobClient(url, opts.credential);
  };
}
