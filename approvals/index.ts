/**
 * Written approvals for access to backup data.
 *
 * A request moves through these states:
 *
 *   pending ──approve──▶ approved ──(engine)──▶ running ──▶ completed | failed
 *      │
 *      ├──reject──▶ rejected
 *      ├──cancel (by its requester)──▶ cancelled
 *      └──(no decision before expires_at)──▶ expired
 *
 * Only 'pending' takes decisions, and every change out of it is a single
 * `UPDATE ... WHERE status = 'pending'`, so concurrent clicks settle once.
 * The engine owns running, completed and failed. A decision records the
 * request's content hash; the engine recomputes it before it runs anything.
 * Every step, refusals included, is written to the audit log.
 */
export { createApprovals, contentHashOf } from './approvals.ts';
export type {
  Actor,
  Approvals,
  ApprovalsOptions,
  FileRestoreInput,
  FileRestorePreview,
  RequestFilter,
} from './approvals.ts';
export { assertApproverEligible, assertMayDecide, settlingDecision } from './segregation.ts';
export type { Decider } from './segregation.ts';
export {
  checkComment,
  checkFilePath,
  checkReason,
  checkTicket,
  formatUtc,
  toDate,
} from './rules.ts';
