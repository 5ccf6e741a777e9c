/**
 * The disks a VM or disk restore writes: their names, the checks made before
 * anything is created (no VM or disk of that name exists yet, the resource
 * group exists), and the writing itself, one job-session task per disk, each
 * disk registered with the restore as soon as Azure made it so that a failure
 * deletes it. Also the parts of the VM's configuration saved with the restore
 * point that a restore needs.
 */
import type { CachingTypes, ComputeManagementClient } from '@azure/arm-compute';
import { conflict, notFound } from '../core/errors.ts';
import { azureStep, isResourceNotFound } from './azure-steps.ts';
import { uploadDisk, type NewDisk } from './disk-upload.ts';
import type { ManifestDisk } from './repository/manifest.ts';
import { parseResourceId } from './resource-id.ts';
import type { RestoreRun } from './restore-run.ts';

/** Azure's longest disk name. */
const MAX_DISK_NAME = 80;

/** One disk of the restore point and the new managed disk it becomes. */
export interface DiskPlan {
  /** The disk's index in the restore point's manifest. */
  index: number;
  source: ManifestDisk;
  target: NewDisk;
}

/** What a restore needs of the VM configuration saved with the restore point. */
export interface SavedVm {
  location: string;
  vmSize?: string;
  osType: 'Linux' | 'Windows';
  tags: Record<string, string>;
  /** Host caching by disk role ('os' or LUN). */
  caching: Map<'os' | number, CachingTypes>;
}

/** A new disk's name: the original's with `-restored-` and the request's short id, within Azure's limit. */
export function restoredDiskName(base: string, requestId: string): string {
  const suffix = `-restored-${requestId.slice(0, 8)}`;
  return `${base.slice(0, MAX_DISK_NAME - suffix.length)}${suffix}`;
}

/** Reads the saved configuration; it is ARM's JSON as the backup got it. */
export function savedVm(vm: unknown): SavedVm {
  const raw = (vm ?? {}) as Record<string, unknown>;
  const props = (raw.properties ?? raw) as {
    hardwareProfile?: { vmSize?: string };
    storageProfile?: {
      osDisk?: { osType?: 'Linux' | 'Windows'; caching?: CachingTypes };
      dataDisks?: Array<{ lun: number; caching?: CachingTypes }>;
    };
  };
  const caching = new Map<'os' | number, CachingTypes>();
  const os = props.storageProfile?.osDisk;
  if (os?.caching) caching.set('os', os.caching);
  for (const data of props.storageProfile?.dataDisks ?? [])
    if (data.caching) caching.set(data.lun, data.caching);
  return {
    location: String(raw.location ?? ''),
    vmSize: props.hardwareProfile?.vmSize,
    osType: os?.osType ?? 'Linux',
    tags: (raw.tags as Record<string, string> | undefined) ?? {},
    caching,
  };
}

/** Throws conflict when a VM of this name exists in the group (bad_input when the group does not exist). */
export async function assertVmAbsent(
  compute: ComputeManagementClient,
  resourceGroup: string,
  name: string,
): Promise<void> {
  const exists = await azureStep(`Looking for VM ${name} in ${resourceGroup}`, () =>
    compute.virtualMachines.get(resourceGroup, name).then(
      () => true,
      (error: unknown) => (isResourceNotFound(error) ? false : Promise.reject(error)),
    ),
  );
  if (exists)
    throw conflict(
      `A VM named ${name} already exists in resource group ${resourceGroup}; nothing was created. Choose another name, or delete that VM first.`,
    );
}

/** Throws conflict naming the first disk of `names` that exists in the group. */
export async function assertDisksAbsent(
  compute: ComputeManagementClient,
  resourceGroup: string,
  names: string[],
): Promise<void> {
  for (const name of names) {
    const exists = await azureStep(`Looking for disk ${name} in ${resourceGroup}`, () =>
      compute.disks.get(resourceGroup, name).then(
        () => true,
        (error: unknown) => (isResourceNotFound(error) ? false : Promise.reject(error)),
      ),
    );
    if (exists)
      throw conflict(
        `A disk named ${name} already exists in resource group ${resourceGroup}; nothing was created. Delete it or choose other names, then ask again.`,
      );
  }
}

/** The Hyper-V generation of the disk the restore point was taken from, while Azure still has it. */
export async function sourceGeneration(
  run: RestoreRun,
  disk: ManifestDisk,
): Promise<'V1' | 'V2' | undefined> {
  try {
    const { resourceGroup, name } = parseResourceId(disk.resourceId);
    const found = await run.compute.disks.get(resourceGroup, name);
    return found.hyperVGeneration as 'V1' | 'V2' | undefined;
  } catch (err) {
    run.log.warn({ err, disk: disk.name }, 'source_disk_generation_unknown');
    return undefined;
  }
}

/** Writes every planned disk, one task each; returns the new disks' ids by manifest index. */
export async function writeDisks(run: RestoreRun, plans: DiskPlan[]): Promise<Map<number, string>> {
  const written = new Map<number, string>();
  for (const plan of plans) {
    const image = await run.deps.openDisk(run.point.id, plan.index);
    const { diskId } = await run.session.runTask(
      { kind: 'disk', name: plan.target.name, totalBytes: plan.source.sizeBytes },
      async (task) => {
        const result = await uploadDisk(
          { compute: run.compute, log: run.log, pollIntervalMs: run.deps.pollIntervalMs },
          plan.target,
          image,
          (id) => run.created(id),
          (bytes) => task.progress(bytes),
        );
        return { ...result, readBytes: plan.source.sizeBytes };
      },
    );
    written.set(plan.index, diskId);
  }
  return written;
}

/** A new disk for each disk of the restore point with one of `roles` (or all), named by `nameOf`. */
export async function planDisks(
  run: RestoreRun,
  roles: Array<'os' | number> | 'all',
  resourceGroup: string,
  location: string,
  nameOf: (role: 'os' | number, disk: ManifestDisk) => string,
): Promise<DiskPlan[]> {
  const saved = savedVm(run.manifest.vm);
  const plans: DiskPlan[] = [];
  for (const [index, source] of run.manifest.disks.entries()) {
    if (roles !== 'all' && !roles.includes(source.role)) continue;
    const os = source.role === 'os';
    plans.push({
      index,
      source,
      target: {
        resourceGroup,
        name: nameOf(source.role, source),
        location,
        osType: os ? saved.osType : undefined,
        hyperVGeneration: os ? await sourceGeneration(run, source) : undefined,
        tags: { 'acba-restored-from': run.point.id },
      },
    });
  }
  return plans;
}

/** The VM a restore over the original writes to; not_found when it no longer exists. */
export async function originalVm(run: RestoreRun, resourceGroup: string, name: string) {
  return azureStep(`Reading VM ${name}`, () =>
    run.compute.virtualMachines.get(resourceGroup, name).catch((error: unknown) => {
      if (isResourceNotFound(error))
        throw notFound(
          `VM ${name} no longer exists in ${resourceGroup}, so there is nothing to restore over; ask for a restore to a new VM or as new disks instead.`,
        );
      throw error;
    }),
  );
}
