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

  /** Yields the bytes [start, end] (inclusive) as consecutive chunks, at most one block each. */
  async *chunks(start: number, end: number): AsyncGenerator<Buffer> {
    let position = start;
    while (position <= end) {
      const index = Math.floor(position / this.blockSize);
      const blockStart = index * this.blockSize;
      const blockLength = Math.min(this.blockSize, this.size - blockStart);
      const from = position - blockStart;
      const to = Math.min(blockLength, end - blockStart + 1);
      const block = await this.block(index, blockLength);
      yield block.subarray(from, to);
      position = blockStart + to;
    }
  }

  /** Reads [offset, offset + length) into one buffer. */
  async read(offset: number, length: number): Promise<Buffer> {
    const parts: Buffer[] = [];
    for await (const chunk of this.chunks(offset, offset + length - 1)) parts.push(chunk);
    return Buffer.concat(parts);
  }

  private async block(index: number, length: number): Promise<Buffer> {
    const id = this.disk.blocks[index];
    if (id === null || id === undefined) return Buffer.alloc(length);

    let pending = this.cache.get(id);
    if (!pending) {
      pending = this.repository.readBlock(id);
      this.cache.set(id, pending);
      // A failed read must not stay cached.
      pending.catch(() => this.cache.delete(id));
    }
    return pending;
  }
}
