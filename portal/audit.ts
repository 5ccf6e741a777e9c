/**
 * The audit trail page and its "Verify chain" action. Verification itself is
 * the audit module's job (injected as `verifyAudit`); the portal only shows
 * its verdict.
 */
import express, { type Request, type Response } from 'express';
import { sendPage, viewerOf, type AuditVerification, type PortalContext } from './context.ts';
import { listAudit } from './queries.ts';
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
  // Sequence numbers are bigints: at most 18 digits keeps the value in range.
  const before =
    typeof req.query.before === 'string' && /^\d{1,18}$/.test(req.query.before)
      ? req.query.before
      : undefined;
  const page = await listAudit(ctx.db, {
    customerId: customerFilter(viewer),
    tenantId: viewer.tenantId,
    before,
    pageSize,
  });
  await sendPage(
    req,
    res,
    'audit',
    {
      title: 'Audit trail',
      entries: page.entries,
      olderBefore: page.olderBefore,
      before,
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
