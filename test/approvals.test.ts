/**
 * The written-approval workflow against a real embedded PostgreSQL: requests,
 * decisions, segregation of duties, races and the audit trail.
 */
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApprovals, type Actor } from '../approvals/index.ts';
import { verifyAuditChain } from '../core/audit.ts';
import type { Db } from '../core/db/database.ts';
import { openTestDatabase, type TestDatabase } from './support/database.ts';
import { AcbaError, type ErrorKind } from '../core/errors.ts';
import { silentLogger } from '../core/log.ts';
import type { BackupJob, FileRestoreJob, JobQueue } from '../engine/queue.ts';

const PROVIDER = 'tenant-provider';
const CONTOSO = 'tenant-contoso';
const FABRIKAM = 'tenant-fabrikam';

const megan: Actor = { objectId: 'megan', tenantId: CONTOSO, name: 'Megan Bowen', channel: 'bot' };
const nestor: Actor = {
  objectId: 'nestor',
  tenantId: CONTOSO,
  name: 'Nestor Wilke',
  channel: 'bot',
};
const lynne: Actor = {
  objectId: 'lynne',
  tenantId: CONTOSO,
  name: 'Lynne Robbins',
  channel: 'bot',
};
const fabian: Actor = {
  objectId: 'fabian',
  tenantId: FABRIKAM,
  name: 'Fabian Ray',
  channel: 'bot',
};
const adele: Actor = { objectId: 'adele', tenantId: PROVIDER, name: 'Adele Vance', channel: 'bot' };
const alex: Actor = {
  objectId: 'alex',
  tenantId: PROVIDER,
  name: 'Alex Wilber',
  channel: 'portal',
};
const olga: Actor = {
  objectId: 'olga',
  tenantId: PROVIDER,
  name: 'Olga Operator',
  channel: 'portal',
};
const stranger: Actor = {
  objectId: 'sam',
  tenantId: 'tenant-unknown',
  name: 'Sam Stranger',
  channel: 'bot',
};

const goodReason = 'The nginx config was overwritten by a bad deploy on Monday, incident INC-4711.';

class RecordingQueue implements JobQueue {
  readonly fileRestores: FileRestoreJob[] = [];
  readonly backups: BackupJob[] = [];
  async enqueueFileRestore(job: FileRestoreJob) {
    this.fileRestores.push(job);
  }
  async enqueueBackup(job: BackupJob) {
    this.backups.push(job);
  }
}

async function seed(db: Db) {
  await db
    .insertInto('customers')
    .values([
      { id: 'contoso', name: 'Contoso', tenant_id: CONTOSO, subscription_id: 'sub-contoso' },
      { id: 'fabrikam', name: 'Fabrikam', tenant_id: FABRIKAM, subscription_id: 'sub-fabrikam' },
    ])
    .execute();
  await db
    .insertInto('principals')
    .values([
      { tenant_id: CONTOSO, object_id: 'megan', display_name: 'Megan Bowen', role: 'requester' },
      { tenant_id: CONTOSO, object_id: 'lynne', display_name: 'Lynne Robbins', role: 'requester' },
      { tenant_id: CONTOSO, object_id: 'lynne', display_name: 'Lynne Robbins', role: 'approver' },
      { tenant_id: FABRIKAM, object_id: 'fabian', display_name: 'Fabian Ray', role: 'requester' },
      { tenant_id: PROVIDER, object_id: 'adele', display_name: 'Adele Vance', role: 'approver' },
      { tenant_id: PROVIDER, object_id: 'alex', display_name: 'Alex Wilber', role: 'approver' },
      { tenant_id: PROVIDER, object_id: 'olga', display_name: 'Olga Operator', role: 'operator' },
    ])
    .execute();
  await db
    .insertInto('protected_items')
    .values([
      {
        id: 'item-web-01',
        customer_id: 'contoso',
        kind: 'vm',
        name: 'web-01',
        resource_id: '/subscriptions/sub-contoso/vm/web-01',
      },
      {
        id: 'item-db-01',
        customer_id: 'contoso',
        kind: 'vm',
        name: 'db-01',
        resource_id: '/subscriptions/sub-contoso/vm/db-01',
      },
      {
        id: 'item-app-01',
        customer_id: 'fabrikam',
        kind: 'vm',
        name: 'app-01',
        resource_id: '/subscriptions/sub-fabrikam/vm/app-01',
      },
    ])
    .execute();
  const disks = JSON.stringify([
    { name: 'web-01-os', role: 'os', sizeBytes: 32 << 30, storedBytes: 1 << 30 },
  ]);
  await db
    .insertInto('restore_points')
    .values(
      ['2026-11-30T02:00:00Z', '2026-12-01T02:00:00Z', '2026-12-02T02:00:00Z'].map((at, i) => ({
        id: `rp-web-01-${i}`,
        customer_id: 'contoso',
        item_id: 'item-web-01',
        created_at: at,
        expires_at: '2027-12-31T00:00:00Z',
        manifest_path: `manifests/rp-web-01-${i}`,
        disks,
        size_bytes: 32 << 30,
        stored_bytes: 1 << 30,
      })),
    )
    .execute();
}

let handle: TestDatabase;
let dir: string;
let queue: RecordingQueue;
let approvals: ReturnType<typeof createApprovals>;

beforeAll(async () => {
  dir = await fs.mkdtemp(path.join(os.tmpdir(), 'acba-approvals-'));
  handle = await openTestDatabase();
  await seed(handle.db);
  queue = new RecordingQueue();
  approvals = createApprovals({
    db: handle.db,
    log: silentLogger,
    queue,
    providerTenantId: PROVIDER,
  });
}, 240_000);

afterAll(async () => {
  await handle?.dispose();
  await fs.rm(dir, { recursive: true, force: true });
});

async function refusal(promise: Promise<unknown>, kind: ErrorKind): Promise<AcbaError> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error, `expected a ${kind} error`).toBeInstanceOf(AcbaError);
  expect((error as AcbaError).kind).toBe(kind);
  return error as AcbaError;
}

const newRequest = (overrides: Partial<Parameters<typeof approvals.requestFileRestore>[1]> = {}) =>
  approvals.requestFileRestore(megan, {
    vmName: 'web-01',
    path: '/etc/nginx/nginx.conf',
    reason: goodReason,
    ...overrides,
  });

describe('a requester asks for a file restore', () => {
  it('stores a pending request bound to its content, on the restore point at or before the time', async () => {
    const request = await newRequest({
      vmName: 'WEB-01',
      at: new Date('2026-12-01T14:00:00Z'),
      ticket: 'INC-4711',
    });

    expect(request.status).toBe('pending');
    expect(request.customer_id).toBe('contoso');
    expect(request.target).toEqual({
      itemId: 'item-web-01',
      vmName: 'web-01',
      path: '/etc/nginx/nginx.conf',
      restorePointId: 'rp-web-01-1',
      restorePointTime: '2026-12-01T02:00:00.000Z',
    });
    expect(request.ticket).toBe('INC-4711');
    expect(request.approval_rule).toBe('default:file_restore');
    expect(request.content_hash).toMatch(/^[0-9a-f]{64}$/);
    expect(request.approvals_required).toBe(1);
    expect(request.expires_at.getTime() - Date.now()).toBeGreaterThan(23 * 3600_000);
  });

  it('previews the newest restore point when no time is given', async () => {
    const preview = await approvals.previewFileRestore(megan, {
      vmName: 'web-01',
      path: '/etc/hosts',
    });
    expect(preview.customer.name).toBe('Contoso');
    expect(preview.restorePoint.id).toBe('rp-web-01-2');
  });

  it("names the VM and lists the customer's VMs when the VM is unknown", async () => {
    const error = await refusal(newRequest({ vmName: 'web-99' }), 'not_found');
    expect(error.message).toContain('web-99');
    expect(error.message).toContain('db-01, web-01');
    expect(error.message).not.toContain('app-01');
  });

  it('names the VM, the time and the oldest restore point when none is that old', async () => {
    const error = await refusal(newRequest({ at: new Date('2026-11-01T00:00:00Z') }), 'not_found');
    expect(error.message).toContain('web-01');
    expect(error.message).toContain('2026-11-01 00:00 UTC');
    expect(error.message).toContain('2026-11-30 02:00 UTC');
  });

  it('says when a VM has no restore points at all', async () => {
    const error = await refusal(newRequest({ vmName: 'db-01' }), 'not_found');
    expect(error.message).toContain('db-01 has no restore points yet');
  });

  it.each([
    ['etc/nginx/nginx.conf', 'not absolute'],
    ['/etc/../etc/shadow', '".."'],
    [`/${'a'.repeat(1030)}`, 'at most 1024'],
    ['', 'empty'],
  ])('refuses the path %j', async (bad, words) => {
    const error = await refusal(newRequest({ path: bad }), 'bad_input');
    expect(error.message).toContain(words);
  });

  it('accepts a Windows path', async () => {
    const request = await newRequest({ path: 'C:\\inetpub\\wwwroot\\web.config' });
    expect(request.status).toBe('pending');
  });

  it.each([
    ['', 'A reason is required'],
    ['need file', 'The reason is 9 characters long'],
    ['   short    text   ', 'The reason is 10 characters long'],
    ['aaaaaaaaaaaaaaaaaaaaaaaaa', 'does not read as an explanation'],
    ['1234567890 1234567890 12345', 'does not read as an explanation'],
  ])('refuses the reason %j and says what is needed', async (bad, words) => {
    const error = await refusal(newRequest({ reason: bad }), 'bad_input');
    expect(error.message).toContain(words);
    expect(error.message).toContain('at least 20 characters');
  });

  it('refuses someone without the requester role', async () => {
    const error = await refusal(
      approvals.requestFileRestore(nestor, {
        vmName: 'web-01',
        path: '/etc/hosts',
        reason: goodReason,
      }),
      'forbidden',
    );
    expect(error.message).toContain('requester role');
  });

  it('refuses a tenant that is not a customer', async () => {
    const error = await refusal(
      approvals.requestFileRestore(stranger, {
        vmName: 'web-01',
        path: '/etc/hosts',
        reason: goodReason,
      }),
      'forbidden',
    );
    expect(error.message).toContain(
      'Your organization (tenant tenant-unknown) is not a customer of this service',
    );
  });

  it("does not find another customer's VM", async () => {
    await refusal(
      approvals.requestFileRestore(fabian, {
        vmName: 'web-01',
        path: '/etc/hosts',
        reason: goodReason,
      }),
      'not_found',
    );
  });
});

describe('an approver decides', () => {
  it('approves with a comment, and the engine gets the job', async () => {
    const request = await newRequest();
    const { request: approved, decision } = await approvals.decide(
      adele,
      request.id,
      'approve',
      'Checked with the customer on the phone.',
    );

    expect(approved.status).toBe('approved');
    expect(approved.decided_at).toBeInstanceOf(Date);
    expect(decision.approver_name).toBe('Adele Vance');
    expect(decision.request_hash).toBe(request.content_hash);
    expect(queue.fileRestores).toContainEqual({ requestId: request.id });
  });

  it('rejects, and nothing is queued', async () => {
    const request = await newRequest();
    const { request: rejected } = await approvals.decide(
      alex,
      request.id,
      'reject',
      'Not without a change ticket.',
    );
    expect(rejected.status).toBe('rejected');
    expect(queue.fileRestores).not.toContainEqual({ requestId: request.id });
  });

  it('refuses a decision without a written comment', async () => {
    const request = await newRequest();
    const error = await refusal(
      approvals.decide(adele, request.id, 'approve', ' ok '),
      'bad_input',
    );
    expect(error.message).toContain('at least 5 characters');
    expect((await approvals.getRequest(adele, request.id)).status).toBe('pending');
  });

  it('never lets the requester decide their own request', async () => {
    const request = await newRequest();
    const error = await refusal(
      approvals.decide(megan, request.id, 'approve', 'Approving my own request.'),
      'forbidden',
    );
    expect(error.message).toContain('yourself');
  });

  it('never lets a customer user decide, even one with an approver role in their own tenant', async () => {
    const request = await newRequest();
    const error = await refusal(
      approvals.decide(lynne, request.id, 'approve', 'Looks fine to me, go.'),
      'forbidden',
    );
    expect(error.message).toContain("Only the provider's approvers");
  });

  it('refuses provider staff without the approver role', async () => {
    const request = await newRequest();
    const error = await refusal(
      approvals.decide(olga, request.id, 'approve', 'Operator says yes.'),
      'forbidden',
    );
    expect(error.message).toContain('approver role');
  });

  it('refuses a second decision and says who decided when', async () => {
    const request = await newRequest();
    await approvals.decide(adele, request.id, 'approve', 'Checked with the customer.');

    const error = await refusal(
      approvals.decide(alex, request.id, 'reject', 'I disagree with this.'),
      'conflict',
    );
    expect(error.message).toMatch(
      new RegExp(
        `Request ${request.id} was already approved by Adele Vance at \\d{4}-\\d\\d-\\d\\d \\d\\d:\\d\\d UTC`,
      ),
    );

    const again = await refusal(
      approvals.decide(adele, request.id, 'approve', 'Clicked twice here.'),
      'conflict',
    );
    expect(again.details.sameApprover).toBe(true);
    expect(queue.fileRestores.filter((j) => j.requestId === request.id)).toHaveLength(1);
  });

  it('two approvers clicking at once produce one decision outcome', async () => {
    const request = await newRequest();
    const results = await Promise.allSettled([
      approvals.decide(adele, request.id, 'approve', 'Approve: checked the incident.'),
      approvals.decide(alex, request.id, 'reject', 'Reject: no change ticket here.'),
    ]);

    const won = results.filter((r) => r.status === 'fulfilled');
    const lost = results.filter((r) => r.status === 'rejected');
    expect(won).toHaveLength(1);
    expect(lost).toHaveLength(1);
    expect(((lost[0] as PromiseRejectedResult).reason as AcbaError).kind).toBe('conflict');

    const decisions = await handle.db
      .selectFrom('decisions')
      .selectAll()
      .where('request_id', '=', request.id)
      .execute();
    expect(decisions).toHaveLength(1);
    const final = await approvals.getRequest(adele, request.id);
    expect(final.status).toBe(decisions[0]!.decision === 'approve' ? 'approved' : 'rejected');
    expect(queue.fileRestores.filter((j) => j.requestId === request.id)).toHaveLength(
      decisions[0]!.decision === 'approve' ? 1 : 0,
    );
  });

  it('refuses an expired request and marks it expired', async () => {
    const request = await newRequest();
    await handle.db
      .updateTable('requests')
      .set({ expires_at: new Date(Date.now() - 1000) })
      .where('id', '=', request.id)
      .execute();

    const error = await refusal(
      approvals.decide(adele, request.id, 'approve', 'Approving late today.'),
      'conflict',
    );
    expect(error.message).toContain('expired');
    expect((await approvals.getRequest(adele, request.id)).status).toBe('expired');
  });

  it('refuses a request whose content changed after it was written', async () => {
    const request = await newRequest();
    await handle.db
      .updateTable('requests')
      .set({ reason: `${goodReason} And also /etc/shadow please.` })
      .where('id', '=', request.id)
      .execute();
    const error = await refusal(
      approvals.decide(adele, request.id, 'approve', 'Approving as written.'),
      'conflict',
    );
    expect(error.message).toContain('changed after it was written');
  });
});

describe('who sees what', () => {
  it('answers not_found, never forbidden, to another customer asking for a request id', async () => {
    const request = await newRequest();
    await refusal(approvals.getRequest(fabian, request.id), 'not_found');
    await refusal(approvals.getRequest(stranger, request.id), 'not_found');
    await refusal(
      approvals.decide(fabian, request.id, 'approve', 'Trying my luck here.'),
      'not_found',
    );
    await refusal(approvals.cancel(fabian, request.id), 'not_found');
    expect((await approvals.getRequest(nestor, request.id)).id).toBe(request.id);
  });

  it("lists a customer's requests to its users and all requests to the provider", async () => {
    const mine = await approvals
      .requestFileRestore(fabian, { vmName: 'app-01', path: '/srv/app.yaml', reason: goodReason })
      .catch((e) => e);
    expect(mine).toBeInstanceOf(AcbaError); // app-01 has no restore points

    const contoso = await approvals.listRequests(megan);
    expect(contoso.length).toBeGreaterThan(0);
    expect(contoso.every((r) => r.customer_id === 'contoso')).toBe(true);
    expect(await approvals.listRequests(fabian)).toEqual([]);
    expect(
      (await approvals.listRequests(adele, { status: 'pending' })).every(
        (r) => r.status === 'pending',
      ),
    ).toBe(true);
  });
});

describe('a requester cancels', () => {
  it('cancels their pending request once', async () => {
    const request = await newRequest();
    await refusal(approvals.cancel(nestor, request.id), 'forbidden');
    expect((await approvals.cancel(megan, request.id)).status).toBe('cancelled');
    await refusal(approvals.cancel(megan, request.id), 'conflict');
    await refusal(approvals.decide(adele, request.id, 'approve', 'Too late for this.'), 'conflict');
  });
});

describe('the audit trail', () => {
  it('verifies and holds the successes and the refusals with their customer', async () => {
    const result = await verifyAuditChain(handle.db);
    expect(result.ok).toBe(true);

    const entries = await handle.db.selectFrom('audit_log').selectAll().orderBy('seq').execute();
    expect(result.checked).toBe(entries.length);
    const actions = new Set(entries.map((e) => `${e.action}:${e.outcome}`));
    for (const expected of [
      'request.create:success',
      'request.create:refused',
      'request.approve:success',
      'request.approve:refused',
      'request.reject:success',
      'request.reject:refused',
      'request.cancel:success',
      'request.cancel:refused',
    ]) {
      expect(actions).toContain(expected);
    }

    const selfApproval = entries.find(
      (e) =>
        e.outcome === 'refused' && e.actor_object_id === 'megan' && e.action === 'request.approve',
    );
    expect(selfApproval?.details).toMatchObject({
      customerId: 'contoso',
      rule: 'no_self_approval',
    });
    expect(String(selfApproval?.details.reason)).toContain('yourself');

    expect(selfApproval?.actor_role).toBe('customer_user');
    const probe = entries.find(
      (e) => e.action === 'request.read' && e.actor_object_id === 'fabian',
    );
    expect(probe?.details).toMatchObject({ customerId: 'contoso', kind: 'not_found' });

    const customerApproval = entries.find(
      (e) => e.outcome === 'refused' && e.actor_object_id === 'lynne',
    );
    expect(customerApproval?.details).toMatchObject({
      customerId: 'contoso',
      rule: 'provider_tenant_only',
    });
  });
});
