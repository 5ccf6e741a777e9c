/**
 * The VM operations a restore uses: create a VM from existing managed disks
 * (PUT with `createOption: Attach` and a network interface configuration on a
 * subnet), update its disks (PATCH of the storage profile, the OS disk only
 * while deallocated), deallocate, start, and the instance view that tells the
 * power state. Each is a long-running operation; a fault that fails one
 * (faults.ts) undoes what it changed, as Azure leaves a VM whose update failed
 * with its previous disks.
 *
 * Limits of the stand-in: a VM's disks live in the VM's resource group, and
 * VMs made here are kept in memory only (a restarted sandbox forgets them).
 */
import { randomUUID } from 'node:crypto';
import express, { type Request, type Response, type Router } from 'express';
import type { Logger } from '../core/log.ts';
import {
  accepted,
  ArmError,
  armErrorHandler,
  armPreamble,
  existingGroup,
  param,
  resourceNotFound,
} from './arm-compute.ts';
import { virtualMachineJson } from './compute-json.ts';
import type { IdentityProvider } from './identity.ts';
import type { LongRunningOperations } from './long-running.ts';
import { diskResourceId, type ComputeResources, type DiskRecord } from './resources.ts';
import { vmResourceId, type SandboxSeed, type SeedVirtualMachine } from './seed.ts';
import type { VhdStore } from './vhd-store.ts';

export interface VmWriteOptions {
  seed: SandboxSeed;
  resources: ComputeResources;
  identity: IdentityProvider;
  operations: LongRunningOperations;
  /** Unmanaged disks' VHDs, which a VM's description names by URL. */
  vhds: VhdStore;
  log: Logger;
}

const VM_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}[A-Za-z0-9_]$|^[A-Za-z0-9]$/;
const SUBNET_ID =
  /^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.Network\/virtualNetworks\/[^/]+\/subnets\/[^/]+$/i;
const vmPath = '/resourceGroups/:resourceGroup/providers/Microsoft.Compute/virtualMachines/:name';

interface DiskRef {
  lun?: number;
  createOption?: string;
  osType?: 'Linux' | 'Windows';
  managedDisk?: { id?: string };
}

interface VmBody {
  location?: string;
  tags?: Record<string, string>;
  properties?: {
    hardwareProfile?: { vmSize?: string };
    storageProfile?: { osDisk?: DiskRef; dataDisks?: DiskRef[] };
    networkProfile?: {
      networkInterfaceConfigurations?: Array<{
        properties?: { ipConfigurations?: Array<{ properties?: { subnet?: { id?: string } } }> };
      }>;
    };
  };
}

/** Routes for VM writes under /subscriptions/...; mount before the compute routes. */
export function vmWritesRouter(options: VmWriteOptions): Router {
  const router = express.Router({ mergeParams: true });
  const sub = express.Router({ mergeParams: true });
  router.use(
    '/subscriptions/:subscriptionId',
    armPreamble(options),
    express.json({ limit: '1mb' }),
    sub,
  );

  sub.put(vmPath, (req, res) => {
    const existing = findVm(req, options);
    if (existing) return updateVm(req, res, options, existing);
    createVm(req, res, options);
  });
  sub.patch(vmPath, (req, res) => {
    const vm = findVm(req, options);
    if (!vm) throw resourceNotFound('virtualMachines', req);
    updateVm(req, res, options, vm);
  });
  sub.post(`${vmPath}/deallocate`, (req, res) => setPower(req, res, options, 'deallocated'));
  sub.post(`${vmPath}/start`, (req, res) => setPower(req, res, options, 'running'));
  sub.get(`${vmPath}/instanceView`, (req, res) => {
    const vm = findVm(req, options);
    if (!vm) throw resourceNotFound('virtualMachines', req);
    const power = vm.powerState ?? 'running';
    res.json({
      computerName: vm.computerName,
      statuses: [
        {
          code: 'ProvisioningState/succeeded',
          level: 'Info',
          displayStatus: 'Provisioning succeeded',
        },
        {
          code: `PowerState/${power}`,
          level: 'Info',
          displayStatus: power === 'running' ? 'VM running' : 'VM deallocated',
        },
      ],
    });
  });
  router.use(armErrorHandler(options.log));
  return router;
}

function findVm(req: Request, options: VmWriteOptions): SeedVirtualMachine | undefined {
  return options.resources.getVirtualMachine(
    param(req, 'subscriptionId'),
    existingGroup(req, options),
    param(req, 'name'),
  );
}

function createVm(req: Request, res: Response, options: VmWriteOptions): void {
  const subscriptionId = param(req, 'subscriptionId');
  const resourceGroup = existingGroup(req, options);
  const name = param(req, 'name');
  const body = (req.body ?? {}) as VmBody;
  if (!VM_NAME.test(name))
    throw new ArmError(
      400,
      'InvalidParameter',
      `The VM name '${name}' is invalid: use 1 to 64 letters, digits, periods, underscores or hyphens.`,
    );
  if (!body.location)
    throw new ArmError(
      400,
      'LocationRequired',
      'The location property is required for this definition.',
    );

  const storage = body.properties?.storageProfile;
  if (storage?.osDisk?.createOption !== 'Attach' || !storage.osDisk.osType)
    throw new ArmError(
      400,
      'InvalidParameter',
      "The sandbox creates VMs from an existing OS disk only: osDisk.createOption 'Attach' with osType. Parameter name: storageProfile.osDisk.",
    );
  const subnetId =
    body.properties?.networkProfile?.networkInterfaceConfigurations?.[0]?.properties
      ?.ipConfigurations?.[0]?.properties?.subnet?.id;
  if (!subnetId || !SUBNET_ID.test(subnetId))
    throw new ArmError(
      400,
      'InvalidParameter',
      'A VM needs a network interface configuration on a subnet (a Microsoft.Network subnet resource id). Parameter name: networkProfile.networkInterfaceConfigurations.',
    );

  const location = body.location.replace(/\s+/g, '').toLowerCase();
  const vmId = vmResourceId(subscriptionId, resourceGroup, name);
  const os = attachableDisk(options, storage.osDisk, resourceGroup, location);
  const data = (storage.dataDisks ?? []).map((d) => ({
    lun: d.lun ?? 0,
    disk: attachableDisk(options, d, resourceGroup, location),
  }));
  const vm: SeedVirtualMachine = {
    subscriptionId,
    resourceGroup,
    location,
    name,
    osType: storage.osDisk.osType,
    vmId: randomUUID(),
    vmSize: body.properties?.hardwareProfile?.vmSize ?? 'Standard_B2s',
    computerName: name,
    adminUsername: '',
    imageReference: { publisher: '', offer: '', sku: '', version: '' },
    osDisk: {
      name: os.name,
      uniqueId: os.uniqueId,
      hyperVGeneration: os.hyperVGeneration,
      createOption: 'Attach',
    },
    dataDisks: data.map((d) => ({ name: d.disk.name, lun: d.lun })),
    tags: body.tags ?? {},
    timeCreated: new Date().toISOString(),
    powerState: 'running',
    subnetId,
  };
  for (const disk of [os, ...data.map((d) => d.disk)]) disk.managedBy = vmId;
  options.resources.virtualMachines.push(vm);
  options.log.info({ vmId, disks: data.length + 1 }, 'sandbox_vm_created');

  accepted(
    res,
    options.operations.start({
      subscriptionId,
      location,
      onFailed: async () => {
        const at = options.resources.virtualMachines.indexOf(vm);
        if (at >= 0) options.resources.virtualMachines.splice(at, 1);
        for (const disk of [os, ...data.map((d) => d.disk)]) disk.managedBy = '';
      },
      result: () => virtualMachineJson(vm, options.resources, options.vhds),
      output: () => virtualMachineJson(vm, options.resources, options.vhds),
    }),
  );
}

function updateVm(
  req: Request,
  res: Response,
  options: VmWriteOptions,
  vm: SeedVirtualMachine,
): void {
  const body = (req.body ?? {}) as VmBody;
  const storage = body.properties?.storageProfile;
  const vmId = vmResourceId(vm.subscriptionId, vm.resourceGroup, vm.name);
  const before = { osDisk: { ...vm.osDisk }, dataDisks: [...(vm.dataDisks ?? [])] };
  const vmSize = body.properties?.hardwareProfile?.vmSize;

  const osId = storage?.osDisk?.managedDisk?.id;
  const os =
    osId && osId.toLowerCase() !== diskIdOf(vm, vm.osDisk.name).toLowerCase()
      ? attachableDisk(options, storage!.osDisk!, vm.resourceGroup, vm.location)
      : undefined;
  if (os && vm.powerState !== 'deallocated')
    throw new ArmError(
      409,
      'OperationNotAllowed',
      `The OS disk of VM ${vm.name} can only be swapped while the VM is deallocated. Deallocate it first.`,
    );
  const data = storage?.dataDisks?.map((d) => {
    const same = (vm.dataDisks ?? []).find(
      (old) => diskIdOf(vm, old.name).toLowerCase() === d.managedDisk?.id?.toLowerCase(),
    );
    const disk = same
      ? options.resources.getDisk(diskIdOf(vm, same.name))!
      : attachableDisk(options, d, vm.resourceGroup, vm.location);
    return { lun: d.lun ?? 0, disk };
  });

  const attach = (osDisk: SeedVirtualMachine['osDisk'], dataDisks: typeof before.dataDisks) => {
    for (const old of [vm.osDisk, ...(vm.dataDisks ?? [])])
      setManagedBy(options, diskIdOf(vm, old.name), '');
    vm.osDisk = osDisk;
    vm.dataDisks = dataDisks;
    for (const now of [vm.osDisk, ...vm.dataDisks])
      setManagedBy(options, diskIdOf(vm, now.name), vmId);
  };
  attach(
    os ? { ...vm.osDisk, name: os.name, uniqueId: os.uniqueId, image: undefined } : vm.osDisk,
    data ? data.map((d) => ({ name: d.disk.name, lun: d.lun })) : (vm.dataDisks ?? []),
  );
  const sizeBefore = vm.vmSize;
  if (vmSize) vm.vmSize = vmSize;
  options.log.info({ vmId, osDiskSwapped: Boolean(os) }, 'sandbox_vm_updated');

  accepted(
    res,
    options.operations.start({
      subscriptionId: vm.subscriptionId,
      location: vm.location,
      onFailed: async () => {
        attach(before.osDisk, before.dataDisks);
        vm.vmSize = sizeBefore;
      },
      result: () => virtualMachineJson(vm, options.resources, options.vhds),
      output: () => virtualMachineJson(vm, options.resources, options.vhds),
    }),
  );
}

function setPower(
  req: Request,
  res: Response,
  options: VmWriteOptions,
  state: 'running' | 'deallocated',
): void {
  const vm = findVm(req, options);
  if (!vm) throw resourceNotFound('virtualMachines', req);
  const before = vm.powerState ?? 'running';
  vm.powerState = state;
  options.log.info({ vm: vm.name, powerState: state }, 'sandbox_vm_power');
  accepted(
    res,
    options.operations.start({
      subscriptionId: vm.subscriptionId,
      location: vm.location,
      onFailed: async () => void (vm.powerState = before),
    }),
  );
}

/** A disk that may be attached: in the VM's group and region, uploaded, and attached to no VM. */
function attachableDisk(
  options: VmWriteOptions,
  ref: DiskRef,
  resourceGroup: string,
  location: string,
): DiskRecord {
  const id = ref.managedDisk?.id ?? '';
  const disk = options.resources.getDisk(id);
  if (!disk)
    throw new ArmError(404, 'NotFound', `Disk ${id} is not found. Parameter name: managedDisk.id.`);
  if (disk.resourceGroup.toLowerCase() !== resourceGroup.toLowerCase())
    throw new ArmError(
      400,
      'InvalidParameter',
      `The sandbox attaches disks of the VM's own resource group only; ${disk.name} is in ${disk.resourceGroup}.`,
    );
  if (disk.location !== location)
    throw new ArmError(
      400,
      'InvalidParameter',
      `Disk ${disk.name} is in ${disk.location}, not in the VM's region ${location}.`,
    );
  if (disk.upload && disk.upload.state !== 'Uploaded')
    throw new ArmError(
      409,
      'OperationNotAllowed',
      `Disk ${disk.name} is in state ${disk.upload.state}; end its upload (endGetAccess) before attaching it.`,
    );
  if (disk.managedBy)
    throw new ArmError(
      409,
      'OperationNotAllowed',
      `Disk ${disk.name} is already attached to VM ${disk.managedBy}.`,
    );
  return disk;
}

function diskIdOf(vm: SeedVirtualMachine, diskName: string): string {
  return diskResourceId(vm.subscriptionId, vm.resourceGroup, diskName);
}

function setManagedBy(options: VmWriteOptions, diskId: string, vmId: string): void {
  const disk = options.resources.getDisk(diskId);
  if (disk) disk.managedBy = vmId;
}
