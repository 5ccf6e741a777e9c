/**
 * The engine's notices, delivered in Teams: when a restore ends the requester
 * gets a message in their chat with the bot, and the approval card in the
 * approvers' conversation shows the outcome. Each delivery is tried on its own;
 * one failing does not stop the other. A failed backup run posts a card to the
 * operators' conversation. Every delivery failure is logged, never thrown: the
 * engine's work has ended either way.
 */
import { formatUtc, KIND_LABELS } from '../approvals/index.ts';
import type { FileRestoreTarget, RequestKind } from '../core/db/schema.ts';
import type { BackupFailed, EngineNotices, RestoreFinished } from '../engine/notices.ts';
import { refreshApprovalCard } from './approvers.ts';
import { backupFailedCard, formatBytes } from './cards.ts';
import { cardActivity, referenceFor } from './conversations.ts';
import { referenceOfPointer, type BotDeps } from './deps.ts';

/** The words the requester reads when their restore ends. */
export function restoreFinishedText(
  event: RestoreFinished,
  target: FileRestoreTarget,
  kind: RequestKind = 'file_restore',
): string {
  if (kind !== 'file_restore') return otherRestoreText(event, target.vmName, kind);
  if (event.outcome === 'completed') {
    const name = event.fileName ?? target.path.split(/[\\/]/).pop() ?? target.path;
    const size = event.sizeBytes === undefined ? '' : ` (${formatBytes(event.sizeBytes)})`;
    const until = event.downloadExpiresAt
      ? ` The link works until ${formatUtc(event.downloadExpiresAt)}; ask again after that.`
      : '';
    const link = event.downloadUrl
      ? ` Download it here: ${event.downloadUrl}.${until}`
      : ' The operators will send you the download link.';
    return `Your file ${name}${size} from ${target.vmName} is ready (request ${event.requestId}).${link}`;
  }
  const why = (event.message ?? 'the engine did not say why').replace(/[.\s]+$/, '');
  return `The restore of ${target.path} from ${target.vmName} failed (request ${event.requestId}): ${why}. You can ask again with another path or restore point; the operators see this failure in the service log.`;
}

/** The words for a finished VM or disk restore: what was restored where, or why it failed. */
function otherRestoreText(event: RestoreFinished, vmName: string, kind: RequestKind): string {
  const why = (event.message ?? 'the engine did not say why').replace(/[.\s]+$/, '');
  if (event.outcome === 'completed')
    return `Your ${KIND_LABELS[kind]} of ${vmName} is done (request ${event.requestId}). ${why}.`;
  return `The ${KIND_LABELS[kind]} of ${vmName} failed (request ${event.requestId}): ${why}. You can ask again; the operators see this failure in the service log.`;
}

export function createNotices(deps: BotDeps): EngineNotices {
  return {
    async restoreFinished(event: RestoreFinished): Promise<void> {
      const log = deps.log.child({ requestId: event.requestId, outcome: event.outcome });
      const request = await deps.db
        .selectFrom('requests')
        .selectAll()
        .where('id', '=', event.requestId)
        .executeTakeFirst();
      if (!request) {
        log.warn('notice_for_unknown_request');
        return;
      }
      const words = restoreFinishedText(event, request.target as FileRestoreTarget, request.kind);

      const pointer = request.requester_conversation;
      if (pointer) {
        try {
          const reference = await referenceOfPointer(deps, pointer);
          if (reference) await deps.outbox.send(reference, words);
        } catch (error) {
          log.error({ err: error }, 'requester_notice_failed');
        }
      } else {
        log.info('requester_conversation_unknown');
      }

      // The approvers see the outcome without the link: it is the requester's.
      const result =
        event.outcome === 'completed' && request.kind !== 'file_restore'
          ? `Restored: ${event.message ?? 'done'}`
          : event.outcome === 'completed'
            ? `Restored${event.fileName ? ` ${event.fileName}` : ''}${event.sizeBytes === undefined ? '' : ` (${formatBytes(event.sizeBytes)})`}; the requester has a download link.`
            : `Failed: ${event.message ?? 'no reason given'}`;
      await refreshApprovalCard(deps, { ...request, status: event.outcome }, result);
    },

    backupFailed: (event) => postBackupFailure(deps, event),
  };
}

/** Posts the failed run's card to the operators' conversation; logs instead when that cannot be done. */
async function postBackupFailure(deps: BotDeps, event: BackupFailed): Promise<void> {
  const log = deps.log.child({
    customerId: event.customerId,
    itemId: event.itemId,
    restorePointId: event.restorePointId,
  });
  const { conversationId, serviceUrl } = deps.operators;
  if (!conversationId) {
    log.warn({ vm: event.itemName, kind: event.kind }, 'operators_conversation_unset');
    return;
  }

  try {
    const reference = await referenceFor(deps.db, conversationId, serviceUrl, deps.botAppId);
    if (!reference) {
      log.warn({ conversationId }, 'operators_conversation_unknown');
      return;
    }
    const activityId = await deps.outbox.send(reference, cardActivity(backupFailedCard(event)));
    // The adapter reports a failed send to its turn error handler and resolves without an id.
    if (activityId === undefined) {
      log.error({ conversationId }, 'backup_failure_card_failed');
      return;
    }
    log.info({ conversationId, activityId }, 'backup_failure_card_posted');
  } catch (error) {
    log.error({ err: error, conversationId }, 'backup_failure_card_failed');
  }
}
