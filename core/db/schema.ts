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
  created_at: Timestamp;
}

export type Role = 'requester' | 'approver' | 'operator' | 'auditor';

/** Who holds which role. Customers' staff are requesters; approvers come from the provider's tenant. */
export interface PrincipalsTable {
  tenant_id: string;
  object_id: string;
  display_name: string;
  role: Role;
}

/** A VM (later also a SQL database) that ACBA backs up. */
export interface ProtectedItemsTable {
  id: string;
  customer_id: string;
  kind: 'vm';
  name: string;
  resource_id: string;
  created_at: Timestamp;
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

/** A complete restore point. A row exists only once everything it references is stored. */
export interface RestorePointsTable {
  id: string;
  customer_id: string;
  item_id: string;
  created_at: Timestamp;
  expires_at: Timestamp;
  /** Path of the restore point's encrypted manifest in the repository. */
  manifest_path: string;
  disks: Json<RestorePointDisk[]>;
  size_bytes: ColumnType<string, number | bigint | string, number | bigint | string>;
  stored_bytes: ColumnType<string, number | bigint | string, number | bigint | string>;
}

/** Where each stored block lives in the repository, for deduplication and reads. */
export interface RepositoryBlocksTable {
  id: string;
  pack_path: string;
  offset: ColumnType<string, number | bigint | string, number | bigint | string>;
  length: number;
  raw_length: number;
}

export type RequestKind = 'file_restore';
export type RequestStatus =
  | 'pending'
  | 'approved'
  | 'rejected'
  | 'running'
  | 'completed'
  | 'failed'
  | 'cancelled'
  | 'expired';

export interface FileRestoreTarget {
  itemId: string;
  vmName: string;
  path: string;
  restorePointId: string;
  restorePointTime: string;
}

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
  target: Json<FileRestoreTarget>;
  reason: string;
  requester_object_id: string;
  requester_tenant_id: string;
  requester_name: string;
  /** SHA-256 of the request's content; decisions bind to it. */
  content_hash: string;
  /** How many approvals the rules require. */
  approvals_required: number;
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
