/**
 * The disks of a VM as ARM describes them: the OS disk and the data disks by
 * LUN. A managed disk is known by its resource id; an unmanaged disk by the
 * URL of its VHD page blob (./vhd-snapshots.ts), which then serves as its id
 * wherever ACBA keeps one (manifests, kept snapshots).
 */
import type { ComputeManagementClient } from '@azure/arm-compute';
import type { ProtectedItem } from '../core/db/schema.ts';
import { badInput } from '../core/errors.ts';
import { parseResourceId } from './resource-id.ts';

export type VirtualMachine = Awaited<ReturnType<ComputeManagementClient['virtualMachines']['get']>>;

export interface VmDisk {
  name: string;
  role: 'os' | number;
  /** The managed disk's resource id, or the URL of the unmanaged disk's VHD blob. */
  resourceId: string;
  /** `managed`: a managed disk; `vhd`: an unmanaged disk, a VHD page blob in a storage account. */
  kind: 'managed' | 'vhd';
}

interface ArmDisk {
  name?: string;
  managedDisk?: { id?: string };
  vhd?: { uri?: string };
}

/** The VM's disks, OS disk first; refuses a disk that is neither managed nor a VHD blob. */
export function vmDisks(vm: VirtualMachine, item: ProtectedItem): VmDisk[] {
  const os = vm.storageProfile?.osDisk;
  if (!os)
    throw badInput(
      `VM ${item.name} has no OS disk in its storage profile; sync the inventory and check the VM in Azure.`,
    );
  return [
    diskOf(os, 'os', `The OS disk of VM ${item.name}`),
    ...(vm.storageProfile?.dataDisks ?? []).map((data) =>
      diskOf(data, data.lun, `Data disk LUN ${data.lun} of VM ${item.name}`),
    ),
  ];
}

function diskOf(disk: ArmDisk, role: VmDisk['role'], what: string): VmDisk {
  if (disk.managedDisk?.id)
    return {
      name: disk.name ?? parseResourceId(disk.managedDisk.id).name,
      role,
      resourceId: disk.managedDisk.id,
      kind: 'managed',
    };
  if (disk.vhd?.uri) {
    const url = new URL(disk.vhd.uri);
    return {
      name: disk.name ?? decodeURIComponent(url.pathname.split('/').at(-1) ?? ''),
      role,
      resourceId: `${url.origin}${url.pathname}`,
      kind: 'vhd',
    };
  }
  throw badInput(
    `${what} has neither a managed disk id nor a VHD URI; check the VM's storage profile in Azure.`,
  );
}
