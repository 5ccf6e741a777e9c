/**
 * How the repository's key file is protected at rest. The key file holds the
 * data key and the id key (see ./repository.ts); it is sealed as an object of
 * type Key, bound to its own path, under a 32-byte key-encryption key. Where
 * that key-encryption key comes from is the wrapping:
 *
 * - Local KEK: a key the service holds (ACBA_REPOSITORY_KEK). The key file is
 *   the sealed object itself, starting with the object magic "ACB1". This is
 *   the original format, unchanged.
 *
 * - Key Vault: an RSA key in Azure Key Vault (ACBA_KEY_VAULT_KEY_ID). A fresh
 *   random key-encryption key seals the key file's contents and is itself
 *   wrapped by the vault key with RSA-OAEP-256, so the service never holds a
 *   long-lived secret and access to the data ends when Key Vault says so. The
 *   key file is then JSON:
 *     { format: "acba-key-file", version: 2,
 *       wrapping: { kind: "key-vault", keyId, algorithm: "RSA-OAEP-256" },
 *       wrappedKey, sealed }
 *   with keyId the vault key's full id (version included), wrappedKey the
 *   wrapped key-encryption key and sealed the sealed object (both base64).
 *
 * Each wrapping recognizes the other's key files, so opening a repository
 * with the wrong kind of key, or another vault key, fails with a message
 * naming the key file and the setting to check. A key file is unwrapped with
 * the vault key version recorded in it, so rotating the vault key (a new
 * version of the same key) leaves existing repositories readable.
 */
import type { TokenCredential } from '@azure/core-auth';
import { CryptographyClient, parseKeyVaultKeyIdentifier } from '@azure/keyvault-keys';
import { forbidden, unavailable } from '../../core/errors.ts';
import {
  Compression,
  IntegrityError,
  newKey,
  OBJECT_MAGIC,
  ObjectType,
  open,
  seal,
} from './crypto.ts';

/** Seals and opens the repository's key file. */
export interface KeyWrapping {
  /** Seals the key file's contents for storage at `path`. */
  seal(path: string, contents: Buffer): Promise<Buffer>;
  /**
   * Opens a stored key file; throws forbidden naming the key file (`where`)
   * and the setting to check when this wrapping cannot open it.
   */
  open(path: string, stored: Buffer, where: string): Promise<Buffer>;
}

/** The only algorithm ACBA wraps with in Key Vault. */
export const KEY_VAULT_WRAP_ALGORITHM = 'RSA-OAEP-256';

interface KeyVaultKeyFile {
  format: 'acba-key-file';
  version: 2;
  wrapping: { kind: 'key-vault'; keyId: string; algorithm: typeof KEY_VAULT_WRAP_ALGORITHM };
  wrappedKey: string;
  sealed: string;
}

/** Wraps with a 32-byte key-encryption key the service holds. */
export function localKeyWrapping(kek: Buffer): KeyWrapping {
  if (kek.length !== 32)
    throw new Error(`The repository KEK must be 32 bytes; it is ${kek.length}.`);

  return {
    async seal(path, contents) {
      return seal(kek, ObjectType.Key, Compression.None, contents, path);
    },

    async open(path, stored, where) {
      if (!isSealedObject(stored)) {
        const file = parseKeyVaultKeyFile(stored, where);
        throw forbidden(
          `The repository key file ${where} is wrapped with the Key Vault key ${file.wrapping.keyId}, but ACBA is configured with a local key-encryption key. Set ACBA_KEY_VAULT_KEY_ID to that key and give ACBA's identity the wrapKey and unwrapKey permissions on it.`,
        );
      }
      return openSealed(kek, path, stored, () =>
        forbidden(
          `The repository key file ${where} cannot be unwrapped with the configured key-encryption key. Set ACBA_REPOSITORY_KEK to the key this repository was created with.`,
        ),
      );
    },
  };
}

export interface KeyVaultKeyWrappingOptions {
  /** https://<vault>/keys/<name>[/<version>]; without a version new key files use the newest. */
  keyId: string;
  credential: TokenCredential;
  /**
   * Accept a Key Vault whose host is not under vault.azure.net; only for the
   * sandbox's stand-in, whose challenges name Key Vault's real resource.
   */
  disableChallengeResourceVerification?: boolean;
}

/** Wraps with an RSA key in Azure Key Vault (RSA-OAEP-256). */
export function keyVaultKeyWrapping(options: KeyVaultKeyWrappingOptions): KeyWrapping {
  const configured = parseKeyId(options.keyId);
  const client = (keyId: string) =>
    new CryptographyClient(keyId, options.credential, {
      disableChallengeResourceVerification: options.disableChallengeResourceVerification,
    });

  return {
    async seal(path, contents) {
      const fileKey = newKey();
      const wrapped = await callKeyVault(options.keyId, 'wrap', () =>
        client(options.keyId).wrapKey(KEY_VAULT_WRAP_ALGORITHM, fileKey),
      );
      const file: KeyVaultKeyFile = {
        format: 'acba-key-file',
        version: 2,
        wrapping: {
          kind: 'key-vault',
          keyId: wrapped.keyID ?? options.keyId,
          algorithm: KEY_VAULT_WRAP_ALGORITHM,
        },
        wrappedKey: Buffer.from(wrapped.result).toString('base64'),
        sealed: seal(fileKey, ObjectType.Key, Compression.None, contents, path).toString('base64'),
      };
      return Buffer.from(JSON.stringify(file));
    },

    async open(path, stored, where) {
      if (isSealedObject(stored)) {
        throw forbidden(
          `The repository key file ${where} is wrapped with a local key-encryption key, not with the Key Vault key ${options.keyId}. Unset ACBA_KEY_VAULT_KEY_ID and set ACBA_REPOSITORY_KEK to the key this repository was created with.`,
        );
      }
      const file = parseKeyVaultKeyFile(stored, where);
      const recorded = parseKeyId(file.wrapping.keyId);
      if (recorded.vaultUrl !== configured.vaultUrl || recorded.name !== configured.name) {
        throw forbidden(
          `The repository key file ${where} is wrapped with the Key Vault key ${file.wrapping.keyId}, not with ${options.keyId}. Set ACBA_KEY_VAULT_KEY_ID to the key this repository was created with.`,
        );
      }

      const unwrapped = await callKeyVault(file.wrapping.keyId, 'unwrap', () =>
        client(file.wrapping.keyId).unwrapKey(
          file.wrapping.algorithm,
          Buffer.from(file.wrappedKey, 'base64'),
        ),
      );
      return openSealed(
        Buffer.from(unwrapped.result),
        path,
        Buffer.from(file.sealed, 'base64'),
        () =>
          forbidden(
            `The repository key file ${where} does not open with the key that Key Vault key ${file.wrapping.keyId} unwrapped: the key file was altered. Restore it from a copy.`,
          ),
      );
    },
  };
}

function isSealedObject(stored: Buffer): boolean {
  return stored.subarray(0, OBJECT_MAGIC.length).equals(OBJECT_MAGIC);
}

function openSealed(key: Buffer, path: string, sealed: Buffer, refusal: () => Error): Buffer {
  try {
    return open(key, ObjectType.Key, sealed, path).payload;
  } catch (error) {
    if (error instanceof IntegrityError) throw refusal();
    throw error;
  }
}

function parseKeyVaultKeyFile(stored: Buffer, where: string): KeyVaultKeyFile {
  let file: Partial<KeyVaultKeyFile> | undefined;
  try {
    file = JSON.parse(stored.toString('utf8')) as Partial<KeyVaultKeyFile>;
  } catch {
    file = undefined;
  }
  if (
    file?.format !== 'acba-key-file' ||
    file.wrapping?.kind !== 'key-vault' ||
    typeof file.wrapping.keyId !== 'string' ||
    typeof file.wrappedKey !== 'string' ||
    typeof file.sealed !== 'string'
  ) {
    throw forbidden(
      `The repository key file ${where} is neither sealed with a key-encryption key nor wrapped with a Key Vault key. Restore the key file from a copy, or point ACBA_REPOSITORY_CONTAINER at the right container.`,
    );
  }
  return file as KeyVaultKeyFile;
}

function parseKeyId(keyId: string): { vaultUrl: string; name: string } {
  const parsed = parseKeyVaultKeyIdentifier(keyId);
  return { vaultUrl: parsed.vaultUrl.replace(/\/+$/, '').toLowerCase(), name: parsed.name };
}

/** Runs one Key Vault call, turning its refusals into ACBA's error kinds. */
async function callKeyVault<T>(keyId: string, what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    const status = (error as { statusCode?: number }).statusCode;
    const reason = (error as Error).message.replace(/\s+/g, ' ').trim();
    if (status === 401 || status === 403) {
      throw forbidden(
        `Key Vault refused to ${what} with key ${keyId} (${reason}). Give ACBA's identity the wrapKey and unwrapKey permissions on that key.`,
      );
    }
    if (status === 404) {
      throw forbidden(
        `Key Vault has no key ${keyId} (${reason}). Check ACBA_KEY_VAULT_KEY_ID, and that the key or its version was not deleted.`,
      );
    }
    if (status === 400) {
      throw forbidden(
        `Key Vault could not ${what} with key ${keyId} (${reason}). The key file was wrapped with another key or altered; check ACBA_KEY_VAULT_KEY_ID.`,
      );
    }
    throw unavailable(
      `Key Vault did not ${what} with key ${keyId} (${reason}). Check that the vault answers and try again.`,
    );
  }
}
