/**
 * Swapping restored disks into an existing VM: deallocate it, point its
 * storage profile at the new disks (the OS disk by name and id, data disks by
 * LUN), and start it again. The disks it had are detached, never deleted,
 * and named in the result so that an operator can delete them once the
 * restore is accepted. When any step fails the VM gets its old storage
 * profile back and is started again, so it runs as before and loses nothing;
 * the caller then deletes the new disks.
 */
import type { DataDisk, OSDisk, VirtualMachine } from '@azure/arm-compute';
import { unavailable } from '../core/errors.ts';
import { azureStep, describeAzureFailure } from './azure-steps.ts';
import type { RestoreRun } from './restore-run.ts';

/** A restored disk and the place in the VM it takes. */
export interface DiskSwap {
  role: 'os' | number;
  diskId: string;
  diskName: string;
}

type Profile = { osDisk: OSDisk; dataDisks: DataDisk[] };

/**
 * Swaps `swaps` into VM `vmName` of `resourceGroup`. With `exactly`, data
 * disks the swaps do not name are detached too, so the VM ends with exactly
 * the restored disks. Returns the names of the disks detached (kept).
 */
export async function swapDisks(
  run: RestoreRun,
  resourceGroup: string,
  vmName: string,
  swaps: DiskSwap[],
  exactly: boolean,
): Promise<string[]> {
  const compute = run.compute.virtualMachines;
  const options = { updateIntervalInMs: run.deps.pollIntervalMs };
  const vm = await azureStep(`Reading VM ${vmName}`, () => compute.get(resourceGroup, vmName));
  const before = profileOf(vm);
  const after = swappedProfile(before, swaps, exactly);
  const kept = detachedNames(before, after);

  let changed = false;
  try {
    await azureStep(`Stopping (deallocating) VM ${vmName}`, () =>
      compute.beginDeallocateAndWait(resourceGroup, vmName, options),
    );
    changed = true;
    await azureStep(`Swapping the restored disks into VM ${vmName}`, () =>
      compute.beginUpdateAndWait(resourceGroup, vmName, { storageProfile: after }, options),
    );
    await azureStep(`Starting VM ${vmName}`, () =>
      compute.beginStartAndWait(resourceGroup, vmName, options),
    );
  } catch (error) {
    if (changed) await putBack(run, resourceGroup, vmName, before, error);
    throw error;
  }
  for (const swap of swaps) run.keep(swap.diskId);
  run.log.info({ vm: vmName, kept }, 'disks_swapped');
  return kept;
}

/** Gives the VM its old disks back and starts it; says plainly when that fails too. */
async function putBack(
  run: RestoreRun,
  resourceGroup: string,
  vmName: string,
  before: Profile,
  cause: unknown,
): Promise<void> {
  const compute = run.compute.virtualMachines;
  const options = { updateIntervalInMs: run.deps.pollIntervalMs };
  try {
    await compute.beginUpdateAndWait(resourceGroup, vmName, { storageProfile: before }, options);
    await compute.beginStartAndWait(resourceGroup, vmName, options);
    run.log.warn({ vm: vmName, err: cause }, 'disk_swap_undone');
  } catch (error) {
    const why = describeAzureFailure(`Putting the old disks back into VM ${vmName}`, error);
    run.log.error({ vm: vmName, err: error, cause }, 'disk_swap_undo_failed');
    throw unavailable(
      `${why.message} The VM's old disks (${namesOf(before).join(', ')}) are kept; ask the operators to attach them to ${vmName} again.`,
    );
  }
}

function profileOf(vm: VirtualMachine): Profile {
  const os = vm.storageProfile?.osDisk;
  return {
    osDisk: {
      osType: os?.osType,
      name: os?.name,
      caching: os?.caching,
      createOption: os?.createOption ?? 'Attach',
      managedDisk: { id: os?.managedDisk?.id },
    },
    dataDisks: (vm.storageProfile?.dataDisks ?? []).map((d) => ({
      lun: d.lun,
      name: d.name,
      caching: d.caching,
      createOption: d.createOption,
      managedDisk: { id: d.managedDisk?.id },
    })),
  };
}

function swappedProfile(before: Profile, swaps: DiskSwap[], exactly: boolean): Profile {
  const os = swaps.find((s) => s.role === 'os');
  const data = swaps.filter((s) => s.role !== 'os');
  const osDisk = os
    ? { ...before.osDisk, name: os.diskName, managedDisk: { id: os.diskId } }
    : before.osDisk;
  const untouched = exactly
    ? []
    : before.dataDisks.filter((d) => !data.some((s) => s.role === d.lun));
  const restored = data.map((s) => ({
    lun: s.role as number,
    name: s.diskName,
    caching: before.dataDisks.find((d) => d.lun === s.role)?.caching,
    createOption: 'Attach',
    managedDisk: { id: s.diskId },
  }));
  return { osDisk, dataDisks: [...untouched, ...restored].sort((a, b) => a.lun - b.lun) };
}

function detachedNames(before: Profile, after: Profile): string[] {
  const still = new Set(namesOf(after));
  return namesOf(before).filter((name) => !still.has(name));
}

function namesOf(profile: Profile): string[] {
  return [profile.osDisk, ...profile.dataDisks].map((d) => d.name ?? d.managedDisk?.id ?? '');
}
