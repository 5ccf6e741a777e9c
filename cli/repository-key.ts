/**
 * Which key protects the repository's key file, chosen once at the
 * composition root: the RSA key in Azure Key Vault that ACBA_KEY_VAULT_KEY_ID
 * names, or else the local key-encryption key (ACBA_REPOSITORY_KEK, or one
 * generated under the data folder). See engine/repository/key-wrapping.ts.
 */
import type { TokenCredential } from '@azure/core-auth';
import type { Config } from '../core/config.ts';
import { keyFromConfigOrDataDir } from '../core/secrets.ts';
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
