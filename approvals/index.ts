/**
 * Written approvals for access to backup data.
 *
 * A request moves through these states:
 *
 *   pending ──approve (n of N)──▶ approved ──(engine)──▶ running ──▶ completed | failed
 *      │                            │
 *      │                            └──(not started before start_by)──▶ expired
 *      ├──reject (any one)──▶ rejected
 *      ├──cancel (by its requester)──▶ cancelled
 *      └──(no decision before expires_at)──▶ expired
 *
 * Only 'pending' takes decisions, and every change out of it is a single
 * `UPDATE ... WHERE status = 'pending'`, so concurrent clicks settle once.
 * A request needs the approvals its rule set when it was written
 * (./approval-rules.ts), each from a different eligible approver; it stays
 * pending until the last one. Approved work is queued for managed customers
 * and started by the requester for unmanaged ones; kinds the engine cannot
 * run yet stay approved.
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
  RequestInput,
} from './approvals.ts';
export {
  DEFAULT_APPROVALS,
  evaluateApprovalRules,
  loadApprovalRules,
  parseApprovalRules,
  REQUEST_KINDS,
} from './approval-rules.ts';
export type { ApprovalRule, RuleInput, RuleOutcome } from './approval-rules.ts';
export { describeTarget, EXECUTABLE_KINDS, KIND_LABELS, resolveTarget } from './request-kinds.ts';
export { formTarget } from './restore-forms.ts';
export type { RestoreChoices, SqlServerChoice, VmChoice } from './restore-forms.ts';
export { loadRoleMapping, parseRoleMapping, rolesFromClaims } from './roles.ts';
export { FROM_ENTRA_ID, syncRolesFromClaims } from './role-sync.ts';
export { recordConfiguration } from './configuration-record.ts';
export type { ConfigurationFile } from './configuration-record.ts';
export type { RoleChanges, SignedInPerson } from './role-sync.ts';
export type { RoleMapping } from './roles.ts';
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
