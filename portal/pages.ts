/**
 * The portal's read pages: overview, restore points, requests and one
 * request with its decisions. Every query goes through the viewer's scope.
 */
import express from 'express';
import type { Db } from '../core/db/database.ts';
import { isRequestStatus, REQUEST_STATUSES } from '../core/db/schema.ts';
import type {
  Decision,
  FileRestoreTarget,
  RequestRow,
  RequestTarget,
  RestorePointDisk,
} from '../core/db/schema.ts';
import { listRestorePoints, type RestorePointListing } from '../engine/catalog.ts';
import { describeTarget, KIND_LABELS } from '../approvals/index.ts';
import { AcbaError, httpStatusOf, publicMessageOf } from '../core/errors.ts';
import { sendPage, viewerOf, wantsJson, type PortalContext } from './context.ts';
import { decideAsViewer, mayOfferDecision, whyNoDecision } from './decide.ts';
import {
  customerNames,
  getRequestWithDecisions,
  listCustomerSummaries,
  listItems,
  listRequests,
} from './queries.ts';
import { checkFormToken } from './session.ts';
import { customerFilter, type Viewer } from './viewer.ts';

function parseJson<T>(value: unknown): T {
  return (typeof value === 'string' ? JSON.parse(value) : value) as T;
}

function queryString(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() !== '' ? value.trim() : undefined;
}

interface RestorePointGroup {
  customerName: string;
  vms: Array<{
    itemId: string;
    name: string;
    points: Array<RestorePointListing & { diskList: RestorePointDisk[] }>;
  }>;
}

/** Groups restore points by customer, then VM, keeping the newest-first order inside each VM. */
function groupRestorePoints(
  points: RestorePointListing[],
  names: Map<string, string>,
): RestorePointGroup[] {
  const groups = new Map<string, RestorePointGroup>();
  for (const point of points) {
    const customerName = names.get(point.customer_id) ?? point.customer_id;
    let group = groups.get(point.customer_id);
    if (!group) {
      group = { customerName, vms: [] };
      groups.set(point.customer_id, group);
    }
    let vm = group.vms.find((v) => v.itemId === point.item_id);
    if (!vm) {
      vm = { itemId: point.item_id, name: point.item_name, points: [] };
      group.vms.push(vm);
    }
    vm.points.push({ ...point, diskList: parseJson<RestorePointDisk[]>(point.disks) ?? [] });
  }

  return [...groups.values()]
    .sort((a, b) => a.customerName.localeCompare(b.customerName))
    .map((g) => ({ ...g, vms: g.vms.sort((a, b) => a.name.localeCompare(b.name)) }));
}

/**
 * A request as the viewer may read it. Where the bot posted the approval card
 * and where it writes to the requester are the provider's delivery details
 * (Teams channel ids and service URLs), not the customer's business.
 */
export function visibleRow<T extends RequestRow>(
  request: T,
  viewer: Viewer,
): T | Omit<T, 'approval_card' | 'requester_conversation'> {
  if (viewer.scope.kind === 'provider') return request;
  const { approval_card: _card, requester_conversation: _conversation, ...rest } = request;
  return rest;
}

function requestView(request: RequestRow, names: Map<string, string>) {
  return {
    ...request,
    customerName: names.get(request.customer_id) ?? request.customer_id,
    targetValue: parseJson<FileRestoreTarget>(request.target),
    kindLabel: KIND_LABELS[request.kind] ?? request.kind,
    targetText: describeTarget(request.kind, parseJson<RequestTarget>(request.target)),
    resultValue:
      request.result === null ? null : parseJson<Record<string, unknown>>(request.result),
  };
}

async function tenantLabels(db: Db, providerTenantId: string): Promise<Map<string, string>> {
  const rows = await db.selectFrom('customers').select(['tenant_id', 'name']).execute();
  const labels = new Map(rows.map((r) => [r.tenant_id, r.name]));
  labels.set(providerTenantId, 'Provider');
  return labels;
}

function decisionView(decision: Decision, request: RequestRow, labels: Map<string, string>) {
  return {
    ...decision,
    tenantLabel: labels.get(decision.approver_tenant_id) ?? 'Unknown tenant',
    // A decision binds to the request's content; one made on other content no longer counts.
    current: decision.request_hash === request.content_hash,
  };
}

/** One request with its decisions, and the decision form when the viewer may decide. */
async function showRequest(
  ctx: PortalContext,
  req: express.Request,
  res: express.Response,
  refusal?: { status: number; problem: string; comment: string },
) {
  const viewer: Viewer = viewerOf(res);
  const { request, decisions } = await getRequestWithDecisions(
    ctx.db,
    String(req.params.id),
    customerFilter(viewer),
  );
  const [names, labels] = await Promise.all([
    customerNames(ctx.db),
    tenantLabels(ctx.db, ctx.providerTenantId),
  ]);
  const view = requestView(request, names);
  const decisionViews = decisions.map((d) => decisionView(d, request, labels));
  const approvals = decisionViews.filter((d) => d.decision === 'approve' && d.current).length;
  await sendPage(
    req,
    res,
    'request',
    {
      title: `Request ${request.id}`,
      request: view,
      decisions: decisionViews,
      approvals,
      offerDecision: ctx.decisions !== undefined && mayOfferDecision(viewer, request, decisions),
      noDecision: whyNoDecision(viewer, request, decisions),
      problem: refusal?.problem,
      comment: refusal?.comment ?? '',
    },
    { status: refusal?.status, json: { request: visibleRow(request, viewer), decisions } },
  );
}

export function pageRoutes(ctx: PortalContext): express.Router {
  const router = express.Router();

  router.get('/', async (req, res) => {
    const viewer = viewerOf(res);
    const customerId = customerFilter(viewer);
    const [customers, recent, names] = await Promise.all([
      listCustomerSummaries(ctx.db, customerId),
      listRequests(ctx.db, { customerId, limit: 5 }),
      customerNames(ctx.db),
    ]);
    const requests = recent.map((r) => requestView(r, names));
    await sendPage(
      req,
      res,
      'overview',
      { title: 'Overview', customers, requests },
      {
        json: { customers, requests: requests.map((r) => visibleRow(r, viewer)) },
      },
    );
  });

  router.get('/restore-points', async (req, res) => {
    const viewer = viewerOf(res);
    const scoped = customerFilter(viewer);
    const customerId = scoped ?? queryString(req.query.customer);
    const itemId = queryString(req.query.item);
    const [points, items, names] = await Promise.all([
      listRestorePoints(ctx.db, { customerId, itemId }),
      listItems(ctx.db, scoped),
      customerNames(ctx.db),
    ]);
    const groups = groupRestorePoints(points, names);
    await sendPage(
      req,
      res,
      'restore-points',
      { title: 'Restore points', groups, items, itemId, count: points.length },
      { json: { restorePoints: points } },
    );
  });

  router.get('/requests', async (req, res) => {
    const viewer = viewerOf(res);
    const status = queryString(req.query.status);
    const filterStatus = status && isRequestStatus(status) ? status : undefined;
    const [rows, names] = await Promise.all([
      listRequests(ctx.db, { customerId: customerFilter(viewer), status: filterStatus }),
      customerNames(ctx.db),
    ]);
    const requests = rows.map((r) => requestView(r, names));
    await sendPage(
      req,
      res,
      'requests',
      { title: 'Requests', requests, statuses: REQUEST_STATUSES, status: filterStatus },
      { json: { requests: rows.map((r) => visibleRow(r, viewer)) } },
    );
  });

  router.get('/requests/:id', (req, res) => showRequest(ctx, req, res));

  router.post('/requests/:id/decide', async (req, res) => {
    checkFormToken(req);
    const viewer = viewerOf(res);
    try {
      const outcome = await decideAsViewer(
        ctx.decisions,
        ctx.log,
        viewer,
        'portal',
        req.params.id,
        req.body,
      );
      if (wantsJson(req)) {
        res.json({ request: visibleRow(outcome.request, viewer), decision: outcome.decision });
        return;
      }
      res.redirect(303, `${req.baseUrl}/requests/${encodeURIComponent(outcome.request.id)}`);
    } catch (error) {
      // A refusal is shown on the request itself, with the comment kept for another try.
      if (!(error instanceof AcbaError) || wantsJson(req) || error.kind === 'not_found')
        throw error;
      await showRequest(ctx, req, res, {
        status: httpStatusOf(error),
        problem: publicMessageOf(error),
        comment: typeof req.body?.comment === 'string' ? req.body.comment : '',
      });
    }
  });

  return router;
}
