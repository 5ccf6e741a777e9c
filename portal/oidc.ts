/**
 * Sign-in with Microsoft Entra ID over OpenID Connect: the authorization code
 * flow with PKCE, state and nonce, done by `openid-client`, and the checks of
 * bearer tokens for the JSON API against the same provider's key set.
 *
 * Entra's multi-tenant issuer (`https://login.microsoftonline.com/organizations/v2.0`)
 * publishes metadata whose issuer holds a `{tenantid}` placeholder; every token
 * must carry the issuer with its own `tid` filled in. openid-client applies
 * that rule for Entra's host; the bearer check here applies the same rule.
 *
 * The provider's metadata is discovered on first use (not at start-up), so a
 * provider that is briefly unreachable delays sign-in, not the whole service.
 * In the sandbox, `fetch` routes Entra's host to the identity stand-in.
 */
import * as client from 'openid-client';
import {
  createRemoteJWKSet,
  customFetch as joseFetch,
  errors as joseErrors,
  jwtVerify,
  type JWTPayload,
} from 'jose';
import { unavailable } from '../core/errors.ts';

export interface OidcOptions {
  /** e.g. https://login.microsoftonline.com/organizations/v2.0, or one tenant's v2.0 issuer. */
  issuer: string;
  clientId: string;
  clientSecret: string;
  /** The portal's callback, e.g. https://acba.example.com/portal/sign-in/callback. */
  redirectUri: string;
  /** Replaces the global fetch for every request to the provider (the sandbox routes Entra's host). */
  fetch?: typeof fetch;
}

/** What a successful sign-in or a valid bearer token says about the person. */
export interface OidcIdentity {
  objectId: string;
  tenantId: string;
  name?: string;
  username?: string;
  /** The token's app roles and group ids, which a role mapping turns into ACBA roles. */
  roleClaims: { roles?: unknown; groups?: unknown };
}

/** What the browser must bring back to the callback; kept in the signed session cookie meanwhile. */
export interface PendingSignIn {
  codeVerifier: string;
  state: string;
  nonce: string;
  next: string;
}

/** Why a bearer token was refused; the API answers 401 with this message. */
export class BearerTokenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'BearerTokenError';
  }
}

/** The longest display name kept from a token; Entra's own limit is 256. */
const MAX_NAME = 256;
/** Control characters and the invisible formatting ones that could make a name look like another. */
const UNSHOWN = /[\u0000-\u001f\u007f-\u009f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]/g;

/** A token's name as ACBA shows and records it: printable, on one line, bounded. */
export function displayName(raw: string): string | undefined {
  const name = raw.replace(UNSHOWN, ' ').replace(/\s+/g, ' ').trim().slice(0, MAX_NAME);
  return name === '' ? undefined : name;
}

const guid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

export class OidcSignIn {
  private configuration?: Promise<client.Configuration>;
  private jwks?: ReturnType<typeof createRemoteJWKSet>;

  constructor(private readonly options: OidcOptions) {}

  get redirectUri(): string {
    return this.options.redirectUri;
  }

  /** Starts a sign-in: the provider's authorization URL and what the callback must check. */
  async begin(next: string): Promise<{ url: string; pending: PendingSignIn }> {
    const config = await this.config();
    const pending: PendingSignIn = {
      codeVerifier: client.randomPKCECodeVerifier(),
      state: client.randomState(),
      nonce: client.randomNonce(),
      next,
    };
    const url = client.buildAuthorizationUrl(config, {
      redirect_uri: this.options.redirectUri,
      scope: 'openid profile',
      response_type: 'code',
      response_mode: 'query',
      code_challenge: await client.calculatePKCECodeChallenge(pending.codeVerifier),
      code_challenge_method: 'S256',
      state: pending.state,
      nonce: pending.nonce,
    });
    return { url: url.href, pending };
  }

  /**
   * Finishes a sign-in at the callback: exchanges the code (with the PKCE
   * verifier), checks state, nonce and the ID token, and returns who it is.
   */
  async finish(callbackUrl: URL, pending: PendingSignIn): Promise<OidcIdentity> {
    const config = await this.config();
    const tokens = await client.authorizationCodeGrant(config, callbackUrl, {
      pkceCodeVerifier: pending.codeVerifier,
      expectedState: pending.state,
      expectedNonce: pending.nonce,
      idTokenExpected: true,
    });
    const claims = tokens.claims();
    if (!claims) throw new BearerTokenError('The identity provider sent no ID token.');
    return this.identityOf(claims);
  }

  /** Checks a bearer token for the API: signature (JWKS), issuer, audience and expiry. */
  async verifyBearer(token: string): Promise<OidcIdentity> {
    const config = await this.config();
    const metadata = config.serverMetadata();
    if (!metadata.jwks_uri) throw unavailable('The identity provider publishes no key set.');
    this.jwks ??= createRemoteJWKSet(
      new URL(metadata.jwks_uri),
      this.options.fetch ? { [joseFetch]: this.options.fetch } : {},
    );

    let payload: JWTPayload;
    try {
      ({ payload } = await jwtVerify(token, this.jwks, {
        algorithms: ['RS256'],
        audience: [this.options.clientId, `api://${this.options.clientId}`],
        clockTolerance: 60,
      }));
    } catch (error) {
      if (error instanceof joseErrors.JWTExpired)
        throw new BearerTokenError('The access token has expired. Get a new one and try again.');
      if (error instanceof joseErrors.JWTClaimValidationFailed)
        throw new BearerTokenError(
          `The access token is not for this API (${error.claim} claim). Ask for a token for ${this.options.clientId}.`,
        );
      throw new BearerTokenError('The access token is not valid. Get a new one and try again.');
    }

    const identity = this.identityOf(payload);
    if (payload.iss !== this.expectedIssuer(identity.tenantId))
      throw new BearerTokenError('The access token comes from another issuer.');
    return identity;
  }

  /** The issuer a token of this tenant must name. */
  private expectedIssuer(tenantId: string): string {
    // Multi-tenant: Entra names the token's own tenant where the configured issuer says organizations.
    return this.options.issuer.replace(/\/(organizations|common)\//, `/${tenantId}/`);
  }

  private identityOf(claims: Record<string, unknown>): OidcIdentity {
    const objectId = typeof claims.oid === 'string' ? claims.oid : '';
    const tenantId = typeof claims.tid === 'string' ? claims.tid : '';
    // Entra's object and tenant ids are GUIDs; anything else is not a person of a directory.
    if (!guid.test(objectId) || !guid.test(tenantId))
      throw new BearerTokenError('The token names no directory user (oid and tid claims).');
    return {
      objectId: objectId.toLowerCase(),
      tenantId: tenantId.toLowerCase(),
      name: typeof claims.name === 'string' ? displayName(claims.name) : undefined,
      username:
        typeof claims.preferred_username === 'string' ? claims.preferred_username : undefined,
      roleClaims: { roles: claims.roles, groups: claims.groups },
    };
  }

  private config(): Promise<client.Configuration> {
    this.configuration ??= this.discover().catch((error: unknown) => {
      // Forget the failure, so that the next sign-in tries again.
      this.configuration = undefined;
      throw unavailable(
        `The identity provider at ${this.options.issuer} did not answer (${(error as Error).message}). Try again in a minute; if it persists, check ACBA_OIDC_ISSUER.`,
      );
    });
    return this.configuration;
  }

  private async discover(): Promise<client.Configuration> {
    const options: client.DiscoveryRequestOptions = {};
    if (this.options.fetch) options[client.customFetch] = this.options.fetch as client.CustomFetch;
    const config = await client.discovery(
      new URL(this.options.issuer),
      this.options.clientId,
      this.options.clientSecret,
      undefined,
      options,
    );
    if (this.options.fetch) config[client.customFetch] = this.options.fetch as client.CustomFetch;
    return config;
  }
}
