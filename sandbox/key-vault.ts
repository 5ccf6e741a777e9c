/**
 * An Azure Key Vault stand-in for the keys ACBA wraps its repository keys
 * with: get a key, create a key (or a new version of one), wrap and unwrap
 * with RSA-OAEP-256. It speaks Key Vault's REST shapes, so the real
 * `@azure/keyvault-keys` client runs unchanged: `api-version` on every call,
 * base64url `{ kid, value }` bodies, errors as `{ error: { code, message } }`.
 *
 * Authentication follows Key Vault's challenge: a request without a bearer
 * token gets 401 with `WWW-Authenticate: Bearer authorization="<Entra>/<tenant>",
 * resource="https://vault.azure.net"`, and the client then asks the identity
 * stand-in for a token of that resource. Tokens for any other audience are
 * refused. The vault's host is the sandbox's, not *.vault.azure.net, so
 * clients pass `disableChallengeResourceVerification`.
 *
 * Keys are real 2048-bit RSA keys kept under the sandbox state folder
 * (key-vault/<name>.json, every version), so wrapped keys survive a restart.
 * One key, `acba-repository`, is seeded.
 */
import {
  constants,
  createPrivateKey,
  createPublicKey,
  generateKeyPairSync,
  privateDecrypt,
  publicEncrypt,
  randomBytes,
} from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import express, { type Request, type Response, type Router } from 'express';
import { ArmAuthError, entraHost, keyVaultAudience, type IdentityProvider } from './identity.ts';

/** The key the sandbox seeds for wrapping the repository's keys. */
export const SEEDED_KEY_NAME = 'acba-repository';

const SUPPORTED_ALGORITHMS = ['RSA-OAEP-256', 'RSA-OAEP'] as const;
type Algorithm = (typeof SUPPORTED_ALGORITHMS)[number];

interface KeyVersion {
  version: string;
  /** Unix seconds, as Key Vault's attributes carry them. */
  created: number;
  privateKeyPem: string;
}

class KeyVaultError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export class SandboxKeyVault {
  private constructor(
    private readonly baseUrl: string,
    private readonly dir: string,
    private readonly identity: IdentityProvider,
    private readonly tenantId: string,
  ) {}

  /** Opens the vault's state under stateDir/key-vault and seeds its key once. */
  static async open(options: {
    baseUrl: string;
    stateDir: string;
    identity: IdentityProvider;
    /** The tenant the vault belongs to; its challenges name it. */
    tenantId: string;
  }): Promise<SandboxKeyVault> {
    const dir = path.join(options.stateDir, 'key-vault');
    await fs.mkdir(dir, { recursive: true });
    const vault = new SandboxKeyVault(options.baseUrl, dir, options.identity, options.tenantId);
    if ((await vault.versions(SEEDED_KEY_NAME)).length === 0) {
      await vault.createVersion(SEEDED_KEY_NAME, 'wx');
    }
    return vault;
  }

  /** The full id (with version) of the seeded key's newest version. */
  async seededKeyId(): Promise<string> {
    const newest = (await this.versions(SEEDED_KEY_NAME)).at(-1)!;
    return this.kidOf(SEEDED_KEY_NAME, newest.version);
  }

  /** Routes under /keys; mount at the server root. */
  router(): Router {
    const router = express.Router();
    router.use('/keys', express.json({ limit: '64kb' }), (req, res) => void this.handle(req, res));
    return router;
  }

  private async handle(req: Request, res: Response): Promise<void> {
    try {
      await this.authenticate(req.headers.authorization);
      if (!req.query['api-version']) {
        throw new KeyVaultError(
          400,
          'BadParameter',
          "The 'api-version' query parameter is missing.",
        );
      }

      // Key Vault accepts an empty version ("/keys/name//wrapkey") for the newest one.
      const [name = '', ...rest] = req.path.replace(/^\/+/, '').split('/');
      const operation = ['wrapkey', 'unwrapkey', 'create'].includes(rest.at(-1) ?? '')
        ? rest.pop()
        : undefined;
      const version = rest.join('');
      if (!name || rest.length > 1) throw this.nothingAt(req);

      if (req.method === 'GET' && !operation)
        return void res.json(await this.bundle(name, version));
      if (req.method === 'POST' && operation === 'create')
        return void res.json(await this.create(name, req.body));
      if (req.method === 'POST' && operation === 'wrapkey')
        return void res.json(await this.crypt(name, version, req.body, 'wrap'));
      if (req.method === 'POST' && operation === 'unwrapkey')
        return void res.json(await this.crypt(name, version, req.body, 'unwrap'));
      throw this.nothingAt(req);
    } catch (error) {
      const failure =
        error instanceof KeyVaultError
          ? error
          : new KeyVaultError(
              500,
              'InternalError',
              `The sandbox's Key Vault failed: ${(error as Error).message}`,
            );
      if (failure.status === 401) {
        res.set(
          'WWW-Authenticate',
          `Bearer authorization="${entraHost}/${this.tenantId}", resource="${keyVaultAudience}"`,
        );
      }
      res.status(failure.status).json({ error: { code: failure.code, message: failure.message } });
    }
  }

  private async authenticate(authorization: string | undefined): Promise<void> {
    if (!authorization) {
      throw new KeyVaultError(401, 'Unauthorized', 'Request is missing a Bearer or PoP token.');
    }
    try {
      await this.identity.verifyToken(authorization, [keyVaultAudience, `${keyVaultAudience}/`]);
    } catch (error) {
      if (!(error instanceof ArmAuthError)) throw error;
      throw new KeyVaultError(
        401,
        'Unauthorized',
        `The bearer token was refused: ${error.message}`,
      );
    }
  }

  private async bundle(name: string, version: string): Promise<object> {
    const key = await this.version(name, version);
    const jwk = createPublicKey(createPrivateKey(key.privateKeyPem)).export({ format: 'jwk' });
    return {
      key: {
        kid: this.kidOf(name, key.version),
        kty: 'RSA',
        key_ops: ['encrypt', 'decrypt', 'wrapKey', 'unwrapKey'],
        n: jwk.n,
        e: jwk.e,
      },
      attributes: {
        enabled: true,
        created: key.created,
        updated: key.created,
        recoveryLevel: 'Recoverable+Purgeable',
        recoverableDays: 90,
      },
    };
  }

  private async create(name: string, body: unknown): Promise<object> {
    const { kty, key_size: size } = (body ?? {}) as { kty?: string; key_size?: number };
    if (kty !== 'RSA' || (size !== undefined && size !== 2048)) {
      throw new KeyVaultError(
        400,
        'BadParameter',
        'This stand-in creates 2048-bit RSA keys only (kty "RSA").',
      );
    }
    const created = await this.createVersion(name, 'w');
    return this.bundle(name, created.version);
  }

  private async crypt(
    name: string,
    version: string,
    body: unknown,
    direction: 'wrap' | 'unwrap',
  ): Promise<object> {
    const { alg, value } = (body ?? {}) as { alg?: string; value?: string };
    if (!SUPPORTED_ALGORITHMS.includes(alg as Algorithm)) {
      throw new KeyVaultError(
        400,
        'BadParameter',
        `Algorithm '${alg ?? ''}' is not supported; use RSA-OAEP-256 or RSA-OAEP.`,
      );
    }
    if (typeof value !== 'string' || value === '') {
      throw new KeyVaultError(
        400,
        'BadParameter',
        "The request body must contain a base64url 'value'.",
      );
    }

    const key = await this.version(name, version);
    const input = {
      key: key.privateKeyPem,
      padding: constants.RSA_PKCS1_OAEP_PADDING,
      oaepHash: alg === 'RSA-OAEP-256' ? 'sha256' : 'sha1',
    };
    let output: Buffer;
    try {
      output =
        direction === 'wrap'
          ? publicEncrypt(input, Buffer.from(value, 'base64url'))
          : privateDecrypt(input, Buffer.from(value, 'base64url'));
    } catch {
      throw new KeyVaultError(
        400,
        'BadParameter',
        `The value cannot be ${direction}ped with key ${this.kidOf(name, key.version)}.`,
      );
    }
    return { kid: this.kidOf(name, key.version), value: output.toString('base64url') };
  }

  private async version(name: string, version: string): Promise<KeyVersion> {
    const versions = await this.versions(name);
    const found = version ? versions.find((v) => v.version === version) : versions.at(-1);
    if (!found) {
      throw new KeyVaultError(
        404,
        'KeyNotFound',
        `A key with (name/id) ${name}${version ? `/${version}` : ''} was not found in this key vault.`,
      );
    }
    return found;
  }

  private async versions(name: string): Promise<KeyVersion[]> {
    try {
      return JSON.parse(await fs.readFile(this.fileOf(name), 'utf8')) as KeyVersion[];
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw error;
    }
  }

  private async createVersion(name: string, flag: 'w' | 'wx'): Promise<KeyVersion> {
    const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const created: KeyVersion = {
      version: randomBytes(16).toString('hex'),
      created: Math.floor(Date.now() / 1000),
      privateKeyPem: privateKey.export({ format: 'pem', type: 'pkcs8' }).toString(),
    };
    const versions = [...(await this.versions(name)), created];
    // Two sandboxes seeding one state folder: the first writer's key stays.
    await fs
      .writeFile(this.fileOf(name), JSON.stringify(versions), { mode: 0o600, flag })
      .catch((error: NodeJS.ErrnoException) => {
        if (error.code !== 'EEXIST') throw error;
      });
    return created;
  }

  private fileOf(name: string): string {
    if (!/^[0-9a-zA-Z-]{1,127}$/.test(name)) {
      throw new KeyVaultError(
        400,
        'BadParameter',
        `'${name}' is not a valid key name: use 1-127 letters, digits and dashes.`,
      );
    }
    return path.join(this.dir, `${name}.json`);
  }

  private kidOf(name: string, version: string): string {
    return `${this.baseUrl}/keys/${name}/${version}`;
  }

  private nothingAt(req: Request): KeyVaultError {
    return new KeyVaultError(
      404,
      'NotFound',
      `The sandbox's Key Vault has nothing at ${req.method} /keys${req.path}.`,
    );
  }
}
