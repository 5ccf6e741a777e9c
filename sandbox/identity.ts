/**
 * An Entra ID stand-in for app sign-in: per-tenant OpenID metadata, a JWKS,
 * and a token endpoint for the client-credentials grant, enough for MSAL (and
 * so @azure/identity's ClientSecretCredential) to obtain a token with
 * `authorityHost` pointed here and instance discovery disabled.
 *
 * Tokens are RS256 JWTs shaped like Entra's v1 access tokens for Azure
 * Resource Manager (aud, iss, tid, oid, appid, idtyp). The signing key is kept
 * under the sandbox state folder, so tokens survive a sandbox restart the way
 * they survive a real key-set refresh. Failures answer with Entra's error
 * body (error, error_description with the AADSTS code, error_codes).
 *
 * User sign-in (./user-sign-in.ts) adds Entra's multi-tenant `organizations`
 * authority: a login page listing the seeded people of every tenant, the
 * authorization code grant with PKCE, and ID and access tokens whose issuer
 * is Entra's own, `https://login.microsoftonline.com/{tid}/v2.0`. Clients
 * reach it by routing Entra's host here (see `entraFetch`).
 */
import { randomUUID, timingSafeEqual } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import express, { type Request, type Response, type Router } from 'express';
import {
  exportJWK,
  generateKeyPair,
  importJWK,
  jwtVerify,
  SignJWT,
  errors as joseErrors,
  type JWK,
  type JWTPayload,
} from 'jose';
import type { SeedApplication, SandboxUser } from './seed.ts';
import { UserSignIn } from './user-sign-in.ts';

/** The resource Azure Resource Manager tokens are issued for. */
export const armAudience = 'https://management.azure.com/';
const acceptedArmAudiences = [
  armAudience,
  'https://management.azure.com',
  'https://management.core.windows.net/',
];
/** The audience of Azure Key Vault's tokens (scope https://vault.azure.net/.default). */
export const keyVaultAudience = 'https://vault.azure.net';
/** The audience of Azure Storage's tokens (scope https://storage.azure.com/.default). */
export const storageAudience = 'https://storage.azure.com';
const tokenLifetimeSeconds = 3599;

export interface ArmCaller {
  tenantId: string;
  objectId: string;
  appId: string;
}

/** Why a bearer token was refused, with ARM's error code for it. */
export class ArmAuthError extends Error {
  constructor(
    readonly code:
      | 'AuthenticationFailed'
      | 'InvalidAuthenticationToken'
      | 'ExpiredAuthenticationToken'
      | 'InvalidAuthenticationTokenAudience',
    message: string,
  ) {
    super(message);
    this.name = 'ArmAuthError';
  }
}

/** A seeded person the login page lists. */
export type SignInUser = SandboxUser & { organization: string };

/** Entra ID's sign-in host; the sandbox answers in its place. */
export const entraHost = 'https://login.microsoftonline.com';

/**
 * A fetch that sends requests for Entra's host to the stand-in at baseUrl, so
 * that a client configured with Entra's real multi-tenant issuer talks to the
 * sandbox unchanged.
 */
export function entraFetch(baseUrl: string): typeof fetch {
  return (input, init) => {
    const url = input instanceof Request ? input.url : String(input);
    const routed = url.startsWith(`${entraHost}/`) ? baseUrl + url.slice(entraHost.length) : url;
    return fetch(input instanceof Request ? new Request(routed, input) : routed, init);
  };
}

interface SigningKey {
  kid: string;
  privateJwk: JWK;
  publicJwk: JWK;
}

export class IdentityProvider {
  private readonly userSignIn: UserSignIn;

  private constructor(
    private readonly baseUrl: string,
    private readonly tenantIds: Set<string>,
    private readonly application: SeedApplication,
    private readonly key: SigningKey,
    users: SignInUser[],
  ) {
    this.userSignIn = new UserSignIn({
      baseUrl,
      application,
      users,
      sign: (claims, audience, issuer, lifetimeSeconds) =>
        this.sign(claims, audience, issuer, lifetimeSeconds),
      publicJwks: () => this.publicJwks(),
    });
  }

  /** Loads the signing key from stateDir (creating it once) for an authority at baseUrl. */
  static async open(options: {
    baseUrl: string;
    stateDir: string;
    tenantIds: string[];
    application: SeedApplication;
    /** People who can sign in interactively, with the name of their organisation. */
    users?: SignInUser[];
  }): Promise<IdentityProvider> {
    const key = await loadOrCreateKey(path.join(options.stateDir, 'identity-signing-key.json'));
    return new IdentityProvider(
      options.baseUrl,
      new Set(options.tenantIds.map((id) => id.toLowerCase())),
      options.application,
      key,
      options.users ?? [],
    );
  }

  issuerOf(tenantId: string): string {
    return `${this.baseUrl}/${tenantId}/v2.0`;
  }

  /** Routes under /{tenantId}/...; mount at the server root. */
  router(): Router {
    const router = express.Router();
    // Before the per-tenant routes, which would take `organizations` for a tenant id.
    router.use(this.userSignIn.router());
    router.get('/:tenantId/v2.0/.well-known/openid-configuration', (req, res) =>
      this.openIdConfiguration(req, res),
    );
    router.get('/:tenantId/.well-known/openid-configuration', (req, res) =>
      this.openIdConfiguration(req, res),
    );
    router.get('/:tenantId/discovery/v2.0/keys', (req, res) => this.keys(req, res));
    router.get('/:tenantId/discovery/keys', (req, res) => this.keys(req, res));
    router.post(
      '/:tenantId/oauth2/v2.0/token',
      express.urlencoded({ extended: false }),
      (req, res) => void this.token(req, res),
    );
    return router;
  }

  /** Checks an Authorization header for ARM; throws ArmAuthError saying why it is refused. */
  verifyArmToken(authorization: string | undefined): Promise<ArmCaller> {
    return this.verifyToken(authorization, acceptedArmAudiences);
  }

  /** Checks an Authorization header for one of `acceptedAudiences`; throws ArmAuthError saying why it is refused. */
  async verifyToken(
    authorization: string | undefined,
    acceptedAudiences: string[],
  ): Promise<ArmCaller> {
    if (!authorization)
      throw new ArmAuthError(
        'AuthenticationFailed',
        "Authentication failed. The 'Authorization' header is missing.",
      );
    const match = /^Bearer\s+(\S+)$/i.exec(authorization);
    if (!match)
      throw new ArmAuthError(
        'AuthenticationFailed',
        "Authentication failed. The 'Authorization' header is provided in an invalid format.",
      );

    let payload: JWTPayload;
    try {
      const publicKey = await importJWK(this.key.publicJwk, 'RS256');
      ({ payload } = await jwtVerify(match[1]!, publicKey, {
        algorithms: ['RS256'],
        clockTolerance: 60,
      }));
    } catch (error) {
      if (error instanceof joseErrors.JWTExpired) {
        const exp =
          typeof error.payload.exp === 'number'
            ? new Date(error.payload.exp * 1000).toISOString()
            : 'unknown';
        throw new ArmAuthError(
          'ExpiredAuthenticationToken',
          `The access token expiry UTC time '${exp}' is earlier than current UTC time '${new Date().toISOString()}'.`,
        );
      }
      throw new ArmAuthError('InvalidAuthenticationToken', 'The access token is invalid.');
    }

    const audiences = Array.isArray(payload.aud) ? payload.aud : [payload.aud];
    if (!audiences.some((aud) => aud !== undefined && acceptedAudiences.includes(aud))) {
      throw new ArmAuthError(
        'InvalidAuthenticationTokenAudience',
        `The access token has been obtained for wrong audience or resource '${audiences.join(',')}'. It should exactly match with one of the allowed audiences '${acceptedAudiences.join("','")}'.`,
      );
    }
    const tenantId = String(payload.tid ?? '');
    if (!this.tenantIds.has(tenantId.toLowerCase()) || payload.iss !== this.issuerOf(tenantId)) {
      throw new ArmAuthError(
        'InvalidAuthenticationToken',
        'The access token is from the wrong issuer. It must match the tenant associated with this subscription.',
      );
    }
    return { tenantId, objectId: String(payload.oid ?? ''), appId: String(payload.appid ?? '') };
  }

  private openIdConfiguration(req: Request, res: Response): void {
    const tenantId = String(req.params.tenantId);
    if (!this.knownTenant(tenantId)) return this.tenantNotFound(res, tenantId);

    const base = `${this.baseUrl}/${tenantId}`;
    res.json({
      token_endpoint: `${base}/oauth2/v2.0/token`,
      token_endpoint_auth_methods_supported: ['client_secret_post', 'client_secret_basic'],
      jwks_uri: `${base}/discovery/v2.0/keys`,
      response_modes_supported: ['query', 'fragment', 'form_post'],
      subject_types_supported: ['pairwise'],
      id_token_signing_alg_values_supported: ['RS256'],
      response_types_supported: ['code', 'id_token', 'code id_token', 'id_token token'],
      scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
      issuer: this.issuerOf(tenantId),
      request_uri_parameter_supported: false,
      authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
      device_authorization_endpoint: `${base}/oauth2/v2.0/devicecode`,
      end_session_endpoint: `${base}/oauth2/v2.0/logout`,
      http_logout_supported: true,
      frontchannel_logout_supported: true,
      claims_supported: [
        'sub',
        'iss',
        'aud',
        'exp',
        'iat',
        'nbf',
        'tid',
        'oid',
        'name',
        'preferred_username',
      ],
      tenant_region_scope: 'EU',
      cloud_instance_name: 'microsoftonline.com',
      cloud_graph_host_name: 'graph.windows.net',
      msgraph_host: 'graph.microsoft.com',
    });
  }

  private keys(req: Request, res: Response): void {
    const tenantId = String(req.params.tenantId);
    if (!this.knownTenant(tenantId)) return this.tenantNotFound(res, tenantId);
    res.json(this.publicJwks());
  }

  private publicJwks(): { keys: JWK[] } {
    return { keys: [{ ...this.key.publicJwk, kid: this.key.kid, use: 'sig', alg: 'RS256' }] };
  }

  private async sign(
    claims: JWTPayload,
    audience: string,
    issuer: string,
    lifetimeSeconds: number,
  ): Promise<string> {
    const now = Math.floor(Date.now() / 1000);
    const privateKey = await importJWK(this.key.privateJwk, 'RS256');
    return new SignJWT(claims)
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: this.key.kid })
      .setAudience(audience)
      .setIssuer(issuer)
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + lifetimeSeconds)
      .setJti(randomUUID())
      .sign(privateKey);
  }

  private async token(req: Request, res: Response): Promise<void> {
    const tenantId = String(req.params.tenantId);
    if (!this.knownTenant(tenantId)) return this.tenantNotFound(res, tenantId);

    const body = (req.body ?? {}) as Record<string, string | undefined>;
    const basic = parseBasicAuthorization(req.headers.authorization);
    const clientId = body.client_id ?? basic?.clientId;
    const clientSecret = body.client_secret ?? basic?.clientSecret;

    if (body.grant_type !== 'client_credentials') {
      return this.fail(
        res,
        400,
        'unsupported_grant_type',
        70003,
        `The app requested an unsupported grant type '${body.grant_type ?? ''}'. This stand-in supports client_credentials only.`,
      );
    }
    if (!clientId)
      return this.fail(
        res,
        400,
        'invalid_request',
        900144,
        "The request body must contain the following parameter: 'client_id'.",
      );
    if (
      clientId !== this.application.clientId ||
      tenantId.toLowerCase() !== this.application.tenantId.toLowerCase()
    ) {
      return this.fail(
        res,
        400,
        'unauthorized_client',
        700016,
        `Application with identifier '${clientId}' was not found in the directory '${tenantId}'. This can happen if the application has not been installed by the administrator of the tenant or consented to by any user in the tenant.`,
      );
    }
    if (!clientSecret)
      return this.fail(
        res,
        400,
        'invalid_request',
        7000218,
        "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
      );
    if (!sameSecret(clientSecret, this.application.clientSecret)) {
      return this.fail(
        res,
        401,
        'invalid_client',
        7000215,
        `Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID, for a secret added to app '${clientId}'.`,
      );
    }

    const scopes = (body.scope ?? '').split(/\s+/).filter(Boolean);
    const resource = scopes
      .find((scope) => scope.endsWith('/.default'))
      ?.replace(/\/\.default$/, '');
    const audience = audienceOf(resource);
    if (!audience) {
      return this.fail(
        res,
        400,
        'invalid_resource',
        500011,
        `The resource principal named ${resource ?? body.scope ?? ''} was not found in the tenant named ${tenantId}. This stand-in issues tokens for Azure Resource Manager (https://management.azure.com/.default), Azure Key Vault (https://vault.azure.net/.default) and Azure Storage (https://storage.azure.com/.default) only.`,
      );
    }

    const now = Math.floor(Date.now() / 1000);
    const privateKey = await importJWK(this.key.privateJwk, 'RS256');
    const accessToken = await new SignJWT({
      tid: tenantId,
      oid: this.application.objectId,
      sub: this.application.objectId,
      appid: clientId,
      appidacr: '1',
      idtyp: 'app',
      ver: '1.0',
    })
      .setProtectedHeader({ alg: 'RS256', typ: 'JWT', kid: this.key.kid })
      .setAudience(audience)
      .setIssuer(this.issuerOf(tenantId))
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(now + tokenLifetimeSeconds)
      .setJti(randomUUID())
      .sign(privateKey);

    res.set('Cache-Control', 'no-store').json({
      token_type: 'Bearer',
      expires_in: tokenLifetimeSeconds,
      ext_expires_in: tokenLifetimeSeconds,
      access_token: accessToken,
    });
  }

  private knownTenant(tenantId: string): boolean {
    return this.tenantIds.has(tenantId.toLowerCase());
  }

  private tenantNotFound(res: Response, tenantId: string): void {
    this.fail(
      res,
      400,
      'invalid_tenant',
      90002,
      `Tenant '${tenantId}' not found. Check to make sure you have the correct tenant ID and are signing into the correct cloud.`,
    );
  }

  private fail(
    res: Response,
    status: number,
    error: string,
    code: number,
    description: string,
  ): void {
    const traceId = randomUUID();
    const correlationId = randomUUID();
    const timestamp = new Date()
      .toISOString()
      .replace('T', ' ')
      .replace(/\.\d+Z$/, 'Z');
    res.status(status).json({
      error,
      error_description: `AADSTS${code}: ${description} Trace ID: ${traceId} Correlation ID: ${correlationId} Timestamp: ${timestamp}`,
      error_codes: [code],
      timestamp,
      trace_id: traceId,
      correlation_id: correlationId,
    });
  }
}

/** The token audience for a requested resource, as Entra's v1 tokens carry it; undefined when not served. */
function audienceOf(resource: string | undefined): string | undefined {
  if (!resource) return undefined;
  if (acceptedArmAudiences.includes(`${resource}/`)) return `${resource}/`;
  if (resource.replace(/\/+$/, '') === keyVaultAudience) return keyVaultAudience;
  if (resource.replace(/\/+$/, '') === storageAudience) return storageAudience;
  return undefined;
}

async function loadOrCreateKey(file: string): Promise<SigningKey> {
  try {
    return JSON.parse(await fs.readFile(file, 'utf8')) as SigningKey;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }

  const { privateKey, publicKey } = await generateKeyPair('RS256', { extractable: true });
  const key: SigningKey = {
    kid: randomUUID().replace(/-/g, ''),
    privateJwk: await exportJWK(privateKey),
    publicJwk: await exportJWK(publicKey),
  };
  await fs.mkdir(path.dirname(file), { recursive: true });
  // Two sandboxes starting on one state folder: the first writer wins and both read its key.
  await fs
    .writeFile(file, JSON.stringify(key), { mode: 0o600, flag: 'wx' })
    .catch((error: NodeJS.ErrnoException) => {
      if (error.code !== 'EEXIST') throw error;
    });
  return JSON.parse(await fs.readFile(file, 'utf8')) as SigningKey;
}

function parseBasicAuthorization(
  header: string | undefined,
): { clientId: string; clientSecret: string } | undefined {
  const match = /^Basic\s+(\S+)$/i.exec(header ?? '');
  if (!match) return undefined;
  const decoded = Buffer.from(match[1]!, 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon < 0) return undefined;
  return {
    clientId: decodeURIComponent(decoded.slice(0, colon)),
    clientSecret: decodeURIComponent(decoded.slice(colon + 1)),
  };
}

function sameSecret(given: string, expected: string): boolean {
  const a = Buffer.from(given);
  const b = Buffer.from(expected);
  return a.length === b.length && timingSafeEqual(a, b);
}
