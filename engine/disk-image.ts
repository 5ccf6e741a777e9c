/**
 * A restore point's disk as a byte array: reads any range by assembling the
 * blocks it covers, decrypted on demand. Zero blocks cost nothing; recently
 * read blocks stay in a small cache shared by all disks of the engine, since
 * libguestfs reads the same metadata blocks over and over.
 */
import type { ManifestDisk } from './repository/manifest.ts';
import type { Repository } from './repository/repository.ts';

/** A least-recently-used map with a fixed number of entries. */
export class LruCache<K, V> {
  private readonly map = new Map<K, V>();
  constructor(private readonly capacity: number) {}

  get(key: K): V | undefined {
    const value = this.map.get(key);
    if (value !== undefined) {
      this.map.delete(key);
      this.map.set(key, value);
    }
    return value;
  }

  delete(key: K): void {
    this.map.delete(key);
  }

  set(key: K, value: V): void {
    this.map.delete(key);
    this.map.set(key, value);
    if (this.map.size > this.capacity) this.map.delete(this.map.keys().next().value as K);
  }
}

/** Blocks loaded together by a long read; the next batch loads while the reader takes this one. */
const BATCH_BLOCKS = 16;

let zeroBlock = Buffer.alloc(0);
/** A shared all-zero buffer for blocks never written; callers only read it. */
function zeros(length: number): Buffer {
  if (zeroBlock.length < length) zeroBlock = Buffer.alloc(length);
  return zeroBlock.subarray(0, length);
}

export class DiskImage {
  constructor(
    private readonly repository: Repository,
    readonly disk: ManifestDisk,
    private readonly blockSize: number,
    private readonly cache: LruCache<string, Promise<Buffer>>,
  ) {}

  get size(): number {
    return this.disk.sizeBytes;
  }

  /**
   * Yields the bytes [start, end] (inclusive) as consecutive chunks, at most one
   * block each. A long read (a whole-disk restore) loads blocks in batches, one
   * batch ahead of the reader, so the repository stays busy while the reader
   * writes and neighbouring blocks come down in one request.
   */
  async *chunks(start: number, end: number): AsyncGenerator<Buffer> {
    const first = Math.floor(start / this.blockSize);
    const last = Math.floor(end / this.blockSize);
    const batches = new Map<number, Promise<Map<string, Buffer>>>();
    const load = (from: number) => {
      if (from > last || batches.has(from)) return;
      const pending = this.loadBatch(from, Math.min(from + BATCH_BLOCKS - 1, last));
      // A batch the reader never reaches (it stopped early) must not surface as unhandled.
      pending.catch(() => {});
      batches.set(from, pending);
    };

    for (let index = first; index <= last; index++) {
      const batch = first + Math.floor((index - first) / BATCH_BLOCKS) * BATCH_BLOCKS;
      load(batch);
      load(batch + BATCH_BLOCKS);
      const loaded = await batches.get(batch)!;
      if (index === batch + BATCH_BLOCKS - 1) batches.delete(batch);

      const blockStart = index * this.blockSize;
      const blockLength = Math.min(this.blockSize, this.size - blockStart);
      const id = this.disk.blocks[index];
      const block = id ? loaded.get(id)! : zeros(blockLength);
      const from = index === first ? start - blockStart : 0;
      const to = index === last ? end - blockStart + 1 : block.length;
      yield block.subarray(from, to);
    }
  }

  /** Reads [offset, offset + length) into one buffer. */
  async read(offset: number, length: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const chunk of this.chunks(offset, offset + length - 1)) parts.push(chunk);
    return Buffer.concat(parts);
  }

  /** The blocks [from, to] hold, by id: cached ones from the cache, the others in one batched read. */
  private async loadBatch(from: number, to: number): Promise<Map<string, Buffer>> {
    const ids = new Set<string>();
    for (let index = from; index <= to; index++) {
      const id = this.disk.blocks[index];
      if (id) ids.add(id);
    }
    const loaded = new Map<string, Buffer>();
    const missing: string[] = [];
    for (const id of ids) {
      const cached = this.cache.get(id);
      if (cached) loaded.set(id, await cached);
      else missing.push(id);
    }
    if (missing.length === 0) return loaded;

    const read = this.repository.readBlocks(missing);
    for (const id of missing) {
      const one = read.then((blocks) => blocks.get(id)!);
      // A failed read must not stay cached.
      one.catch(() => this.cache.delete(id));
      this.cache.set(id, one);
    }
    for (const [id, block] of await read) loaded.set(id, block);
    return loaded;
  }
}
