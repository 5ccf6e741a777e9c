/**
 * Two-approval requests and segregation of duties against a real database:
 * two distinct approvers, the race of two clicking at once, one rejection
 * ending it, the approver cooldown, the engine's own re-check when called
 * directly, approved work that expires, and the unmanaged service model.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApprovals, parseApprovalRules, type Actor } from '../approvals/index.ts';
import { approvalProblem } from '../core/approval-check.ts';
import type { Db } from '../core/db/database.ts';
import { AcbaError, type ErrorKind } from '../core/errors.ts';
import { silentLogger } from '../core/log.ts';
import { runFileRestore, type FileRestoreDeps } from '../engine/file-restore.ts';
import type { BackupJob, FileRestoreJob, JobQueue } from '../engine/queue.ts';
import { openTestDatabase, type TestDatabase } from './support/database.ts';

const PROVIDER = 'tenant-provider';
const CONTOSO = 'tenant-contoso';
const FABRIKAM = 'tenant-fabrikam';
const LONG_AGO = new Date('2026-01-01T00:00:00Z');

const actor = (objectId: string, tenantId: string, name: string): Actor => ({
  objectId,
  tenantId,
  name,
  channel: 'bot',
});
const megan = actor('megan', CONTOSO, 'Megan Bowen');
const fabian = actor('fabian', FABRIKAM, 'Fabian Ray');
const fiona = actor('fiona', FABRIKAM, 'Fiona Other');
const adele = actor('adele', PROVIDER, 'Adele Vance');
const alex = actor('alex', PROVIDER, 'Alex Wilber');
const diego = actor('diego', PROVIDER, 'Diego Siciliani');
const newbie = actor('newbie', PROVIDER, 'Nora Newly');
const olga = actor('olga', PROVIDER, 'Olga Operator');

const reason = 'The nginx config was overwritten by a bad deploy on Monday, incident INC-4711.';
const comment = 'Checked with the customer on the phone.';

class RecordingQueue implements JobQueue {
  readonly fileRestores: FileRestoreJob[] = [];
  async enqueueFileRestore(job: FileRestoreJob) {
    this.fileRestores.push(job);
  }
  async enqueueBackup(_job: BackupJob) {}
}

async function seed(db: Db) {
  await db
    .insertInto('customers')
    .values([
      { id: 'contoso', name: 'Contoso', tenant_id: CONTOSO, subscription_id: 'sub-contoso' },
      {
        id: 'fabrikam',
        name: 'Fabrikam',
        tenant_id: FABRIKAM,
        subscription_id: 'sub-fabrikam',
        service_model: 'unmanaged',
      },
    ])
    .execute();
  const principal = (tenant: string, id: string, role: string, grantedAt: Date | null) => ({
    tenant_id: tenant,
    object_id: id,
    display_name: id,
    role: role as 'approver',
    granted_at: grantedAt,
    granted_by: 'test',
  });
  await db
    .insertInto('principals')
    .values([
      principal(CONTOSO, 'megan', 'requester', LONG_AGO),
      principal(FABRIKAM, 'fabian', 'requester', LONG_AGO),
      principal(FABRIKAM, 'fiona', 'requester', LONG_AGO),
      principal(PROVIDER, 'adele', 'approver', LONG_AGO),
      principal(PROVIDER, 'alex', 'approver', LONG_AGO),
      principal(PROVIDER, 'diego', 'approver', null),
      principal(PROVIDER, 'newbie', 'approver', new Date()),
      principal(PROVIDER, 'olga', 'operator', LONG_AGO),
    ])
    .execute();
  const items = [
    ['item-web-01', 'contoso', 'web-01'],
    ['item-app-01', 'fabrikam', 'app-01'],
  ];
  await db
    .insertInto('protected_items')
    .values(
      items.map(([id, customer, name]) => ({
        id: id!,
        customer_id: customer!,
        kind: 'vm' as const,
        name: name!,
        resource_id: `/subscriptions/${customer}/vm/${name}`,
      })),
    )
    .execute();
  await db
    .insertInto('restore_points')
    .values(
      items.map(([id, customer, name]) => ({
        id: `rp-${name}`,
        customer_id: customer!,
        item_id: id!,
        created_at: '2026-12-01T02:00:00Z',
        expires_at: '2027-12-31T00:00:00Z',
        manifest_path: `manifests/rp-${name}`,
        disks: JSON.stringify([{ name: `${name}-os`, role: 'os', sizeBytes: 1, storedBytes: 1 }]),
        size_bytes: 1,
        stored_bytes: 1,
      })),
    )
    .execute();
}

let handle: TestDatabase;
let queue: RecordingQueue;
let approvals: ReturnType<typeof createApprovals>;

beforeAll(async () => {
  handle = await openTestDatabase();
  await seed(handle.db);
  queue = new RecordingQueue();
  approvals = createApprovals({
    db: handle.db,
    log: silentLogger,
    queue,
    providerTenantId: PROVIDER,
    rules: parseApprovalRules({
      rules: [
        {
          id: 'vm-over-original',
          kind: 'vm_restore',
          when: 'request.target.replaceOriginal == true',
          approvals: 2,
        },
      ],
    }),
  });
}, 240_000);

afterAll(async () => {
  await handle?.dispose();
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

async function refusalsOf(requestId: string, action: string) {
  return handle.db
    .selectFrom('audit_log')
    .selectAll()
    .where('resource', '=', `request/${requestId}`)
    .where('action', '=', action)
    .where('outcome', '=', 'refused')
    .execute();
}

const deleteRequest = (who: Actor = megan) =>
  approvals.createRequest(who, {
    kind: 'delete_restore_points',
    target: { restorePointIds: ['rp-web-01'] },
    reason,
    ticket: 'CHG-42',
  });

const engineDeps = (): FileRestoreDeps => ({
  db: handle.db,
  log: silentLogger,
  repository: () => Promise.reject(new Error('the engine must not reach the repository')),
  signer: { sign: () => 'x', verify: () => undefined } as unknown as FileRestoreDeps['signer'],
  notices: { restoreFinished: async () => {} },
  publicUrl: 'http://localhost',
  downloadLinkMinutes: 60,
  workDir: '/tmp',
  diskUrl: () => new URL('http://localhost/disk'),
  approvalCheck: { providerTenantId: PROVIDER },
});

describe('a request that needs two approvals', () => {
  it('stores the rule that decided it and the ticket in its own column', async () => {
    const request = await deleteRequest();
    expect(request.approvals_required).toBe(2);
    expect(request.approval_rule).toBe('default:delete_restore_points');
    expect(request.ticket).toBe('CHG-42');
    expect(request.reason).toBe(reason);
  });

  it('stays pending after the first approval and is approved by a second, different approver', async () => {
    const request = await deleteRequest();

    const first = await approvals.decide(adele, request.id, 'approve', comment);
    expect(first.request.status).toBe('pending');
    expect(first.request.approvals_given).toBe(1);

    const again = await refusal(
      approvals.decide(adele, request.id, 'approve', comment),
      'conflict',
    );
    expect(again.details.rule).toBe('one_decision_per_approver');
    expect(await refusalsOf(request.id, 'request.approve')).toHaveLength(1);

    const second = await approvals.decide(alex, request.id, 'approve', comment);
    expect(second.request.status).toBe('approved');
    expect(second.request.approvals_given).toBe(2);
    expect(second.request.start_by).not.toBeNull();
    // Deleting restore points is not run by the engine yet: nothing is queued.
    expect(queue.fileRestores.map((j) => j.requestId)).not.toContain(request.id);
  });

  it('ends with one rejection, even after an approval', async () => {
    const request = await deleteRequest();
    await approvals.decide(adele, request.id, 'approve', comment);
    const rejected = await approvals.decide(
      alex,
      request.id,
      'reject',
      'Not without a change ticket.',
    );
    expect(rejected.request.status).toBe('rejected');
    await refusal(approvals.decide(diego, request.id, 'approve', comment), 'conflict');
  });

  it('two approvers approving at once approve it exactly once, with both counted', async () => {
    const request = await deleteRequest();
    const outcomes = await Promise.allSettled([
      approvals.decide(adele, request.id, 'approve', comment),
      approvals.decide(alex, request.id, 'approve', comment),
      approvals.decide(diego, request.id, 'approve', comment),
    ]);
    expect(outcomes.filter((o) => o.status === 'fulfilled')).toHaveLength(2);
    const stored = await handle.db
      .selectFrom('requests')
      .selectAll()
      .where('id', '=', request.id)
      .executeTakeFirstOrThrow();
    expect(stored.status).toBe('approved');
    expect(stored.approvals_given).toBe(2);
  });

  it('takes two approvals to restore over the original VM by the configured rule, one otherwise', async () => {
    const over = await approvals.createRequest(megan, {
      kind: 'vm_restore',
      target: { vmName: 'web-01', replaceOriginal: true },
      reason,
    });
    const aside = await approvals.createRequest(megan, {
      kind: 'vm_restore',
      target: {
        vmName: 'web-01',
        subnetId:
          '/subscriptions/sub-contoso/resourceGroups/rg-web/providers/Microsoft.Network/virtualNetworks/vnet-web/subnets/default',
      },
      reason,
    });
    expect([over.approvals_required, over.approval_rule]).toEqual([2, 'vm-over-original']);
    expect([aside.approvals_required, aside.approval_rule]).toEqual([1, 'default:vm_restore']);
  });
});

describe('segregation of duties', () => {
  it('refuses an approver granted the role within the cooldown, and records it', async () => {
    const request = await deleteRequest();
    const error = await refusal(
      approvals.decide(newbie, request.id, 'approve', comment),
      'forbidden',
    );
    expect(error.details.rule).toBe('approver_cooldown');
    const [audited] = await refusalsOf(request.id, 'request.approve');
    expect(audited?.details).toMatchObject({ rule: 'approver_cooldown' });
  });

  it('lets only the provider operators ask for data access', async () => {
    const target = { customerId: 'contoso', purpose: 'Check a reported corruption in the backup.' };
    await refusal(
      approvals.createRequest(megan, { kind: 'data_access', target, reason }),
      'forbidden',
    );
    const request = await approvals.createRequest(olga, { kind: 'data_access', target, reason });
    expect(request.customer_id).toBe('contoso');
    await refusal(approvals.decide(olga, request.id, 'approve', comment), 'forbidden');
  });

  it('the engine, called directly, refuses a request short of distinct eligible approvals and records it', async () => {
    const request = await approvals.requestFileRestore(megan, {
      vmName: 'web-01',
      path: '/etc/hosts',
      reason,
    });
    // Forge what a bypass would leave: approved status, two approvals needed, one real and one by a
    // newly granted approver, written straight into the database.
    await handle.db
      .updateTable('requests')
      .set({ status: 'approved', approvals_required: 2 })
      .where('id', '=', request.id)
      .execute();
    for (const who of [adele, newbie]) {
      await handle.db
        .insertInto('decisions')
        .values({
          id: `d-${request.id}-${who.objectId}`,
          request_id: request.id,
          decision: 'approve',
          comment,
          approver_object_id: who.objectId,
          approver_tenant_id: who.tenantId,
          approver_name: who.name,
          request_hash: request.content_hash,
        })
        .execute();
    }

    const error = await refusal(runFileRestore(engineDeps(), request.id), 'forbidden');
    expect(error.message).toContain('needs 2 approval(s)');
    const refused = await refusalsOf(request.id, 'restore.refuse');
    expect(refused).toHaveLength(1);
    expect(refused[0]!.channel).toBe('engine');
  });

  it('the engine refuses approved work past its start-by time', async () => {
    const request = await approvals.requestFileRestore(megan, {
      vmName: 'web-01',
      path: '/etc/passwd',
      reason,
    });
    await approvals.decide(adele, request.id, 'approve', comment);
    const stored = await handle.db
      .updateTable('requests')
      .set({ start_by: new Date(Date.now() - 1000) })
      .where('id', '=', request.id)
      .returningAll()
      .executeTakeFirstOrThrow();
    expect(await approvalProblem(handle.db, { providerTenantId: PROVIDER }, stored)).toMatch(
      /approval has expired/,
    );
  });
});

describe('expiry', () => {
  it('expires approved work not started in time', async () => {
    const request = await approvals.requestFileRestore(megan, {
      vmName: 'web-01',
      path: '/etc/group',
      reason,
    });
    await approvals.decide(adele, request.id, 'approve', comment);
    await approvals.expireOverdue(new Date(Date.now() + 25 * 3600_000));
    const stored = await handle.db
      .selectFrom('requests')
      .select('status')
      .where('id', '=', request.id)
      .executeTakeFirstOrThrow();
    expect(stored.status).toBe('expired');
  });
});

describe('the unmanaged service model', () => {
  it('does not queue approved work; only its requester starts it', async () => {
    const request = await approvals.requestFileRestore(fabian, {
      vmName: 'app-01',
      path: '/etc/hosts',
      reason,
    });
    await refusal(approvals.start(fabian, request.id), 'conflict');

    const approved = await approvals.decide(adele, request.id, 'approve', comment);
    expect(approved.request.status).toBe('approved');
    expect(queue.fileRestores.map((j) => j.requestId)).not.toContain(request.id);

    await refusal(approvals.start(fiona, request.id), 'forbidden');
    expect(await refusalsOf(request.id, 'request.start')).toHaveLength(2);

    await approvals.start(fabian, request.id);
    expect(queue.fileRestores.map((j) => j.requestId)).toContain(request.id);
  });

  it('queues approved work at once for a managed customer', async () => {
    const request = await approvals.requestFileRestore(megan, {
      vmName: 'web-01',
      path: '/etc/fstab',
      reason,
    });
    await approvals.decide(alex, request.id, 'approve', comment);
    expect(queue.fileRestores.map((j) => j.requestId)).toContain(request.id);
  });
});
