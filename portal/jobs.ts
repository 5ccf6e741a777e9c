/**
 * The portal's Jobs and Usage pages: backup job sessions with their tasks,
 * and each customer's usage against its licence. Customers' staff see only
 * their own customer's rows; the filter is applied in the queries.
 */
import express from 'express';
import type { JobStatus } from '../core/db/schema.ts';
import { JOB_STATUSES, listJobs, usageReport } from '../engine/job-catalog.ts';
import { sendPage, viewerOf, type PortalContext } from './context.ts';
import { customerFilter } from './viewer.ts';

/** Days of usage the Usage page shows. */
export const USAGE_DAYS = 31;

export function isJobStatus(value: string): value is JobStatus {
  return (JOB_STATUSES as readonly string[]).includes(value);
}

export function jobRoutes(ctx: PortalContext): express.Router {
  const router = express.Router();

  router.get('/jobs', async (req, res) => {
    const viewer = viewerOf(res);
    const status = typeof req.query.status === 'string' ? req.query.status : '';
    const filterStatus = isJobStatus(status) ? status : undefined;
    const jobs = await listJobs(ctx.db, {
      customerId: customerFilter(viewer),
      status: filterStatus,
    });
    await sendPage(
      req,
      res,
      'jobs',
      { title: 'Jobs', jobs, statuses: JOB_STATUSES, status: filterStatus },
      { json: { jobs } },
    );
  });

  router.get('/usage', async (req, res) => {
    const viewer = viewerOf(res);
    const customers = await usageReport(ctx.db, {
      customerId: customerFilter(viewer),
      days: USAGE_DAYS,
    });
    await sendPage(
      req,
      res,
      'usage',
      { title: 'Usage', customers, days: USAGE_DAYS },
      { json: { customers } },
    );
  });

  return router;
}
