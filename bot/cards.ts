/**
 * Adaptive Cards (schema 1.5) from the JSON templates in ./cards, bound with
 * adaptivecards-templating. This file turns domain rows into each template's
 * data; the templates decide the layout.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import type {
  Customer,
  Decision,
  FileRestoreTarget,
  ProtectedItem,
  RequestRow,
  RestorePoint,
  RestorePointDisk,
} from '../core/db/schema.ts';
import { describeTarget, formatUtc, KIND_LABELS, toDate } from '../approvals/index.ts';
import { formatBytes } from '../core/format.ts';
import { safeNoticeText, type BackupFailed } from '../engine/notices.ts';
import type { ItemStatus } from '../engine/status.ts';
import { formatInZone } from './when.ts';

export type CardName =
  | 'file-restore-form'
  | 'disk-restore-form'
  | 'vm-restore-form'
  | 'sql-restore-form'
  | 'request-status'
  | 'approval'
  | 'decided'
  | 'help'
  | 'backup-status'
  | 'restore-points'
  | 'my-requests'
  | 'backup-failed';
export type Card = Record<string, unknown>;

interface Template {
  expand(context: { $root: unknown }): unknown;
}

// Loaded untyped: the package's declarations pull in adaptivecards' TypeScript
// sources, which do not compile under this project's settings.
const ACData = createRequire(import.meta.url)('adaptivecards-templating') as {
  Template: new (json: unknown) => Template;
};

const templates = new Map<CardName, Template>();

function template(name: CardName): Template {
  let loaded = templates.get(name);
  if (!loaded) {
    const file = fileURLToPath(new URL(`./cards/${name}.json`, import.meta.url));
    loaded = new ACData.Template(JSON.parse(fs.readFileSync(file, 'utf8')));
    templates.set(name, loaded);
  }
  return loaded;
}

/** Binds a template to its data. */
export function renderCard(name: CardName, data: Record<string, unknown>): Card {
  return template(name).expand({ $root: data }) as Card;
}

export { formatBytes };

const statusLabels: Record<string, string> = {
  pending: 'waiting for approval',
  approved: 'approved, restore queued',
  running: 'approved, restoring now',
  completed: 'completed',
  failed: 'failed',
  rejected: 'rejected',
  cancelled: 'cancelled',
  expired: 'expired without a decision',
};

export const statusLabel = (status: string) => statusLabels[status] ?? status;

/** What every request card shows; a file restore's own facts, or one line describing any other kind. */
function requestFacts(request: RequestRow) {
  const isFile = request.kind === 'file_restore';
  const target = request.target as FileRestoreTarget;
  const kindLabel = KIND_LABELS[request.kind] ?? request.kind;
  return {
    requestId: request.id,
    status: request.status,
    statusLabel: statusLabel(request.status),
    isFile,
    kindLabel,
    kindTitle: `${kindLabel.charAt(0).toUpperCase()}${kindLabel.slice(1)}`,
    what: describeTarget(request.kind, request.target),
    vmName: isFile ? target.vmName : '',
    path: isFile ? target.path : '',
    restorePointTime: isFile ? formatUtc(target.restorePointTime) : '',
    createdAt: formatUtc(request.created_at),
    expiresAt: formatUtc(request.expires_at),
    reason: request.reason,
    requesterName: request.requester_name,
  };
}

export function fileRestoreFormCard(input: {
  providerName: string;
  customer: Customer;
  item: ProtectedItem;
  restorePoint: RestorePoint;
  path: string;
  at?: Date;
  askedFor: string;
}): Card {
  const disks = (input.restorePoint.disks as RestorePointDisk[]).map((disk) => ({
    label: `${disk.name} (${disk.role === 'os' ? 'OS disk' : `data disk, LUN ${disk.role}`})`,
    size: formatBytes(disk.sizeBytes),
  }));
  return renderCard('file-restore-form', {
    providerName: input.providerName,
    customerName: input.customer.name,
    vmName: input.item.name,
    path: input.path,
    restorePointId: input.restorePoint.id,
    restorePointTime: formatUtc(input.restorePoint.created_at),
    askedFor: input.askedFor,
    at: input.at ? input.at.toISOString() : '',
    disks,
  });
}

export function requestStatusCard(request: RequestRow, note = ''): Card {
  return renderCard('request-status', {
    ...requestFacts(request),
    note,
    pending: request.status === 'pending',
  });
}

export function approvalCard(request: RequestRow, customer: Customer): Card {
  // A request that needs several approvals shows how many it has, and stays actionable for the others.
  return renderCard('approval', {
    ...requestFacts(request),
    customerName: customer.name,
    approvals: `${request.approvals_given ?? 0} of ${request.approvals_required} approvals`,
    ticket: request.ticket ?? 'none',
  });
}

const outcomes: Record<string, { title: string; color: string }> = {
  approved: { title: 'Approved: the restore is queued', color: 'Good' },
  running: { title: 'Approved: restoring now', color: 'Good' },
  completed: { title: 'Approved and restored', color: 'Good' },
  failed: { title: 'Approved, but the restore failed', color: 'Attention' },
  rejected: { title: 'Rejected', color: 'Attention' },
  cancelled: { title: 'Cancelled by the requester', color: 'Default' },
  expired: { title: 'Expired without a decision', color: 'Warning' },
  pending: { title: 'Waiting for approval', color: 'Default' },
};

/** The card that replaces an approval card once the request is decided, and again when the restore ends. */
export function decidedCard(
  request: RequestRow,
  customer: Customer,
  decision: Decision | undefined,
  result = '',
): Card {
  const outcome = outcomes[request.status] ?? { title: request.status, color: 'Default' };
  return renderCard('decided', {
    ...requestFacts(request),
    customerName: customer.name,
    outcomeTitle: outcome.title,
    outcomeColor: outcome.color,
    decided: decision !== undefined,
    approverName: decision?.approver_name ?? '',
    decidedAt: decision ? formatUtc(decision.created_at) : '',
    comment: decision?.comment ?? '',
    result,
  });
}

/** The help card; `unknown` is what the person wrote that was not a command. */
export function helpCard(greeting: string, zoneName: string, unknown = ''): Card {
  return renderCard('help', { greeting, zoneName, unknown });
}

const itemKinds: Record<string, string> = { vm: 'VM', sql_database: 'SQL database' };

const backupOutcomes: Record<string, string> = {
  running: 'running since',
  succeeded: 'succeeded at',
  warning: 'succeeded with a warning at',
  failed: 'failed at',
};

/**
 * How the latest backup went, e.g. "running since 02:00 (1 of 2 disk(s) done, 3.1 GiB read)"
 * for a VM, or "running since 02:00 (1.2 GiB of the BACPAC read)" for a database.
 */
function lastBackupText({ item, lastBackup }: ItemStatus, zone: string): string {
  if (!lastBackup) return 'not recorded';
  const text = `${backupOutcomes[lastBackup.outcome] ?? lastBackup.outcome} ${formatInZone(lastBackup.at, zone)}`;
  const progress = lastBackup.progress;
  if (lastBackup.outcome !== 'running' || !progress) return text;
  const read = formatBytes(progress.bytesRead);
  if (item.kind === 'sql_database') return `${text} (${read} of the BACPAC read)`;
  return `${text} (${progress.tasksDone} of ${progress.tasks} disk(s) done, ${read} read)`;
}

/**
 * The backup status of a customer's protected items, times in the person's zone;
 * `hidden` more items are left out of the card (the portal lists them).
 */
export function backupStatusCard(
  customerName: string,
  items: ItemStatus[],
  zone: string,
  hidden = 0,
): Card {
  const failed = items.filter((i) => i.lastBackup?.outcome === 'failed').length;
  const counted = `${items.length + hidden} protected item(s)${failed > 0 ? `, ${failed} whose last backup failed` : ''}.`;
  const summary =
    items.length === 0
      ? `${customerName} has no protected VMs or databases yet; your provider adds them.`
      : hidden > 0
        ? `${counted} Showing the ${items.length} that need attention first; the portal lists all.`
        : counted;
  return renderCard('backup-status', {
    customerName,
    zoneName: zone,
    summary,
    hint: items[0] ? `Write restore points of ${items[0].item.name} to see them all.` : '',
    items: items.map((status) => ({
      name: status.item.name,
      kind: itemKinds[status.item.kind] ?? status.item.kind,
      newest: status.newestRestorePoint
        ? formatInZone(status.newestRestorePoint, zone)
        : 'none yet',
      count: String(status.restorePointCount),
      lastBackup: lastBackupText(status, zone),
      failed: status.lastBackup?.outcome === 'failed',
    })),
  });
}

/** One item's restore points, newest first; `more` says there are older ones. */
export function restorePointsCard(
  item: ProtectedItem,
  points: RestorePoint[],
  more: boolean,
  zone: string,
): Card {
  const summary =
    points.length === 0
      ? `${item.name} has no restore points yet; its first backup has not completed.`
      : more
        ? `The newest ${points.length} restore points; older ones are in the portal.`
        : `${points.length} restore point(s).`;
  return renderCard('restore-points', {
    itemName: item.name,
    zoneName: zone,
    summary,
    points: points.map((point) => ({
      taken: formatInZone(toDate(point.created_at), zone),
      type: pointType(point),
      expires:
        point.type === 'snapshot'
          ? 'while among the newest its policy keeps'
          : point.type === 'manual_snapshot'
            ? 'until an operator deletes it'
            : formatInZone(toDate(point.expires_at), zone),
    })),
  });
}

function pointType(point: RestorePoint): string {
  const kind =
    point.type === 'snapshot'
      ? 'snapshot'
      : point.type === 'manual_snapshot'
        ? 'manual snapshot'
        : 'backup';
  return point.policy_name && point.type !== 'manual_snapshot'
    ? `${kind}, policy ${point.policy_name}`
    : point.type === 'manual_snapshot'
      ? kind
      : `${kind}, on demand`;
}

/** The person's own requests, newest first; `more` says there are older ones. */
export function myRequestsCard(
  requests: RequestRow[],
  more: boolean,
  zone: string,
  note = '',
): Card {
  const summary =
    requests.length === 0
      ? 'You have no requests yet. Write help to see how to ask for a file.'
      : more
        ? `Your newest ${requests.length} requests.`
        : `${requests.length} request(s).`;
  return renderCard('my-requests', {
    note,
    summary,
    zoneName: zone,
    requests: requests.map((request) => ({
      requestId: request.id,
      kind: KIND_LABELS[request.kind] ?? request.kind,
      target: describeTarget(request.kind, request.target),
      statusLabel: statusLabel(request.status),
      createdAt: formatInZone(toDate(request.created_at), zone),
      pending: request.status === 'pending',
    })),
  });
}

const RETRIED =
  'The job queue tries it again a couple of times, with a pause; a card follows for each try that fails.';

/** How each error kind reads to an operator, and what to do next; the queue retries only passing failures. */
const failureKinds: Record<BackupFailed['kind'], { label: string; nextStep: string }> = {
  not_found: {
    label: 'not found',
    nextStep:
      'Not retried: check that the item (a VM and its disks, or a database and its server) still exists in Azure and sync the inventory.',
  },
  bad_input: {
    label: 'not supported as configured',
    nextStep: 'Not retried: change what the message names on the item or in ACBA.',
  },
  conflict: {
    label: 'conflict',
    nextStep:
      'Not retried: another operation held the item or the repository; the next run should pass.',
  },
  forbidden: {
    label: 'refused',
    nextStep: "Not retried: give ACBA's app registration the access the message names.",
  },
  limit_reached: { label: 'limit reached', nextStep: RETRIED },
  unavailable: { label: 'Azure or the repository did not answer', nextStep: RETRIED },
  unexpected: { label: 'unexpected error', nextStep: RETRIED },
};

function startedBy(event: BackupFailed): string {
  if (event.policyName) return `policy ${event.policyName}`;
  return event.trigger === 'startup' ? 'start-up of ACBA' : event.trigger;
}

/** The card the operators' channel gets for a failed backup run; the message is made safe again here. */
export function backupFailedCard(event: BackupFailed): Card {
  const kind = failureKinds[event.kind] ?? failureKinds.unexpected;
  const again = event.policyName
    ? ` npx acba policy run ${event.policyName} backs it up again now.`
    : '';
  return renderCard('backup-failed', {
    customerName: event.customerName,
    itemKind: itemKinds[event.itemKind ?? 'vm'],
    itemName: event.itemName,
    startedBy: startedBy(event),
    failedAt: formatUtc(event.failedAt),
    kindLabel: kind.label,
    restorePointId: event.restorePointId,
    message: safeNoticeText(event.message),
    nextStep: `${kind.nextStep}${again} The service log has the details (backup_failed, restorePointId ${event.restorePointId}).`,
  });
}
