/**
 * Unmanaged disks: VM disks that are VHD page blobs in a storage account
 * (`vhd.uri` in the VM's storage profile) rather than managed disks. ACBA
 * snapshots such a disk as a blob snapshot of its VHD, in the same storage
 * account, and reads it through the blob API with the service's own Entra ID
 * credential (a role such as Storage Blob Data Contributor on the account,
 * since snapshots are written and deleted). Later backups ask for the pages
 * changed since the previous blob snapshot of the same blob (Get Page Ranges
 * with `prevsnapshot`).
 *
 * A VM's VHD is a fixed VHD: the disk's bytes followed by a 512-byte footer.
 * The footer is checked and left out, so a restore point holds the raw disk
 * exactly as it does for a managed disk. A blob snapshot is known by its URL
 * (the blob's URL with `?snapshot=<time>`); that is the snapshot id the
 * disk_snapshots table records.
 */
import type { PageBlobClient } from '@azure/storage-blob';
import { badInput } from '../core/errors.ts';
import type { Logger } from '../core/log.ts';
import { BaseUnusable, type DiskSource, type PageDiff } from './disk-reader.ts';
import type { VmDisk } from './vm-disks.ts';

/** A page blob client for a VHD or one of its snapshots, signed in as the service. */
export type VhdBlobs = (url: string) => PageBlobClient;

/** The VHD footer that follows a fixed VHD's disk data. */
export const VHD_FOOTER_BYTES = 512;
const FIXED_DISK_TYPE = 2;

/** Whether a kept snapshot id names a blob snapshot (a URL) rather than an ARM snapshot resource. */
export function isBlobSnapshotId(snapshotId: string): boolean {
  return /^https?:\/\//i.test(snapshotId);
}

/** Takes a blob snapshot of an unmanaged disk's VHD, labelled with the snapshot name; returns its URL and disk size. */
export async function takeVhdSnapshot(
  vhdBlobs: VhdBlobs,
  disk: VmDisk,
  label: string,
): Promise<{ snapshotId: string; disk: VmDisk; sizeBytes: number }> {
  const blob = vhdBlobs(disk.resourceId);
  const { snapshot } = await blob.createSnapshot({ metadata: { acbasnapshot: label } });
  if (!snapshot)
    throw new Error(`Storage took a snapshot of VHD ${disk.resourceId} but did not name it.`);
  const snapshotBlob = blob.withSnapshot(snapshot);
  const length = (await snapshotBlob.getProperties()).contentLength ?? 0;
  return { snapshotId: snapshotBlob.url, disk, sizeBytes: length - VHD_FOOTER_BYTES };
}

/**
 * Opens a VHD blob (or snapshot) for reading: checks that it ends with the
 * footer of a fixed VHD whose size matches, and gives the disk without it.
 */
export async function openVhd(blob: PageBlobClient): Promise<DiskSource> {
  const length = (await blob.getProperties()).contentLength ?? 0;
  const where = plainUrl(blob.url);
  if (length < 2 * VHD_FOOTER_BYTES || length % VHD_FOOTER_BYTES !== 0)
    throw badInput(
      `The page blob ${where} is ${length} bytes, too short or unaligned for a fixed VHD; check that the VM's vhd.uri names its disk.`,
    );

  const footer = Buffer.alloc(VHD_FOOTER_BYTES);
  await blob.downloadToBuffer(footer, length - VHD_FOOTER_BYTES, VHD_FOOTER_BYTES);
  const sizeBytes = length - VHD_FOOTER_BYTES;
  const cookie = footer.toString('latin1', 0, 8);
  const diskType = footer.readUInt32BE(60);
  const currentSize = Number(footer.readBigUInt64BE(48));
  if (cookie !== 'conectix' || diskType !== FIXED_DISK_TYPE || currentSize !== sizeBytes)
    throw badInput(
      `The page blob ${where} does not end with the footer of a fixed VHD of ${sizeBytes} bytes (cookie "${cookie}", type ${diskType}, size ${currentSize}); Azure VMs run only on fixed VHDs, so check that the VM's vhd.uri names its disk.`,
    );
  return { blob, sizeBytes };
}

/**
 * The diff of a VHD snapshot against an earlier blob snapshot of the same
 * blob; a previous snapshot that no longer exists makes the base unusable.
 */
export function vhdChangesSince(source: DiskSource, previousSnapshotId: string): PageDiff {
  const previous = new URL(previousSnapshotId).searchParams.get('snapshot');
  if (!previous || plainUrl(previousSnapshotId) !== plainUrl(source.blob.url))
    throw new BaseUnusable(
      'diff_refused',
      `The previous snapshot ${previousSnapshotId} is not a blob snapshot of ${plainUrl(source.blob.url)}.`,
    );

  return async (offset, count) => {
    try {
      return await source.blob.getPageRangesDiff(offset, count, previous);
    } catch (error) {
      const { statusCode, code } = error as { statusCode?: number; code?: string };
      if (statusCode === 404 || code === 'PreviousSnapshotNotFound')
        throw new BaseUnusable(
          'previous_snapshot_gone',
          `The previous blob snapshot ${previous} of ${plainUrl(source.blob.url)} no longer exists.`,
        );
      throw error;
    }
  };
}

/** Deletes one blob snapshot; false (and a warning) when storage fails. A snapshot already gone counts as deleted. */
export async function deleteVhdSnapshot(
  vhdBlobs: VhdBlobs,
  snapshotId: string,
  log: Logger,
): Promise<boolean> {
  // Without its snapshot parameter the URL names the VM's live disk, which ACBA never deletes.
  if (!new URL(snapshotId).searchParams.get('snapshot'))
    throw badInput(`${snapshotId} names a VHD, not a blob snapshot; ACBA deletes only snapshots.`);
  try {
    await vhdBlobs(snapshotId).delete();
    return true;
  } catch (err) {
    if ((err as { statusCode?: number }).statusCode === 404) return true;
    log.warn({ err, snapshotId }, 'snapshot_delete_failed');
    return false;
  }
}

/** A blob URL without its query (snapshot time or SAS). */
function plainUrl(url: string): string {
  const parsed = new URL(url);
  return `${parsed.origin}${parsed.pathname}`;
}
