/**
 * The state of the sandbox's compute resources: virtual machines and their
 * managed disks (fixed by the seed) and the snapshots that clients create.
 *
 * Each managed disk and snapshot is a raw file under dataDir/sandbox/disks; a
 * snapshot is a copy of its source taken at creation (a reflink where the
 * file system offers one). Snapshot records are kept in
 * dataDir/sandbox/snapshots.json so that a restarted sandbox still has the
 * snapshots an incremental backup chain refers to. Resource ids compare
 * case-insensitively, as in Azure.
 */
import { createHash, randomUUID } from 'node:crypto';
import fs from 'node:fs/promises';
import { constants as fsConstants, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { addedVmsFile, type AddedVm } from './added-vms.ts';
import type { ImageName } from './disk-images.ts';
import type { SeedVirtualMachine } from './seed.ts';
import { vmResourceId } from './seed.ts';

export interface DiskRecord {
  id: string;
  name: string;
  subscriptionId: string;
  resourceGroup: string;
  location: string;
  /** Absent on data disks made through ARM. */
  osType?: 'Linux' | 'Windows';
  hyperVGeneration: 'V1' | 'V2';
  uniqueId: string;
  /** The VM the disk is attached to; empty when unattached. */
  managedBy: string;
  imageReferenceId: string;
  file: string;
  sizeBytes: number;
  timeCreated: string;
  /** Disks made empty for an upload: the page blob's size (data plus VHD footer) and how far the upload got. */
  upload?: { sizeBytes: number; state: 'ReadyToUpload' | 'ActiveUpload' | 'Uploaded' };
}

export interface SnapshotRecord {
  id: string;
  name: string;
  subscriptionId: string;
  resourceGroup: string;
  location: string;
  tags: Record<string, string>;
  osType?: 'Linux' | 'Windows';
  hyperVGeneration?: 'V1' | 'V2';
  sourceResourceId: string;
  sourceUniqueId: string;
  incremental: boolean;
  /** Shared by all incremental snapshots of one disk; page-range diffs only work within a family. */
  incrementalSnapshotFamilyId?: string;
  uniqueId: string;
  file: string;
  sizeBytes: number;
  timeCreated: string;
  provisioningState: 'Creating' | 'Succeeded';
}

export interface NewSnapshot {
  subscriptionId: string;
  resourceGroup: string;
  name: string;
  location: string;
  tags: Record<string, string>;
  sourceResourceId: string;
  incremental: boolean;
}

export function diskResourceId(
  subscriptionId: string,
  resourceGroup: string,
  name: string,
): string {
  return `/subscriptions/${subscriptionId}/resourceGroups/${resourceGroup}/providers/Microsoft.Compute/disks/${name}`;
}

export function snapshotResourceId(
  subscriptionId: string,
  resourceGroup: string,
  name: string,
): string {
  return `/subscriptions/${subscriptionId}/resourceGroups/${resourceGroup}/providers/Microsoft.Compute/snapshots/${name}`;
}

const key = (id: string) => id.toLowerCase();

export class ComputeResources {
  private readonly disks = new Map<string, DiskRecord>();
  private readonly snapshots = new Map<string, SnapshotRecord>();
  private saveQueue: Promise<void> = Promise.resolve();
  /** mtime of added-vms.json when last read; added VMs appear without a restart. */
  private addedSeen = -1;

  private constructor(
    private readonly disksDir: string,
    private readonly stateFile: string,
    readonly virtualMachines: SeedVirtualMachine[],
  ) {}

  /**
   * Loads the state under stateDir, copying a seed image into place for each
   * disk that has no file yet (existing disk files are kept as they are).
   */
  static async open(
    stateDir: string,
    virtualMachines: SeedVirtualMachine[],
    images: Record<ImageName, string>,
  ): Promise<ComputeResources> {
    const disksDir = path.join(stateDir, 'disks');
    await fs.mkdir(path.join(disksDir, 'snapshots'), { recursive: true });
    await fs.mkdir(path.join(disksDir, 'created'), { recursive: true });
    const resources = new ComputeResources(
      disksDir,
      path.join(stateDir, 'snapshots.json'),
      virtualMachines,
    );

    for (const vm of virtualMachines) {
      // VMs on unmanaged disks keep their VHDs in a storage account (./vhd-store.ts).
      if (!vm.osDisk.image || vm.storage) continue;
      const file = path.join(disksDir, `${vm.osDisk.name}.raw`);
      const exists = await fs.access(file).then(
        () => true,
        () => false,
      );
      if (!exists) await copyReflink(images[vm.osDisk.image], file);
      const { size } = await fs.stat(file);

      const id = diskResourceId(vm.subscriptionId, vm.resourceGroup, vm.osDisk.name);
      resources.disks.set(key(id), {
        id,
        name: vm.osDisk.name,
        subscriptionId: vm.subscriptionId,
        resourceGroup: vm.resourceGroup,
        location: vm.location,
        osType: vm.osType,
        hyperVGeneration: vm.osDisk.hyperVGeneration,
        uniqueId: vm.osDisk.uniqueId,
        managedBy: vmResourceId(vm.subscriptionId, vm.resourceGroup, vm.name),
        imageReferenceId: `/Subscriptions/${vm.subscriptionId}/Providers/Microsoft.Compute/Locations/${vm.location}/Publishers/${vm.imageReference.publisher}/ArtifactTypes/VMImage/Offers/${vm.imageReference.offer}/Skus/${vm.imageReference.sku}/Versions/1.0.0`,
        file,
        sizeBytes: size,
        timeCreated: vm.timeCreated,
      });
    }

    await resources.loadSnapshots();
    resources.refreshAdded();
    return resources;
  }

  /** Registers VMs added by `acba sandbox add-vm` since the last look (a sync stat: sandbox-sized state). */
  private refreshAdded(): void {
    const file = addedVmsFile(path.dirname(this.disksDir));
    let mtime: number;
    try {
      mtime = statSync(file).mtimeMs;
    } catch {
      return;
    }
    if (mtime === this.addedSeen) return;
    this.addedSeen = mtime;
    const added = JSON.parse(readFileSync(file, 'utf8')) as AddedVm[];
    for (const vm of added) {
      if (this.virtualMachines.some((v) => key(v.name) === key(vm.name))) continue;
      this.registerAdded(vm);
    }
  }

  private registerAdded(vm: AddedVm): void {
    const [os, ...data] = vm.disks;
    if (!os) return;
    const imageReference = {
      publisher: 'acba-sandbox',
      offer: 'added-from-image-files',
      sku: vm.osType.toLowerCase(),
      version: 'latest',
    };
    this.virtualMachines.push({
      subscriptionId: vm.subscriptionId,
      resourceGroup: vm.resourceGroup,
      location: vm.location,
      name: vm.name,
      osType: vm.osType,
      vmId: vm.vmId,
      vmSize: 'Standard_B2s',
      computerName: vm.name,
      adminUsername: 'azureuser',
      imageReference,
      osDisk: { name: os.name, uniqueId: os.uniqueId, hyperVGeneration: 'V2' },
      dataDisks: data.map((disk, lun) => ({ name: disk.name, lun })),
      timeCreated: vm.timeCreated,
    });
    for (const disk of vm.disks) {
      const id = diskResourceId(vm.subscriptionId, vm.resourceGroup, disk.name);
      this.disks.set(key(id), {
        id,
        name: disk.name,
        subscriptionId: vm.subscriptionId,
        resourceGroup: vm.resourceGroup,
        location: vm.location,
        osType: vm.osType,
        hyperVGeneration: 'V2',
        uniqueId: disk.uniqueId,
        managedBy: vmResourceId(vm.subscriptionId, vm.resourceGroup, vm.name),
        imageReferenceId: `/Subscriptions/${vm.subscriptionId}/Providers/Microsoft.Compute/Locations/${vm.location}/Publishers/${imageReference.publisher}/ArtifactTypes/VMImage/Offers/${imageReference.offer}/Skus/${imageReference.sku}/Versions/1.0.0`,
        file: disk.file,
        sizeBytes: disk.sizeBytes,
        timeCreated: vm.timeCreated,
      });
    }
  }

  getDisk(id: string): DiskRecord | undefined {
    this.refreshAdded();
    return this.disks.get(key(id));
  }

  listDisks(subscriptionId: string, resourceGroup?: string): DiskRecord[] {
    this.refreshAdded();
    return [...this.disks.values()].filter((disk) => inScope(disk, subscriptionId, resourceGroup));
  }

  getSnapshot(id: string): SnapshotRecord | undefined {
    return this.snapshots.get(key(id));
  }

  listSnapshots(subscriptionId: string, resourceGroup?: string): SnapshotRecord[] {
    return [...this.snapshots.values()].filter((snapshot) =>
      inScope(snapshot, subscriptionId, resourceGroup),
    );
  }

  getVirtualMachine(
    subscriptionId: string,
    resourceGroup: string,
    name: string,
  ): SeedVirtualMachine | undefined {
    this.refreshAdded();
    return this.virtualMachines.find(
      (vm) =>
        key(vm.subscriptionId) === key(subscriptionId) &&
        key(vm.resourceGroup) === key(resourceGroup) &&
        key(vm.name) === key(name),
    );
  }

  listVirtualMachines(subscriptionId: string, resourceGroup?: string): SeedVirtualMachine[] {
    this.refreshAdded();
    return this.virtualMachines.filter((vm) => inScope(vm, subscriptionId, resourceGroup));
  }

  /** Where a disk made through ARM keeps its data. */
  newDiskFile(name: string): string {
    return path.join(this.disksDir, 'created', `${name}-${randomUUID()}.raw`);
  }

  /** Registers a disk made through ARM (its file already in place); it lives as long as the sandbox. */
  addDisk(disk: DiskRecord): void {
    this.disks.set(key(disk.id), disk);
  }

  /** Forgets a disk and removes its file; false when there is no such disk. */
  async removeDisk(id: string): Promise<boolean> {
    const disk = this.getDisk(id);
    if (!disk) return false;
    this.disks.delete(key(id));
    await fs.rm(disk.file, { force: true });
    return true;
  }

  /** The raw file behind a disk or snapshot id. */
  fileOf(id: string): string | undefined {
    return (this.getDisk(id) ?? this.getSnapshot(id))?.file;
  }

  /** Writes bytes into a managed disk's file, as the VM would; snapshots taken before keep their content. */
  async writeDisk(id: string, offset: number, data: Buffer): Promise<void> {
    const disk = this.getDisk(id);
    if (!disk) throw new Error(`Disk ${id} does not exist in the sandbox.`);
    if (offset < 0 || offset + data.length > disk.sizeBytes)
      throw new Error(
        `Writing ${data.length} bytes at ${offset} goes past the end of disk ${disk.name}.`,
      );
    const handle = await fs.open(disk.file, 'r+');
    try {
      await handle.write(data, 0, data.length, offset);
    } finally {
      await handle.close();
    }
  }

  /** Grows a managed disk, as an administrator would in the portal; the new space reads as zeros. */
  async resizeDisk(id: string, sizeBytes: number): Promise<void> {
    const disk = this.getDisk(id);
    if (!disk) throw new Error(`Disk ${id} does not exist in the sandbox.`);
    if (sizeBytes < disk.sizeBytes || sizeBytes % 512 !== 0)
      throw new Error(`Disk ${disk.name} can only grow, to a multiple of 512 bytes.`);
    await fs.truncate(disk.file, sizeBytes);
    disk.sizeBytes = sizeBytes;
  }

  /** Copies the source disk (or snapshot) now; the record stays 'Creating' until markSucceeded. */
  async createSnapshot(input: NewSnapshot): Promise<SnapshotRecord> {
    const id = snapshotResourceId(input.subscriptionId, input.resourceGroup, input.name);
    const source = this.getDisk(input.sourceResourceId) ?? this.getSnapshot(input.sourceResourceId);
    if (!source) throw new Error(`Source ${input.sourceResourceId} does not exist.`);

    const uniqueId = randomUUID();
    const file = path.join(this.disksDir, 'snapshots', `${input.name}-${uniqueId}.raw`);
    await copyReflink(source.file, file);

    const sourceDisk = 'managedBy' in source ? source : this.getDisk(source.sourceResourceId);
    const record: SnapshotRecord = {
      id,
      name: input.name,
      subscriptionId: input.subscriptionId,
      resourceGroup: input.resourceGroup,
      location: input.location,
      tags: input.tags,
      osType: source.osType,
      hyperVGeneration: source.hyperVGeneration,
      sourceResourceId: source.id,
      sourceUniqueId: source.uniqueId,
      incremental: input.incremental,
      incrementalSnapshotFamilyId:
        input.incremental && sourceDisk ? familyIdOf(sourceDisk.uniqueId) : undefined,
      uniqueId,
      file,
      sizeBytes: source.sizeBytes,
      timeCreated: new Date().toISOString(),
      provisioningState: 'Creating',
    };
    this.snapshots.set(key(id), record);
    await this.saveSnapshots();
    return record;
  }

  async markSucceeded(id: string): Promise<void> {
    const snapshot = this.getSnapshot(id);
    if (!snapshot || snapshot.provisioningState === 'Succeeded') return;
    snapshot.provisioningState = 'Succeeded';
    await this.saveSnapshots();
  }

  async updateSnapshotTags(id: string, tags: Record<string, string>): Promise<void> {
    const snapshot = this.getSnapshot(id);
    if (!snapshot) return;
    snapshot.tags = tags;
    await this.saveSnapshots();
  }

  async deleteSnapshot(id: string): Promise<boolean> {
    const snapshot = this.getSnapshot(id);
    if (!snapshot) return false;
    this.snapshots.delete(key(id));
    await this.saveSnapshots();
    await fs.rm(snapshot.file, { force: true });
    return true;
  }

  private async loadSnapshots(): Promise<void> {
    let saved: SnapshotRecord[];
    try {
      saved = JSON.parse(await fs.readFile(this.stateFile, 'utf8')) as SnapshotRecord[];
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return;
      throw error;
    }
    for (const snapshot of saved) {
      // A snapshot whose file vanished (a cleaned folder) is dropped rather than served broken.
      const exists = await fs.access(snapshot.file).then(
        () => true,
        () => false,
      );
      if (exists)
        this.snapshots.set(key(snapshot.id), { ...snapshot, provisioningState: 'Succeeded' });
    }
  }

  /** Writes are queued so that two quick changes cannot interleave their temporary files. */
  private saveSnapshots(): Promise<void> {
    const next = this.saveQueue.then(() => this.writeSnapshots());
    this.saveQueue = next.catch(() => undefined);
    return next;
  }

  private async writeSnapshots(): Promise<void> {
    const temporary = `${this.stateFile}.${process.pid}.tmp`;
    await fs.writeFile(temporary, JSON.stringify([...this.snapshots.values()], null, 2));
    await fs.rename(temporary, this.stateFile);
  }
}

function inScope(
  resource: { subscriptionId: string; resourceGroup: string },
  subscriptionId: string,
  resourceGroup?: string,
): boolean {
  if (key(resource.subscriptionId) !== key(subscriptionId)) return false;
  return resourceGroup === undefined || key(resource.resourceGroup) === key(resourceGroup);
}

function familyIdOf(diskUniqueId: string): string {
  const hex = createHash('sha256').update(`snapshot-family:${diskUniqueId}`).digest('hex');
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

/** Copies with a reflink when the file system supports it, a plain copy otherwise. */
export async function copyReflink(from: string, to: string): Promise<void> {
  const temporary = `${to}.${process.pid}.tmp`;
  await fs.copyFile(from, temporary, fsConstants.COPYFILE_FICLONE);
  await fs.rename(temporary, to);
}
