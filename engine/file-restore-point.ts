/**
 * The disks of a restore point as a file recovery session reads them: each a
 * signed URL of the engine's byte-range resource, for the appliance, and a
 * reader of a few sectors over the same resource, for the checks made before
 * any appliance starts.
 */
import { unavailable } from '../core/errors.ts';
import type { LinkSigner } from '../core/signing.ts';
import type { SessionDisk } from './file-session.ts';

export interface RestorePointDisksInput {
  signer: LinkSigner;
  /** Base URL of the engine's disk router, e.g. http://127.0.0.1:3978/engine. */
  diskResourceUrl: string;
  restorePointId: string;
  diskSizes: number[];
  /** How long the signed URLs stay valid. */
  minutes: number;
}

export function restorePointDisks(input: RestorePointDisksInput): SessionDisk[] {
  return input.diskSizes.map((sizeBytes, index) => {
    const token = input.signer.sign({
      purpose: 'disk',
      subject: `${input.restorePointId}/${index}`,
      expiresAt: Date.now() + input.minutes * 60_000,
    });
    const url = new URL(`${input.diskResourceUrl.replace(/\/+$/, '')}/disks/${token}/disk.raw`);
    const read = async (offset: number, length: number): Promise<Buffer> => {
      const end = Math.min(offset + length, sizeBytes) - 1;
      const response = await fetch(url, { headers: { range: `bytes=${offset}-${end}` } });
      if (response.status !== 206 && response.status !== 200)
        throw unavailable(
          `Disk ${index} of restore point ${input.restorePointId} could not be read (HTTP ${response.status}); try again later.`,
        );
      return Buffer.from(await response.arrayBuffer());
    };
    return { url, read, sizeBytes };
  });
}
