/**
 * The disks of a VM as ARM describes them: the OS disk and the data disks by
 * LUN, each with the managed disk's resource id.
 */
import type { ComputeManagementClient } from '@azure/arm-compute';
import type { ProtectedItem } from '../core/db/schema.ts';
import { badInput } from '../core/errors.ts';
import { parseResourceId } from './resource-id.ts';

export type VirtualMachine = Awaited<ReturnType<ComputeManagementClient['virtualMachines']['get']>>;

export interface VmDisk {
  name: string;
  role: 'os' | number;
  resourceId: string;
}

/** The VM's managed disks, OS disk first; refuses VMs with unmanaged (VHD) disks. */
export function vmDisks(vm: VirtualMachine, item: ProtectedItem): VmDisk[] {
  const os = vm.storageProfile?.osDisk;
  const disks: VmDisk[] = [];
  if (!os?.managedDisk?.id) {
    throw badInput(
      `VM ${item.name} has no managed OS disk (unmanaged VHD disks are not supported); convert it to managed disks to back it up.`,
    );
  }
  disks.push({
    name: os.name ?? parseResourceId(os.managedDisk.id).name,
    role: 'os',
    resourceId: os.managedDisk.id,
  });
  for (const data of vm.storageProfile?.dataDisks ?? []) {
    if (!data.managedDisk?.id) {
      throw badInput(
        `Data disk LUN ${data.lun} of VM ${item.name} is not a managed disk; convert it to a managed disk to back the VM up.`,
      );
    }
    disks.push({
      name: data.name ?? parseResourceId(data.managedDisk.id).name,
      role: data.lun,
      resourceId: data.managedDisk.id,
    });
  }
  return disks;
}
