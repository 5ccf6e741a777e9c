/**
 * The engine's job queue interface. Approvals hand approved work to the engine
 * through it; the engine's workers take jobs from it. The implementation keeps
 * jobs as durable rows in PostgreSQL (pg-boss), see ./job-queue.ts.
 */

/** Run an approved restore request: a file, disks or a whole VM (the request says which). */
export interface FileRestoreJob {
  requestId: string;
}

/** Back up one protected VM now. */
export interface BackupJob {
  itemId: string;
  /** Who or what asked: 'startup', 'operator', 'schedule'. */
  trigger: string;
  /** When the restore point expires (ISO 8601), from the policy schedule's retention; a year when absent. */
  expiresAt?: string;
  /** The policy whose run asked for this backup. */
  policyName?: string;
  /** The policy's type: a backup (the default), only the disks' snapshots, or both. */
  protection?: 'backups' | 'snapshots' | 'both';
  /** Schedule kinds (daily, weekly, ...) whose slots asked for this run. */
  schedules?: string[];
}

export interface JobQueue {
  enqueueFileRestore(job: FileRestoreJob): Promise<void>;
  enqueueBackup(job: BackupJob): Promise<void>;
}
