/**
 * The portal's Jobs and Usage pages: backup job sessions with their tasks,
 * each customer's usage against its licence, and the monthly usage report
 * (as a page and as CSV). Customers' staff see only
 * their own customer's rows; the filter is applied in the queries.
 */
import express from 'express';
import type { JobStatus } from '../core/db/schema.ts';
import { badInput } from '../core/errors.ts';
import { JOB_STATUSES, listJobs, usageReport } from '../engine/job-catalog.ts';
import { monthBounds, monthlyUsage, usageCsv } from '../engine/usage-report.ts';
import { utcDay } from '../engine/usage.ts';
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

  router.get('/usage/monthly', async (req, res) => {
    const viewer = viewerOf(res);
    const month = monthParameter(req.query.month);
    const customers = await monthlyUsage(ctx.db, {
      month,
      customerId: customerFilter(viewer),
    });
    if (req.query.format === 'csv') {
      res.attachment(`acba-usage-${month}.csv`).type('text/csv').send(usageCsv(customers));
      return;
    }
    await sendPage(
      req,
      res,
      'usage-monthly',
      { title: `Usage in ${month}`, customers, month },
      { json: { month, customers } },
    );
  });

  return router;
}

/** The month asked for (YYYY-MM), or the current UTC month when none is given. */
export function monthParameter(value: unknown): string {
  if (value === undefined || value === '') return utcDay().slice(0, 7);
  if (typeof value !== 'string') throw badInput('Give one month, as YYYY-MM, e.g. ?month=2026-11.');
  monthBounds(value);
  return value;
}
