/**
 * Realistic data for every Adaptive Card template in bot/cards/, rendered
 * through bot/cards.ts as the bot renders it, with the buttons a person must
 * see. test/cards-render.test.ts renders each template in the official
 * renderer and fails for a template that has no entry here: add one (named
 * after the template file, without .json) when you add a template.
 */
import {
  approvalCard,
  backupFailedCard,
  backupStatusCard,
  decidedCard,
  fileRestoreFormCard,
  helpCard,
  myRequestsCard,
  requestStatusCard,
  restorePointsCard,
  type Card,
} from '../../bot/cards.ts';
import { renderRestoreForm } from '../../bot/restore-forms.ts';
import type { RestoreChoices } from '../../approvals/index.ts';
import type {
  Customer,
  Decision,
  ProtectedItem,
  RequestRow,
  RestorePoint,
} from '../../core/db/schema.ts';

export interface CardSample {
  /** The card as the bot would send it. */
  render(): Card;
  /** Titles of the buttons the rendered card shows, in order. */
  buttons: string[];
}

const zone = 'Europe/Berlin';

const contoso: Customer = {
  id: 'contoso',
  name: 'Contoso',
  tenant_id: '6f1c1d9e-5b2a-4e0c-9a57-3c1f0d2b7e41',
  subscription_id: 'a3d5c1e2-0000-4000-8000-00000000c0de',
  service_model: 'managed',
  created_at: new Date('2026-01-05T09:00:00Z'),
};

const web01: ProtectedItem = {
  id: 'item-web-01',
  customer_id: 'contoso',
  kind: 'vm',
  name: 'web-01',
  resource_id:
    '/subscriptions/a3d5c1e2-0000-4000-8000-00000000c0de/resourceGroups/rg-web/providers/Microsoft.Compute/virtualMachines/web-01',
  created_at: new Date('2026-01-05T09:00:00Z'),
  tags: { env: 'production' },
};

const restorePoint = (id: string, takenAt: string, policy: string | null): RestorePoint => ({
  id,
  customer_id: 'contoso',
  item_id: web01.id,
  created_at: new Date(takenAt),
  expires_at: new Date(Date.parse(takenAt) + 30 * 86_400_000),
  manifest_path: `manifests/${id}.json`,
  disks: [
    { name: 'web-01_OsDisk_1', role: 'os', sizeBytes: 32 * 2 ** 30, storedBytes: 3 * 2 ** 30 },
    { name: 'web-01_data_0', role: 0, sizeBytes: 128 * 2 ** 30, storedBytes: 41 * 2 ** 30 },
  ],
  bacpac: null,
  size_bytes: String(160 * 2 ** 30),
  stored_bytes: String(44 * 2 ** 30),
  policy_name: policy,
  type: 'backup',
  schedules: [],
});

const newest = restorePoint('rp-2026-12-02', '2026-12-02T02:00:00Z', 'daily-30');
const older = restorePoint('rp-2026-12-01', '2026-12-01T02:00:00Z', null);

/** What the restore forms offer Contoso: web-01 with two restore points, two databases of one server. */
const choices: RestoreChoices = {
  vms: [
    {
      itemId: web01.id,
      name: 'web-01',
      points: [
        { id: newest.id, label: '2026-12-02 02:00 UTC (rp-2026-12-02)' },
        { id: older.id, label: '2026-12-01 02:00 UTC (rp-2026-12-01)' },
      ],
      disks: [
        { role: 'os', label: 'web-01_OsDisk_1 (OS disk)' },
        { role: '0', label: 'web-01_data_0 (data disk, LUN 0)' },
      ],
    },
  ],
  sqlServers: [
    {
      name: 'sql-contoso-weu',
      databases: ['sales', 'inventory'].map((name) => ({
        itemId: `item-sql-${name}`,
        name,
        points: [{ id: `rp-sql-${name}`, label: `2026-12-02 03:00 UTC (rp-sql-${name})` }],
      })),
    },
    { name: 'sql-contoso-neu', databases: [] },
  ],
};

const request = (
  status: RequestRow['status'],
  overrides: Partial<RequestRow> = {},
): RequestRow => ({
  id: 'REQ-7Q4M2K',
  customer_id: 'contoso',
  kind: 'file_restore',
  status,
  target: {
    itemId: web01.id,
    vmName: 'web-01',
    path: '/etc/nginx/nginx.conf',
    restorePointId: newest.id,
    restorePointTime: '2026-12-02T02:00:00Z',
  },
  reason: 'The nginx configuration was overwritten by a bad deployment this morning (INC-4711).',
  requester_object_id: '0b7f8a52-3e1d-4c55-9b0a-8d2e61f4a901',
  requester_tenant_id: contoso.tenant_id,
  requester_name: 'Alex Wilber',
  content_hash: 'b1946ac92492d2347c6235b4d2611184b1946ac92492d2347c6235b4d2611184',
  approvals_required: 1,
  approval_rule: 'default:file_restore',
  approvals_given: 0,
  ticket: 'INC-4711',
  start_by: null,
  created_at: new Date('2026-12-02T08:14:00Z'),
  expires_at: new Date('2026-12-03T08:14:00Z'),
  decided_at: null,
  finished_at: null,
  result: null,
  approval_card: null,
  requester_conversation: null,
  ...overrides,
});

const approval: Decision = {
  id: 'dec-1',
  request_id: 'REQ-7Q4M2K',
  decision: 'approve',
  comment: 'Approved: matches incident INC-4711 in the service desk.',
  approver_object_id: '5c0e2b7d-9a41-4f3e-8d16-2f7b3a9c0e58',
  approver_tenant_id: '1e2d3c4b-5a69-4788-9a0b-c1d2e3f4a5b6',
  approver_name: 'Adele Vance',
  request_hash: 'b1946ac92492d2347c6235b4d2611184b1946ac92492d2347c6235b4d2611184',
  created_at: new Date('2026-12-02T08:31:00Z'),
};

/** One entry per template in bot/cards/, keyed by its file name without .json. */
export const cardSamples: Record<string, CardSample> = {
  approval: {
    render: () => approvalCard(request('pending'), contoso),
    buttons: ['Approve', 'Reject'],
  },
  'backup-failed': {
    render: () =>
      backupFailedCard({
        customerId: contoso.id,
        customerName: contoso.name,
        itemId: web01.id,
        itemName: web01.name,
        trigger: 'schedule',
        policyName: 'daily-30',
        restorePointId: '3f9c2a71-8d4e-4b6a-9c1f-2e7d5b8a0c64',
        kind: 'unavailable',
        message:
          'Azure did not answer creating snapshot acba-3f9c2a71-0 of disk web-01_OsDisk_1 in rg-web (503 ServiceUnavailable) after 3 tries.',
        failedAt: new Date('2026-12-02T02:06:00Z'),
      }),
    buttons: [],
  },
  'backup-status': {
    render: () =>
      backupStatusCard(
        'Contoso',
        [
          {
            item: web01,
            restorePointCount: 14,
            newestRestorePoint: new Date('2026-12-02T02:00:00Z'),
            lastBackup: {
              outcome: 'succeeded',
              at: new Date('2026-12-02T02:07:00Z'),
              sessionId: 'session-web-01',
            },
          },
          {
            item: { ...web01, id: 'item-win-01', name: 'win-01' },
            restorePointCount: 13,
            newestRestorePoint: new Date('2026-12-01T02:00:00Z'),
            lastBackup: {
              outcome: 'failed',
              at: new Date('2026-12-02T02:11:00Z'),
              sessionId: 'session-win-01',
            },
          },
        ],
        zone,
      ),
    buttons: [],
  },
  decided: {
    render: () =>
      decidedCard(
        request('completed', {
          approvals_given: 1,
          decided_at: new Date('2026-12-02T08:31:00Z'),
          finished_at: new Date('2026-12-02T08:33:00Z'),
        }),
        contoso,
        approval,
        'The file was recovered; Alex Wilber has a download link that expires in an hour.',
      ),
    buttons: [],
  },
  'file-restore-form': {
    render: () =>
      fileRestoreFormCard({
        providerName: 'Fabrikam Managed Services',
        customer: contoso,
        item: web01,
        restorePoint: newest,
        path: '/etc/nginx/nginx.conf',
        askedFor: 'restore file /etc/nginx/nginx.conf from web-01',
      }),
    buttons: ['Send for approval'],
  },
  'disk-restore-form': {
    render: () => renderRestoreForm('disk_restore', choices, 'web-01', 'Contoso'),
    buttons: ['Send for approval'],
  },
  'vm-restore-form': {
    render: () => renderRestoreForm('vm_restore', choices, 'web-01', 'Contoso'),
    buttons: ['Send for approval'],
  },
  'sql-restore-form': {
    render: () => renderRestoreForm('sql_restore', choices, 'sql-contoso-weu', 'Contoso'),
    buttons: ['Send for approval'],
  },
  help: {
    render: () => helpCard('Hello Alex Wilber', zone, 'restore my whole server please'),
    buttons: [],
  },
  'my-requests': {
    render: () =>
      myRequestsCard(
        [
          request('pending'),
          request('completed', {
            id: 'REQ-3HX9PA',
            created_at: new Date('2026-11-28T16:40:00Z'),
            target: {
              itemId: 'item-win-01',
              vmName: 'win-01',
              path: 'C:\\Users\\alex\\Documents\\Q4 forecast.xlsx',
              restorePointId: older.id,
              restorePointTime: '2026-11-28T02:00:00Z',
            },
          }),
        ],
        true,
        zone,
      ),
    buttons: ['Cancel request'],
  },
  'request-status': {
    render: () => requestStatusCard(request('pending'), 'Your request is with the approvers.'),
    buttons: ['Refresh', 'Cancel request'],
  },
  'restore-points': {
    render: () => restorePointsCard(web01, [newest, older], true, zone),
    buttons: [],
  },
};
