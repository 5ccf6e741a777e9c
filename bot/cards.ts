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
import { formatUtc } from '../approvals/index.ts';

export type CardName = 'file-restore-form' | 'request-status' | 'approval' | 'decided' | 'help';
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

export function formatBytes(bytes: number): string {
  const units = ['bytes', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${bytes} bytes` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

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

function requestFacts(request: RequestRow) {
  const target = request.target as FileRestoreTarget;
  return {
    requestId: request.id,
    status: request.status,
    statusLabel: statusLabel(request.status),
    vmName: target.vmName,
    path: target.path,
    restorePointTime: formatUtc(target.restorePointTime),
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

export function helpCard(greeting: string, zoneName: string): Card {
  return renderCard('help', { greeting, zoneName });
}
