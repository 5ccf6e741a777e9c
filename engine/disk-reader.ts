/**
 * Reading a disk snapshot into the repository, in 1 MiB blocks: all-zero
 * blocks are skipped, the rest deduplicated by the pack writer. The snapshot
 * is a page blob (`DiskSource`): a managed disk's snapshot behind its read
 * SAS, or a blob snapshot of an unmanaged disk's VHD, of which only the disk
 * data before the VHD footer is read (./vhd-snapshots.ts).
 *
 * A full read lists the snapshot's written page ranges and downloads only the
 * written bytes of each block. An incremental read is given the block list of
 * the backup that read the previous snapshot of the same disk and a way to
 * ask Azure which pages differ from that snapshot (written or cleared since);
 * it downloads only the changed pages onto the previous content of the blocks
 * they touch, and takes every other block id from the previous block list.
 * Both give the same block list for the same disk content. When the previous
 * snapshot cannot serve as a base (it is gone, Azure refuses the diff, the
 * disk changed size), the incremental read throws a `BaseUnusable` naming
 * why, and the caller reads in full.
 */
import { createHash } from 'node:crypto';
import {
  AnonymousCredential,
  PageBlobClient,
  type PageBlobGetPageRangesDiffResponse,
} from '@azure/storage-blob';
import type { Logger } from '../core/log.ts';
import type { PackWriter } from './repository/packs.ts';
import { BLOCK_SIZE, type Repository } from './repository/repository.ts';

/** Page ranges are listed this many bytes at a time, so huge sparse disks stay cheap. */
const PAGE_RANGE_WINDOW = 1024 * 1024 * 1024;
/** Blocks downloaded at once. */
const READ_PARALLELISM = 8;
const ZEROS = Buffer.alloc(BLOCK_SIZE);

export interface DiskReadResult {
  sizeBytes: number;
  /** SHA-256 of the whole disk image; only a full read sees every byte. */
  sha256?: string;
  blocks: (string | null)[];
  /** Bytes the repository gained for this disk. */
  storedBytes: number;
  /** Bytes downloaded from the snapshot. */
  readBytes: number;
  /** 'incremental' when only changed blocks were read. */
  mode: 'full' | 'incremental';
}

/** A disk snapshot to read: its page blob and how many of its first bytes are the disk. */
export interface DiskSource {
  blob: PageBlobClient;
  /** The disk's size: the whole blob for a managed disk, the blob less its VHD footer for an unmanaged one. */
  sizeBytes: number;
}

/** The pages of the snapshot being read that differ from the base's snapshot, within `count` bytes from `offset`. */
export type PageDiff = (
  offset: number,
  count: number,
) => Promise<Pick<PageBlobGetPageRangesDiffResponse, 'pageRange' | 'clearRange'>>;

/** What an incremental read builds on: the block list read from the previous snapshot, and the diff against it. */
export interface ReadBase {
  sizeBytes: number;
  blocks: (string | null)[];
  changedSince: PageDiff;
}

/** A managed disk or snapshot behind a read SAS URL; the whole page blob is the disk. */
export async function openSasDisk(sasUrl: string): Promise<DiskSource> {
  const blob = new PageBlobClient(sasUrl, new AnonymousCredential());
  return { blob, sizeBytes: (await blob.getProperties()).contentLength ?? 0 };
}

/** Why a previous snapshot could not serve as the base of an incremental read. */
export class BaseUnusable extends Error {
  constructor(
    readonly reason: string,
    message: string,
  ) {
    super(message);
    this.name = 'BaseUnusable';
  }
}

/** Reads a disk's written ranges into the repository, block by block. */
export async function readDisk(
  source: DiskSource,
  writer: PackWriter,
  log: Logger,
  onProgress?: (readBytes: number) => void,
): Promise<DiskReadResult> {
  const { blob: pageBlob, sizeBytes } = source;
  const spans = await writtenSpans(pageBlob, sizeBytes);

  const blockCount = Math.ceil(sizeBytes / BLOCK_SIZE);
  const hash = createHash('sha256');
  const blocks: (string | null)[] = new Array(blockCount).fill(null);
  let storedBytes = 0;
  let readBytes = 0;

  for (let first = 0; first < blockCount; first += READ_PARALLELISM) {
    const indices = Array.from(
      { length: Math.min(READ_PARALLELISM, blockCount - first) },
      (_, i) => first + i,
    );
    const datas = await Promise.all(
      indices.map((index) => readBlock(pageBlob, index, sizeBytes, spans.get(index))),
    );

    // Hashing and storing go in disk order.
    for (const [i, data] of datas.entries()) {
      const index = indices[i]!;
      const length = Math.min(BLOCK_SIZE, sizeBytes - index * BLOCK_SIZE);
      if (!data) {
        hash.update(ZEROS.subarray(0, length));
        continue;
      }
      readBytes += spans.get(index)![1] - spans.get(index)![0] + 1;
      hash.update(data);
      if (data.equals(ZEROS.subarray(0, data.length))) continue;
      const stored = await writer.add(data);
      blocks[index] = stored.id;
      storedBytes += stored.storedBytes;
    }
    onProgress?.(readBytes);
  }

  log.info(
    {
      sizeBytes,
      readBytes,
      storedBytes,
      blocks: blockCount,
      nonZero: blocks.filter((b) => b !== null).length,
    },
    'disk_read',
  );
  return { sizeBytes, sha256: hash.digest('hex'), blocks, storedBytes, readBytes, mode: 'full' };
}

/**
 * Reads only what changed since the base's snapshot: each touched block starts
 * as the base's block (from the repository), gets the changed pages
 * downloaded into it and the cleared pages zeroed. Throws BaseUnusable when
 * the base cannot serve.
 */
export async function readChangedBlocks(
  source: DiskSource,
  base: ReadBase,
  writer: PackWriter,
  repository: Pick<Repository, 'readBlock'>,
  log: Logger,
  onProgress?: (readBytes: number) => void,
): Promise<DiskReadResult> {
  const { blob: pageBlob, sizeBytes } = source;
  const blockCount = Math.ceil(sizeBytes / BLOCK_SIZE);
  if (sizeBytes !== base.sizeBytes || base.blocks.length !== blockCount)
    throw new BaseUnusable(
      'disk_resized',
      `The disk is ${sizeBytes} bytes now and was ${base.sizeBytes} bytes at the previous backup.`,
    );
  const changes = await changedRanges(base.changedSince, sizeBytes);
  const touched = [...changes.keys()].sort((a, b) => a - b);

  const blocks = [...base.blocks];
  let storedBytes = 0;
  let readBytes = 0;
  for (let first = 0; first < touched.length; first += READ_PARALLELISM) {
    const indices = touched.slice(first, first + READ_PARALLELISM);
    const datas = await Promise.all(
      indices.map(async (index) => {
        const length = Math.min(BLOCK_SIZE, sizeBytes - index * BLOCK_SIZE);
        const previous = blocks[index];
        const data = previous
          ? Buffer.from(await repository.readBlock(previous))
          : Buffer.alloc(length);
        for (const change of changes.get(index)!) {
          const [lo, hi] = change.span;
          if (change.cleared) data.fill(0, lo, hi + 1);
          else {
            await pageBlob.downloadToBuffer(
              data.subarray(lo, hi + 1),
              index * BLOCK_SIZE + lo,
              hi - lo + 1,
            );
            readBytes += hi - lo + 1;
          }
        }
        return data;
      }),
    );

    for (const [i, data] of datas.entries()) {
      const index = indices[i]!;
      if (data.equals(ZEROS.subarray(0, data.length))) {
        blocks[index] = null;
        continue;
      }
      const stored = await writer.add(data);
      blocks[index] = stored.id;
      storedBytes += stored.storedBytes;
    }
    onProgress?.(readBytes);
  }

  log.info(
    { sizeBytes, readBytes, storedBytes, blocks: blockCount, changedBlocks: touched.length },
    'disk_read_incremental',
  );
  return { sizeBytes, blocks, storedBytes, readBytes, mode: 'incremental' };
}

interface BlockChange {
  /** Block-relative first and last byte, inclusive. */
  span: [number, number];
  cleared: boolean;
}

/** The pages written or cleared since the previous snapshot, per block. */
async function changedRanges(
  changedSince: PageDiff,
  sizeBytes: number,
): Promise<Map<number, BlockChange[]>> {
  const changes = new Map<number, BlockChange[]>();
  for (let offset = 0; offset < sizeBytes; offset += PAGE_RANGE_WINDOW) {
    const count = Math.min(PAGE_RANGE_WINDOW, sizeBytes - offset);
    let response;
    try {
      response = await changedSince(offset, count);
    } catch (error) {
      if (error instanceof BaseUnusable) throw error;
      const status = (error as { statusCode?: number }).statusCode;
      throw new BaseUnusable(
        'diff_refused',
        `Azure refused the page-range diff against the previous snapshot (status ${status ?? 'unknown'}, ${(error as { code?: string }).code ?? 'no code'}).`,
      );
    }
    const ranges = [
      ...(response.pageRange ?? []).map((r) => ({ ...r, cleared: false })),
      ...(response.clearRange ?? []).map((r) => ({ ...r, cleared: true })),
    ];
    for (const range of ranges) {
      if (range.count === undefined) continue;
      // As in writtenSpans: the SDK's count is end - start, so the last byte is offset + count.
      const start = Math.max(range.offset, offset);
      const end = Math.min(range.offset + range.count, offset + count - 1);
      for (
        let index = Math.floor(start / BLOCK_SIZE);
        index <= Math.floor(end / BLOCK_SIZE);
        index++
      ) {
        const blockStart = index * BLOCK_SIZE;
        const lo = Math.max(start, blockStart) - blockStart;
        const hi = Math.min(end, blockStart + BLOCK_SIZE - 1) - blockStart;
        const list = changes.get(index) ?? [];
        list.push({ span: [lo, hi], cleared: range.cleared });
        changes.set(index, list);
      }
    }
  }
  return changes;
}

/** For each block holding written pages, the first and last written byte within it (block-relative, inclusive). */
async function writtenSpans(
  pageBlob: PageBlobClient,
  sizeBytes: number,
): Promise<Map<number, [number, number]>> {
  const spans = new Map<number, [number, number]>();
  for (let offset = 0; offset < sizeBytes; offset += PAGE_RANGE_WINDOW) {
    const count = Math.min(PAGE_RANGE_WINDOW, sizeBytes - offset);
    const response = await pageBlob.getPageRanges(offset, count);
    for (const range of response.pageRange ?? []) {
      if (range.count === undefined) continue;
      // The SDK turns the service's inclusive start/end into offset and count = end - start,
      // so the last written byte is offset + count, not offset + count - 1.
      const start = Math.max(range.offset, offset);
      const end = Math.min(range.offset + range.count, offset + count - 1);
      for (
        let index = Math.floor(start / BLOCK_SIZE);
        index <= Math.floor(end / BLOCK_SIZE);
        index++
      ) {
        const blockStart = index * BLOCK_SIZE;
        const lo = Math.max(start, blockStart) - blockStart;
        const hi = Math.min(end, blockStart + BLOCK_SIZE - 1) - blockStart;
        const span = spans.get(index);
        spans.set(index, span ? [Math.min(span[0], lo), Math.max(span[1], hi)] : [lo, hi]);
      }
    }
  }
  return spans;
}

/** Downloads one block's span into a zeroed block buffer; undefined when nothing in it was written. */
async function readBlock(
  pageBlob: PageBlobClient,
  index: number,
  sizeBytes: number,
  span: [number, number] | undefined,
): Promise<Buffer | undefined> {
  if (!span) return undefined;
  const blockStart = index * BLOCK_SIZE;
  const data = Buffer.alloc(Math.min(BLOCK_SIZE, sizeBytes - blockStart));
  const [lo, hi] = span;
  await pageBlob.downloadToBuffer(data.subarray(lo, hi + 1), blockStart + lo, hi - lo + 1);
  return data;
}
