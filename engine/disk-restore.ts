/**
 * Restoring one or more disks of a VM from a backup restore point, run by the
 * engine only for an approved request (./restore-run.ts does the approval,
 * the job session, the audit trail and the cleanup). Each chosen disk becomes
 * a new managed disk named after the original (`<name>-restored-<request>`),
 * either beside the VM in a chosen resource group (the VM's own by default,
 * always in the VM's region), or swapped into the VM in place of the
 * original (./disk-swap.ts), whose old disks are kept and named in the
 * result. Names are checked before anything is created.
 */
import type { DiskRestoreTarget } from '../core/db/schema.ts';
import { swapDisks } from './disk-swap.ts';
import {
  assertDisksAbsent,
  originalVm,
  planDisks,
  restoredDiskName,
  savedVm,
  writeDisks,
} from './restore-disks.ts';
import { normaliseRegion } from './restore-regions.ts';
import { runRestoreRequest, type RestoreDeps, type RestoreRun } from './restore-run.ts';
import { parseResourceId } from './resource-id.ts';

/** Runs an approved disk restore after the engine's own approval check; throws forbidden when refused. */
export async function runDiskRestore(deps: RestoreDeps, requestId: string): Promise<void> {
  await runRestoreRequest(deps, requestId, 'disk_restore', async (run) => {
    const target = run.request.target as DiskRestoreTarget;
    const vm = parseResourceId(run.item.resource_id);
    const resourceGroup = target.replaceOriginal
      ? vm.resourceGroup
      : (target.resourceGroup ?? vm.resourceGroup);
    const location = target.replaceOriginal
      ? normaliseRegion((await originalVm(run, vm.resourceGroup, vm.name)).location)
      : normaliseRegion(savedVm(run.manifest.vm).location);

    const plans = await planDisks(run, target.disks, resourceGroup, location, (_role, disk) =>
      restoredDiskName(disk.name, run.request.id),
    );
    await assertDisksAbsent(
      run.compute,
      resourceGroup,
      plans.map((p) => p.target.name),
    );
    const written = await writeDisks(run, plans);
    const disks = plans.map((p) => p.target.name);
    const when = run.point.created_at.toISOString();

    if (!target.replaceOriginal) {
      for (const id of written.values()) run.keep(id);
      return {
        result: { restorePointId: run.point.id, resourceGroup, region: location, disks },
        summary: `The disks of ${vm.name} from the restore point of ${when} are ready as new disks in ${resourceGroup} (${location}): ${disks.join(', ')}.`,
      };
    }

    const kept = await swapInPlace(run, vm.resourceGroup, vm.name, plans, written);
    return {
      result: { restorePointId: run.point.id, resourceGroup, disks, keptDisks: kept },
      summary: `VM ${vm.name} runs again with its disks from the restore point of ${when} (${disks.join(', ')}). Its previous disks are kept for you to delete once you are satisfied: ${kept.join(', ')}.`,
    };
  });
}

function swapInPlace(
  run: RestoreRun,
  resourceGroup: string,
  vmName: string,
  plans: Awaited<ReturnType<typeof planDisks>>,
  written: Map<number, string>,
): Promise<string[]> {
  const swaps = plans.map((p) => ({
    role: p.source.role,
    diskId: written.get(p.index)!,
    diskName: p.target.name,
  }));
  return swapDisks(run, resourceGroup, vmName, swaps, false);
}
