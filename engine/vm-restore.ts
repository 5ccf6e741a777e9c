/**
 * Restoring a whole VM from a backup restore point, run by the engine only for
 * an approved request (./restore-run.ts does the approval, the job session,
 * the audit trail and the cleanup).
 *
 * To a new location: a new VM of another name, in the chosen resource group,
 * region (within the restore point's geography, ./restore-regions.ts), subnet
 * and size. Every disk of the restore point becomes a new managed disk
 * (./disk-upload.ts) named after the new VM, and the VM is created from the
 * saved configuration with the OS disk attached.
 *
 * Over the original: the VM keeps its name, network and size; its disks are
 * written as new disks beside the old ones while it still runs, then swapped
 * in with the VM deallocated (./disk-swap.ts), and the old disks are kept and
 * named in the result.
 *
 * Names and regions are checked before anything is created.
 */
import type { VmRestoreTarget } from '../core/db/schema.ts';
import { azureStep } from './azure-steps.ts';
import { swapDisks } from './disk-swap.ts';
import {
  assertDisksAbsent,
  assertVmAbsent,
  originalVm,
  planDisks,
  restoredDiskName,
  savedVm,
  writeDisks,
} from './restore-disks.ts';
import { checkRestoreRegion, normaliseRegion } from './restore-regions.ts';
import {
  runRestoreRequest,
  type RestoreDeps,
  type RestoreOutcome,
  type RestoreRun,
} from './restore-run.ts';
import { parseResourceId } from './resource-id.ts';

/** Runs an approved VM restore after the engine's own approval check; throws forbidden when refused. */
export async function runVmRestore(deps: RestoreDeps, requestId: string): Promise<void> {
  await runRestoreRequest(deps, requestId, 'vm_restore', (run) => {
    const target = run.request.target as VmRestoreTarget;
    return target.replaceOriginal ? restoreOverOriginal(run) : restoreToNewVm(run, target);
  });
}

async function restoreToNewVm(run: RestoreRun, target: VmRestoreTarget): Promise<RestoreOutcome> {
  const saved = savedVm(run.manifest.vm);
  const source = parseResourceId(run.item.resource_id);
  const name = target.newVmName ?? `${run.item.name}-restored`;
  const resourceGroup = target.resourceGroup ?? source.resourceGroup;
  const location = normaliseRegion(target.region ?? saved.location);
  const vmSize = target.vmSize ?? saved.vmSize;

  checkRestoreRegion(run.point.id, saved.location, location);
  const plans = await planDisks(run, 'all', resourceGroup, location, (role) =>
    role === 'os' ? `${name}-osdisk` : `${name}-datadisk-${role}`,
  );
  await assertVmAbsent(run.compute, resourceGroup, name);
  await assertDisksAbsent(
    run.compute,
    resourceGroup,
    plans.map((p) => p.target.name),
  );

  const written = await writeDisks(run, plans);
  const diskOf = (role: 'os' | number) => {
    const plan = plans.find((p) => p.source.role === role)!;
    return { id: written.get(plan.index)!, name: plan.target.name };
  };
  const os = diskOf('os');
  const dataRoles = plans.map((p) => p.source.role).filter((r): r is number => r !== 'os');
  const vm = await azureStep(`Creating VM ${name} in ${resourceGroup}`, () =>
    run.compute.virtualMachines.beginCreateOrUpdateAndWait(
      resourceGroup,
      name,
      {
        location,
        tags: { ...saved.tags, 'acba-restored-from': run.point.id },
        hardwareProfile: { vmSize },
        storageProfile: {
          osDisk: {
            osType: saved.osType,
            name: os.name,
            createOption: 'Attach',
            caching: saved.caching.get('os'),
            managedDisk: { id: os.id },
          },
          dataDisks: dataRoles.map((lun) => ({
            lun,
            name: diskOf(lun).name,
            createOption: 'Attach',
            caching: saved.caching.get(lun),
            managedDisk: { id: diskOf(lun).id },
          })),
        },
        networkProfile: {
          networkApiVersion: '2020-11-01',
          networkInterfaceConfigurations: [
            {
              name: `${name}-nic`,
              primary: true,
              deleteOption: 'Delete',
              ipConfigurations: [{ name: `${name}-ipconfig`, subnet: { id: target.subnetId } }],
            },
          ],
        },
      },
      { updateIntervalInMs: run.deps.pollIntervalMs },
    ),
  );
  for (const id of written.values()) run.keep(id);

  const disks = plans.map((p) => p.target.name);
  return {
    result: {
      restorePointId: run.point.id,
      vmId: vm.id,
      vmName: name,
      resourceGroup,
      region: location,
      disks,
    },
    summary: `VM ${run.item.name} was restored as the new VM ${name} in ${resourceGroup} (${location}) from the restore point of ${run.point.created_at.toISOString()}, with the disks ${disks.join(', ')}.`,
  };
}

async function restoreOverOriginal(run: RestoreRun): Promise<RestoreOutcome> {
  const { resourceGroup, name } = parseResourceId(run.item.resource_id);
  const vm = await originalVm(run, resourceGroup, name);

  const location = normaliseRegion(vm.location);
  const plans = await planDisks(run, 'all', resourceGroup, location, (_role, disk) =>
    restoredDiskName(disk.name, run.request.id),
  );
  await assertDisksAbsent(
    run.compute,
    resourceGroup,
    plans.map((p) => p.target.name),
  );

  const written = await writeDisks(run, plans);
  const kept = await swapDisks(
    run,
    resourceGroup,
    name,
    plans.map((p) => ({
      role: p.source.role,
      diskId: written.get(p.index)!,
      diskName: p.target.name,
    })),
    true,
  );

  const disks = plans.map((p) => p.target.name);
  return {
    result: { restorePointId: run.point.id, vmName: name, resourceGroup, disks, keptDisks: kept },
    summary: `VM ${name} runs again on its disks from the restore point of ${run.point.created_at.toISOString()} (${disks.join(', ')}). Its previous disks are kept for you to delete once you are satisfied: ${kept.join(', ')}.`,
  };
}
