/**
 * The 512-byte footer that ends a fixed VHD, as Azure keeps unmanaged disks:
 * the raw disk followed by this footer in one page blob. Fields are
 * big-endian, the geometry follows the VHD specification's CHS rule, and the
 * checksum is the ones' complement of the byte sum.
 */
import { randomBytes } from 'node:crypto';

export const VHD_FOOTER_BYTES = 512;
const FIXED_DISK = 2;
/** Seconds from the Unix epoch to the VHD epoch, 2000-01-01T00:00:00Z. */
const VHD_EPOCH = 946_684_800;

/** A fixed VHD footer for a disk of `sizeBytes` (a multiple of 512). */
export function fixedVhdFooter(sizeBytes: number, createdAt = new Date()): Buffer {
  const footer = Buffer.alloc(VHD_FOOTER_BYTES);
  footer.write('conectix', 0, 'latin1');
  footer.writeUInt32BE(0x2, 8);
  footer.writeUInt32BE(0x10000, 12);
  footer.writeBigUInt64BE(0xffffffffffffffffn, 16);
  footer.writeUInt32BE(Math.max(0, Math.floor(createdAt.getTime() / 1000) - VHD_EPOCH), 24);
  footer.write('acba', 28, 'latin1');
  footer.writeUInt32BE(0x10000, 32);
  footer.write('Wi2k', 36, 'latin1');
  footer.writeBigUInt64BE(BigInt(sizeBytes), 40);
  footer.writeBigUInt64BE(BigInt(sizeBytes), 48);
  const { cylinders, heads, sectorsPerTrack } = geometry(sizeBytes / 512);
  footer.writeUInt16BE(cylinders, 56);
  footer.writeUInt8(heads, 58);
  footer.writeUInt8(sectorsPerTrack, 59);
  footer.writeUInt32BE(FIXED_DISK, 60);
  randomBytes(16).copy(footer, 68);

  let sum = 0;
  for (const byte of footer) sum += byte;
  footer.writeUInt32BE(~sum >>> 0, 64);
  return footer;
}

function geometry(totalSectors: number): {
  cylinders: number;
  heads: number;
  sectorsPerTrack: number;
} {
  const sectors = Math.min(totalSectors, 65535 * 16 * 255);
  if (sectors >= 65535 * 16 * 63) {
    return { cylinders: Math.floor(sectors / 255 / 16), heads: 16, sectorsPerTrack: 255 };
  }
  let sectorsPerTrack = 17;
  let cylindersTimesHeads = Math.floor(sectors / sectorsPerTrack);
  let heads = Math.max(4, Math.floor((cylindersTimesHeads + 1023) / 1024));
  if (cylindersTimesHeads >= heads * 1024 || heads > 16) {
    sectorsPerTrack = 31;
    heads = 16;
    cylindersTimesHeads = Math.floor(sectors / sectorsPerTrack);
  }
  if (cylindersTimesHeads >= heads * 1024) {
    sectorsPerTrack = 63;
    heads = 16;
    cylindersTimesHeads = Math.floor(sectors / sectorsPerTrack);
  }
  return { cylinders: Math.floor(cylindersTimesHeads / heads), heads, sectorsPerTrack };
}
