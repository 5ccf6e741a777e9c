/**
 * `GET /metrics` in Prometheus's text format: this process's event metrics
 * (../core/metrics.ts) and, read from the database at each scrape, the state
 * every process sees alike: queue depth, workers alive, requests waiting for
 * a decision, running job sessions and repository size by customer.
 *
 * The figures name customers and their sizes, so they are not public: with
 * ACBA_METRICS_TOKEN set, a scrape must bring it as a bearer token; without
 * it, only this machine (the loopback interface) may scrape.
 */
import { timingSafeEqual } from 'node:crypto';
import express from 'express';
import client from 'prom-client';
import { sql } from 'kysely';
import type { Db } from '../core/db/database.ts';
import type { Logger } from '../core/log.ts';
import { eventRegistry } from '../core/metrics.ts';
import { workersAlive } from '../engine/worker-leases.ts';

export interface MetricsOptions {
  db: Db;
  log: Logger;
  /** Jobs waiting per queue. */
  queueDepth(): Promise<Record<string, number>>;
  /** The bearer token scrapers must send; unset allows loopback scrapes only. */
  token?: string;
}

/** The router serving /metrics. */
export function metricsRouter(options: MetricsOptions): express.Router {
  const registry = client.Registry.merge([eventRegistry, stateRegistry(options)]);
  const router = express.Router();

  router.get('/metrics', async (req, res) => {
    const refusal = scrapeRefusal(req, options.token);
    if (refusal) {
      res.status(refusal.status).type('text/plain').send(`${refusal.message}\n`);
      return;
    }
    try {
      res.type(registry.contentType).send(await registry.metrics());
    } catch (error) {
      options.log.error({ err: error }, 'metrics_failed');
      res
        .status(503)
        .type('text/plain')
        .send('Metrics are unavailable: the database does not answer.\n');
    }
  });
  return router;
}

function scrapeRefusal(
  req: express.Request,
  token: string | undefined,
): { status: number; message: string } | undefined {
  if (token) {
    const given = /^Bearer (.+)$/i.exec(req.get('authorization') ?? '')?.[1] ?? '';
    const a = Buffer.from(given);
    const b = Buffer.from(token);
    if (a.length === b.length && timingSafeEqual(a, b)) return undefined;
    return {
      status: 401,
      message: 'Send the metrics token as "Authorization: Bearer TOKEN" (ACBA_METRICS_TOKEN).',
    };
  }
  const from = req.socket.remoteAddress ?? '';
  if (from === '127.0.0.1' || from === '::1' || from === '::ffff:127.0.0.1') return undefined;
  return {
    status: 403,
    message:
      'Metrics are served to this machine only. Set ACBA_METRICS_TOKEN to let a Prometheus server elsewhere scrape with that bearer token.',
  };
}

/** Gauges read from the database when scraped. */
function stateRegistry(options: MetricsOptions): client.Registry {
  const { db } = options;
  const registry = new client.Registry();

  new client.Gauge({
    name: 'acba_queue_depth',
    help: 'Jobs waiting in each queue, new or waiting for a retry',
    labelNames: ['queue'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      for (const [queue, depth] of Object.entries(await options.queueDepth()))
        this.set({ queue }, depth);
    },
  });

  new client.Gauge({
    name: 'acba_workers_alive',
    help: 'Processes taking jobs whose worker lease has not lapsed',
    registers: [registry],
    async collect() {
      this.set(await workersAlive(db));
    },
  });

  new client.Gauge({
    name: 'acba_job_sessions_running',
    help: 'Backup job sessions running now',
    registers: [registry],
    async collect() {
      const row = await db
        .selectFrom('job_sessions')
        .select((eb) => eb.fn.countAll<string>().as('n'))
        .where('status', '=', 'running')
        .executeTakeFirstOrThrow();
      this.set(Number(row.n));
    },
  });

  new client.Gauge({
    name: 'acba_approval_requests_waiting',
    help: 'Written requests waiting for approval, by kind',
    labelNames: ['kind'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      const rows = await db
        .selectFrom('requests')
        .select(['kind', (eb) => eb.fn.countAll<string>().as('n')])
        .where('status', '=', 'pending')
        .groupBy('kind')
        .execute();
      for (const row of rows) this.set({ kind: row.kind }, Number(row.n));
    },
  });

  new client.Gauge({
    name: 'acba_approval_oldest_waiting_seconds',
    help: 'How long the oldest request waiting for approval has waited',
    registers: [registry],
    async collect() {
      const row = await db
        .selectFrom('requests')
        .select(sql<string | null>`extract(epoch from now() - min(created_at))`.as('age'))
        .where('status', '=', 'pending')
        .executeTakeFirstOrThrow();
      this.set(Number(row.age ?? 0));
    },
  });

  new client.Gauge({
    name: 'acba_repository_stored_bytes',
    help: "Bytes each customer's restore points hold in the repository",
    labelNames: ['customer'] as const,
    registers: [registry],
    async collect() {
      this.reset();
      const rows = await db
        .selectFrom('customers')
        .leftJoin('restore_points', 'restore_points.customer_id', 'customers.id')
        .select([
          'customers.id as customer',
          (eb) => eb.fn.sum<string | null>('restore_points.stored_bytes').as('stored'),
        ])
        .groupBy('customers.id')
        .execute();
      for (const row of rows) this.set({ customer: row.customer }, Number(row.stored ?? 0));
    },
  });

  return registry;
}
