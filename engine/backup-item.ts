/**
 * Where every backup request starts (a policy run, start-up, an operator):
 * the protected item's resource type picks the pipeline, a VM's
 * (./backup.ts) or an Azure SQL database's (./sql-backup.ts). A resource ACBA
 * does not back up, such as a database of an Azure Arc-enabled SQL Server, is
 * refused before anything runs; the refusal is a failed job session, so backup
 * status shows it, and is in the audit trail.
 */
import { appendAudit, serviceActor } from '../core/audit.ts';
import type { Db } from '../core/db/database.ts';
import type { ProtectedItemKind, RestorePoint } from '../core/db/schema.ts';
import { isAcbaError, notFound } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import type { BackupOptions } from './backup-run.ts';
import { JobSession } from './job-sessions.ts';
import { backupKindOf } from './resource-types.ts';

export type BackupPipeline = (
  itemId: string,
  trigger: string,
  options?: BackupOptions,
) => Promise<RestorePoint>;

export interface BackupItemDeps {
  db: Db;
  log: Logger;
  pipelines: Record<ProtectedItemKind, BackupPipeline>;
}

/** Backs up one protected item with the pipeline for its kind. */
export async function backupItem(
  deps: BackupItemDeps,
  itemId: string,
  trigger: string,
  options: BackupOptions = {},
): Promise<RestorePoint> {
  const item = await deps.db
    .selectFrom('protected_items')
    .selectAll()
    .where('id', '=', itemId)
    .executeTakeFirst();
  if (!item)
    throw notFound(
      `Protected item ${itemId} does not exist; sync the customer's inventory and try again.`,
    );

  let kind: ProtectedItemKind;
  try {
    kind = backupKindOf(item.resource_id);
  } catch (error) {
    if (!isAcbaError(error)) throw error;
    const resource = `item/${item.customer_id}/${item.name}`;
    const session = await JobSession.open(deps.db, deps.log, {
      customerId: item.customer_id,
      itemId,
      itemName: item.name,
      resource,
      trigger,
      policyName: options.policyName,
    });
    await session.fail(error);
    await appendAudit(deps.db, {
      actor: serviceActor,
      channel: 'engine',
      // A refused backup reads as a failed one wherever backup status is shown.
      action: 'backup.fail',
      resource,
      outcome: 'refused',
      details: {
        customerId: item.customer_id,
        itemId,
        trigger,
        sessionId: session.id,
        reason: error.message,
      },
    });
    deps.log.warn({ itemId, resourceId: item.resource_id, trigger }, 'backup_refused');
    throw error;
  }
  return deps.pipelines[kind](itemId, trigger, options);
}
