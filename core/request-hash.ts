/**
 * The content hash of a written request. A decision records the hash of the
 * request it was made on; the approval workflow and the engine both recompute
 * it, so editing any part of a request voids the approvals given before.
 */
import { createHash } from 'node:crypto';
import { canonicalJson } from './canonical-json.ts';

/** The parts of a request that an approver approves. */
export interface RequestContent {
  id: string;
  customerId: string;
  kind: string;
  target: unknown;
  reason: string;
  requesterObjectId: string;
  requesterTenantId: string;
  /** Hashed only when present, so requests written before tickets had a column keep their hash. */
  ticket?: string | null;
}

export function requestContentHash(content: RequestContent): string {
  const { ticket, ...rest } = content;
  const hashed = ticket ? { ...rest, ticket } : rest;
  return createHash('sha256').update(canonicalJson(hashed)).digest('hex');
}
