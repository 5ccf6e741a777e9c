/**
 * The frame of every backup run, whatever the item's kind. The pipelines
 * (./backup.ts for a VM, ./sql-backup.ts for an Azure SQL database) only make
 * the restore point; around them each run gets the same steps:
 *
 *   1. a job session (./job-sessions.ts) and a `backup.start` audit entry;
 *   2. the licence's admission (./licences.ts): refused beyond the licensed
 *      instances or at a full storage allocation, a warning from 90%;
 *   3. the repository's backup lease while the pipeline runs, so that a prune
 *      cannot delete blocks the run deduplicates against;
 *   4. then the session succeeded, usage recorded and `backup.finish`; or the
 *      session failed, `backup.fail` and a notice to the provider's operators.
 *
 * Customers' staff read their sessions and audit entries, and notices end up
 * in chat: error text reaches all three only through failureOf.
 */
import { randomUUID } from 'node:crypto';
import { appendAudit, serviceActor } from '../core/audit.ts';
import type { Db } from '../core/db/database.ts';
import type {
  Customer,
  ProtectedItem,
  ProtectedItemKind,
  RestorePoint,
} from '../core/db/schema.ts';
import { notFound } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { JobSession, type JobSessionOptions } from './job-sessions.ts';
import { admitBackup } from './licences.ts';
import { failureOf, type EngineNotices } from './notices.ts';
import { backupLease } from './repository/leases.ts';
import { itemAuditResource, itemKindLabel } from './resource-types.ts';
import { recordHoldings } from './usage.ts';

/** What a policy run says about the restore point to make. */
export interface BackupOptions {
  /** When the restore point expires; a year after it is taken when absent. */
  expiresAt?: Date;
  policyName?: string;
  /** What a VM's run keeps: a backup in the repository (the default), only the disks' snapshots, or both. */
  protection?: 'backups' | 'snapshots' | 'both';
  /** Schedule kinds (daily, weekly, ...) whose slots asked for the run; snapshot retention counts per kind. */
  schedules?: string[];
}

export interface BackupRunDeps {
  db: Db;
  log: Logger;
  /** Told once per failed run; its own failures are logged and never change the run's outcome. */
  notices?: Pick<EngineNotices, 'backupFailed'>;
  /** Task retries and progress pacing of the run's job session. */
  sessions?: JobSessionOptions;
}

/** What a pipeline is handed to make its restore point. */
export interface BackupRun {
  customer: Customer;
  item: ProtectedItem;
  restorePointId: string;
  /** The run's session: each disk or database is a task of it. */
  session: JobSession;
  /** Names the item, the restore point and the trigger. */
  log: Logger;
}

/** The log field that names each kind of item, as operators search the log for it. */
const LOG_FIELD: Record<ProtectedItemKind, string> = { vm: 'vm', sql_database: 'database' };

/**
 * Runs `makeRestorePoint` for the protected item `itemId` of kind `kind`
 * inside a job session, after the licence admits it; returns the restore
 * point, or records the failure everywhere and throws it again.
 */
export async function runBackupSession(
  deps: BackupRunDeps,
  kind: ProtectedItemKind,
  itemId: string,
  trigger: string,
  options: BackupOptions,
  makeRestorePoint: (run: BackupRun) => Promise<RestorePoint>,
): Promise<RestorePoint> {
  const { customer, item } = await loadItem(deps.db, kind, itemId);

  const restorePointId = randomUUID();
  const log = deps.log.child({ itemId, restorePointId, [LOG_FIELD[kind]]: item.name, trigger });
  const resource = itemAuditResource(kind, customer.id, item.name);
  const started = Date.now();
  const session = await JobSession.open(
    deps.db,
    log,
    {
      customerId: customer.id,
      itemId,
      itemName: item.name,
      resource,
      trigger,
      policyName: options.policyName,
    },
    deps.sessions,
  );
  const details = { customerId: customer.id, itemId, restorePointId, trigger };
  await appendAudit(deps.db, {
    actor: serviceActor,
    channel: 'engine',
    action: 'backup.start',
    resource,
    outcome: 'success',
    details: { ...details, itemName: item.name, sessionId: session.id },
  });
  log.info('backup_started');

  try {
    await admitBackup(deps.db, log, session, customer, item);
    const lease = await backupLease(deps.db);
    const restorePoint = await makeRestorePoint({
      customer,
      item,
      restorePointId,
      session,
      log,
    }).finally(() => lease.release());

    // The restore point exists: failing to record the session or usage must not fail the backup.
    await session
      .succeed(restorePoint.id)
      .then(() => recordHoldings(deps.db, customer.id))
      .catch((err) => log.warn({ err }, 'job_session_not_recorded'));
    const seconds = (Date.now() - started) / 1000;
    const sizes = {
      sizeBytes: Number(restorePoint.size_bytes),
      storedBytes: Number(restorePoint.stored_bytes),
    };
    await appendAudit(deps.db, {
      actor: serviceActor,
      channel: 'engine',
      action: 'backup.finish',
      resource,
      outcome: 'success',
      details: { ...details, ...sizes, seconds },
    });
    log.info({ seconds, ...sizes }, 'backup_finished');
    return restorePoint;
  } catch (error) {
    const failure = failureOf(error);
    await session.fail(error).catch((err) => log.warn({ err }, 'job_session_not_recorded'));
    await appendAudit(deps.db, {
      actor: serviceActor,
      channel: 'engine',
      action: 'backup.fail',
      resource,
      outcome: 'failed',
      details: { ...details, kind: failure.kind, message: failure.message },
    });
    log.error({ err: error }, 'backup_failed');
    await deps.notices
      ?.backupFailed?.({
        customerId: customer.id,
        customerName: customer.name,
        itemId,
        itemName: item.name,
        itemKind: kind,
        trigger,
        policyName: options.policyName,
        restorePointId,
        ...failure,
        failedAt: new Date(),
      })
      .catch((err) => log.warn({ err }, 'backup_failure_notice_failed'));
    throw error;
  }
}

/** The protected item of that kind and its customer; not_found when there is no such item. */
export async function loadItem(
  db: Db,
  kind: ProtectedItemKind,
  itemId: string,
): Promise<{ customer: Customer; item: ProtectedItem }> {
  const item = await db
    .selectFrom('protected_items')
    .selectAll()
    .where('id', '=', itemId)
    .executeTakeFirst();
  if (!item || item.kind !== kind)
    throw notFound(
      `Protected ${itemKindLabel(kind)} ${itemId} does not exist; sync the customer's inventory and try again.`,
    );

  const customer = await db
    .selectFrom('customers')
    .selectAll()
    .where('id', '=', item.customer_id)
    .executeTakeFirstOrThrow();
  return { customer, item };
}
