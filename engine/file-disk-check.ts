/**
 * Checks a disk's partition table and volume headers before any appliance is
 * launched, so that recovery refuses what it cannot honestly read: Azure Disk
 * Encryption (BitLocker on Windows, LUKS on Linux) and Windows dynamic disks
 * (LDM). Only a few sectors are read through the restore point's disk.
 */

/** Reads `length` bytes at `offset` of one disk. */
export type SectorReader = (offset: number, length: number) => Promise<Buffer>;

const SECTOR = 512;
const LDM_METADATA = '5808c8aa-7e8f-42e0-85d2-e1e90434cfb3';
const LDM_DATA = 'af9b60a0-1431-4f62-bc68-3311714a69ad';
const MBR_LDM = 0x42;
const MBR_PROTECTIVE = 0xee;
const MBR_EXTENDED = new Set([0x05, 0x0f, 0x85]);

/** Why file recovery refuses this disk, or undefined when it may go on. */
export async function diskRefusal(
  read: SectorReader,
  sizeBytes: number,
): Promise<string | undefined> {
  const starts: number[] = [0];
  const mbr = await read(0, SECTOR);
  if (mbr.readUInt16LE(510) === 0xaa55) {
    const types = [0, 1, 2, 3].map((i) => mbr[446 + i * 16 + 4]!);
    if (types.includes(MBR_LDM))
      return 'it is a Windows dynamic disk (LDM, MBR partition type 0x42); file-level recovery reads basic disks only. Restore the whole disk instead.';
    if (types.includes(MBR_PROTECTIVE)) {
      const gpt = await gptStarts(read, sizeBytes);
      if (typeof gpt === 'string') return gpt;
      starts.push(...gpt);
    } else {
      for (let i = 0; i < 4; i++) {
        const entry = 446 + i * 16;
        const type = mbr[entry + 4]!;
        const lba = mbr.readUInt32LE(entry + 8);
        if (type !== 0 && !MBR_EXTENDED.has(type) && lba > 0) starts.push(lba * SECTOR);
      }
    }
  }

  for (const start of starts) {
    if (start + SECTOR > sizeBytes) continue;
    const head = await read(start, SECTOR);
    if (head.subarray(0, 6).equals(Buffer.from('LUKS\xba\xbe', 'latin1')))
      return 'it is encrypted with Azure Disk Encryption (a LUKS volume); encrypted volumes cannot be read from the backup. Restore the whole disk and unlock it with its key instead.';
    if (head.subarray(3, 11).toString('latin1') === '-FVE-FS-')
      return 'it is encrypted with Azure Disk Encryption (a BitLocker volume); encrypted volumes cannot be read from the backup. Restore the whole disk and unlock it with its key instead.';
  }
  return undefined;
}

/** Start offsets of the GPT partitions, or the refusal when one is an LDM partition. */
async function gptStarts(read: SectorReader, sizeBytes: number): Promise<number[] | string> {
  const header = await read(SECTOR, SECTOR);
  if (header.subarray(0, 8).toString('latin1') !== 'EFI PART') return [];
  const entriesLba = Number(header.readBigUInt64LE(72));
  const count = Math.min(header.readUInt32LE(80), 256);
  const entrySize = header.readUInt32LE(84);
  if (entrySize < 128 || entriesLba * SECTOR + count * entrySize > sizeBytes) return [];

  const table = await read(entriesLba * SECTOR, count * entrySize);
  const starts: number[] = [];
  for (let i = 0; i < count; i++) {
    const entry = table.subarray(i * entrySize, i * entrySize + 128);
    const type = guidOf(entry.subarray(0, 16));
    if (type === '00000000-0000-0000-0000-000000000000') continue;
    if (type === LDM_METADATA || type === LDM_DATA)
      return 'it is a Windows dynamic disk (LDM partitions on GPT); file-level recovery reads basic disks only. Restore the whole disk instead.';
    starts.push(Number(entry.readBigUInt64LE(32)) * SECTOR);
  }
  return starts;
}

/** A GPT GUID (mixed-endian on disk) in its usual lower-case text form. */
function guidOf(bytes: Buffer): string {
  const hex = (b: Buffer) => b.toString('hex');
  const le = (b: Buffer) => hex(Buffer.from(b).reverse());
  return [
    le(bytes.subarray(0, 4)),
    le(bytes.subarray(4, 6)),
    le(bytes.subarray(6, 8)),
    hex(bytes.subarray(8, 10)),
    hex(bytes.subarray(10, 16)),
  ].join('-');
}
