/**
 * Which key protects the repository's key file, chosen once at the
 * composition root: the RSA key in Azure Key Vault that ACBA_KEY_VAULT_KEY_ID
 * names, or else the local key-encryption key (ACBA_REPOSITORY_KEK, or one
 * generated under the data folder). See engine/repository/key-wrapping.ts.
 */
import type { TokenCredential } from '@azure/core-auth';
import type { Config } from '../core/config.ts';
import type { Db } from '../core/db/database.ts';
import { badInput } from '../core/errors.ts';
import { keyFromConfigOrDataDir } from '../core/secrets.ts';
import { Repository } from '../engine/repository/repository.ts';
import { azureCredential } from './azure-credential.ts';
import {
  keyVaultKeyWrapping,
  localKeyWrapping,
  type KeyWrapping,
} from '../engine/repository/key-wrapping.ts';

/**
 * The repository's key wrapping. `sandboxUrl` is the sandbox's HTTPS address
 * when it runs: a Key Vault key served there is trusted without Key Vault's
 * host check, since the stand-in is not under vault.azure.net.
 */
export async function repositoryKeyWrapping(
  config: Config,
  credential: () => TokenCredential,
  sandboxUrl?: string,
): Promise<KeyWrapping> {
  const keyId = config.repository.keyVaultKeyId;
  if (!keyId) {
    return localKeyWrapping(
      await keyFromConfigOrDataDir(config.repository.kek, config.dataDir, 'repository-kek'),
    );
  }

  const atSandbox =
    sandboxUrl !== undefined && new URL(keyId).origin === new URL(sandboxUrl).origin;
  return keyVaultKeyWrapping({
    keyId,
    credential: credential(),
    disableChallengeResourceVerification: atSandbox,
  });
}

/** Opens the configured repository (ACBA_REPOSITORY_CONNECTION_STRING) for a command; `purpose` says what for, in the refusal. */
export async function openConfiguredRepository(
  config: Config,
  db: Db,
  purpose: string,
): Promise<Repository> {
  if (!config.repository.connectionString)
    throw badInput(
      `ACBA_REPOSITORY_CONNECTION_STRING is not set; set it to the repository storage account to ${purpose}.`,
    );
  return Repository.open({
    connectionString: config.repository.connectionString,
    container: config.repository.container,
    keyWrapping: await repositoryKeyWrapping(config, () => azureCredential(config.azure)),
    immutable: config.repository.immutability,
    db,
  });
}
