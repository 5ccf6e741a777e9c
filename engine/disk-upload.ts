/**
 * Writing a restore point's disk into a new managed disk, the way Azure takes
 * a disk from outside: create an empty disk for upload (`createOption:
 * Upload`, `uploadSizeBytes` the data plus the 512-byte VHD footer), get a
 * write SAS to its page blob, write the data as a fixed VHD with Put Page
 * (only pages that hold something: all-zero pages and whole zero blocks are
 * skipped, since a new page blob reads as zeros), write the footer last, and
 * revoke access, which turns the upload into the disk's content.
 *
 * Azure wants the disk's size to be a whole number of MiB; a disk of another
 * size is padded with zeros up to the next MiB. The caller deletes the disk
 * when anything later fails (./restore-run.ts).
 */
import type { ComputeManagementClient } from '@azure/arm-compute';
import { AnonymousCredential, PageBlobClient } from '@azure/storage-blob';
import type { Logger } from '../core/log.ts';
import { azureStep } from './azure-steps.ts';
import type { DiskImage } from './disk-image.ts';
import { fixedVhdFooter, VHD_FOOTER_BYTES } from './vhd.ts';

/** How long the write SAS lasts; a disk must be written within it. */
const WRITE_ACCESS_SECONDS = 6 * 3600;
/** Azure takes at most 4 MiB in one Put Page. */
const MAX_PAGE_WRITE = 4 * 1024 * 1024;
/** Put Page requests in flight at once. */
const PARALLEL_WRITES = 4;
const MIB = 1024 * 1024;
const ZERO_PAGE = Buffer.alloc(VHD_FOOTER_BYTES);

export interface UploadContext {
  compute: ComputeManagementClient;
  log: Logger;
  /** Poll interval for ARM long-running operations without Retry-After. */
  pollIntervalMs?: number;
}

/** The managed disk to make. */
export interface NewDisk {
  resourceGroup: string;
  name: string;
  location: string;
  /** Set for an OS disk. */
  osType?: 'Linux' | 'Windows';
  hyperVGeneration?: 'V1' | 'V2';
  tags?: Record<string, string>;
}

/**
 * Creates the disk `target` for upload and calls `created` with its resource id
 * as soon as it exists (so the caller can delete it on failure), writes
 * `image` into it as a fixed VHD, and ends the upload. Returns the bytes
 * written.
 */
export async function uploadDisk(
  ctx: UploadContext,
  target: NewDisk,
  image: DiskImage,
  created: (diskId: string) => void,
  onProgress?: (bytesDone: number) => void,
): Promise<{ diskId: string; writtenBytes: number }> {
  const sizeBytes = Math.ceil(image.size / MIB) * MIB;
  const options = { updateIntervalInMs: ctx.pollIntervalMs };
  const { resourceGroup, name } = target;

  const disk = await azureStep(`Creating disk ${name} in ${resourceGroup}`, () =>
    ctx.compute.disks.beginCreateOrUpdateAndWait(
      resourceGroup,
      name,
      {
        location: target.location,
        tags: target.tags,
        osType: target.osType,
        hyperVGeneration: target.hyperVGeneration,
        creationData: { createOption: 'Upload', uploadSizeBytes: sizeBytes + VHD_FOOTER_BYTES },
      },
      options,
    ),
  );
  const diskId = disk.id!;
  created(diskId);

  const access = await azureStep(`Getting write access to disk ${name}`, () =>
    ctx.compute.disks.beginGrantAccessAndWait(
      resourceGroup,
      name,
      { access: 'Write', durationInSeconds: WRITE_ACCESS_SECONDS },
      options,
    ),
  );
  let writtenBytes: number;
  try {
    const blob = new PageBlobClient(access.accessSAS!, new AnonymousCredential());
    writtenBytes = await writeFixedVhd(blob, image, sizeBytes, onProgress);
  } catch (error) {
    await ctx.compute.disks
      .beginRevokeAccessAndWait(resourceGroup, name, options)
      .catch((err) => ctx.log.warn({ err, disk: name }, 'upload_revoke_failed'));
    throw error;
  }
  await azureStep(`Ending the upload of disk ${name}`, () =>
    ctx.compute.disks.beginRevokeAccessAndWait(resourceGroup, name, options),
  );
  ctx.log.info({ disk: name, sizeBytes, writtenBytes }, 'disk_uploaded');
  return { diskId, writtenBytes };
}

/** Writes the image's non-zero pages, then the footer for `sizeBytes`; returns the data bytes written. */
async function writeFixedVhd(
  blob: PageBlobClient,
  image: DiskImage,
  sizeBytes: number,
  onProgress?: (bytesDone: number) => void,
): Promise<number> {
  const inFlight = new Set<Promise<void>>();
  let failure: unknown;
  let written = 0;
  const put = async (data: Buffer, offset: number) => {
    while (inFlight.size >= PARALLEL_WRITES) await Promise.race(inFlight);
    if (failure) throw failure;
    const write = blob.uploadPages(data, offset, data.length).then(
      () => void (written += data.length),
      (error: unknown) => void (failure ??= error),
    );
    const tracked = write.finally(() => inFlight.delete(tracked));
    inFlight.add(tracked);
  };

  let offset = 0;
  if (image.size > 0) {
    for await (const chunk of image.chunks(0, image.size - 1)) {
      for (const run of nonZeroRuns(chunk)) await put(run.data, offset + run.start);
      offset += chunk.length;
      onProgress?.(offset);
    }
  }
  await Promise.all(inFlight);
  if (failure) throw failure;

  await blob.uploadPages(fixedVhdFooter(sizeBytes), sizeBytes, VHD_FOOTER_BYTES);
  return written;
}

/** Runs of 512-byte pages of `chunk` that are not all zero, each at most 4 MiB. */
function* nonZeroRuns(chunk: Buffer): Generator<{ start: number; data: Buffer }> {
  let start = -1;
  for (let at = 0; ; at += VHD_FOOTER_BYTES) {
    const end = at >= chunk.length;
    const zero = end || isZeroPage(chunk.subarray(at, at + VHD_FOOTER_BYTES));
    if (start >= 0 && (zero || at - start === MAX_PAGE_WRITE)) {
      yield { start, data: padToPage(chunk.subarray(start, Math.min(at, chunk.length))) };
      start = -1;
    }
    if (end) return;
    if (!zero && start < 0) start = at;
  }
}

function isZeroPage(page: Buffer): boolean {
  return page.length === ZERO_PAGE.length ? page.equals(ZERO_PAGE) : page.every((b) => b === 0);
}

/** A disk's last chunk may end inside a page; Put Page takes whole pages. */
function padToPage(data: Buffer): Buffer {
  const rest = data.length % VHD_FOOTER_BYTES;
  return rest === 0 ? data : Buffer.concat([data, Buffer.alloc(VHD_FOOTER_BYTES - rest)]);
}
