/**
 * Verifying the audit chain, on the database or on an export file.
 *
 * Entries are checked in sequence order: each must name the hash of the entry
 * before it, and its own hash must match its content. At the first broken link
 * the verifier says what is wrong there, using where the missing predecessor
 * went (looked up by hash, which is unique):
 * - altered: the entry's content no longer matches its hash;
 * - removed: the entry's predecessor is nowhere, and sequence numbers are missing;
 * - inserted: the entry before it does not belong, the entry follows the one before that;
 * - reordered: the predecessor exists but stands elsewhere, or sequence numbers go backwards;
 * - unlinked: the predecessor is gone with no gap (altered and re-hashed, or renumbered).
 * Anchors (chain heads kept in write-once storage, see audit-anchor.ts) are
 * checked afterwards: an anchored entry with another hash, or a chain shorter
 * than an anchor, means the log was rewritten.
 */
import { auditEntryHash, GENESIS_HASH } from './audit.ts';
import type { Db } from './db/database.ts';
import type { AuditEntry } from './db/schema.ts';

/** An entry as stored or exported: every field the hash covers, plus seq and the hashes. */
export interface ChainEntry {
  seq: unknown;
  at: Date | string;
  actor_object_id: string;
  actor_tenant_id: string;
  actor_name: string;
  actor_role: string;
  channel: string;
  action: string;
  resource: string;
  outcome: string;
  details: unknown;
  prev_hash: string;
  hash: string;
}

export type ChainBreakKind =
  'altered' | 'removed' | 'inserted' | 'reordered' | 'unlinked' | 'rewritten';

export interface ChainBreak {
  /** The entry where the chain breaks (for 'inserted', the entry that does not belong). */
  seq: string;
  kind: ChainBreakKind;
  problem: string;
}

export interface ChainVerification {
  ok: boolean;
  checked: number;
  /** The last entry checked, when there is one. */
  head?: { seq: string; hash: string };
  /** How many anchors from write-once storage were compared with the chain. */
  anchorsChecked?: number;
  /** The first entry where the chain breaks, and what is wrong there. */
  firstBroken?: ChainBreak;
}

/** A chain head kept in write-once storage. */
export interface AuditAnchor {
  seq: string;
  hash: string;
  at: string;
}

/** Finds the entry holding a hash; undefined when no entry does. */
export type LocateHash = (hash: string) => Promise<string | undefined> | string | undefined;

interface Link {
  seq: string;
  hash: string;
}

/** Checks entries one at a time, in the order they are stored. */
export class ChainVerifier {
  checked = 0;
  private prev?: Link;
  private beforePrev?: Link;

  constructor(
    private readonly locate: LocateHash,
    private readonly startHash = GENESIS_HASH,
  ) {}

  get head(): Link | undefined {
    return this.prev;
  }

  /** Checks the next entry; returns the break when the chain breaks here. */
  async add(entry: ChainEntry): Promise<ChainBreak | undefined> {
    const seq = String(entry.seq);
    const prev = this.prev;
    if (prev && BigInt(seq) <= BigInt(prev.seq)) {
      return {
        seq,
        kind: 'reordered',
        problem: `entry ${seq} comes after entry ${prev.seq}: the entries were reordered`,
      };
    }

    const expectedPrev = prev?.hash ?? this.startHash;
    if (entry.prev_hash !== expectedPrev) return this.explainUnlinked(seq, entry.prev_hash);

    if (entryHash(entry) !== entry.hash) {
      return {
        seq,
        kind: 'altered',
        problem: `entry ${seq} was altered: its content no longer matches its hash`,
      };
    }

    this.beforePrev = prev;
    this.prev = { seq, hash: entry.hash };
    this.checked += 1;
    return undefined;
  }

  private async explainUnlinked(seq: string, prevHash: string): Promise<ChainBreak> {
    const prev = this.prev;
    const owner = await this.locate(prevHash);
    const after = prev ? `entry ${prev.seq}` : 'the start of the chain';

    if (owner !== undefined && prev && owner === this.beforePrev?.seq) {
      return {
        seq: prev.seq,
        kind: 'inserted',
        problem: `entry ${prev.seq} was inserted: entry ${seq} follows entry ${owner} directly`,
      };
    }
    if (owner !== undefined) {
      return {
        seq,
        kind: 'reordered',
        problem: `entry ${seq} should follow entry ${owner}, not ${after}: the entries were reordered`,
      };
    }

    const firstMissing = prev ? BigInt(prev.seq) + 1n : 1n;
    const lastMissing = BigInt(seq) - 1n;
    if (lastMissing >= firstMissing) {
      const missing =
        lastMissing === firstMissing
          ? `entry ${firstMissing} was`
          : `entries ${firstMissing} to ${lastMissing} were`;
      return {
        seq,
        kind: 'removed',
        problem: `${missing} removed: entry ${seq} follows an entry that is no longer there`,
      };
    }
    return {
      seq,
      kind: 'unlinked',
      problem: `entry ${seq} does not follow ${after}: ${after} was altered and re-hashed, or entries were removed and renumbered`,
    };
  }
}

/** The hash an entry's content should carry. */
export function entryHash(entry: ChainEntry): string {
  return auditEntryHash({
    prevHash: entry.prev_hash,
    at: entry.at,
    actorObjectId: entry.actor_object_id,
    actorTenantId: entry.actor_tenant_id,
    actorName: entry.actor_name,
    actorRole: entry.actor_role,
    channel: entry.channel,
    action: entry.action,
    resource: entry.resource,
    outcome: entry.outcome,
    details: entry.details,
  });
}

/** Verifies entries held in memory, e.g. an export file. */
export async function verifyEntries(
  entries: ChainEntry[],
  anchors: AuditAnchor[] = [],
  startHash = GENESIS_HASH,
): Promise<ChainVerification> {
  const bySeq = new Map<string, string>();
  const byHash = new Map<string, string>();
  for (const entry of entries) {
    bySeq.set(String(entry.seq), entry.hash);
    byHash.set(entry.hash, String(entry.seq));
  }

  const verifier = new ChainVerifier((hash) => byHash.get(hash), startHash);
  for (const entry of entries) {
    const broken = await verifier.add(entry);
    if (broken) return { ok: false, checked: verifier.checked, firstBroken: broken };
  }
  return finish(verifier, anchors, (seq) => bySeq.get(seq));
}

/** Verifies the whole chain in the database, reading it in pages, then compares it with the anchors. */
export async function verifyAuditChain(
  db: Db,
  options: { anchors?: AuditAnchor[]; pageSize?: number } = {},
): Promise<ChainVerification> {
  const pageSize = options.pageSize ?? 5000;
  const locate = async (hash: string) => {
    const row = await db
      .selectFrom('audit_log')
      .select('seq')
      .where('hash', '=', hash)
      .executeTakeFirst();
    return row ? String(row.seq) : undefined;
  };
  const verifier = new ChainVerifier(locate);

  const readPage = (after: string) =>
    db
      .selectFrom('audit_log')
      .selectAll()
      .where('seq', '>', after as never)
      .orderBy('seq', 'asc')
      .limit(pageSize)
      .execute() as Promise<AuditEntry[]>;

  // The next page is read while this one is hashed, so the database and the hashing overlap.
  let next = readPage('0');
  for (;;) {
    const page = await next;
    if (page.length === 0) break;
    next = page.length < pageSize ? Promise.resolve([]) : readPage(String(page.at(-1)!.seq));

    for (const entry of page) {
      const broken = await verifier.add(entry);
      if (broken) {
        await next.catch(() => undefined);
        return { ok: false, checked: verifier.checked, firstBroken: broken };
      }
    }
  }

  return finish(verifier, options.anchors ?? [], async (seq) => {
    const row = await db
      .selectFrom('audit_log')
      .select('hash')
      .where('seq', '=', seq as never)
      .executeTakeFirst();
    return row?.hash;
  });
}

async function finish(
  verifier: ChainVerifier,
  anchors: AuditAnchor[],
  hashAt: (seq: string) => Promise<string | undefined> | string | undefined,
): Promise<ChainVerification> {
  const head = verifier.head;
  const result: ChainVerification = { ok: true, checked: verifier.checked, head };
  if (anchors.length === 0) return result;

  const sorted = [...anchors].sort((a, b) => (BigInt(a.seq) < BigInt(b.seq) ? -1 : 1));
  for (const anchor of sorted) {
    const broken = await checkAnchor(anchor, head, hashAt);
    if (broken)
      return { ...result, ok: false, anchorsChecked: sorted.indexOf(anchor), firstBroken: broken };
  }
  return { ...result, anchorsChecked: sorted.length };
}

async function checkAnchor(
  anchor: AuditAnchor,
  head: Link | undefined,
  hashAt: (seq: string) => Promise<string | undefined> | string | undefined,
): Promise<ChainBreak | undefined> {
  const where = `the anchor written at ${anchor.at}`;
  if (!head || BigInt(head.seq) < BigInt(anchor.seq)) {
    return {
      seq: anchor.seq,
      kind: 'rewritten',
      problem: `the chain ends at entry ${head?.seq ?? 0} but ${where} holds entry ${anchor.seq}: the audit log was truncated or rewritten`,
    };
  }
  const hash = await hashAt(anchor.seq);
  if (hash === anchor.hash) return undefined;
  return {
    seq: anchor.seq,
    kind: 'rewritten',
    problem:
      hash === undefined
        ? `entry ${anchor.seq}, recorded in ${where}, is missing: the audit log was rewritten`
        : `entry ${anchor.seq} has another hash than ${where}: the audit log was rewritten`,
  };
}
