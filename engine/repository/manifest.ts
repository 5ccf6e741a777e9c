/**
 * The restore point manifest: what a restore point holds, stored sealed in the
 * repository at `restore-points/<customerId>/<restorePointId>`. The database row
 * is only an index over it.
 */
import type { RestorePoint } from '../../core/db/schema.ts';
import { badInput } from '../../core/errors.ts';
import { ObjectType } from './crypto.ts';
import type { Repository } from './repository.ts';

export interface ManifestDisk {
  name: string;
  /** 'os' or the data disk's LUN. */
  role: 'os' | number;
  /** The managed disk's ARM resource id at backup time. */
  resourceId: string;
  sizeBytes: number;
  /** SHA-256 of the whole disk image, hex; absent when the disk was read incrementally (only changed blocks). */
  sha256?: string;
  /** One entry per 1 MiB of the disk: a block id, or null for a block of zeros. */
  blocks: (string | null)[];
}

export interface Manifest {
  version: 1;
  restorePointId: string;
  customerId: string;
  itemId: string;
  vmName: string;
  createdAt: string;
  blockSize: number;
  /** The VM's configuration exactly as ARM returned it. */
  vm: unknown;
  disks: ManifestDisk[];
}

export function manifestPath(customerId: string, restorePointId: string): string {
  return `restore-points/${customerId}/${restorePointId}`;
}

export async function writeManifest(repository: Repository, manifest: Manifest): Promise<string> {
  const path = manifestPath(manifest.customerId, manifest.restorePointId);
  await repository.putObject(path, ObjectType.Manifest, Buffer.from(JSON.stringify(manifest)));
  return path;
}

export async function readManifest(
  repository: Repository,
  restorePoint: RestorePoint,
): Promise<Manifest> {
  if (restorePoint.type !== 'backup')
    throw badInput(
      `Restore point ${restorePoint.id} is a snapshot kept in Azure, not a backup in the repository; pick a backup restore point to read files or disks from it.`,
    );
  const manifest = JSON.parse(
    (await repository.getObject(restorePoint.manifest_path, ObjectType.Manifest)).toString('utf8'),
  ) as Manifest;
  if (manifest.restorePointId !== restorePoint.id) {
    throw new Error(
      `The manifest at ${restorePoint.manifest_path} belongs to restore point ${manifest.restorePointId}, not ${restorePoint.id}.`,
    );
  }
  return manifest;
}
