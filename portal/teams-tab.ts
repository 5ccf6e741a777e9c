/**
 * The portal as a Teams tab, signed in with Teams single sign-on. Teams shows
 * /teams-tab in an iframe; its script (static/teams-tab.js) asks Teams for a
 * token of the person signed in to Teams (teams-js
 * `authentication.getAuthToken()`) and posts it here in a form's body, with
 * the page's form token; a token never travels in a URL, where logs and Referer
 * headers would keep it. The token is checked exactly as the JSON API checks
 * bearer tokens (`OidcSignIn.verifyBearer`: the provider's key set, the
 * issuer of the token's own tenant, the audience and the expiry), and its oid
 * and tid start the same session as any other sign-in.
 *
 * Outside Teams the page sends the browser to the normal sign-in. The form
 * token keeps a page of another site from signing someone in as the
 * attacker's own account (login cross-site request forgery).
 */
import { createRequire } from 'node:module';
import path from 'node:path';
import express from 'express';
import { badInput, forbidden } from '../core/errors.ts';
import { sendPage, type PortalContext } from './context.ts';
import { BearerTokenError } from './oidc.ts';
import { checkFormToken, startSession } from './session.ts';
import { applyRoleClaims } from './viewer.ts';

/** teams-js' browser bundle, served from the portal's own origin: the CSP admits no CDN. */
const teamsJsBundle = path.join(
  path.dirname(createRequire(import.meta.url).resolve('@microsoft/teams-js/package.json')),
  'dist',
  'umd',
  'MicrosoftTeams.min.js',
);

/** Entra ID access tokens are a few kilobytes; anything much larger is not one. */
const maxTokenLength = 12_000;

export function teamsTabRoutes(ctx: PortalContext): express.Router {
  const router = express.Router();

  router.get('/teams-tab', async (req, res) => {
    await sendPage(req, res, 'teams-tab', { title: 'Signing in with Teams' });
  });

  router.get('/teams-tab/teams-js.min.js', (_req, res) => {
    res.set('Cache-Control', 'public, max-age=3600');
    res.sendFile(teamsJsBundle);
  });

  router.post('/teams-tab/session', async (req, res) => {
    checkFormToken(req);
    if (!ctx.oidc)
      throw forbidden(
        'Teams sign-in needs Microsoft Entra ID sign-in, which is not configured on this installation. Ask the operators.',
      );
    const token = typeof req.body?.token === 'string' ? req.body.token : '';
    if (token === '' || token.length > maxTokenLength)
      throw badInput('Send the token from Teams as the "token" field of the form body.');

    let identity;
    try {
      identity = await ctx.oidc.verifyBearer(token);
    } catch (error) {
      if (!(error instanceof BearerTokenError)) throw error;
      ctx.log.info({ reason: error.message }, 'portal_teams_sign_in_refused');
      throw forbidden(
        `Teams signed you in, but ACBA could not accept its token: ${error.message} Close the tab and open it again; if this persists, ask the operators.`,
      );
    }

    await applyRoleClaims(ctx.db, ctx.roleMapping, ctx.providerTenantId, identity, 'portal');
    startSession(req, {
      objectId: identity.objectId,
      tenantId: identity.tenantId,
      method: 'teams',
    });
    ctx.log.info(
      { objectId: identity.objectId, tenantId: identity.tenantId, method: 'teams' },
      'portal_sign_in',
    );
    res.redirect(303, `${req.baseUrl}/`);
  });

  return router;
}
