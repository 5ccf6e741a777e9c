/**
 * How the sandbox's compute resources look on the wire: virtual machines,
 * managed disks and snapshots rendered in the shape of Azure's published
 * REST examples (ids, names, types, properties, provisioningState), with the
 * live parts (diskState while a SAS is active, a snapshot's provisioning
 * state) taken from the current state.
 *
 * Sizes: the seeded disks are a few MiB, so diskSizeGB rounds up to 1 while
 * diskSizeBytes gives the exact size; clients should size reads by bytes.
 */
import type { DiskBlobService } from './page-blobs.ts';
import type { ComputeResources, DiskRecord, SnapshotRecord } from './resources.ts';
import { vmResourceId, type SeedVirtualMachine } from './seed.ts';
import { VHD_FOOTER_BYTES } from './vhd-footer.ts';
import type { VhdStore } from './vhd-store.ts';

function diskSizeGB(bytes: number): number {
  return Math.max(1, Math.ceil(bytes / 1024 ** 3));
}

/**
 * A VM as ARM returns it. A VM on managed disks names each disk's resource
 * (`managedDisk.id`); a VM on unmanaged disks names each disk's VHD blob
 * (`vhd.uri`), as in Azure's published examples.
 */
export function virtualMachineJson(
  vm: SeedVirtualMachine,
  resources: ComputeResources,
  vhds: VhdStore,
): Record<string, unknown> {
  const id = vmResourceId(vm.subscriptionId, vm.resourceGroup, vm.name);
  const rgPrefix = `/subscriptions/${vm.subscriptionId}/resourceGroups/${vm.resourceGroup}/providers`;
  const diskId = (name: string) => `${rgPrefix}/Microsoft.Compute/disks/${name}`;
  // Where each disk lives and its size: a managed disk resource, or a VHD less its footer.
  const placement = (name: string) => {
    const uri = vhds.vhdUri(vm, name);
    if (uri)
      return {
        where: { vhd: { uri } },
        sizeBytes: (vhds.blobAt(uri)?.sizeBytes ?? VHD_FOOTER_BYTES) - VHD_FOOTER_BYTES,
      };
    return {
      where: { managedDisk: { storageAccountType: 'Premium_LRS', id: diskId(name) } },
      sizeBytes: resources.getDisk(diskId(name))?.sizeBytes ?? 0,
      deleteOption: true,
    };
  };
  const os = placement(vm.osDisk.name);
  const attached = vm.osDisk.createOption === 'Attach';
  const osConfiguration =
    vm.osType === 'Linux'
      ? {
          linuxConfiguration: {
            disablePasswordAuthentication: true,
            provisionVMAgent: true,
            patchSettings: { patchMode: 'ImageDefault', assessmentMode: 'ImageDefault' },
          },
        }
      : {
          windowsConfiguration: {
            provisionVMAgent: true,
            enableAutomaticUpdates: true,
            patchSettings: { patchMode: 'AutomaticByOS', assessmentMode: 'ImageDefault' },
          },
        };

  return {
    name: vm.name,
    id,
    type: 'Microsoft.Compute/virtualMachines',
    location: vm.location,
    tags: vm.tags ?? {},
    etag: '"1"',
    properties: {
      vmId: vm.vmId,
      hardwareProfile: { vmSize: vm.vmSize },
      storageProfile: {
        ...(attached
          ? {}
          : {
              imageReference: {
                ...vm.imageReference,
                exactVersion: vm.osType === 'Linux' ? '22.04.202503110' : '20348.3328.250306',
              },
            }),
        osDisk: {
          osType: vm.osType,
          name: vm.osDisk.name,
          createOption: attached ? 'Attach' : 'FromImage',
          caching: 'ReadWrite',
          ...os.where,
          ...(os.deleteOption ? { deleteOption: 'Delete' } : {}),
          diskSizeGB: diskSizeGB(os.sizeBytes),
        },
        dataDisks: (vm.dataDisks ?? []).map((data) => {
          const disk = placement(data.name);
          return {
            lun: data.lun,
            name: data.name,
            createOption: 'Attach',
            caching: 'None',
            ...disk.where,
            ...(disk.deleteOption ? { deleteOption: 'Detach' } : {}),
            diskSizeGB: diskSizeGB(disk.sizeBytes),
            toBeDetached: false,
          };
        }),
        diskControllerType: 'SCSI',
      },
      ...(attached
        ? {}
        : {
            osProfile: {
              computerName: vm.computerName,
              adminUsername: vm.adminUsername,
              ...osConfiguration,
              secrets: [],
              allowExtensionOperations: true,
              requireGuestProvisionSignal: true,
            },
          }),
      networkProfile: networkProfileJson(vm, rgPrefix),
      diagnosticsProfile: { bootDiagnostics: { enabled: true } },
      provisioningState: 'Succeeded',
      timeCreated: vm.timeCreated,
    },
  };
}

/** A VM created through ARM has the network interface its configuration made; seeded VMs have their own NIC. */
function networkProfileJson(vm: SeedVirtualMachine, rgPrefix: string): Record<string, unknown> {
  if (!vm.subnetId)
    return {
      networkInterfaces: [{ id: `${rgPrefix}/Microsoft.Network/networkInterfaces/${vm.name}-nic` }],
    };
  return {
    networkApiVersion: '2020-11-01',
    networkInterfaceConfigurations: [
      {
        name: `${vm.name}-nic`,
        properties: {
          primary: true,
          deleteOption: 'Delete',
          ipConfigurations: [
            { name: `${vm.name}-ipconfig`, properties: { subnet: { id: vm.subnetId } } },
          ],
        },
      },
    ],
  };
}

export function diskJson(disk: DiskRecord, blobs: DiskBlobService): Record<string, unknown> {
  return {
    name: disk.name,
    id: disk.id,
    type: 'Microsoft.Compute/disks',
    location: disk.location,
    tags: {},
    ...(disk.managedBy ? { managedBy: disk.managedBy } : {}),
    sku: { name: 'Premium_LRS', tier: 'Premium' },
    properties: {
      ...(disk.osType ? { osType: disk.osType } : {}),
      hyperVGeneration: disk.hyperVGeneration,
      supportedCapabilities: { architecture: 'x64' },
      creationData: disk.upload
        ? { createOption: 'Upload', uploadSizeBytes: disk.upload.sizeBytes }
        : { createOption: 'FromImage', imageReference: { id: disk.imageReferenceId } },
      diskSizeGB: diskSizeGB(disk.sizeBytes),
      diskIOPSReadWrite: 120,
      diskMBpsReadWrite: 25,
      encryption: { type: 'EncryptionAtRestWithPlatformKey' },
      networkAccessPolicy: 'AllowAll',
      publicNetworkAccess: 'Enabled',
      timeCreated: disk.timeCreated,
      provisioningState: 'Succeeded',
      diskState: diskState(disk, blobs),
      diskSizeBytes: disk.sizeBytes,
      uniqueId: disk.uniqueId,
      tier: 'P1',
    },
  };
}

function diskState(disk: DiskRecord, blobs: DiskBlobService): string {
  if (disk.upload && disk.upload.state !== 'Uploaded') return disk.upload.state;
  if (blobs.hasActiveGrant(disk.id)) return 'ActiveSAS';
  return disk.managedBy ? 'Attached' : 'Unattached';
}

export function snapshotJson(
  snapshot: SnapshotRecord,
  blobs: DiskBlobService,
): Record<string, unknown> {
  return {
    name: snapshot.name,
    id: snapshot.id,
    type: 'Microsoft.Compute/snapshots',
    location: snapshot.location,
    tags: snapshot.tags,
    sku: { name: snapshot.incremental ? 'Standard_ZRS' : 'Standard_LRS', tier: 'Standard' },
    properties: {
      osType: snapshot.osType,
      hyperVGeneration: snapshot.hyperVGeneration,
      creationData: {
        createOption: 'Copy',
        sourceResourceId: snapshot.sourceResourceId,
        sourceUniqueId: snapshot.sourceUniqueId,
      },
      diskSizeGB: diskSizeGB(snapshot.sizeBytes),
      encryption: { type: 'EncryptionAtRestWithPlatformKey' },
      incremental: snapshot.incremental,
      ...(snapshot.incrementalSnapshotFamilyId
        ? { incrementalSnapshotFamilyId: snapshot.incrementalSnapshotFamilyId }
        : {}),
      networkAccessPolicy: 'AllowAll',
      publicNetworkAccess: 'Enabled',
      diskState: blobs.hasActiveGrant(snapshot.id) ? 'ActiveSAS' : 'Unattached',
      diskSizeBytes: snapshot.sizeBytes,
      uniqueId: snapshot.uniqueId,
      timeCreated: snapshot.timeCreated,
      provisioningState: snapshot.provisioningState,
      ...(snapshot.incremental
        ? { completionPercent: snapshot.provisioningState === 'Succeeded' ? 100 : 0 }
        : {}),
    },
  };
}
