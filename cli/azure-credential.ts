/**
 * The service's Azure credential outside the sandbox: its app registration's
 * client secret when AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET
 * are set, otherwise whatever DefaultAzureCredential finds (managed identity,
 * workload identity, the Azure CLI's sign-in).
 */
import type { TokenCredential } from '@azure/core-auth';
import { ClientSecretCredential, DefaultAzureCredential } from '@azure/identity';
import type { AzureConfig } from '../core/config.ts';

/** The credential for ARM, SQL and Key Vault calls. */
export function azureCredential(azure: AzureConfig): TokenCredential {
  const { tenantId, clientId, clientSecret, authorityHost } = azure;
  return tenantId && clientId && clientSecret
    ? new ClientSecretCredential(
        tenantId,
        clientId,
        clientSecret,
        authorityHost ? { authorityHost } : {},
      )
    : new DefaultAzureCredential();
}
