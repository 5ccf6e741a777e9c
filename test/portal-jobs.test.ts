/**
 * The Jobs and Usage pages and /api/v1/jobs and /api/v1/usage, signed in
 * through the sandbox's identity stand-in: a customer's staff see their own
 * jobs and usage only, whatever they ask for; provider staff see every
 * customer's, with the licence each usage is measured against.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { setLicence, TB } from '../engine/licences.ts';
import { recordUsage } from '../engine/usage.ts';
import { startOidcSandbox, type OidcSandbox } from './support/oidc-sandbox.ts';
import { PortalClient } from './support/portal-client.ts';

let sandbox: OidcSandbox;
const today = new Date();

beforeAll(async () => {
  sandbox = await startOidcSandbox();
  const db = sandbox.database.db;
  const started = new Date(Date.now() - 60_000);
  await db
    .insertInto('job_sessions')
    .values([
      {
        id: 'job-co',
        customer_id: 'contoso',
        item_id: 'item-web-01',
        item_name: 'web-01',
        trigger: 'schedule',
        policy_name: 'daily-web',
        status: 'running',
        started_at: started,
        bytes_read: 4 * 2 ** 30,
      },
      {
        id: 'job-nw',
        customer_id: 'northwind',
        item_id: 'item-nw',
        item_name: 'nw-sql-01',
        trigger: 'operator',
        status: 'failed',
        started_at: started,
        finished_at: new Date(),
        error_kind: 'unavailable',
        error: 'Azure did not answer creating snapshot of nw-sql-01-os',
      },
    ])
    .execute();
  await db
    .insertInto('job_tasks')
    .values([
      {
        id: 'task-co-os',
        session_id: 'job-co',
        customer_id: 'contoso',
        subject_kind: 'disk',
        subject_name: 'web-01-os',
        status: 'succeeded',
        created_at: started,
        attempts: 2,
        bytes_done: 4 * 2 ** 30,
        bytes_stored: 2 ** 30,
        started_at: started,
        finished_at: new Date(started.getTime() + 40_000),
      },
      {
        id: 'task-co-data',
        session_id: 'job-co',
        customer_id: 'contoso',
        subject_kind: 'disk',
        subject_name: 'web-01-data',
        status: 'running',
        created_at: new Date(started.getTime() + 40_000),
        attempts: 1,
        bytes_done: 2 ** 30,
        started_at: new Date(started.getTime() + 40_000),
        progress_at: new Date(started.getTime() + 50_000),
      },
    ])
    .execute();
  await setLicence(db, 'contoso', { instances: 5, storageTb: 2, tasks: 2 });
  await recordUsage(db, 'contoso', { protectedInstances: 1, storedBytes: 1.9 * TB, peakTasks: 2 });
  await recordUsage(db, 'northwind', { protectedInstances: 1, egressBytes: 777 });
}, 180_000);

afterAll(async () => {
  await sandbox?.close();
});

async function api(path: string, name: string) {
  const token = await sandbox.accessToken(name);
  const res = await fetch(`${sandbox.portalUrl}/api/v1${path}`, {
    headers: { authorization: `Bearer ${token}` },
  });
  return { status: res.status, body: await res.json() };
}

async function page(path: string, name: string): Promise<string> {
  const client = new PortalClient(sandbox.portalUrl);
  await client.signInWithOidc(sandbox.user(name).objectId);
  const res = await client.get(path);
  expect(res.status).toBe(200);
  return res.text();
}

describe("a customer's staff", () => {
  it('get only their own jobs through the API, with task progress and throughput, even when asking for another customer', async () => {
    const { status, body } = await api('/jobs?customer=northwind', 'Alex Wilber');

    expect(status).toBe(200);
    expect(body.jobs.map((j: { id: string }) => j.id)).toEqual(['job-co']);
    const [job] = body.jobs;
    expect(job).toMatchObject({ itemName: 'web-01', status: 'running', policyName: 'daily-web' });
    expect(job.tasks).toMatchObject([
      { name: 'web-01-os', status: 'succeeded', attempts: 2, bytesDone: 4 * 2 ** 30 },
      { name: 'web-01-data', status: 'running', attempts: 1, bytesDone: 2 ** 30 },
    ]);
    // 4 GiB in 40 s, and 1 GiB in the 10 s up to the last progress write.
    expect(job.tasks.map((t: { throughput: number }) => t.throughput)).toEqual([
      Math.round((4 * 2 ** 30) / 40),
      Math.round(2 ** 30 / 10),
    ]);
  });

  it('get only their own usage, against their licence', async () => {
    const { body } = await api('/usage?customer=northwind', 'Alex Wilber');

    expect(body.customers).toHaveLength(1);
    expect(body.customers[0]).toMatchObject({
      customerId: 'contoso',
      licence: { licensed: true, instances: 5, storageTb: 2, tasks: 2 },
      peakTasksToday: 2,
      days: [{ day: today.toISOString().slice(0, 10), peakTasks: 2, storedBytes: 1.9 * TB }],
    });
    const { storedBytes, storageRatio } = body.customers[0];
    expect(storageRatio).toBe(storedBytes / (2 * TB));
  });

  it('see the Jobs and Usage pages with their own rows only, in labelled tables', async () => {
    const jobs = await page('/portal/jobs', 'Alex Wilber');
    expect(jobs).toContain('web-01-data');
    expect(jobs).toContain('<th scope="col" class="num">Throughput</th>');
    expect(jobs).toContain('<label>Outcome');
    expect(jobs).not.toContain('nw-sql-01');

    const usage = await page('/portal/usage', 'Alex Wilber');
    expect(usage).toContain('<th scope="row">Protected instances</th>');
    expect(usage).toContain('2 TB');
    expect(usage).not.toContain('Northwind');
  });
});

describe('the monthly usage report', () => {
  const month = today.toISOString().slice(0, 7);

  it("gives a customer's staff only their own month, as JSON and as CSV, whatever they ask for", async () => {
    const { status, body } = await api(
      `/usage/monthly?month=${month}&customer=northwind`,
      'Alex Wilber',
    );
    expect(status).toBe(200);
    expect(body).toEqual({
      month,
      customers: [
        expect.objectContaining({
          customerId: 'contoso',
          protectedInstances: 1,
          licensedInstances: 5,
          usedBytes: 1.9 * TB,
          allocatedBytes: 2 * TB,
          peakTasks: 2,
          licensedTasks: 2,
          egressBytes: 0,
          daysRecorded: 1,
        }),
      ],
    });

    const token = await sandbox.accessToken('Alex Wilber');
    const csv = await fetch(`${sandbox.portalUrl}/api/v1/usage/monthly?month=${month}&format=csv`, {
      headers: { authorization: `Bearer ${token}` },
    });
    expect(csv.headers.get('content-type')).toMatch(/^text\/csv/);
    const lines = (await csv.text()).trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[1]).toBe(`${month},contoso,Contoso,1,5,${1.9 * TB},${2 * TB},2,2,0,1`);
  });

  it('shows provider staff every customer on its page, with a CSV download, and refuses a bad month', async () => {
    const html = await page(`/portal/usage/monthly?month=${month}`, 'Isaiah Langer');
    expect(html).toContain(`<h1>Usage in ${month}</h1>`);
    expect(html).toContain('<th scope="row">Northwind</th>');
    expect(html).toContain('<label for="month">Month</label>');
    expect(html).toContain(`format=csv`);

    const bad = await api('/usage/monthly?month=2026-1', 'Isaiah Langer');
    expect(bad.status).toBe(400);
    expect(bad.body.message).toBe('"2026-1" is not a month; give it as YYYY-MM, e.g. 2026-11.');
  });
});

describe('provider staff', () => {
  it('see every customer’s jobs and usage, and can narrow to one customer', async () => {
    const all = await api('/jobs', 'Isaiah Langer');
    expect(all.body.jobs.map((j: { id: string }) => j.id).sort()).toEqual(['job-co', 'job-nw']);
    const failed = await api('/jobs?status=failed', 'Isaiah Langer');
    expect(failed.body.jobs).toMatchObject([{ id: 'job-nw', errorKind: 'unavailable', tasks: [] }]);

    const usage = await api('/usage?customer=northwind', 'Isaiah Langer');
    expect(usage.body.customers).toMatchObject([
      {
        customerId: 'northwind',
        licence: { licensed: false, instances: null, storageTb: null, tasks: null },
        days: [{ egressBytes: 777 }],
      },
    ]);

    const jobsPage = await page('/portal/jobs?status=failed', 'Isaiah Langer');
    expect(jobsPage).toContain('Azure did not answer creating snapshot of nw-sql-01-os');
    expect(jobsPage).not.toContain('web-01-data');
  });

  it('get a 400 naming the outcomes for an unknown one', async () => {
    const { status, body } = await api('/jobs?status=exploded', 'Isaiah Langer');
    expect(status).toBe(400);
    expect(body).toEqual({
      error: 'bad_input',
      message:
        'There is no job outcome "exploded". Use one of: running, succeeded, warning, failed.',
    });
  });
});

describe('the OpenAPI description', () => {
  it('describes /jobs and /usage', async () => {
    const res = await fetch(`${sandbox.portalUrl}/api/v1/openapi.json`);
    const doc = await res.json();
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(['/jobs', '/usage', '/usage/monthly']),
    );
    expect(doc.components.schemas.Job.properties.tasks.items).toEqual({
      $ref: '#/components/schemas/Task',
    });
  });
});
