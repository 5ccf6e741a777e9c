/**
 * Interactive sign-in of the sandbox's seeded people, shaped like Entra ID's
 * multi-tenant `organizations` authority: OpenID metadata whose issuer holds
 * `{tenantid}`, an authorize endpoint whose login page lists the people of
 * every tenant, and the authorization code grant with PKCE (S256 only).
 *
 * Codes live in memory for five minutes and work once. Redirect URIs must be
 * on this machine (localhost or 127.0.0.1), since the stand-in knows no app
 * registration's reply URLs. ID tokens carry oid, tid, name,
 * preferred_username, roles and the nonce; access tokens are for the app
 * itself (aud = client id, scp = access_as_user), as Entra issues them for an
 * app that exposes its own API.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import express, { type Request, type Response, type Router } from 'express';
import type { JWK, JWTPayload } from 'jose';
import type { SeedApplication } from './seed.ts';
import type { SignInUser } from './identity.ts';

const authority = 'organizations';
const entraIssuerTemplate = 'https://login.microsoftonline.com/{tenantid}/v2.0';
const codeLifetimeMs = 5 * 60 * 1000;
const tokenLifetimeSeconds = 3599;

interface AuthorizeParams {
  clientId: string;
  redirectUri: string;
  state: string;
  nonce: string;
  codeChallenge: string;
  scope: string;
}

interface IssuedCode extends AuthorizeParams {
  user: SignInUser;
  expiresAt: number;
}

export interface UserSignInOptions {
  baseUrl: string;
  application: SeedApplication;
  users: SignInUser[];
  sign(
    claims: JWTPayload,
    audience: string,
    issuer: string,
    lifetimeSeconds: number,
  ): Promise<string>;
  publicJwks(): { keys: JWK[] };
}

/** The issuer of a user's tokens, as Entra names it. */
export function userIssuerOf(tenantId: string): string {
  return entraIssuerTemplate.replace('{tenantid}', tenantId);
}

export class UserSignIn {
  private readonly codes = new Map<string, IssuedCode>();

  constructor(private readonly options: UserSignInOptions) {}

  router(): Router {
    const router = express.Router();
    const base = `/${authority}`;
    router.get(`${base}/v2.0/.well-known/openid-configuration`, (_req, res) => this.metadata(res));
    router.get(`${base}/discovery/v2.0/keys`, (_req, res) => {
      res.json(this.options.publicJwks());
    });
    router.get(`${base}/oauth2/v2.0/authorize`, (req, res) => this.loginPage(req, res));
    router.post(
      `${base}/oauth2/v2.0/authorize`,
      express.urlencoded({ extended: false }),
      (req, res) => this.pick(req, res),
    );
    router.post(
      `${base}/oauth2/v2.0/token`,
      express.urlencoded({ extended: false }),
      (req, res) => void this.token(req, res),
    );
    return router;
  }

  private metadata(res: Response): void {
    const base = `${this.options.baseUrl}/${authority}`;
    res.json({
      issuer: entraIssuerTemplate,
      authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
      token_endpoint: `${base}/oauth2/v2.0/token`,
      jwks_uri: `${base}/discovery/v2.0/keys`,
      token_endpoint_auth_methods_supported: ['client_secret_post', 'client_secret_basic'],
      response_types_supported: ['code'],
      response_modes_supported: ['query'],
      code_challenge_methods_supported: ['S256'],
      subject_types_supported: ['pairwise'],
      id_token_signing_alg_values_supported: ['RS256'],
      scopes_supported: ['openid', 'profile', 'email', 'offline_access'],
      claims_supported: ['sub', 'iss', 'aud', 'exp', 'iat', 'nbf', 'tid', 'oid', 'name'],
    });
  }

  /** Checks the authorize parameters; answers 400 with Entra's error shape and returns undefined when wrong. */
  private params(source: Record<string, unknown>, res: Response): AuthorizeParams | undefined {
    const get = (name: string) => (typeof source[name] === 'string' ? String(source[name]) : '');
    const params: AuthorizeParams = {
      clientId: get('client_id'),
      redirectUri: get('redirect_uri'),
      state: get('state'),
      nonce: get('nonce'),
      codeChallenge: get('code_challenge'),
      scope: get('scope'),
    };
    const problem =
      params.clientId !== this.options.application.clientId
        ? `Application with identifier '${params.clientId}' was not found.`
        : !isLoopback(params.redirectUri)
          ? `The redirect URI '${params.redirectUri}' is not on this machine; the sandbox accepts localhost and 127.0.0.1 only.`
          : get('response_type') !== 'code'
            ? 'Only response_type=code is supported.'
            : get('code_challenge_method') !== 'S256' || params.codeChallenge === ''
              ? 'PKCE is required: send code_challenge with code_challenge_method=S256.'
              : !params.scope.split(' ').includes('openid')
                ? "The scope must include 'openid'."
                : undefined;
    if (problem) {
      res.status(400).type('text').send(`AADSTS900144: ${problem}`);
      return undefined;
    }
    return params;
  }

  private loginPage(req: Request, res: Response): void {
    const params = this.params(req.query as Record<string, unknown>, res);
    if (!params) return;
    const hidden = Object.entries(req.query)
      .filter(([, v]) => typeof v === 'string')
      .map(([k, v]) => `<input type="hidden" name="${html(k)}" value="${html(String(v))}">`)
      .join('');
    const people = this.options.users
      .map(
        (u) => `<li><form method="post">${hidden}
  <input type="hidden" name="login_oid" value="${html(u.objectId)}">
  <button type="submit"><strong>${html(u.displayName)}</strong> <span>${html(u.userPrincipalName)} · ${html(u.organization)} · ${html(u.role)}</span></button>
</form></li>`,
      )
      .join('\n');
    res.set('Cache-Control', 'no-store').type('html').send(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in · sandbox identity</title>
<style>body{font-family:system-ui,sans-serif;max-width:40rem;margin:2rem auto}li{list-style:none;margin:.5rem 0}
button{width:100%;text-align:left;padding:.6rem;border:1px solid #8a8886;border-radius:4px;background:#fff;cursor:pointer}
button:focus,button:hover{outline:2px solid #0f6cbd}span{color:#444}</style></head>
<body><h1>Pick an account</h1>
<p>Sandbox stand-in for Microsoft Entra ID: pick one of the seeded people to sign in as.</p>
<ul>${people}</ul></body></html>`);
  }

  private pick(req: Request, res: Response): void {
    const body = (req.body ?? {}) as Record<string, unknown>;
    const params = this.params(body, res);
    if (!params) return;
    const user = this.options.users.find((u) => u.objectId === body.login_oid);
    if (!user) {
      res
        .status(400)
        .type('text')
        .send('AADSTS50034: That account does not exist. Pick one from the list.');
      return;
    }

    const code = randomBytes(32).toString('base64url');
    this.codes.set(code, { ...params, user, expiresAt: Date.now() + codeLifetimeMs });
    const target = new URL(params.redirectUri);
    target.searchParams.set('code', code);
    if (params.state) target.searchParams.set('state', params.state);
    res.redirect(302, target.href);
  }

  private async token(req: Request, res: Response): Promise<void> {
    const body = (req.body ?? {}) as Record<string, string | undefined>;
    const fail = (error: string, description: string) =>
      void res.status(400).json({ error, error_description: description });
    if (body.grant_type !== 'authorization_code')
      return fail(
        'unsupported_grant_type',
        'AADSTS70003: Only authorization_code is supported here.',
      );

    const basic = /^Basic\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    const [basicId, basicSecret] = basic
      ? Buffer.from(basic[1]!, 'base64').toString('utf8').split(':').map(decodeURIComponent)
      : [];
    const clientId = body.client_id ?? basicId;
    const clientSecret = body.client_secret ?? basicSecret ?? '';
    const app = this.options.application;
    if (clientId !== app.clientId || !same(clientSecret, app.clientSecret))
      return void res.status(401).json({
        error: 'invalid_client',
        error_description: 'AADSTS7000215: Invalid client secret provided.',
      });

    const issued = this.codes.get(body.code ?? '');
    this.codes.delete(body.code ?? '');
    if (!issued || issued.expiresAt < Date.now())
      return fail(
        'invalid_grant',
        'AADSTS70008: The provided authorization code has expired or was already redeemed.',
      );
    if (issued.redirectUri !== body.redirect_uri)
      return fail(
        'invalid_grant',
        'AADSTS50148: The redirect_uri does not match the one of the authorization request.',
      );
    const challenge = createHash('sha256')
      .update(body.code_verifier ?? '')
      .digest('base64url');
    if (!same(challenge, issued.codeChallenge))
      return fail(
        'invalid_grant',
        'AADSTS50148: The code_verifier does not match the code_challenge.',
      );

    const user = issued.user;
    const issuer = userIssuerOf(user.tenantId);
    const common = {
      sub: user.objectId,
      oid: user.objectId,
      tid: user.tenantId,
      name: user.displayName,
      preferred_username: user.userPrincipalName,
      // App role values as an Entra app registration would define them (examples/role-mapping.json).
      roles: [`ACBA.${user.role.charAt(0).toUpperCase()}${user.role.slice(1)}`],
      ver: '2.0',
    };
    const idToken = await this.options.sign(
      { ...common, nonce: issued.nonce || undefined },
      app.clientId,
      issuer,
      tokenLifetimeSeconds,
    );
    const accessToken = await this.options.sign(
      { ...common, azp: app.clientId, scp: 'access_as_user' },
      app.clientId,
      issuer,
      tokenLifetimeSeconds,
    );
    res.set('Cache-Control', 'no-store').json({
      token_type: 'Bearer',
      scope: issued.scope,
      expires_in: tokenLifetimeSeconds,
      id_token: idToken,
      access_token: accessToken,
    });
  }
}

function isLoopback(uri: string): boolean {
  try {
    const url = new URL(uri);
    return (
      ['http:', 'https:'].includes(url.protocol) &&
      ['localhost', '127.0.0.1'].includes(url.hostname)
    );
  } catch {
    return false;
  }
}

function same(a: string, b: string): boolean {
  const x = Buffer.from(a);
  const y = Buffer.from(b);
  return x.length === y.length && timingSafeEqual(x, y);
}

function html(text: string): string {
  return text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}
