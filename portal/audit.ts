/**
 * The audit trail page and its "Verify chain" action. Verification itself is
 * the audit module's job (injected as `verifyAudit`); the portal only shows
 * its verdict.
 */
import express, { type Request, type Response } from 'express';
import { sendPage, viewerOf, type AuditVerification, type PortalContext } from './context.ts';
import {
  AUDIT_OUTCOMES,
  auditFilterQuery,
  auditFilterSearch,
  parseAuditFilter,
} from './audit-filter.ts';
import { customerNames, listAudit } from './queries.ts';
import { checkFormToken } from './session.ts';
import { customerFilter } from './viewer.ts';

const pageSize = 50;

async function showAudit(
  ctx: PortalContext,
  req: Request,
  res: Response,
  verification?: AuditVerification,
) {
  const viewer = viewerOf(res);
  const filter = parseAuditFilter(req.query);
  const scopeCustomerId = customerFilter(viewer);
  const [page, customers] = await Promise.all([
    listAudit(ctx.db, { ...filter, scopeCustomerId, tenantId: viewer.tenantId, pageSize }),
    scopeCustomerId ? Promise.resolve(new Map<string, string>()) : customerNames(ctx.db),
  ]);
  await sendPage(
    req,
    res,
    'audit',
    {
      title: 'Audit trail',
      entries: page.entries,
      filter: auditFilterQuery(filter),
      outcomes: AUDIT_OUTCOMES,
      customers: [...customers].map(([id, name]) => ({ id, name })),
      filtered: auditFilterSearch(filter) !== '',
      // Verifying keeps the filtered view the auditor was looking at.
      search: auditFilterSearch(filter),
      newest: `${req.baseUrl}/audit${auditFilterSearch(filter)}`,
      older: page.olderBefore
        ? `${req.baseUrl}/audit${auditFilterSearch(filter, { before: page.olderBefore })}`
        : undefined,
      before: filter.before,
      verification,
    },
    {
      json: verification
        ? { verification }
        : { entries: page.entries, olderBefore: page.olderBefore },
    },
  );
}

export function auditRoutes(ctx: PortalContext): express.Router {
  const router = express.Router();

  router.get('/audit', (req, res) => showAudit(ctx, req, res));

  router.post('/audit/verify', async (req, res) => {
    checkFormToken(req);
    const viewer = viewerOf(res);
    const verification = await ctx.verifyAudit();
    ctx.log.info(
      {
        objectId: viewer.objectId,
        tenantId: viewer.tenantId,
        ok: verification.ok,
        checked: verification.checked,
      },
      'portal_audit_verified',
    );
    await showAudit(ctx, req, res, verification);
  });

  return router;
}
