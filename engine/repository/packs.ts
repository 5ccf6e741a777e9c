/**
 * Pack files: many sealed blocks written as one blob, so that a backup makes a
 * few large uploads instead of one per MiB. A pack ends with a sealed index of
 * its blocks and the index's length, so the database's block table can be
 * rebuilt from the packs alone.
 *
 * Blocks become known to the database (repository_blocks) only after the pack
 * holding them is uploaded: a block id in the table always points at data.
 */
import { randomBytes } from 'node:crypto';
import type { ContainerClient } from '@azure/storage-blob';
import { compress } from 'zstd-napi';
import type { Db } from '../../core/db/database.ts';
import { blockId, Compression, ObjectType, seal } from './crypto.ts';

/** About 16 MiB of sealed blocks per pack. */
export const DEFAULT_PACK_TARGET_BYTES = 16 * 1024 * 1024;
/** Packs uploading while the writer fills the next; add() waits when this many are in flight. */
const UPLOADS_IN_FLIGHT = 2;

export interface PackEntry {
  id: string;
  offset: number;
  length: number;
  rawLength: number;
}

export interface StoredBlock {
  /** The block's id. */
  id: string;
  /** Bytes this call added to the repository (0 when the block was already there). */
  storedBytes: number;
}

export interface PackWriterOptions {
  container: ContainerClient;
  db: Db;
  dataKey: Buffer;
  idKey: Buffer;
  targetBytes?: number;
}

export function packPath(packId: string): string {
  return `packs/${packId.slice(0, 2)}/${packId}`;
}

/**
 * Collects blocks into packs for one writer (one backup). A full pack uploads
 * in the background while the next fills, so reading the source and uploading
 * overlap; flush() waits for every upload and reports the first failure. Not
 * safe for concurrent add() calls; run one writer per backup.
 */
export class PackWriter {
  private chunks: Buffer[] = [];
  private entries: PackEntry[] = [];
  private size = 0;
  private readonly pending = new Set<string>();
  private readonly targetBytes: number;
  private readonly uploads = new Set<Promise<void>>();
  private failure: unknown;

  constructor(private readonly options: PackWriterOptions) {
    this.targetBytes = options.targetBytes ?? DEFAULT_PACK_TARGET_BYTES;
  }

  /** Stores a block unless the repository (or this writer's open pack) already has it. */
  async add(plaintext: Buffer): Promise<StoredBlock> {
    const id = blockId(this.options.idKey, plaintext);
    if (this.pending.has(id) || (await this.known(id))) return { id, storedBytes: 0 };

    const compressed = compress(plaintext);
    const useZstd = compressed.length < plaintext.length;
    const sealed = seal(
      this.options.dataKey,
      ObjectType.Block,
      useZstd ? Compression.Zstd : Compression.None,
      useZstd ? compressed : plaintext,
      id,
    );
    this.entries.push({
      id,
      offset: this.size,
      length: sealed.length,
      rawLength: plaintext.length,
    });
    this.chunks.push(sealed);
    this.size += sealed.length;
    this.pending.add(id);

    if (this.size >= this.targetBytes) await this.startUpload();
    return { id, storedBytes: sealed.length };
  }

  /** Uploads the open pack (if any), waits for every upload, and records their blocks. */
  async flush(): Promise<void> {
    await this.startUpload();
    await Promise.all(this.uploads);
    this.throwIfFailed();
  }

  /** Seals the open pack and uploads it in the background, first waiting for a free upload slot. */
  private async startUpload(): Promise<void> {
    this.throwIfFailed();
    if (this.entries.length === 0) return;
    const entries = this.entries;
    const chunks = this.chunks;
    this.entries = [];
    this.chunks = [];
    this.size = 0;

    while (this.uploads.size >= UPLOADS_IN_FLIGHT) await Promise.race(this.uploads);
    this.throwIfFailed();
    const upload = this.upload(entries, chunks).catch((error: unknown) => {
      this.failure ??= error;
    });
    this.uploads.add(upload);
    void upload.finally(() => this.uploads.delete(upload));
  }

  /**
   * Waits for the uploads already under way, ignoring their failures: a backup
   * that fails calls this so that what it did upload is indexed and the next
   * run deduplicates against it. The open pack is dropped.
   */
  async settle(): Promise<void> {
    await Promise.allSettled(this.uploads);
  }

  private throwIfFailed(): void {
    if (this.failure !== undefined) throw this.failure;
  }

  private async upload(entries: PackEntry[], chunks: Buffer[]): Promise<void> {
    const path = packPath(randomBytes(32).toString('hex'));
    const index = seal(
      this.options.dataKey,
      ObjectType.PackIndex,
      Compression.None,
      Buffer.from(JSON.stringify(entries)),
      path,
    );
    const trailer = Buffer.alloc(4);
    trailer.writeUInt32BE(index.length);
    const body = Buffer.concat([...chunks, index, trailer]);
    await this.options.container.getBlockBlobClient(path).uploadData(body);

    for (let i = 0; i < entries.length; i += 500) {
      const rows = entries.slice(i, i + 500).map((e) => ({
        id: e.id,
        pack_path: path,
        offset: e.offset,
        length: e.length,
        raw_length: e.rawLength,
      }));
      // Another writer may have stored the same block meanwhile; the first row wins, the copy here stays unreferenced.
      await this.options.db
        .insertInto('repository_blocks')
        .values(rows)
        .onConflict((oc) => oc.column('id').doNothing())
        .execute();
    }
    for (const e of entries) this.pending.delete(e.id);
  }

  private async known(id: string): Promise<boolean> {
    const row = await this.options.db
      .selectFrom('repository_blocks')
      .select('id')
      .where('id', '=', id)
      .executeTakeFirst();
    return row !== undefined;
  }
}
