/**
 * A BACPAC as repository blocks: the staging blob is read in BLOCK_SIZE
 * pieces that go through the same PackWriter as disk data (deduplicated,
 * compressed, sealed), and is assembled again from the manifest's block list.
 * An unchanged database exports to nearly the same bytes, so a second backup
 * finds most of its blocks stored already.
 */
import { createHash } from 'node:crypto';
import type { BlobClient } from '@azure/storage-blob';
import type { ManifestFile } from './repository/manifest.ts';
import type { PackWriter } from './repository/packs.ts';
import { BLOCK_SIZE, type Repository } from './repository/repository.ts';

/** Blocks downloaded at once. */
const READ_PARALLELISM = 4;
const ZEROS = Buffer.alloc(BLOCK_SIZE);

export interface StoredFile extends ManifestFile {
  /** Bytes the repository gained for this file. */
  storedBytes: number;
}

/** Reads a blob into the repository block by block; `onProgress` hears the bytes read so far. */
export async function storeBlob(
  blob: BlobClient,
  name: string,
  writer: PackWriter,
  onProgress?: (readBytes: number) => void,
): Promise<StoredFile> {
  const sizeBytes = (await blob.getProperties()).contentLength ?? 0;
  const count = Math.ceil(sizeBytes / BLOCK_SIZE);
  const hash = createHash('sha256');
  const blocks: (string | null)[] = [];
  let storedBytes = 0;
  let readBytes = 0;

  for (let first = 0; first < count; first += READ_PARALLELISM) {
    const indices = Array.from(
      { length: Math.min(READ_PARALLELISM, count - first) },
      (_, i) => first + i,
    );
    const datas = await Promise.all(
      indices.map((index) => {
        const offset = index * BLOCK_SIZE;
        const length = Math.min(BLOCK_SIZE, sizeBytes - offset);
        return blob.downloadToBuffer(Buffer.alloc(length), offset, length);
      }),
    );

    // Hashing and storing go in file order.
    for (const data of datas) {
      readBytes += data.length;
      hash.update(data);
      if (data.equals(ZEROS.subarray(0, data.length))) {
        blocks.push(null);
        continue;
      }
      const stored = await writer.add(data);
      blocks.push(stored.id);
      storedBytes += stored.storedBytes;
    }
    onProgress?.(readBytes);
  }
  return { name, sizeBytes, sha256: hash.digest('hex'), blocks, storedBytes };
}

/** The stored file's bytes in order, one block at a time, checked against its SHA-256 at the end. */
export async function* readStoredFile(
  repository: Repository,
  file: ManifestFile,
  blockSize = BLOCK_SIZE,
): AsyncGenerator<Buffer> {
  const hash = createHash('sha256');
  for (const [index, id] of file.blocks.entries()) {
    const length = Math.min(blockSize, file.sizeBytes - index * blockSize);
    const data = id ? await repository.readBlock(id) : Buffer.alloc(length);
    hash.update(data);
    yield data;
  }
  const sha256 = hash.digest('hex');
  if (sha256 !== file.sha256)
    throw new Error(
      `${file.name} read back from the repository has SHA-256 ${sha256}, not the ${file.sha256} it was stored with; run "acba repository check --read-data".`,
    );
}
