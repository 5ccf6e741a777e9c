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
}

export function requestContentHash(content: RequestContent): string {
  return createHash('sha256').update(canonicalJson(content)).digest('hex');
}
