/**
 * The fixed VHD format, as Azure uploads managed disks and as qemu-img,
 * 7-Zip and Hyper-V open them: the raw disk followed by a 512-byte footer
 * (Microsoft's Virtual Hard Disk Image Format Specification). A fixed VHD
 * needs no other structure, so anything that reads raw images reads one too.
 */
import { randomBytes } from 'node:crypto';

export const VHD_FOOTER_BYTES = 512;

/** Seconds from the Unix epoch to the VHD epoch, 2000-01-01T00:00:00Z. */
const VHD_EPOCH_SECONDS = 946_684_800;

/** The footer of a fixed VHD whose disk holds `sizeBytes` (a multiple of 512). */
export function fixedVhdFooter(sizeBytes: number, at = new Date()): Buffer {
  if (sizeBytes <= 0 || sizeBytes % 512 !== 0)
    throw new Error(`A VHD disk is a whole number of 512-byte sectors; ${sizeBytes} bytes is not.`);
  const footer = Buffer.alloc(VHD_FOOTER_BYTES);
  footer.write('conectix', 0, 'ascii');
  footer.writeUInt32BE(2, 8); // features: the reserved bit, always set
  footer.writeUInt32BE(0x0001_0000, 12); // format version 1.0
  footer.writeBigUInt64BE(0xffff_ffff_ffff_ffffn, 16); // no dynamic header: a fixed disk
  footer.writeUInt32BE(Math.max(0, Math.floor(at.getTime() / 1000) - VHD_EPOCH_SECONDS), 24);
  footer.write('acba', 28, 'ascii');
  footer.writeUInt32BE(0x0001_0000, 32);
  footer.write('Wi2k', 36, 'ascii');
  footer.writeBigUInt64BE(BigInt(sizeBytes), 40); // original size
  footer.writeBigUInt64BE(BigInt(sizeBytes), 48); // current size
  const { cylinders, heads, sectorsPerTrack } = geometry(sizeBytes / 512);
  footer.writeUInt16BE(cylinders, 56);
  footer.writeUInt8(heads, 58);
  footer.writeUInt8(sectorsPerTrack, 59);
  footer.writeUInt32BE(2, 60); // disk type: fixed
  randomBytes(16).copy(footer, 68); // unique id
  footer.writeUInt32BE(checksum(footer), 64);
  return footer;
}

/** Reads a fixed VHD footer: the disk size it declares, or undefined when `footer` is not one. */
export function parseFixedVhdFooter(footer: Buffer): { sizeBytes: number } | undefined {
  if (footer.length !== VHD_FOOTER_BYTES || footer.toString('ascii', 0, 8) !== 'conectix')
    return undefined;
  if (footer.readUInt32BE(60) !== 2 || footer.readUInt32BE(64) !== checksum(footer))
    return undefined;
  return { sizeBytes: Number(footer.readBigUInt64BE(48)) };
}

/** The ones' complement of the byte sum, with the checksum field counted as zero. */
function checksum(footer: Buffer): number {
  let sum = 0;
  for (let i = 0; i < VHD_FOOTER_BYTES; i++) if (i < 64 || i >= 68) sum += footer[i]!;
  return ~sum >>> 0;
}

/** The cylinder/head/sector geometry the specification derives from the sector count. */
function geometry(sectors: number): { cylinders: number; heads: number; sectorsPerTrack: number } {
  const total = Math.min(sectors, 65_535 * 16 * 255);
  let sectorsPerTrack: number;
  let heads: number;
  let cylinderTimesHeads: number;
  if (total >= 65_535 * 16 * 63) {
    sectorsPerTrack = 255;
    heads = 16;
    cylinderTimesHeads = Math.floor(total / sectorsPerTrack);
  } else {
    sectorsPerTrack = 17;
    cylinderTimesHeads = Math.floor(total / sectorsPerTrack);
    heads = Math.max(4, Math.floor((cylinderTimesHeads + 1023) / 1024));
    if (cylinderTimesHeads >= heads * 1024 || heads > 16) {
      sectorsPerTrack = 31;
      heads = 16;
      cylinderTimesHeads = Math.floor(total / sectorsPerTrack);
    }
    if (cylinderTimesHeads >= heads * 1024) {
      sectorsPerTrack = 63;
      heads = 16;
      cylinderTimesHeads = Math.floor(total / sectorsPerTrack);
    }
  }
  return { cylinders: Math.floor(cylinderTimesHeads / heads), heads, sectorsPerTrack };
}
