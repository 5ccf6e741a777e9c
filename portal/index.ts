/**
 * The web portal: restore points, backup jobs, requests and their decisions,
 * usage against the licences, and the audit trail, rendered on the server (eta) for providers' staff, auditors and
 * customers' staff. Mounted at /portal by the composition root.
 *
 * Every page sits behind the sign-in gate (./sign-in.ts) and every query is
 * limited to the viewer's scope (./viewer.ts); errors of core/errors.ts become
 * status pages here, in one place.
 */
import path from 'node:path';
import express, { type NextFunction, type Request, type Response } from 'express';
import type { RoleMapping } from '../approvals/index.ts';
import type { Db } from '../core/db/database.ts';
import { httpStatusOf, notFound, publicMessageOf } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { auditRoutes } from './audit.ts';
import { sendPage, wantsJson, type AuditVerification, type PortalContext } from './context.ts';
import type { PortalDecisions } from './decide.ts';
import { jobRoutes } from './jobs.ts';
import type { OidcSignIn } from './oidc.ts';
import { pageRoutes } from './pages.ts';
import { requestFormRoutes } from './request-forms.ts';
import { sessionMiddleware } from './session.ts';
import { requireViewer, signInRoutes } from './sign-in.ts';

export interface PortalOptions {
  db: Db;
  log: Logger;
  /** Staff of this tenant are the provider's; everyone else is a customer user. */
  providerTenantId: string;
  /** Signs the session cookie. */
  sessionSecret: Buffer;
  secureCookies: boolean;
  /** Verifies the audit hash chain (core/audit.ts: verifyAuditChain(db)). */
  verifyAudit: () => Promise<AuditVerification>;
  /**
   * Sign-in: 'oidc' hands over to Entra ID (or the sandbox's stand-in of it);
   * 'picker' lists the seeded people (the sandbox only, when OpenID Connect is
   * not configured: anyone could be anyone); 'none' offers no sign-in at all.
   */
  signIn: { mode: 'picker' | 'none' } | { mode: 'oidc'; oidc: OidcSignIn };
  /** Lets approvers decide in the portal, under the approvals module's rules. */
  decisions?: PortalDecisions;
  /** Maps app roles and groups in sign-in tokens to ACBA roles (ACBA_ROLE_MAPPING). */
  roleMapping?: RoleMapping;
}

const staticDir = path.join(import.meta.dirname, 'static');

/**
 * Who may frame the portal: the portal itself and the hosts of a Teams tab, as
 * Microsoft lists them for tab pages (Teams, the *.cloud.microsoft domains all
 * of Microsoft 365 moves to, the Microsoft 365 app and Outlook on the web).
 */
export const frameAncestors = [
  "'self'",
  'https://teams.microsoft.com',
  'https://*.teams.microsoft.com',
  'https://*.cloud.microsoft',
  'https://*.microsoft365.com',
  'https://*.office.com',
  'https://outlook.office.com',
  'https://outlook.office365.com',
];

/**
 * Everything from the portal's own origin, teams-js included (served from
 * node_modules, never a CDN), and no inline script. frame-ancestors takes the
 * place of X-Frame-Options, which cannot name more than one origin; sending
 * both would only make scanners report a conflict.
 */
export const contentSecurityPolicy = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'self'",
  `frame-ancestors ${frameAncestors.join(' ')}`,
].join('; ');

export function createPortal(options: PortalOptions): express.Router {
  const ctx: PortalContext = {
    db: options.db,
    log: options.log.child({ component: 'portal' }),
    providerTenantId: options.providerTenantId,
    verifyAudit: options.verifyAudit,
    signInMode: options.signIn.mode,
    oidc: options.signIn.mode === 'oidc' ? options.signIn.oidc : undefined,
    decisions: options.decisions,
    roleMapping: options.roleMapping,
  };
  const router = express.Router();

  router.use('/static', express.static(staticDir, { maxAge: '1h' }));
  router.use(sessionMiddleware({ secret: options.sessionSecret, secure: options.secureCookies }));
  router.use(express.urlencoded({ extended: false, limit: '16kb' }));
  router.use((_req, res, next) => {
    res.set('Cache-Control', 'no-store');
    res.set('Content-Security-Policy', contentSecurityPolicy);
    res.set('X-Content-Type-Options', 'nosniff');
    next();
  });

  router.use(signInRoutes(ctx));
  router.use(requireViewer(ctx));
  router.use(requestFormRoutes(ctx));
  router.use(pageRoutes(ctx));
  router.use(jobRoutes(ctx));
  router.use(auditRoutes(ctx));

  router.use((req: Request) => {
    throw notFound(
      `There is no portal page at ${req.originalUrl}. Use the menu to find what you need.`,
    );
  });
  router.use(errorPage(ctx));
  return router;
}

/** Turns any error into a status page (or a JSON error) with a message safe to show. */
function errorPage(ctx: PortalContext) {
  return async (error: unknown, req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) {
      next(error);
      return;
    }
    const status = httpStatusOf(error);
    const message = publicMessageOf(error);
    // The path only: a query may carry a sign-in code or state, which must not reach a log.
    if (status >= 500)
      ctx.log.error({ err: error, path: req.baseUrl + req.path }, 'portal_request_failed');
    else
      ctx.log.info(
        { status, path: req.baseUrl + req.path, reason: message },
        'portal_request_refused',
      );

    if (wantsJson(req)) {
      res.status(status).json({ error: status, message });
      return;
    }
    await sendPage(req, res, 'error', { title: `Error ${status}`, status, message }, { status });
  };
}
