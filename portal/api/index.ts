/**
 * The JSON API under /api/v1: what the portal shows, for scripts and the
 * Teams tab, under the portal's rules. Callers bring a bearer token from the
 * identity provider (Entra ID, or the sandbox's stand-in); its oid and tid
 * name the principal, whose roles and customer scope come from the database
 * on every request (../viewer.ts), exactly as for a portal session. Every
 * query is the portal's own (../queries.ts), limited to the viewer's scope.
 *
 * Errors of core/errors.ts map once, here, to a status and the body
 * `{ error: kind, message }`; a missing or refused token is 401
 * `unauthenticated`. The description is served at /api/v1/openapi.json.
 */
import express, { type NextFunction, type Request, type Response } from 'express';
import { z } from 'zod';
import type { RoleMapping } from '../../approvals/index.ts';
import type { Db } from '../../core/db/database.ts';
import { isRequestStatus, REQUEST_STATUSES, type JobStatus } from '../../core/db/schema.ts';
import {
  AcbaError,
  badInput,
  httpStatusOf,
  notFound,
  publicMessageOf,
  unavailable,
  type ErrorKind,
} from '../../core/errors.ts';
import type { Logger } from '../../core/log.ts';
import { listRestorePoints } from '../../engine/catalog.ts';
import { JOB_STATUSES, listJobs, usageReport } from '../../engine/job-catalog.ts';
import { monthlyUsage, usageCsv } from '../../engine/usage-report.ts';
import type { AuditVerification } from '../context.ts';
import { parseAuditFilter } from '../audit-filter.ts';
import { isJobStatus, monthParameter, USAGE_DAYS } from '../jobs.ts';
import { decideAsViewer, type PortalDecisions } from '../decide.ts';
import { BearerTokenError, type OidcSignIn } from '../oidc.ts';
import { visibleRow } from '../pages.ts';
import { getRequestWithDecisions, listAudit, listRequests } from '../queries.ts';
import { applyRoleClaims, customerFilter, resolveViewer, type Viewer } from '../viewer.ts';
import { openApiDocument } from './openapi.ts';

export interface ApiOptions {
  db: Db;
  log: Logger;
  providerTenantId: string;
  verifyAudit: () => Promise<AuditVerification>;
  /** Checks bearer tokens; without it every call but the description is refused. */
  oidc?: OidcSignIn;
  /** Lets approvers decide through the API, under the approvals module's rules. */
  decisions?: PortalDecisions;
  /** Maps app roles and groups in tokens to ACBA roles (ACBA_ROLE_MAPPING). */
  roleMapping?: RoleMapping;
}

const auditPageSize = 50;
const maxLimit = 500;

export function createApi(options: ApiOptions): express.Router {
  const log = options.log.child({ component: 'api' });
  const router = express.Router();
  router.use((_req, res, next) => {
    res.set('Cache-Control', 'no-store');
    res.set('X-Content-Type-Options', 'nosniff');
    next();
  });

  router.get('/openapi.json', (_req, res) => {
    res.json(openApiDocument);
  });
  router.use(authenticate(options));

  router.get('/me', (_req, res) => {
    res.json(viewerOf(res));
  });

  router.get('/restore-points', async (req, res) => {
    const viewer = viewerOf(res);
    const restorePoints = await listRestorePoints(options.db, {
      customerId: customerFilter(viewer) ?? text(req.query.customer),
      itemId: text(req.query.item),
      limit: limitOf(req),
    });
    res.json({ restorePoints });
  });

  router.get('/jobs', async (req, res) => {
    const viewer = viewerOf(res);
    const status = text(req.query.status);
    if (status && !isJobStatus(status))
      throw badInput(
        `There is no job outcome "${status.slice(0, 40)}". Use one of: ${JOB_STATUSES.join(', ')}.`,
      );
    const jobs = await listJobs(options.db, {
      customerId: customerFilter(viewer) ?? text(req.query.customer),
      itemId: text(req.query.item),
      status: status as JobStatus | undefined,
      limit: limitOf(req),
    });
    res.json({ jobs });
  });

  router.get('/usage', async (req, res) => {
    const viewer = viewerOf(res);
    const raw = text(req.query.days);
    const days = raw === undefined ? USAGE_DAYS : Number(raw);
    if (!Number.isInteger(days) || days < 1 || days > 366)
      throw badInput('The "days" parameter is a whole number from 1 to 366.');
    const customers = await usageReport(options.db, {
      customerId: customerFilter(viewer) ?? text(req.query.customer),
      days,
    });
    res.json({ customers });
  });

  router.get('/usage/monthly', async (req, res) => {
    const viewer = viewerOf(res);
    const month = monthParameter(req.query.month);
    const customers = await monthlyUsage(options.db, {
      month,
      customerId: customerFilter(viewer) ?? text(req.query.customer),
    });
    if (req.query.format === 'csv') res.type('text/csv').send(usageCsv(customers));
    else res.json({ month, customers });
  });

  router.get('/requests', async (req, res) => {
    const viewer = viewerOf(res);
    const status = text(req.query.status);
    if (status && !isRequestStatus(status))
      throw badInput(
        `There is no request status "${status.slice(0, 40)}". Use one of: ${REQUEST_STATUSES.join(', ')}.`,
      );
    const rows = await listRequests(options.db, {
      customerId: customerFilter(viewer),
      status,
      limit: limitOf(req),
    });
    res.json({ requests: rows.map((r) => visibleRow(r, viewer)) });
  });

  router.post('/requests', express.json({ limit: '64kb' }), async (req, res) => {
    const viewer = viewerOf(res);
    if (!options.decisions)
      throw unavailable(
        'This installation takes requests in Teams only; the API was started without the approval workflow.',
      );
    const input = requestInput(req.body);
    const actor = {
      objectId: viewer.objectId,
      tenantId: viewer.tenantId,
      name: viewer.name,
      channel: 'api' as const,
    };
    const request =
      input.kind === 'file_restore'
        ? await options.decisions.approvals.requestFileRestore(actor, {
            ...fileRestoreTarget(input.target),
            reason: input.reason,
            ticket: input.ticket,
          })
        : await options.decisions.approvals.createRequest(actor, input);
    res.status(201).json({ request: visibleRow(request, viewer) });
  });

  router.get('/requests/:id', async (req, res) => {
    const viewer = viewerOf(res);
    const { request, decisions } = await getRequestWithDecisions(
      options.db,
      req.params.id,
      customerFilter(viewer),
    );
    res.json({ request: visibleRow(request, viewer), decisions });
  });

  router.post('/requests/:id/decisions', express.json({ limit: '16kb' }), async (req, res) => {
    const viewer = viewerOf(res);
    const outcome = await decideAsViewer(
      options.decisions,
      log,
      viewer,
      'api',
      req.params.id,
      req.body,
    );
    res
      .status(201)
      .json({ request: visibleRow(outcome.request, viewer), decision: outcome.decision });
  });

  router.get('/audit', async (req, res) => {
    const viewer = viewerOf(res);
    const page = await listAudit(options.db, {
      ...parseAuditFilter(req.query),
      scopeCustomerId: customerFilter(viewer),
      tenantId: viewer.tenantId,
      pageSize: auditPageSize,
    });
    res.json(page);
  });

  router.post('/audit/verify', async (_req, res) => {
    const viewer = viewerOf(res);
    const verification = await options.verifyAudit();
    log.info(
      { objectId: viewer.objectId, tenantId: viewer.tenantId, ok: verification.ok },
      'api_audit_verified',
    );
    res.json({ verification });
  });

  router.use((req: Request) => {
    throw notFound(
      `There is no API endpoint ${req.method} ${req.baseUrl}${req.path}. See ${req.baseUrl}/openapi.json.`,
    );
  });
  router.use(errorResponse(log));
  return router;
}

const requestBody = z.strictObject({
  kind: z.string().min(1).max(40),
  target: z.record(z.string(), z.unknown()),
  reason: z.string().max(4000),
  ticket: z.string().max(100).optional(),
});

/** A request as the API takes it; bad_input names the wrong field. */
function requestInput(body: unknown): z.infer<typeof requestBody> {
  const parsed = requestBody.safeParse(body);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw badInput(
      `The request body is wrong at ${issue.path.join('.') || 'its top level'}: ${issue.message}. Send {"kind", "target", "reason", "ticket"?} as JSON.`,
    );
  }
  return parsed.data;
}

const fileTarget = z.strictObject({
  vmName: z.string().min(1).max(200),
  path: z.string().min(1).max(4096),
  restorePointId: z.string().min(1).max(100).optional(),
  at: z.iso.datetime({ offset: true }).optional(),
});

/** A file restore's target: the VM, the path, and the restore point (by id, or the newest at or before `at`). */
function fileRestoreTarget(target: unknown): {
  vmName: string;
  path: string;
  restorePointId?: string;
  at?: Date;
} {
  const parsed = fileTarget.safeParse(target);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw badInput(
      `The file restore is incomplete at target.${issue.path.join('.')}: ${issue.message}. Give vmName, path and optionally restorePointId or at.`,
    );
  }
  const { at, ...rest } = parsed.data;
  return { ...rest, ...(at ? { at: new Date(at) } : {}) };
}

/** Sets res.locals.viewer from the bearer token, or answers 401. */
function authenticate(options: ApiOptions) {
  return async (req: Request, res: Response, next: NextFunction) => {
    const match = /^Bearer\s+(\S+)$/i.exec(req.headers.authorization ?? '');
    if (!match)
      throw new BearerTokenError(
        'Send an access token from Microsoft Entra ID as "Authorization: Bearer <token>".',
      );
    if (!options.oidc)
      throw new BearerTokenError(
        'This installation has no OpenID Connect settings, so the API accepts no tokens. Ask the operators to set ACBA_OIDC_ISSUER.',
      );
    const identity = await options.oidc.verifyBearer(match[1]!);
    await applyRoleClaims(
      options.db,
      options.roleMapping,
      options.providerTenantId,
      identity,
      'api',
    );
    res.locals.viewer = await resolveViewer(
      options.db,
      { objectId: identity.objectId, tenantId: identity.tenantId, method: 'oidc' },
      options.providerTenantId,
    );
    next();
  };
}

function viewerOf(res: Response): Viewer {
  const viewer = res.locals.viewer as Viewer | undefined;
  if (!viewer) throw new Error('API handler reached without a viewer; authenticate must run first');
  return viewer;
}

function text(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined;
}

function limitOf(req: Request): number | undefined {
  const raw = text(req.query.limit);
  if (raw === undefined) return undefined;
  const limit = Number(raw);
  if (!Number.isInteger(limit) || limit < 1 || limit > maxLimit)
    throw badInput(`The "limit" parameter is a whole number from 1 to ${maxLimit}.`);
  return limit;
}

/** The one place where errors become API responses. */
function errorResponse(log: Logger) {
  return (error: unknown, req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) {
      next(error);
      return;
    }
    if (error instanceof BearerTokenError) {
      log.info({ path: req.path, reason: error.message }, 'api_token_refused');
      res.set('WWW-Authenticate', 'Bearer error="invalid_token"');
      res.status(401).json({ error: 'unauthenticated', message: error.message });
      return;
    }
    const status = httpStatusOf(error);
    const kind: ErrorKind | 'internal' =
      error instanceof AcbaError ? error.kind : status < 500 ? 'bad_input' : 'internal';
    if (status >= 500) log.error({ err: error, path: req.path }, 'api_request_failed');
    else log.info({ status, path: req.path, kind }, 'api_request_refused');
    res.status(status).json({ error: kind, message: publicMessageOf(error) });
  };
}
