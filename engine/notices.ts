/**
 * What the engine tells the outside world when work ends. The engine knows
 * nothing of Teams: the bot implements this interface and the composition root
 * hands it to the workers.
 *
 * Notices leave the engine's trust boundary (they end up in chat channels), so
 * whatever text they carry from an error goes through safeNoticeText first: no
 * SAS signatures, keys or stack traces, and a bounded length.
 */
import { clip } from '../core/clip.ts';
import type { ProtectedItemKind, RequestKind } from '../core/db/schema.ts';
import { isAcbaError, type ErrorKind } from '../core/errors.ts';

export interface RestoreFinished {
  requestId: string;
  /** What was restored: the request's kind. */
  kind: RequestKind;
  outcome: 'completed' | 'failed';
  /** Signed, expiring download link for a completed file restore. */
  downloadUrl?: string;
  downloadExpiresAt?: Date;
  fileName?: string;
  sizeBytes?: number;
  /** Why it failed, or for a completed VM or disk restore what was restored where, in words for the requester. */
  message?: string;
}

/** One failed backup run of one protected item, for the provider's operators. */
export interface BackupFailed {
  customerId: string;
  customerName: string;
  itemId: string;
  /** The item's name as the customer knows it, e.g. web-01 or sql-weu/sales. */
  itemName: string;
  /** What the item is; a VM when absent. */
  itemKind?: ProtectedItemKind;
  /** What started the run: 'startup', 'operator', 'schedule'. */
  trigger: string;
  /** The policy whose run it was, when a policy started it. */
  policyName?: string;
  /** The restore point the run would have made, to find the run in the log and audit trail. */
  restorePointId: string;
  /** The error's kind, or 'unexpected' for anything that is not one of ACBA's own errors. */
  kind: ErrorKind | 'unexpected';
  /** What went wrong, made safe by safeNoticeText. */
  message: string;
  failedAt: Date;
}

export interface EngineNotices {
  restoreFinished(event: RestoreFinished): Promise<void>;
  /** Absent: a failed backup is only logged and audited. */
  backupFailed?(event: BackupFailed): Promise<void>;
}

/** Notices that go nowhere, for workers run without a bot. */
export const noNotices: EngineNotices = {
  restoreFinished: async () => {},
  backupFailed: async () => {},
};

/** Characters of an error message kept in a notice. */
export const NOTICE_MESSAGE_LENGTH = 300;

// A URL's query and fragment hold SAS signatures and tokens; the address without them still says where.
const URL_QUERY = /\b(https?:\/\/[^\s?#"'<>]*)[?#][^\s"'<>]*/gi;
const SECRET_SETTING =
  /\b(sig|AccountKey|SharedAccessSignature|SharedAccessKey|password|pwd|client_secret|access_token)=[^;&\s"'<>]*/gi;
const BEARER = /\bBearer\s+[\w.~+/=-]+/gi;
const STACK_FRAME = /\n[ \t]+at [^\n]*:\d+:\d+\)?(?=\n|$)/g;

/**
 * Text from an error made fit for a chat message: stack frames dropped, query
 * strings cut off URLs, secret settings and bearer tokens replaced, whitespace
 * folded to single spaces, and at most `max` characters.
 */
export function safeNoticeText(text: string, max = NOTICE_MESSAGE_LENGTH): string {
  const cleaned = text
    .replace(STACK_FRAME, '')
    .replace(URL_QUERY, '$1')
    .replace(SECRET_SETTING, '$1=[redacted]')
    .replace(BEARER, 'Bearer [redacted]')
    .replace(/\s+/g, ' ')
    .trim();
  return clip(cleaned === '' ? 'no reason given' : cleaned, max);
}

/** The kind and the safe message of an error, as a BackupFailed notice carries them. */
export function failureOf(error: unknown): Pick<BackupFailed, 'kind' | 'message'> {
  const message = error instanceof Error ? error.message : String(error);
  return {
    kind: isAcbaError(error) ? error.kind : 'unexpected',
    message: safeNoticeText(message),
  };
}
