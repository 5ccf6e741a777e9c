/**
 * The tables ACBA keeps in PostgreSQL, as kysely sees them. Migrations in
 * ./migrations create them; this file is the one place their shape is typed.
 */
import type { ColumnType, Generated, Insertable, Selectable, Updateable } from 'kysely';

type Timestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type Json<T> = ColumnType<T, string, string>;

/** A customer of the provider: one Entra tenant and the Azure subscription ACBA protects. */
export interface CustomersTable {
  id: string;
  name: string;
  tenant_id: string;
  subscription_id: string;
  /** managed: approved work is queued for the provider; unmanaged: the requester starts it once approved. */
  service_model: ColumnType<ServiceModel, ServiceModel | undefined, ServiceModel>;
  created_at: Timestamp;
}

export type ServiceModel = 'managed' | 'unmanaged';

export type Role = 'requester' | 'approver' | 'operator' | 'auditor';

/** Who holds which role. Customers' staff are requesters; approvers come from the provider's tenant. */
export interface PrincipalsTable {
  tenant_id: string;
  object_id: string;
  display_name: string;
  role: Role;
  /** When the role was granted; null for roles granted before this was recorded. */
  granted_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  /** Object id of whoever granted the role, or 'seed' for the sandbox's seeded users. */
  granted_by: ColumnType<string | null, string | null | undefined, string | null>;
}

/** What ACBA backs up: an Azure VM, or an Azure SQL database (named `server/database`). */
export type ProtectedItemKind = 'vm' | 'sql_database';

/** A VM or SQL database that ACBA backs up. */
export interface ProtectedItemsTable {
  id: string;
  customer_id: string;
  kind: ProtectedItemKind;
  name: string;
  resource_id: string;
  created_at: Timestamp;
  /** The resource's Azure tags at the last inventory sync, for selection by policies. */
  tags: ColumnType<Record<string, string>, string | undefined, string>;
}

export interface RestorePointDisk {
  /** Disk name in Azure. */
  name: string;
  /** 'os' or the data disk's LUN. */
  role: 'os' | number;
  sizeBytes: number;
  /** Bytes actually stored (after zero-skipping, dedup and compression). */
  storedBytes: number;
}

/** The BACPAC export a SQL database's restore point holds. */
export interface RestorePointBacpac {
  /** File name, `<database>.bacpac`. */
  name: string;
  sizeBytes: number;
  /** Bytes actually stored (after dedup and compression). */
  storedBytes: number;
  /** SHA-256 of the whole BACPAC, hex. */
  sha256: string;
}

/** A complete restore point. A row exists only once everything it references is stored. */
export interface RestorePointsTable {
  id: string;
  customer_id: string;
  item_id: string;
  created_at: Timestamp;
  expires_at: Timestamp;
  /** Path of the restore point's encrypted manifest in the repository. */
  manifest_path: string;
  /** A VM's disks; empty for a SQL database. */
  disks: Json<RestorePointDisk[]>;
  /** A SQL database's BACPAC; null for a VM. */
  bacpac: ColumnType<RestorePointBacpac | null, string | null | undefined, string | null>;
  size_bytes: ColumnType<string, number | bigint | string, number | bigint | string>;
  stored_bytes: ColumnType<string, number | bigint | string, number | bigint | string>;
  /** The policy whose schedule made it; null for backups outside a policy. */
  policy_name: ColumnType<string | null, string | null | undefined, string | null>;
  /** A backup in the repository, or Azure snapshots kept by a policy or taken by an operator. */
  type: ColumnType<RestorePointType, RestorePointType | undefined, RestorePointType>;
  /** Schedule kinds (daily, weekly, ...) whose slots made it; snapshot retention counts per kind. */
  schedules: ColumnType<string[], string | undefined, string>;
}

/** backup: blocks in the repository; snapshot: kept by a snapshot policy; manual_snapshot: kept until an operator deletes it. */
export type RestorePointType = 'backup' | 'snapshot' | 'manual_snapshot';

/** An Azure disk snapshot ACBA keeps: the base of a disk's next incremental read, a snapshot restore point, or both. */
export interface DiskSnapshotsTable {
  snapshot_resource_id: string;
  customer_id: string;
  item_id: string;
  disk_resource_id: string;
  disk_name: string;
  /** 'os' or the data disk's LUN, as text. */
  disk_role: string;
  size_bytes: ColumnType<string, number | bigint | string, number | bigint | string>;
  /** The backup whose blocks equal this snapshot's content; null once that backup is gone. */
  backup_point_id: ColumnType<string | null, string | null | undefined, string | null>;
  /** The snapshot restore point this snapshot belongs to; null when it is only a backup's base. */
  snapshot_point_id: ColumnType<string | null, string | null | undefined, string | null>;
  created_at: Timestamp;
}

/** Where each stored block lives in the repository, for deduplication and reads. */
export interface RepositoryBlocksTable {
  id: string;
  pack_path: string;
  offset: ColumnType<string, number | bigint | string, number | bigint | string>;
  length: number;
  raw_length: number;
}

export type RequestKind =
  | 'file_restore'
  | 'disk_restore'
  | 'vm_restore'
  | 'sql_restore'
  | 'data_access'
  | 'delete_restore_points'
  | 'change_retention'
  | 'exit_export';
/** Every state a request can be in (see approvals/index.ts for how it moves). */
export const REQUEST_STATUSES = [
  'pending',
  'approved',
  'rejected',
  'running',
  'completed',
  'failed',
  'cancelled',
  'expired',
] as const;
export type RequestStatus = (typeof REQUEST_STATUSES)[number];

export function isRequestStatus(value: string): value is RequestStatus {
  return (REQUEST_STATUSES as readonly string[]).includes(value);
}

export interface FileRestoreTarget {
  itemId: string;
  vmName: string;
  path: string;
  restorePointId: string;
  restorePointTime: string;
}

export interface DiskRestoreTarget {
  itemId: string;
  vmName: string;
  restorePointId: string;
  /** The disks to restore: 'os' or a data disk's LUN. */
  disks: Array<'os' | number>;
  /** Swap the restored disks into the VM (the old ones kept) instead of creating new disks beside it. */
  replaceOriginal: boolean;
  /** Where new disks go; the VM's resource group when absent. */
  resourceGroup?: string;
}

export interface VmRestoreTarget {
  itemId: string;
  vmName: string;
  restorePointId: string;
  /** Replace the original VM's disks (the old ones kept) instead of creating a new VM. */
  replaceOriginal: boolean;
  /** A new VM: its name, and where it goes (the original's resource group, region and size when absent). */
  newVmName?: string;
  resourceGroup?: string;
  region?: string;
  /** The subnet the new VM's network interface joins (a Microsoft.Network subnet resource id). */
  subnetId?: string;
  vmSize?: string;
}

/** One database of a SQL restore: what is restored from which restore point, and under which name. */
export interface SqlRestoreDatabase {
  itemId: string;
  /** The database's name on its server, without the server. */
  database: string;
  restorePointId: string;
  /** The restored database's name; the original's own name when it replaces the original. */
  newName: string;
}

export interface SqlRestoreTarget {
  /** The logical server every database of the request was backed up from. */
  server: string;
  databases: SqlRestoreDatabase[];
  /** Replace each original database once its import succeeded (the original kept under another name). */
  replaceOriginal: boolean;
  /** Another logical server of the customer to import into; the original server when absent. */
  targetServer?: string;
  targetServerId?: string;
}

/** The provider's staff reading a customer's backup. */
export interface DataAccessTarget {
  customerId: string;
  itemId?: string;
  purpose: string;
}

export interface DeleteRestorePointsTarget {
  restorePointIds: string[];
}

export interface ChangeRetentionTarget {
  policy: string;
  /** 'shorten' sets retentionDays below the current value; 'disable' turns the policy off. */
  change: 'shorten' | 'disable';
  retentionDays?: number;
}

export interface ExitExportTarget {
  /**
   * Where the exported data goes: a folder name under the service's export
   * folder, or a blob container URL (without a SAS; one is given when the export runs).
   */
  destination: string;
  /** Only these restore points; every backup restore point of the customer when absent. */
  restorePointIds?: string[];
}

/** What a request is about, one shape per kind. */
export type RequestTarget =
  | FileRestoreTarget
  | DiskRestoreTarget
  | VmRestoreTarget
  | SqlRestoreTarget
  | DataAccessTarget
  | DeleteRestorePointsTarget
  | ChangeRetentionTarget
  | ExitExportTarget;

export interface ConversationPointer {
  conversationId: string;
  activityId?: string;
  serviceUrl: string;
}

/** A written request for access to backup data. */
export interface RequestsTable {
  id: string;
  customer_id: string;
  kind: RequestKind;
  status: RequestStatus;
  target: Json<RequestTarget>;
  reason: string;
  requester_object_id: string;
  requester_tenant_id: string;
  requester_name: string;
  /** SHA-256 of the request's content; decisions bind to it. */
  content_hash: string;
  /** How many approvals the rules require. */
  approvals_required: number;
  /** Id of the approval rule that set approvals_required (a configured rule or a default). */
  approval_rule: ColumnType<string | null, string | null | undefined, string | null>;
  /** Approvals given so far, counted in the same UPDATE that settles the request. */
  approvals_given: ColumnType<number, number | undefined, number>;
  /** An optional ticket reference, covered by the content hash when present. */
  ticket: ColumnType<string | null, string | null | undefined, string | null>;
  /** Approved work not started by then expires; set when the request is approved. */
  start_by: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  created_at: Timestamp;
  expires_at: Timestamp;
  decided_at: Timestamp | null;
  finished_at: Timestamp | null;
  /** Outcome of the approved work: a delivery id, or the reason it failed. */
  result: Json<Record<string, unknown>> | null;
  /** The approval card in the approvers' conversation, to update it later. */
  approval_card: Json<ConversationPointer> | null;
  /** The requester's conversation, for notices. */
  requester_conversation: Json<ConversationPointer> | null;
}

export interface DecisionsTable {
  id: string;
  request_id: string;
  decision: 'approve' | 'reject';
  comment: string;
  approver_object_id: string;
  approver_tenant_id: string;
  approver_name: string;
  /** The request content hash this decision was made on. */
  request_hash: string;
  created_at: Timestamp;
}

export type AuditChannel = 'bot' | 'portal' | 'api' | 'engine' | 'scheduler' | 'cli';
export type AuditOutcome = 'success' | 'refused' | 'failed';

/** The append-only, hash-chained audit log. */
export interface AuditLogTable {
  seq: Generated<ColumnType<string, never, never>>;
  at: Timestamp;
  actor_object_id: string;
  actor_tenant_id: string;
  actor_name: string;
  actor_role: string;
  channel: AuditChannel;
  action: string;
  resource: string;
  outcome: AuditOutcome;
  details: Json<Record<string, unknown>>;
  prev_hash: string;
  hash: string;
}

/** Teams conversation references the bot has seen, for proactive messages. */
export interface ConversationsTable {
  id: string;
  tenant_id: string;
  object_id: string | null;
  reference: Json<Record<string, unknown>>;
  updated_at: Timestamp;
}

/** A recovered file waiting to be downloaded through a signed, expiring link. */
export interface DeliveriesTable {
  id: string;
  request_id: string;
  customer_id: string;
  file_name: string;
  blob_path: string;
  size_bytes: ColumnType<string, number | bigint | string, number | bigint | string>;
  sha256: string;
  created_at: Timestamp;
  expires_at: Timestamp;
}

/** A backup policy: what to protect, when, and how long to keep it (see engine/policies.ts). */
export interface PoliciesTable {
  name: string;
  customer_id: string;
  /** Higher wins when two policies select the same item. */
  priority: number;
  enabled: boolean;
  type: 'snapshots' | 'backups' | 'both';
  time_zone: string;
  /** The validated policy document as applied. */
  spec: Json<unknown>;
  /** Slots before this instant are never run (no catch-up of history before the policy existed). */
  active_from: Timestamp;
  created_at: Timestamp;
  updated_at: Timestamp;
}

/** What a policy selects: a VM or SQL database (by item id, name or resource id) or a tag (key=value). */
export interface PolicyItemsTable {
  policy_name: string;
  selector: 'vm' | 'database' | 'tag';
  value: string;
}

/** One run of a policy, unique per (policy, slot): the row is the claim that makes a slot run once. */
export interface PolicyRunsTable {
  id: string;
  policy_name: string;
  slot_key: string;
  slot_at: Timestamp;
  /** 'schedule' or 'operator'. */
  trigger: string;
  expires_at: ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;
  started_at: Timestamp;
  /** Item ids whose backups this run enqueued. */
  items: ColumnType<string[], string | undefined, string>;
  /** Items left to a higher-priority policy, with that policy's name. */
  skipped: ColumnType<{ itemId: string; policy: string }[], string | undefined, string>;
}

/** Who is using the repository now: backups in progress, or a prune deleting packs. */
export interface RepositoryLeasesTable {
  id: string;
  kind: 'backup' | 'prune';
  expires_at: Timestamp;
}

export type JobStatus = 'running' | 'succeeded' | 'warning' | 'failed';
export type TaskStatus = 'waiting' | 'running' | 'succeeded' | 'failed';
type Bytes = ColumnType<string, number | bigint | string | undefined, number | bigint | string>;
type Nullable<T> = ColumnType<T | null, T | null | undefined, T | null>;
type NullableTime = ColumnType<Date | null, Date | string | null | undefined, Date | string | null>;

/** One run of a job (a backup of one protected item), with its outcome and totals. */
export interface JobSessionsTable {
  id: string;
  customer_id: string;
  item_id: string;
  /** The item's name when the run started, e.g. web-01. */
  item_name: string;
  /** 'backup', or 'restore' for an approved VM or disk restore. */
  kind: ColumnType<string, string | undefined, string>;
  /** What started it: 'schedule', 'operator', 'startup'. */
  trigger: string;
  policy_name: Nullable<string>;
  status: JobStatus;
  started_at: Timestamp;
  finished_at: NullableTime;
  /** Bytes read from the source (snapshots). */
  bytes_read: Bytes;
  /** Bytes the repository gained. */
  bytes_stored: Bytes;
  /** Things an operator should know about a run that still succeeded (e.g. storage near its allocation). */
  warnings: ColumnType<string[], string | undefined, string>;
  error_kind: Nullable<string>;
  error: Nullable<string>;
  /** The restore point the run made, once it succeeded. */
  restore_point_id: Nullable<string>;
  /** The worker lease (workers.id) of the process running it; null when it ran outside one. */
  worker_id: Nullable<string>;
}

/** One task of a session: one disk of a VM (later one SQL database), with its progress and attempts. */
export interface JobTasksTable {
  id: string;
  session_id: string;
  customer_id: string;
  /** What the task works on: 'disk' (later 'database'). */
  subject_kind: string;
  /** The disk's (or database's) name. */
  subject_name: string;
  status: TaskStatus;
  attempts: ColumnType<number, number | undefined, number>;
  /** The licence slot the task held while it ran; null without a licence limit. */
  slot: Nullable<number>;
  /** The subject's size when known. */
  total_bytes: ColumnType<
    string | null,
    number | bigint | string | null | undefined,
    number | bigint | string | null
  >;
  /** Bytes read so far in the current attempt. */
  bytes_done: Bytes;
  bytes_stored: Bytes;
  created_at: Timestamp;
  /** When the current attempt started running (holding its slot). */
  started_at: NullableTime;
  finished_at: NullableTime;
  /** When bytes_done was last written. */
  progress_at: NullableTime;
  /** The last attempt's error, made safe for customers' eyes. */
  error: Nullable<string>;
}

/** What a customer bought; a null column, or no row at all, means no limit. */
export interface LicencesTable {
  customer_id: string;
  /** Protected VMs and databases. */
  max_instances: Nullable<number>;
  /** Repository storage, in bytes (configured in TB, 10^12 bytes). */
  allocated_bytes: ColumnType<
    string | null,
    number | bigint | string | null | undefined,
    number | bigint | string | null
  >;
  /** Tasks that may run at once across all workers. */
  max_tasks: Nullable<number>;
  updated_at: Timestamp;
  updated_by: string;
}

/** A customer's concurrent-task slot; a holder with a live expiry owns it (renewed while its task runs). */
export interface TaskSlotsTable {
  customer_id: string;
  slot: number;
  holder: Nullable<string>;
  expires_at: NullableTime;
  /** The worker lease of the holder's process, so that a dead worker's slots are freed with its lease. */
  worker_id: Nullable<string>;
}

/** A process that takes jobs from the queue, alive while it renews its expiry. */
export interface WorkersTable {
  id: string;
  host: string;
  pid: number;
  /** 'all' (acba serve) or 'worker'. */
  role: string;
  started_at: Timestamp;
  expires_at: ColumnType<Date, Date | string, Date | string>;
}

/** A queue job that a worker is running now; handed back to the queue when the worker's lease lapses. */
export interface WorkerJobsTable {
  /** pg-boss's job id. */
  job_id: string;
  queue: string;
  worker_id: string;
  started_at: Timestamp;
}

/** Usage of one customer on one UTC day, for the price list. */
export interface UsageDailyTable {
  customer_id: string;
  /** The UTC day, YYYY-MM-DD. */
  day: ColumnType<string, string, string>;
  protected_instances: ColumnType<number, number | undefined, number>;
  stored_bytes: Bytes;
  peak_tasks: ColumnType<number, number | undefined, number>;
  /** Bytes delivered out of the repository by restores and downloads. */
  egress_bytes: Bytes;
  updated_at: Timestamp;
}

export interface Database {
  customers: CustomersTable;
  principals: PrincipalsTable;
  protected_items: ProtectedItemsTable;
  restore_points: RestorePointsTable;
  repository_blocks: RepositoryBlocksTable;
  requests: RequestsTable;
  decisions: DecisionsTable;
  audit_log: AuditLogTable;
  conversations: ConversationsTable;
  deliveries: DeliveriesTable;
  policies: PoliciesTable;
  policy_items: PolicyItemsTable;
  policy_runs: PolicyRunsTable;
  repository_leases: RepositoryLeasesTable;
  job_sessions: JobSessionsTable;
  job_tasks: JobTasksTable;
  licences: LicencesTable;
  task_slots: TaskSlotsTable;
  usage_daily: UsageDailyTable;
  disk_snapshots: DiskSnapshotsTable;
  workers: WorkersTable;
  worker_jobs: WorkerJobsTable;
}

export type Customer = Selectable<CustomersTable>;
export type Principal = Selectable<PrincipalsTable>;
export type ProtectedItem = Selectable<ProtectedItemsTable>;
export type RestorePoint = Selectable<RestorePointsTable>;
export type RequestRow = Selectable<RequestsTable>;
export type NewRequest = Insertable<RequestsTable>;
export type RequestUpdate = Updateable<RequestsTable>;
export type Decision = Selectable<DecisionsTable>;
export type AuditEntry = Selectable<AuditLogTable>;
export type Delivery = Selectable<DeliveriesTable>;
export type Policy = Selectable<PoliciesTable>;
export type PolicyRun = Selectable<PolicyRunsTable>;
export type JobSession = Selectable<JobSessionsTable>;
export type JobTask = Selectable<JobTasksTable>;
export type Licence = Selectable<LicencesTable>;
export type UsageDay = Selectable<UsageDailyTable>;
export type DiskSnapshot = Selectable<DiskSnapshotsTable>;
