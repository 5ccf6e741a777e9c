// A repository whose keys are wrapped by an RSA key in Key Vault: the
// sandbox's Key Vault stand-in over HTTPS, with its challenge and tokens from
// the identity stand-in, and Azurite for the blobs. Opening with another key,
// or with the other kind of key, is refused with a message naming the setting.
import { randomBytes } from 'node:crypto';
import { ClientSecretCredential } from '@azure/identity';
import { CryptographyClient, KeyClient } from '@azure/keyvault-keys';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { repositoryKeyWrapping } from '../cli/repository-key.ts';
import { loadConfig } from '../core/config.ts';
import { isAcbaError } from '../core/errors.ts';
import { ObjectType, open } from '../engine/repository/crypto.ts';
import { keyVaultKeyWrapping } from '../engine/repository/key-wrapping.ts';
import { BLOCK_SIZE, Repository } from '../engine/repository/repository.ts';
import { startSandbox, type Sandbox } from '../sandbox/index.ts';
import { openTestDatabase, tempDir, type TestDatabase } from './support/database.ts';

let sandbox: Sandbox;
let database: TestDatabase;
let credential: ClientSecretCredential;
/** The seeded key without its version, as an operator would configure it. */
let keyId: string;
let vaultUrl: string;

beforeAll(async () => {
  sandbox = await startSandbox({
    dataDir: await tempDir('acba-key-vault-'),
    armPort: 0,
    blobPort: 0,
    imageCacheDir: 'test/.cache/images',
  });
  database = await openTestDatabase();
  const sp = sandbox.servicePrincipal;
  credential = new ClientSecretCredential(sp.tenantId, sp.clientId, sp.clientSecret, {
    authorityHost: sandbox.authorityHost,
    disableInstanceDiscovery: true,
  });
  keyId = sandbox.keyVaultKeyId.replace(/\/[0-9a-f]{32}$/, '');
  vaultUrl = new URL(keyId).origin;
});

afterAll(async () => {
  await sandbox?.close();
  await database?.dispose();
});

const vaultOptions = { disableChallengeResourceVerification: true };

function openWithKeyVault(container: string, id = keyId): Promise<Repository> {
  return Repository.open({
    connectionString: sandbox.repositoryConnectionString,
    container,
    keyWrapping: keyVaultKeyWrapping({ keyId: id, credential, ...vaultOptions }),
    db: database.db,
  });
}

function randomContainer(): string {
  return `repo-kv-${randomBytes(6).toString('hex')}`;
}

async function keyFileOf(repo: Repository): Promise<{ name: string; stored: Buffer }> {
  for await (const blob of repo.container.listBlobsFlat({ prefix: 'keys/' })) {
    return {
      name: blob.name,
      stored: await repo.container.getBlobClient(blob.name).downloadToBuffer(),
    };
  }
  throw new Error('the repository has no key file');
}

describe('repository keys wrapped by a Key Vault key', () => {
  it('stores and reads blocks, and reopening with the same key reads them again', async () => {
    const container = randomContainer();
    const data = randomBytes(BLOCK_SIZE);

    const repo = await openWithKeyVault(container);
    const writer = repo.newWriter();
    const { id } = await writer.add(data);
    await writer.flush();
    expect((await repo.readBlock(id)).equals(data)).toBe(true);

    const reopened = await openWithKeyVault(container, sandbox.keyVaultKeyId);
    expect(reopened.keyId).toBe(repo.keyId);
    expect((await reopened.readBlock(id)).equals(data)).toBe(true);
  });

  it('records the key with its version, and holds no unwrapped key material', async () => {
    const repo = await openWithKeyVault(randomContainer());
    const { name, stored } = await keyFileOf(repo);

    const file = JSON.parse(stored.toString('utf8'));
    expect(Object.keys(file).sort()).toEqual([
      'format',
      'sealed',
      'version',
      'wrappedKey',
      'wrapping',
    ]);
    expect(file.wrapping).toEqual({
      kind: 'key-vault',
      keyId: sandbox.keyVaultKeyId,
      algorithm: 'RSA-OAEP-256',
    });
    expect(Buffer.from(file.wrappedKey, 'base64')).toHaveLength(256);

    // Unwrap it the way an auditor with access to the vault would, and look for the keys in the file.
    const unwrapped = await new CryptographyClient(
      file.wrapping.keyId,
      credential,
      vaultOptions,
    ).unwrapKey('RSA-OAEP-256', Buffer.from(file.wrappedKey, 'base64'));
    const fileKey = Buffer.from(unwrapped.result);
    const { payload } = open(fileKey, ObjectType.Key, Buffer.from(file.sealed, 'base64'), name);
    const keys = JSON.parse(payload.toString('utf8'));
    const secrets = [
      fileKey,
      Buffer.from(keys.dataKey, 'base64'),
      Buffer.from(keys.idKey, 'base64'),
    ];
    for (const secret of secrets) {
      expect(secret).toHaveLength(32);
      for (const encoding of ['base64', 'base64url', 'hex', 'latin1'] as const) {
        expect(stored.includes(Buffer.from(secret.toString(encoding), 'latin1'))).toBe(false);
      }
    }
  });

  it('keeps opening after the vault key gets a new version', async () => {
    const container = randomContainer();
    const data = randomBytes(4096);
    const repo = await openWithKeyVault(container);
    const writer = repo.newWriter();
    const { id } = await writer.add(data);
    await writer.flush();

    const keys = new KeyClient(vaultUrl, credential, vaultOptions);
    const rotated = await keys.createRsaKey('acba-repository', { keySize: 2048 });
    expect(rotated.id).not.toBe(sandbox.keyVaultKeyId);

    const reopened = await openWithKeyVault(container);
    expect((await reopened.readBlock(id)).equals(data)).toBe(true);
  });

  it('refuses another Key Vault key, naming the key file and the setting', async () => {
    const container = randomContainer();
    await openWithKeyVault(container);
    const other = await new KeyClient(vaultUrl, credential, vaultOptions).createRsaKey(
      `other-${randomBytes(4).toString('hex')}`,
    );

    const error = await openWithKeyVault(container, other.id!).catch((e) => e);
    expect(isAcbaError(error, 'forbidden')).toBe(true);
    expect(error.message).toMatch(
      /^The repository key file keys\/\S+ in container repo-kv-\S+ is wrapped with the Key Vault key https:\/\/localhost:\d+\/keys\/acba-repository\/[0-9a-f]{32}, not with .*other-.*\. Set ACBA_KEY_VAULT_KEY_ID/,
    );
  });

  it('refuses the local key-encryption key on a Key Vault repository, and the reverse', async () => {
    const vaultContainer = randomContainer();
    await openWithKeyVault(vaultContainer);
    const withKek = await Repository.open({
      connectionString: sandbox.repositoryConnectionString,
      container: vaultContainer,
      kek: randomBytes(32),
      db: database.db,
    }).catch((e) => e);
    expect(isAcbaError(withKek, 'forbidden')).toBe(true);
    expect(withKek.message).toMatch(
      /key file keys\/\S+ in container repo-kv-\S+ is wrapped with the Key Vault key .*, but ACBA is configured with a local key-encryption key\. Set ACBA_KEY_VAULT_KEY_ID/,
    );

    const kekContainer = randomContainer();
    await Repository.open({
      connectionString: sandbox.repositoryConnectionString,
      container: kekContainer,
      kek: randomBytes(32),
      db: database.db,
    });
    const withVault = await openWithKeyVault(kekContainer).catch((e) => e);
    expect(isAcbaError(withVault, 'forbidden')).toBe(true);
    expect(withVault.message).toMatch(
      /key file keys\/\S+ in container repo-kv-\S+ is wrapped with a local key-encryption key, not with the Key Vault key .*\. Unset ACBA_KEY_VAULT_KEY_ID and set ACBA_REPOSITORY_KEK/,
    );
  });
});

describe('ACBA_KEY_VAULT_KEY_ID', () => {
  it('makes the composition root wrap with that key, skipping the vault host check only at the sandbox', async () => {
    const config = loadConfig({
      DATA_DIR: await tempDir('acba-key-vault-config-'),
      ACBA_KEY_VAULT_KEY_ID: keyId,
    });
    const open = async (sandboxUrl?: string) =>
      Repository.open({
        connectionString: sandbox.repositoryConnectionString,
        container,
        keyWrapping: await repositoryKeyWrapping(config, () => credential, sandboxUrl),
        db: database.db,
      });
    const container = randomContainer();

    const repo = await open(sandbox.armUrl);
    const file = JSON.parse((await keyFileOf(repo)).stored.toString('utf8'));
    expect(file.wrapping.kind).toBe('key-vault');

    // Elsewhere the client insists that a vault lives under vault.azure.net.
    const error = await open(undefined).catch((e) => e);
    expect(isAcbaError(error, 'unavailable')).toBe(true);
    expect(error.message).toMatch(
      /^Key Vault did not unwrap with key .* does not match the requested domain/,
    );
  });
});

describe("the sandbox's Key Vault", () => {
  const wrapUrl = () => `${sandbox.keyVaultKeyId}/wrapkey?api-version=2025-07-01`;
  const body = JSON.stringify({
    alg: 'RSA-OAEP-256',
    value: randomBytes(32).toString('base64url'),
  });

  it('answers a request without a token with the challenge naming the tenant and Key Vault', async () => {
    const response = await fetch(wrapUrl(), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
    });

    expect(response.status).toBe(401);
    expect(response.headers.get('www-authenticate')).toBe(
      `Bearer authorization="https://login.microsoftonline.com/${sandbox.servicePrincipal.tenantId}", resource="https://vault.azure.net"`,
    );
    expect((await response.json()).error.code).toBe('Unauthorized');
  });

  it('refuses a token issued for Azure Resource Manager, and wraps with one for Key Vault', async () => {
    const send = async (scope: string) =>
      fetch(wrapUrl(), {
        method: 'POST',
        headers: {
          'content-type': 'application/json',
          authorization: `Bearer ${(await credential.getToken(scope)).token}`,
        },
        body,
      });

    const refused = await send('https://management.azure.com/.default');
    expect(refused.status).toBe(401);
    const { error } = await refused.json();
    expect(error.code).toBe('Unauthorized');
    expect(error.message).toMatch(/audience/);

    const accepted = await send('https://vault.azure.net/.default');
    expect(accepted.status).toBe(200);
    const result = await accepted.json();
    expect(result.kid).toBe(sandbox.keyVaultKeyId);
    expect(Buffer.from(result.value, 'base64url')).toHaveLength(256);
  });
});
