/**
 * Page ranges of a raw disk file, as Azure reports them for managed disks.
 * Written pages are the non-zero 512-byte sectors, coalesced into ranges; a
 * diff against an earlier snapshot compares sector by sector and reports
 * sectors that changed to data as page ranges and sectors that became zero
 * as clear ranges. Whole 64 KiB blocks are compared first, so sparse and
 * unchanged regions cost one comparison each.
 */
import fs from 'node:fs/promises';

const sectorSize = 512;
const scanBlockSize = 64 * 1024;
const readChunkSize = 4 * 1024 * 1024;

export interface PageRangeEntry {
  start: number;
  /** Inclusive, as in the page list XML. */
  end: number;
  cleared: boolean;
}

/** Non-zero 512-byte sectors of file between start and end (inclusive), coalesced. */
export async function writtenPageRanges(
  file: string,
  start: number,
  end: number,
): Promise<PageRangeEntry[]> {
  const ranges: PageRangeEntry[] = [];
  const handle = await fs.open(file, 'r');
  try {
    await forEachChunk(handle, start, end, (offset, chunk) => {
      for (let block = 0; block < chunk.length; block += scanBlockSize) {
        const blockBytes = chunk.subarray(block, block + scanBlockSize);
        if (isZero(blockBytes)) continue;
        for (let sector = 0; sector < blockBytes.length; sector += sectorSize) {
          if (!isZero(blockBytes.subarray(sector, sector + sectorSize)))
            addRange(ranges, offset + block + sector, false);
        }
      }
    });
  } finally {
    await handle.close();
  }
  return ranges;
}

/** Sectors of file that differ from previousFile: written ones as page ranges, zeroed ones as clear ranges. */
export async function diffPageRanges(
  file: string,
  previousFile: string,
  start: number,
  end: number,
): Promise<PageRangeEntry[]> {
  const ranges: PageRangeEntry[] = [];
  const handle = await fs.open(file, 'r');
  const previous = await fs.open(previousFile, 'r');
  try {
    const other = Buffer.alloc(readChunkSize);
    await forEachChunk(handle, start, end, async (offset, chunk) => {
      other.fill(0);
      await previous.read(other, 0, chunk.length, offset);
      const before = other.subarray(0, chunk.length);
      for (let block = 0; block < chunk.length; block += scanBlockSize) {
        const now = chunk.subarray(block, block + scanBlockSize);
        const then = before.subarray(block, block + scanBlockSize);
        if (now.equals(then)) continue;
        for (let sector = 0; sector < now.length; sector += sectorSize) {
          const nowSector = now.subarray(sector, sector + sectorSize);
          if (nowSector.equals(then.subarray(sector, sector + sectorSize))) continue;
          addRange(ranges, offset + block + sector, isZero(nowSector));
        }
      }
    });
  } finally {
    await Promise.all([handle.close(), previous.close()]);
  }
  return ranges;
}

async function forEachChunk(
  handle: fs.FileHandle,
  start: number,
  end: number,
  visit: (offset: number, chunk: Buffer) => void | Promise<void>,
): Promise<void> {
  const buffer = Buffer.alloc(readChunkSize);
  for (let offset = start; offset <= end; offset += readChunkSize) {
    const length = Math.min(readChunkSize, end - offset + 1);
    const { bytesRead } = await handle.read(buffer, 0, length, offset);
    if (bytesRead === 0) break;
    buffer.fill(0, bytesRead, length);
    await visit(offset, buffer.subarray(0, length));
  }
}

function addRange(ranges: PageRangeEntry[], sectorStart: number, cleared: boolean): void {
  const last = ranges[ranges.length - 1];
  if (last && last.cleared === cleared && last.end + 1 === sectorStart)
    last.end = sectorStart + sectorSize - 1;
  else ranges.push({ start: sectorStart, end: sectorStart + sectorSize - 1, cleared });
}

const zeros = Buffer.alloc(scanBlockSize);

function isZero(bytes: Buffer): boolean {
  return bytes.equals(zeros.subarray(0, bytes.length));
}
