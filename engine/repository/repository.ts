/**
 * The backup repository: one Azure Blob container in the provider's storage
 * account. Everything in it is encrypted; the database only indexes it.
 *
 * Format, version 1
 *
 * - Sealed object. Every stored object is
 *     "ACB1" | type (1 byte) | compression (1 byte: 0 none, 1 zstd) | nonce (12) | ciphertext | GCM tag (16)
 *   encrypted with AES-256-GCM. The associated data is the 18-byte header
 *   followed by the object's binding (its block id or its blob path), so an
 *   object cannot be altered, retyped or moved to another name unnoticed.
 *
 * - Key file `keys/<keyId>`: a sealed object of type Key under a key-encryption
 *   key (the service's own KEK, or one wrapped by a Key Vault key; see
 *   ./key-wrapping.ts), bound to its own path, holding JSON
 *   `{ version, keyId, createdAt, dataKey, idKey }` (keys base64). The data
 *   key seals everything else; the id key makes block ids. When several key
 *   files exist (two workers initialized at once), the oldest-named one wins
 *   and every worker uses it.
 *
 * - Block: up to 1 MiB of a disk, aligned to 1 MiB. Its id is
 *   HMAC-SHA256(idKey, plaintext) in hex, so ids reveal nothing about content
 *   to anyone without the key, and equal blocks share one id (deduplication).
 *   Stored as a sealed object of type Block bound to its id, zstd-compressed
 *   when that makes it smaller. All-zero blocks are never stored.
 *
 * - Pack `packs/<hh>/<packId>` (packId random, 64 hex; hh its first two
 *   characters): sealed blocks back to back, then a sealed PackIndex object
 *   (JSON array of { id, offset, length, rawLength }) bound to the pack path,
 *   then the index's length as a 4-byte big-endian integer. The database table
 *   repository_blocks holds the same index for reads and dedup.
 *
 * - Manifest `restore-points/<customerId>/<restorePointId>`: a sealed, zstd-compressed
 *   object of type Manifest holding the restore point as JSON (see ./manifest.ts).
 *
 * - Delivery `deliveries/<deliveryId>`: a recovered file, sealed (type Delivery).
 */
import type { ContainerClient } from '@azure/storage-blob';
import { BlobServiceClient } from '@azure/storage-blob';
import { compress, decompress } from 'zstd-napi';
import { randomBytes } from 'node:crypto';
import type { Selectable } from 'kysely';
import type { Db } from '../../core/db/database.ts';
import type { RepositoryBlocksTable } from '../../core/db/schema.ts';
import { notFound, unavailable } from '../../core/errors.ts';
import { blockId, Compression, IntegrityError, newKey, ObjectType, open, seal } from './crypto.ts';
import { localKeyWrapping, type KeyWrapping } from './key-wrapping.ts';
import { PackWriter } from './packs.ts';

export const BLOCK_SIZE = 1024 * 1024;

export interface RepositoryOptions {
  connectionString: string;
  container: string;
  /** Key-encryption key, 32 bytes; used when keyWrapping is not given. */
  kek?: Buffer;
  /** How the key file is wrapped (a Key Vault key); the local `kek` by default. */
  keyWrapping?: KeyWrapping;
  db: Db;
  /** Pack size target in bytes (tests use small packs). */
  packTargetBytes?: number;
  /** Give restore points' objects immutability policies (see ./immutability.ts); off by default. */
  immutable?: boolean;
}

interface KeyFile {
  version: 1;
  keyId: string;
  createdAt: string;
  dataKey: string;
  idKey: string;
}

export class Repository {
  private constructor(
    readonly container: ContainerClient,
    private readonly db: Db,
    readonly keyId: string,
    private readonly dataKey: Buffer,
    private readonly idKey: Buffer,
    private readonly packTargetBytes: number | undefined,
    /** Whether restore points' objects get immutability policies (see ./immutability.ts). */
    readonly immutable: boolean,
  ) {}

  /** Opens the repository, creating its container and key file on first use. */
  static async open(options: RepositoryOptions): Promise<Repository> {
    const wrapping = options.keyWrapping ?? localKeyWrapping(options.kek ?? Buffer.alloc(0));
    const container = BlobServiceClient.fromConnectionString(
      options.connectionString,
    ).getContainerClient(options.container);
    try {
      // Bounded, so that a dead storage account fails health checks and jobs in seconds, not minutes.
      await container.createIfNotExists({ abortSignal: AbortSignal.timeout(15_000) });
    } catch (error) {
      throw unavailable(
        `The repository container ${options.container} cannot be opened (${(error as Error).message}). Check the container name, the repository connection string and that the storage account answers.`,
      );
    }

    let keyFile = await readKeyFile(container, wrapping);
    if (!keyFile) {
      await writeKeyFile(container, wrapping);
      keyFile = await readKeyFile(container, wrapping);
    }
    if (!keyFile) throw new Error('The repository key file vanished right after it was written.');

    return new Repository(
      container,
      options.db,
      keyFile.keyId,
      Buffer.from(keyFile.dataKey, 'base64'),
      Buffer.from(keyFile.idKey, 'base64'),
      options.packTargetBytes,
      options.immutable ?? false,
    );
  }

  /** A writer for one backup's blocks; call flush() before referencing its blocks. */
  newWriter(): PackWriter {
    return new PackWriter({
      container: this.container,
      db: this.db,
      dataKey: this.dataKey,
      idKey: this.idKey,
      targetBytes: this.packTargetBytes,
    });
  }

  /** Reads, authenticates, decompresses and checks one block. */
  async readBlock(id: string): Promise<Buffer> {
    return (await this.readBlocks([id])).get(id)!;
  }

  /**
   * Reads several blocks, each authenticated, decompressed and checked. Blocks
   * lying next to each other in a pack come down in one ranged read, so a
   * long sequential read (a disk restore) makes a few large requests.
   */
  async readBlocks(ids: string[]): Promise<Map<string, Buffer>> {
    const wanted = [...new Set(ids)];
    const rows =
      wanted.length === 0
        ? []
        : await this.db
            .selectFrom('repository_blocks')
            .selectAll()
            .where('id', 'in', wanted)
            .execute();
    const missing = wanted.find((id) => !rows.some((row) => row.id === id));
    if (missing)
      throw notFound(
        `Block ${missing} is missing from the repository index; the restore point that references it is damaged.`,
      );

    const blocks = new Map<string, Buffer>();
    await Promise.all(
      adjacentRuns(rows).map(async (run) => {
        const first = run[0]!;
        const start = Number(first.offset);
        const last = run.at(-1)!;
        const span = await this.container
          .getBlobClient(first.pack_path)
          .downloadToBuffer(start, Number(last.offset) + last.length - start);
        for (const row of run) {
          const at = Number(row.offset) - start;
          blocks.set(row.id, this.openBlock(row, span.subarray(at, at + row.length)));
        }
      }),
    );
    return blocks;
  }

  private openBlock(row: RepositoryBlock, sealed: Buffer): Buffer {
    const { compression, payload } = open(this.dataKey, ObjectType.Block, sealed, row.id);
    const plaintext = compression === Compression.Zstd ? decompress(payload) : payload;
    if (plaintext.length !== row.raw_length || blockId(this.idKey, plaintext) !== row.id) {
      throw new IntegrityError(`block ${row.id} in ${row.pack_path} does not match its id`);
    }
    return plaintext;
  }

  /** Stores a whole object (manifest, delivery) sealed at `path`; returns its stored size. */
  async putObject(path: string, type: ObjectType, plaintext: Buffer): Promise<number> {
    const compressed = compress(plaintext);
    const useZstd = compressed.length < plaintext.length;
    const sealed = seal(
      this.dataKey,
      type,
      useZstd ? Compression.Zstd : Compression.None,
      useZstd ? compressed : plaintext,
      path,
    );
    await this.container.getBlockBlobClient(path).uploadData(sealed);
    return sealed.length;
  }

  async getObject(path: string, type: ObjectType): Promise<Buffer> {
    let sealed: Buffer;
    try {
      sealed = await this.container.getBlobClient(path).downloadToBuffer();
    } catch (error) {
      if ((error as { statusCode?: number }).statusCode === 404)
        throw notFound(`${path} is not in the repository.`);
      throw error;
    }
    const { compression, payload } = open(this.dataKey, type, sealed, path);
    return compression === Compression.Zstd ? decompress(payload) : payload;
  }

  async deleteObject(path: string): Promise<void> {
    await this.container.getBlobClient(path).deleteIfExists();
  }

  /** Throws unavailable when the repository's storage does not answer. */
  async health(): Promise<void> {
    try {
      await this.container.getProperties({ abortSignal: AbortSignal.timeout(5000) });
    } catch (error) {
      throw unavailable(
        `repository ${this.container.containerName} does not answer: ${(error as Error).message}`,
      );
    }
  }
}

async function readKeyFile(
  container: ContainerClient,
  wrapping: KeyWrapping,
): Promise<KeyFile | undefined> {
  const names: string[] = [];
  for await (const blob of container.listBlobsFlat({ prefix: 'keys/' })) names.push(blob.name);
  const first = names.sort()[0];
  if (!first) return undefined;

  const stored = await container.getBlobClient(first).downloadToBuffer();
  const where = `${first} in container ${container.containerName}`;
  const payload = await wrapping.open(first, stored, where);
  return JSON.parse(payload.toString('utf8')) as KeyFile;
}

async function writeKeyFile(container: ContainerClient, wrapping: KeyWrapping): Promise<void> {
  // Time-ordered names make "the oldest key file wins" a plain sort.
  const keyId = `${Date.now().toString(36).padStart(10, '0')}-${randomBytes(8).toString('hex')}`;
  const path = `keys/${keyId}`;
  const file: KeyFile = {
    version: 1,
    keyId,
    createdAt: new Date().toISOString(),
    dataKey: newKey().toString('base64'),
    idKey: newKey().toString('base64'),
  };
  const sealed = await wrapping.seal(path, Buffer.from(JSON.stringify(file)));
  await container.getBlockBlobClient(path).uploadData(sealed, { conditions: { ifNoneMatch: '*' } });
}

type RepositoryBlock = Selectable<RepositoryBlocksTable>;

/** Largest ranged read that joins neighbouring blocks of a pack. */
const MAX_RUN_BYTES = 32 * 1024 * 1024;

/** Groups block rows into runs that sit back to back in one pack, in pack order. */
function adjacentRuns(rows: RepositoryBlock[]): RepositoryBlock[][] {
  const sorted = [...rows].sort(
    (a, b) => a.pack_path.localeCompare(b.pack_path) || Number(a.offset) - Number(b.offset),
  );
  const runs: RepositoryBlock[][] = [];
  for (const row of sorted) {
    const run = runs.at(-1);
    const previous = run?.at(-1);
    const adjacent =
      run &&
      previous &&
      previous.pack_path === row.pack_path &&
      Number(previous.offset) + previous.length === Number(row.offset) &&
      Number(row.offset) + row.length - Number(run[0]!.offset) <= MAX_RUN_BYTES;
    if (adjacent) run.push(row);
    else runs.push([row]);
  }
  return runs;
}
