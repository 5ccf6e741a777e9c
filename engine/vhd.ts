/**
 * The fixed VHD format as Azure takes uploads: the disk's raw bytes followed by
 * one 512-byte footer (the "hard disk footer" of Microsoft's VHD
 * specification), all fields big-endian. A fixed disk has no dynamic header,
 * so the data offset is all ones; the geometry is the CHS the specification
 * derives from the size; the checksum is the one's complement of the byte sum
 * of the footer without its checksum field.
 */
import { randomBytes } from 'node:crypto';

/** Size of the footer and of one page of a page blob. */
export const VHD_FOOTER_BYTES = 512;

/** Seconds between the Unix epoch and the VHD epoch, 2000-01-01T00:00:00Z. */
const VHD_EPOCH_SECONDS = 946_684_800;

/** The largest disk CHS can describe: 65535 cylinders, 16 heads, 255 sectors. */
const MAX_CHS_SECTORS = 65535 * 16 * 255;

/** The footer that makes `sizeBytes` of raw data a fixed VHD. */
export function fixedVhdFooter(sizeBytes: number, now = new Date()): Buffer {
  if (sizeBytes <= 0 || sizeBytes % VHD_FOOTER_BYTES !== 0)
    throw new RangeError(`A fixed VHD holds whole 512-byte sectors; ${sizeBytes} bytes is not.`);

  const footer = Buffer.alloc(VHD_FOOTER_BYTES);
  footer.write('conectix', 0, 'ascii');
  footer.writeUInt32BE(0x00000002, 8); // features: the reserved bit, always set
  footer.writeUInt32BE(0x00010000, 12); // format version 1.0
  footer.writeBigUInt64BE(0xffffffffffffffffn, 16); // no dynamic header
  footer.writeUInt32BE(Math.max(0, Math.floor(now.getTime() / 1000) - VHD_EPOCH_SECONDS), 24);
  footer.write('acba', 28, 'ascii'); // creator application
  footer.writeUInt32BE(0x00010000, 32); // creator version
  footer.write('Wi2k', 36, 'ascii'); // creator host OS, as Azure's own tools write it
  footer.writeBigUInt64BE(BigInt(sizeBytes), 40); // original size
  footer.writeBigUInt64BE(BigInt(sizeBytes), 48); // current size
  const { cylinders, heads, sectorsPerTrack } = geometry(sizeBytes / VHD_FOOTER_BYTES);
  footer.writeUInt16BE(cylinders, 56);
  footer.writeUInt8(heads, 58);
  footer.writeUInt8(sectorsPerTrack, 59);
  footer.writeUInt32BE(2, 60); // disk type: fixed
  randomBytes(16).copy(footer, 68); // unique id
  footer.writeUInt32BE(checksum(footer), 64);
  return footer;
}

/** True when `footer` is a well-formed fixed-VHD footer whose checksum holds. */
export function isFixedVhdFooter(footer: Buffer): boolean {
  if (footer.length !== VHD_FOOTER_BYTES) return false;
  if (footer.toString('ascii', 0, 8) !== 'conectix') return false;
  if (footer.readUInt32BE(60) !== 2) return false;
  return footer.readUInt32BE(64) === checksum(footer);
}

/** The current size a footer states. */
export function vhdFooterSize(footer: Buffer): number {
  return Number(footer.readBigUInt64BE(48));
}

function checksum(footer: Buffer): number {
  let sum = 0;
  for (let i = 0; i < footer.length; i++) if (i < 64 || i > 67) sum += footer[i]!;
  return ~sum >>> 0;
}

/** Cylinders, heads and sectors per track for a disk of `sectors`, by the specification's algorithm. */
function geometry(sectors: number): { cylinders: number; heads: number; sectorsPerTrack: number } {
  const total = Math.min(sectors, MAX_CHS_SECTORS);
  let sectorsPerTrack: number;
  let heads: number;
  let cylinderTimesHeads: number;
  if (total >= 65535 * 16 * 63) {
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
