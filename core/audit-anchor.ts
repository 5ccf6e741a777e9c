/**
 * Anchors: the audit chain's head ({seq, hash, at}) copied to write-once
 * storage in the repository container, so that rewriting the database (even
 * by someone who can recompute every hash) is detected by comparing the chain
 * with the anchors.
 *
 * Each anchor is a blob `audit-anchors/<seq>-<hash>.json`, the seq padded with
 * zeros to 20 digits so that names sort in chain order. It is written with
 * If-None-Match: * (create only, never overwritten) and, where the container
 * supports version-level immutability, with an unlocked time-based retention
 * policy. Storage without that support (Azurite) gets the create-only blob.
 * The anchor's content is in its name; a reader needs no download.
 */
import { BlobServiceClient, RestError, type ContainerClient } from '@azure/storage-blob';
import type { AuditAnchor } from './audit-verify.ts';
import type { Db } from './db/database.ts';
import type { Logger } from './log.ts';

export const ANCHOR_PREFIX = 'audit-anchors/';

export interface AnchorStore {
  /** Connection string of the repository's storage account. */
  connectionString: string;
  /** The repository container. */
  container: string;
  /** Days an immutability policy keeps an anchor, where the container supports one. */
  retentionDays?: number;
}

export interface WrittenAnchor extends AuditAnchor {
  blobName: string;
  /** False when an anchor of this head already existed. */
  created: boolean;
  /** True when the blob carries an immutability policy. */
  immutable: boolean;
}

/** The blob name of an anchor. */
export function anchorBlobName(seq: string, hash: string): string {
  return `${ANCHOR_PREFIX}${seq.padStart(20, '0')}-${hash}.json`;
}

function containerOf(store: AnchorStore): ContainerClient {
  return BlobServiceClient.fromConnectionString(store.connectionString).getContainerClient(
    store.container,
  );
}

/** Writes the chain's current head as an anchor; undefined when the log is empty. */
export async function anchorAuditHead(
  db: Db,
  store: AnchorStore,
  log?: Logger,
): Promise<WrittenAnchor | undefined> {
  const head = await db
    .selectFrom('audit_log')
    .select(['seq', 'hash'])
    .orderBy('seq', 'desc')
    .limit(1)
    .executeTakeFirst();
  if (!head) return undefined;

  const anchor: AuditAnchor = {
    seq: String(head.seq),
    hash: head.hash,
    at: new Date().toISOString(),
  };
  const container = containerOf(store);
  await container.createIfNotExists();
  const blobName = anchorBlobName(anchor.seq, anchor.hash);
  const blob = container.getBlockBlobClient(blobName);
  const body = `${JSON.stringify(anchor)}\n`;
  const base = {
    conditions: { ifNoneMatch: '*' },
    blobHTTPHeaders: { blobContentType: 'application/json' },
  };
  const retentionDays = store.retentionDays ?? 2557;

  try {
    await blob.upload(body, Buffer.byteLength(body), {
      ...base,
      immutabilityPolicy: {
        expiriesOn: new Date(Date.now() + retentionDays * 86_400_000),
        policyMode: 'Unlocked',
      },
    });
    log?.info({ seq: anchor.seq, blobName, immutable: true }, 'audit_anchor_written');
    return { ...anchor, blobName, created: true, immutable: true };
  } catch (error) {
    if (alreadyExists(error)) return { ...anchor, blobName, created: false, immutable: false };
    log?.info(
      { seq: anchor.seq, status: (error as RestError).statusCode, code: (error as RestError).code },
      'audit_anchor_immutability_unsupported',
    );
  }

  try {
    await blob.upload(body, Buffer.byteLength(body), base);
  } catch (error) {
    if (alreadyExists(error)) return { ...anchor, blobName, created: false, immutable: false };
    throw error;
  }
  log?.info({ seq: anchor.seq, blobName, immutable: false }, 'audit_anchor_written');
  return { ...anchor, blobName, created: true, immutable: false };
}

function alreadyExists(error: unknown): boolean {
  const status = (error as RestError).statusCode;
  return status === 409 && (error as RestError).code === 'BlobAlreadyExists'
    ? true
    : status === 412;
}

/** Every anchor in the repository container, in chain order. */
export async function listAuditAnchors(store: AnchorStore): Promise<AuditAnchor[]> {
  const container = containerOf(store);
  if (!(await container.exists())) return [];

  const anchors: AuditAnchor[] = [];
  for await (const item of container.listBlobsFlat({ prefix: ANCHOR_PREFIX })) {
    const match = /^audit-anchors\/(\d{1,20})-([0-9a-f]{64})\.json$/.exec(item.name);
    if (!match) continue;
    anchors.push({
      seq: BigInt(match[1]!).toString(),
      hash: match[2]!,
      at: (item.properties.createdOn ?? item.properties.lastModified).toISOString(),
    });
  }
  return anchors;
}

/**
 * Anchors the head every `minutes` while the service runs (and once at start),
 * skipping when the head has not moved. Returns a function that stops it.
 */
export function startAuditAnchoring(options: {
  db: Db;
  store: AnchorStore;
  minutes: number;
  log: Logger;
}): () => void {
  let lastSeq: string | undefined;
  let running = false;
  const tick = async () => {
    if (running) return;
    running = true;
    try {
      const head = await options.db
        .selectFrom('audit_log')
        .select('seq')
        .orderBy('seq', 'desc')
        .limit(1)
        .executeTakeFirst();
      if (!head || String(head.seq) === lastSeq) return;
      const anchor = await anchorAuditHead(options.db, options.store, options.log);
      lastSeq = anchor?.seq;
    } catch (error) {
      options.log.error({ err: error }, 'audit_anchor_failed');
    } finally {
      running = false;
    }
  };
  void tick();
  const timer = setInterval(() => void tick(), options.minutes * 60_000);
  timer.unref();
  return () => clearInterval(timer);
}
