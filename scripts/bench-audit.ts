/**
 * How the audit trail holds up at a million entries: loads a hash-chained log
 * into a fresh database, then times the portal's filtered pages against the
 * unfiltered newest page, and a full verification of the chain against a plain
 * read of the same rows. Prints figures and ratios; not a test.
 *
 *   npm run bench:audit [-- --entries 1000000] [-- --pglite]
 *
 * By default the database is a new one on the PostgreSQL server at
 * ACBA_BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres),
 * dropped afterwards; --pglite uses the embedded PostgreSQL instead.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { sql } from 'kysely';
import { auditEntryHash, GENESIS_HASH, verifyAuditChain } from '../core/audit.ts';
import { openDatabase, type Db } from '../core/db/database.ts';
import { parseAuditFilter } from '../portal/audit-filter.ts';
import { listAudit } from '../portal/queries.ts';
import { createScratchDatabase } from '../test/support/database.ts';

const { values: args } = parseArgs({
  options: {
    entries: { type: 'string', default: '1000000' },
    pglite: { type: 'boolean', default: false },
  },
});
const total = Number(args.entries);
if (!Number.isInteger(total) || total < 1000) {
  console.error('--entries must be a whole number of at least 1000');
  process.exit(1);
}

const CUSTOMERS = 20;
const PEOPLE_PER_CUSTOMER = 5;
const PROVIDER_STAFF = [
  'Adele Vance',
  'Lee Gu',
  'Nestor Wilke',
  'Isaiah Langer',
  'Diego Siciliani',
];
/** Action names with their weight: backups dominate, refusals are rare. */
const ACTIONS: Array<[string, number]> = [
  ['backup.run', 50],
  ['retention.prune', 10],
  ['request.create', 10],
  ['request.approve', 8],
  ['request.reject', 2],
  ['request.cancel', 1],
  ['restore.run', 8],
  ['download.fetch', 6],
  ['audit.verify', 1],
  ['policy.apply', 4],
];
const PAGE = 50;
const RUNS = 7;

function pick<T>(items: T[], n: number): T {
  return items[n % items.length]!;
}

/** A well-mixed 32-bit number from i and a salt, so that the facts of an entry are independent. */
function mix(i: number, salt: number): number {
  let x = (i ^ (salt * 0x9e3779b9)) >>> 0;
  x = Math.imul(x ^ (x >>> 16), 0x7feb352d) >>> 0;
  x = Math.imul(x ^ (x >>> 15), 0x846ca68b) >>> 0;
  return (x ^ (x >>> 16)) >>> 0;
}

/** A deterministic, realistic mix: who, what, for which customer, with which outcome. */
function entryAt(i: number, start: number, step: number) {
  const customer = mix(i, 1) % CUSTOMERS;
  const weights = ACTIONS.reduce((sum, [, w]) => sum + w, 0);
  let roll = mix(i, 2) % weights;
  let action = ACTIONS[0]![0];
  for (const [name, weight] of ACTIONS) {
    if (roll < weight) {
      action = name;
      break;
    }
    roll -= weight;
  }
  const service = action === 'backup.run' || action === 'retention.prune';
  const provider = !service && (action.endsWith('approve') || action.endsWith('reject'));
  const person = service
    ? { id: 'acba-service', tenant: 'acba', name: 'ACBA service', role: 'service' }
    : provider
      ? {
          id: `provider-${mix(i, 3) % PROVIDER_STAFF.length}`,
          tenant: 'tenant-provider',
          name: pick(PROVIDER_STAFF, mix(i, 3)),
          role: 'approver',
        }
      : {
          id: `c${customer}-p${mix(i, 4) % PEOPLE_PER_CUSTOMER}`,
          tenant: `tenant-c${customer}`,
          name: `Person ${mix(i, 4) % PEOPLE_PER_CUSTOMER} of Customer ${customer}`,
          role: 'requester',
        };
  const roll100 = mix(i, 5) % 100;
  const outcome = roll100 < 2 ? 'failed' : roll100 < 10 ? 'refused' : 'success';
  return {
    at: new Date(start + i * step),
    actor_object_id: person.id,
    actor_tenant_id: person.tenant,
    actor_name: person.name,
    actor_role: person.role,
    channel: service ? 'scheduler' : provider ? 'bot' : 'portal',
    action,
    resource: `request/${i.toString(36)}`,
    outcome,
    details: { customerId: `customer-${customer}`, note: `entry ${i}` },
  };
}

async function load(db: Db): Promise<void> {
  const year = 365 * 86_400_000;
  const start = Date.now() - year;
  const step = Math.floor(year / total);
  let prevHash = GENESIS_HASH;
  const batch = 4000;
  const began = performance.now();

  for (let first = 0; first < total; first += batch) {
    const rows = [];
    for (let i = first; i < Math.min(total, first + batch); i++) {
      const e = entryAt(i, start, step);
      const hash = auditEntryHash({
        prevHash,
        at: e.at,
        actorObjectId: e.actor_object_id,
        actorTenantId: e.actor_tenant_id,
        actorName: e.actor_name,
        actorRole: e.actor_role,
        channel: e.channel,
        action: e.action,
        resource: e.resource,
        outcome: e.outcome,
        details: e.details,
      });
      rows.push({ ...e, details: JSON.stringify(e.details), prev_hash: prevHash, hash });
      prevHash = hash;
    }
    await db
      .insertInto('audit_log')
      .values(rows as never)
      .execute();
    if (process.stderr.isTTY) {
      process.stderr.write(`\rloading ${Math.min(total, first + batch).toLocaleString('en')}`);
    }
  }
  if (process.stderr.isTTY) process.stderr.write('\n');
  await sql`analyze audit_log`.execute(db);
  console.log(
    `loaded ${total.toLocaleString('en')} entries in ${((performance.now() - began) / 1000).toFixed(1)} s`,
  );
}

async function timed(run: () => Promise<unknown>): Promise<{ median: number; max: number }> {
  await run(); // warm the cache and the plan
  const times: number[] = [];
  for (let i = 0; i < RUNS; i++) {
    const t = performance.now();
    await run();
    times.push(performance.now() - t);
  }
  times.sort((a, b) => a - b);
  return { median: times[Math.floor(RUNS / 2)]!, max: times.at(-1)! };
}

/** The same pages the verifier reads, without hashing anything. */
async function plainRead(db: Db): Promise<number> {
  let after = '0';
  let rows = 0;
  for (;;) {
    const page = await db
      .selectFrom('audit_log')
      .selectAll()
      .where('seq', '>', after as never)
      .orderBy('seq')
      .limit(5000)
      .execute();
    if (page.length === 0) return rows;
    rows += page.length;
    after = String(page.at(-1)!.seq);
  }
}

async function main() {
  let dropServerDatabase: (() => Promise<void>) | undefined;
  let url: string | undefined;
  const dataDir = await fs.mkdtemp(path.join(os.tmpdir(), 'acba-bench-audit-'));
  if (!args.pglite) {
    const scratch = await createScratchDatabase(
      process.env.ACBA_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
      'acba_bench',
    );
    url = scratch.url;
    dropServerDatabase = scratch.drop;
  }

  const handle = await openDatabase({ url, dataDir });
  try {
    console.log(`database: ${url ? 'PostgreSQL server' : 'PGlite (embedded)'}`);
    await load(handle.db);
    const middle = String(Math.floor(total / 2));
    const day = new Date(Date.now() - 180 * 86_400_000).toISOString().slice(0, 10);
    const month = new Date(Date.now() - 90 * 86_400_000).toISOString().slice(0, 7);
    const cases: Array<[string, Record<string, string>, string?]> = [
      ['newest page, no filter (peer)', {}],
      ['one customer', { customer: 'customer-7' }],
      ['actor by name', { actor: 'person 3 of customer 11' }],
      ['actor by object id', { actor: 'provider-2' }],
      ['kind family + refused', { kind: 'request', outcome: 'refused' }],
      ['one day', { from: day, to: day }],
      [
        'customer + kind + month',
        { customer: 'customer-3', kind: 'request.approve', from: `${month}-01`, to: `${month}-28` },
      ],
      ['failed, older half', { outcome: 'failed', before: middle }],
      ["a customer's own view, refused", { outcome: 'refused' }, 'customer-5'],
    ];

    console.log(
      `\nfiltered pages (${PAGE} entries; median and max of ${RUNS} runs; goal: under 200 ms)`,
    );
    let peer = 0;
    for (const [label, query, scope] of cases) {
      const filter = parseAuditFilter(query);
      let shown = 0;
      const t = await timed(async () => {
        const page = await listAudit(handle.db, {
          ...filter,
          scopeCustomerId: scope,
          tenantId: scope ? `tenant-${scope.replace('customer-', 'c')}` : undefined,
          pageSize: PAGE,
        });
        shown = page.entries.length;
      });
      if (!peer) peer = t.median;
      const verdict = t.max < 200 ? 'ok' : 'SLOW';
      console.log(
        `  ${label.padEnd(34)} ${t.median.toFixed(1).padStart(7)} ms median ${t.max.toFixed(1).padStart(7)} ms max  ${(t.median / peer).toFixed(1).padStart(5)}x peer  ${String(shown).padStart(2)} rows  ${verdict}`,
      );
    }

    console.log('\nfull chain verification (goal: under 60 s)');
    let t = performance.now();
    const rows = await plainRead(handle.db);
    const readSeconds = (performance.now() - t) / 1000;
    console.log(
      `  plain read of ${rows.toLocaleString('en')} rows (peer)   ${readSeconds.toFixed(1)} s`,
    );
    t = performance.now();
    const verdict = await verifyAuditChain(handle.db);
    const verifySeconds = (performance.now() - t) / 1000;
    console.log(
      `  verify: ${verdict.ok ? 'intact' : 'BROKEN'}, ${verdict.checked.toLocaleString('en')} entries   ${verifySeconds.toFixed(1)} s  ${(verifySeconds / readSeconds).toFixed(1)}x the plain read  ${verifySeconds < 60 ? 'ok' : 'SLOW'}`,
    );
    if (!verdict.ok) process.exitCode = 1;
  } finally {
    await handle.close();
    await dropServerDatabase?.();
    await fs.rm(dataDir, { recursive: true, force: true });
  }
}

await main();
