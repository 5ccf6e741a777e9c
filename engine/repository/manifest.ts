/**
 * The restore point manifest: what a restore point holds, stored sealed in the
 * repository at `restore-points/<customerId>/<restorePointId>`. The database row
 * is only an index over it.
 *
 * Versions: version 1 is a VM's manifest (its configuration and disks) and has
 * no `kind`. Version 2 adds `kind`; `sql_database` manifests hold the
 * database's ARM description and its BACPAC export as a list of blocks. Old
 * manifests stay readable: a manifest without a kind is a VM's. Whatever reads
 * the whole repository (retention, check) takes block ids through
 * manifestBlockIds, which knows every kind.
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

/** A VM's restore point. */
export interface Manifest {
  version: 1;
  kind?: 'vm';
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

/** A file stored as blocks, such as a BACPAC. */
export interface ManifestFile {
  name: string;
  sizeBytes: number;
  /** SHA-256 of the whole file, hex. */
  sha256: string;
  /** One entry per block of the file: a block id, or null for a block of zeros. */
  blocks: (string | null)[];
}

/** An Azure SQL database's restore point: its BACPAC export of a transactionally consistent copy. */
export interface SqlDatabaseManifest {
  version: 2;
  kind: 'sql_database';
  restorePointId: string;
  customerId: string;
  itemId: string;
  /** `server/database`. */
  databaseName: string;
  createdAt: string;
  blockSize: number;
  /** The database's description exactly as ARM returned it. */
  database: unknown;
  bacpac: ManifestFile;
}

/** Any restore point's manifest. */
export type AnyManifest = Manifest | SqlDatabaseManifest;

/** Every block id a manifest references, whatever its kind. */
export function manifestBlockIds(manifest: AnyManifest): string[] {
  const lists =
    manifest.kind === 'sql_database'
      ? [manifest.bacpac.blocks]
      : manifest.disks.map((disk) => disk.blocks);
  return lists.flat().filter((id): id is string => id !== null);
}

export function manifestPath(customerId: string, restorePointId: string): string {
  return `restore-points/${customerId}/${restorePointId}`;
}

export async function writeManifest(
  repository: Repository,
  manifest: AnyManifest,
): Promise<string> {
  const path = manifestPath(manifest.customerId, manifest.restorePointId);
  await repository.putObject(path, ObjectType.Manifest, Buffer.from(JSON.stringify(manifest)));
  return path;
}

/** A VM restore point's manifest; refuses a database's, which has no disks. */
export async function readManifest(
  repository: Repository,
  restorePoint: RestorePoint,
): Promise<Manifest> {
  const manifest = await readAnyManifest(repository, restorePoint);
  if (manifest.kind === 'sql_database')
    throw badInput(
      `Restore point ${restorePoint.id} is a backup of SQL database ${manifest.databaseName}, not of a VM; it has no disks. Choose a restore point of a VM.`,
    );
  return manifest;
}

/** The manifest of any restore point, VM or database. */
export async function readAnyManifest(
  repository: Repository,
  restorePoint: RestorePoint,
): Promise<AnyManifest> {
  if (restorePoint.type !== 'backup')
    throw badInput(
      `Restore point ${restorePoint.id} is a snapshot kept in Azure, not a backup in the repository; pick a backup restore point to read files or disks from it.`,
    );
  const manifest = JSON.parse(
    (await repository.getObject(restorePoint.manifest_path, ObjectType.Manifest)).toString('utf8'),
  ) as AnyManifest;
  if (manifest.restorePointId !== restorePoint.id) {
    throw new Error(
      `The manifest at ${restorePoint.manifest_path} belongs to restore point ${manifest.restorePointId}, not ${restorePoint.id}.`,
    );
  }
  return manifest;
}
