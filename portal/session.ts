/**
 * The portal's session. The signed cookie holds only who signed in (object id
 * and tenant id), how, and when, plus a per-session form token against
 * cross-site requests. Roles and customer scope are looked up again on every
 * request (see ./viewer.ts), so a removed principal loses access at once.
 *
 * Sign-in methods only produce a `SignedInIdentity`; the sandbox picker does
 * it from the principals table, and the Entra ID (OpenID Connect) callback
 * from the `oid` and `tid` claims of its ID token. While the browser is away
 * at the identity provider, the cookie holds the sign-in's PKCE verifier,
 * state and nonce (signed, so they cannot be swapped; used once).
 *
 * Over HTTPS the cookie is SameSite=None, Secure and Partitioned, because the
 * portal also runs as a Teams tab, in an iframe of another site, where a Lax
 * cookie is never sent. Partitioned (CHIPS) keys the cookie to the top-level
 * site: the session made inside Teams lives only inside Teams, and a page of
 * another site that embeds or fetches the portal gets no cookie at all. What
 * SameSite=None does allow, a cross-site form post, the form token refuses,
 * and so does the browser's Sec-Fetch-Site header where it is sent. Over plain
 * HTTP (the sandbox on localhost) browsers refuse SameSite=None, so it stays Lax.
 */
import { randomBytes, timingSafeEqual } from 'node:crypto';
import cookieSession from 'cookie-session';
import type { Request, RequestHandler } from 'express';
import { forbidden } from '../core/errors.ts';
import type { PendingSignIn } from './oidc.ts';

/** How long a sign-in lasts before the person must sign in again. */
export const sessionMaxAgeMs = 8 * 60 * 60 * 1000;

export interface SignedInIdentity {
  objectId: string;
  tenantId: string;
  /**
   * 'picker' in the sandbox without OpenID Connect; 'oidc' after an Entra ID
   * sign-in; 'teams' after Teams single sign-on in the portal's tab.
   */
  method: 'picker' | 'oidc' | 'teams';
}

interface SessionData {
  objectId?: string;
  tenantId?: string;
  method?: SignedInIdentity['method'];
  /** Milliseconds since the epoch. */
  signedInAt?: number;
  formToken?: string;
  /** An OpenID Connect sign-in under way. */
  pending?: PendingSignIn & { startedAt: number };
}

/** How long the person may take at the identity provider. */
const pendingMaxAgeMs = 10 * 60 * 1000;

export function sessionMiddleware(options: { secret: Buffer; secure: boolean }): RequestHandler {
  return cookieSession({
    name: 'acba_portal',
    keys: [options.secret.toString('base64')],
    httpOnly: true,
    sameSite: options.secure ? 'none' : 'lax',
    partitioned: options.secure,
    secure: options.secure,
    maxAge: sessionMaxAgeMs,
  });
}

function data(req: Request): SessionData {
  return (req.session ?? {}) as SessionData;
}

/** The signed-in identity, or undefined when nobody is signed in or the sign-in has expired. */
export function currentIdentity(req: Request, now = Date.now()): SignedInIdentity | undefined {
  const s = data(req);
  if (!s.objectId || !s.tenantId || !s.method || !s.signedInAt) return undefined;
  if (s.signedInAt + sessionMaxAgeMs <= now) return undefined;
  return { objectId: s.objectId, tenantId: s.tenantId, method: s.method };
}

/** The session's form token, created on first use; every form that changes something carries it. */
export function formToken(req: Request): string {
  const s = data(req);
  if (!s.formToken) {
    s.formToken = randomBytes(24).toString('base64url');
    req.session = { ...s };
  }
  return s.formToken;
}

/**
 * Throws forbidden unless the posted `_token` matches the session's form token
 * and the browser, where it says so, sent the form from the portal's own origin.
 */
export function checkFormToken(req: Request): void {
  // Inside the Teams iframe the portal's own forms are still same-origin; only another site's are not.
  const site = req.get('sec-fetch-site');
  if (site === 'cross-site' || site === 'same-site')
    throw forbidden(
      'This form was sent from another site, so the portal refused it. Open the portal and try again there.',
    );

  const expected = data(req).formToken;
  const given = typeof req.body?._token === 'string' ? req.body._token : '';
  const ok =
    expected !== undefined &&
    expected.length === given.length &&
    timingSafeEqual(Buffer.from(expected), Buffer.from(given));
  if (!ok)
    throw forbidden(
      'This form has expired or did not come from the portal. Reload the page and try again.',
    );
}

/** Signs the identity in; a fresh form token replaces the one used before sign-in. */
export function startSession(req: Request, identity: SignedInIdentity, now = Date.now()): void {
  req.session = {
    objectId: identity.objectId,
    tenantId: identity.tenantId,
    method: identity.method,
    signedInAt: now,
    formToken: randomBytes(24).toString('base64url'),
  } satisfies SessionData;
}

/** Remembers an OpenID Connect sign-in under way; replaces any earlier one. */
export function rememberPendingSignIn(
  req: Request,
  pending: PendingSignIn,
  now = Date.now(),
): void {
  req.session = { ...data(req), pending: { ...pending, startedAt: now } } satisfies SessionData;
}

/** The sign-in under way, removed from the session so that it serves once; undefined when none or too old. */
export function takePendingSignIn(req: Request, now = Date.now()): PendingSignIn | undefined {
  const { pending, ...rest } = data(req);
  req.session = rest;
  if (!pending || pending.startedAt + pendingMaxAgeMs <= now) return undefined;
  const { startedAt: _startedAt, ...signIn } = pending;
  return signIn;
}

export function endSession(req: Request): void {
  req.session = null;
}
