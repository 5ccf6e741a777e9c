/**
 * What every portal handler shares: the options, the signed-in viewer, and
 * one way to answer with a page or, for clients that ask for JSON, its data.
 */
import type { Request, Response } from 'express';
import type { RoleMapping } from '../approvals/index.ts';
import type { Db } from '../core/db/database.ts';
import type { Logger } from '../core/log.ts';
import type { PortalDecisions } from './decide.ts';
import type { OidcSignIn } from './oidc.ts';
import { renderPage } from './render.ts';
import { currentIdentity, formToken } from './session.ts';
import type { Viewer } from './viewer.ts';

export interface AuditVerification {
  ok: boolean;
  checked: number;
  firstBroken?: { seq: string; problem: string };
}

export interface PortalContext {
  db: Db;
  log: Logger;
  providerTenantId: string;
  verifyAudit: () => Promise<AuditVerification>;
  /**
   * 'oidc' signs in with Entra ID (or the sandbox's stand-in); 'picker' lists
   * seeded people (sandbox only, without OpenID Connect); 'none' offers no sign-in.
   */
  signInMode: 'oidc' | 'picker' | 'none';
  /** Set when signInMode is 'oidc'. */
  oidc?: OidcSignIn;
  /** Maps app roles and groups in sign-in tokens to ACBA roles; unset keeps roles in ACBA's table. */
  roleMapping?: RoleMapping;
  /** Set when approvers may decide in the portal. */
  decisions?: PortalDecisions;
}

/** The viewer set by the sign-in gate; handlers behind the gate always have one. */
export function viewerOf(res: Response): Viewer {
  const viewer = res.locals.viewer as Viewer | undefined;
  if (!viewer)
    throw new Error('portal handler reached without a viewer; the sign-in gate must run first');
  return viewer;
}

/** True when the client prefers JSON to HTML (scripts, the Teams tab's fetches). */
export function wantsJson(req: Request): boolean {
  return req.accepts(['html', 'json']) === 'json';
}

/**
 * Answers with the template rendered in the layout, or with `json` (the page's
 * data) when the client asked for JSON.
 */
export async function sendPage(
  req: Request,
  res: Response,
  template: string,
  data: Record<string, unknown> & { title: string },
  options: { status?: number; json?: unknown } = {},
): Promise<void> {
  res.status(options.status ?? 200);
  if (wantsJson(req) && options.json !== undefined) {
    res.json(options.json);
    return;
  }

  const html = await renderPage(template, {
    ...data,
    base: req.baseUrl,
    path: req.path,
    viewer: res.locals.viewer as Viewer | undefined,
    signedIn: currentIdentity(req) !== undefined,
    token: formToken(req),
  });
  res.type('html').send(html);
}
