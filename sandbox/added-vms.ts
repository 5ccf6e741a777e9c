/**
 * VMs that a person adds to the sandbox from their own disk image files, so
 * that anyone can try backup and file-level recovery on their own disks.
 *
 * An image is raw, or a fixed VHD as Azure stores it: the raw disk followed by
 * a 512-byte footer starting with the cookie `conectix`. The disk's data (the
 * footer removed) is copied under dataDir/sandbox/disks/added, and the VM is
 * recorded in dataDir/sandbox/added-vms.json, which a running sandbox re-reads
 * when it changes (see ComputeResources), so no restart is needed. Added VMs
 * belong to the first seeded customer (Contoso), in its resource group.
 */
import { constants as fsConstants } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { badInput, conflict, notFound } from '../core/errors.ts';
import { buildSeed, stableGuid } from './seed.ts';

export interface AddedDisk {
  name: string;
  uniqueId: string;
  /** The disk's raw data under the sandbox's state folder. */
  file: string;
  sizeBytes: number;
  /** The file it was made from and its format. */
  source: string;
  format: 'raw' | 'vhd';
}

export interface AddedVm {
  name: string;
  osType: 'Linux' | 'Windows';
  subscriptionId: string;
  resourceGroup: string;
  location: string;
  vmId: string;
  /** The first disk is the OS disk, the others data disks at LUN 0, 1, ... */
  disks: AddedDisk[];
  timeCreated: string;
}

export interface AddVmInput {
  name: string;
  /** Paths of raw or fixed-VHD image files; the first becomes the OS disk. */
  disks: string[];
  osType?: 'Linux' | 'Windows';
}

const VHD_FOOTER = 512;
const VM_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,62}[A-Za-z0-9_]$|^[A-Za-z0-9]$/;

/** The state file listing added VMs under a sandbox state folder (dataDir/sandbox). */
export function addedVmsFile(stateDir: string): string {
  return path.join(stateDir, 'added-vms.json');
}

/** Reads the added VMs; none when the file does not exist. */
export async function readAddedVms(stateDir: string): Promise<AddedVm[]> {
  try {
    return JSON.parse(await fs.readFile(addedVmsFile(stateDir), 'utf8')) as AddedVm[];
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw error;
  }
}

/**
 * Adds a VM whose disks are copies of the given image files to the sandbox
 * under dataDir. Refuses a taken name, a missing file, a size that is not a
 * multiple of 512 bytes, and images that are neither raw nor fixed VHD.
 */
export async function addVm(dataDir: string, input: AddVmInput): Promise<AddedVm> {
  const stateDir = path.join(path.resolve(dataDir), 'sandbox');
  const { name } = input;
  if (!VM_NAME.test(name))
    throw badInput(
      `\`${name}\` is not a valid VM name; use 1 to 64 letters, digits, dots, hyphens and underscores, starting with a letter or digit.`,
    );
  if (input.disks.length === 0)
    throw badInput(`VM ${name} needs at least one disk; give --disk FILE (the OS disk first).`);
  if (input.disks.length > 16)
    throw badInput(`VM ${name} has ${input.disks.length} disks; the sandbox takes up to 16.`);

  const world = buildSeed();
  const customer = world.seed.customers[0]!;
  const taken = world.virtualMachines.some((vm) => vm.name.toLowerCase() === name.toLowerCase());
  const existing = await readAddedVms(stateDir);
  if (taken || existing.some((vm) => vm.name.toLowerCase() === name.toLowerCase()))
    throw conflict(`The sandbox already has a VM named ${name}; choose another name with --name.`);

  const images = [];
  for (const file of input.disks) images.push(await inspectImage(path.resolve(file)));

  const addedDir = path.join(stateDir, 'disks', 'added');
  await fs.mkdir(addedDir, { recursive: true });
  const disks: AddedDisk[] = [];
  for (const [index, image] of images.entries()) {
    const diskName = index === 0 ? `${name}_OsDisk_1` : `${name}_DataDisk_${index - 1}`;
    const file = path.join(addedDir, `${diskName}.raw`);
    const temporary = `${file}.${process.pid}.tmp`;
    await fs.copyFile(image.path, temporary, fsConstants.COPYFILE_FICLONE);
    if (image.format === 'vhd') await fs.truncate(temporary, image.sizeBytes);
    await fs.rename(temporary, file);
    disks.push({
      name: diskName,
      uniqueId: stableGuid(`added-disk:${name}:${index}:${Date.now()}`),
      file,
      sizeBytes: image.sizeBytes,
      source: image.path,
      format: image.format,
    });
  }

  const vm: AddedVm = {
    name,
    osType: input.osType ?? 'Linux',
    subscriptionId: customer.subscriptionId,
    resourceGroup: customer.resourceGroup,
    location: customer.location,
    vmId: stableGuid(`added-vm:${name}:${Date.now()}`),
    disks,
    timeCreated: new Date().toISOString(),
  };
  const stateFile = addedVmsFile(stateDir);
  const temporary = `${stateFile}.${process.pid}.tmp`;
  await fs.writeFile(temporary, JSON.stringify([...existing, vm], null, 2));
  await fs.rename(temporary, stateFile);
  return vm;
}

interface InspectedImage {
  path: string;
  format: 'raw' | 'vhd';
  /** Size of the disk's data, without a VHD footer. */
  sizeBytes: number;
}

/** Tells raw from fixed VHD, and refuses what is neither. */
export async function inspectImage(file: string): Promise<InspectedImage> {
  const stat = await fs.stat(file).catch(() => undefined);
  if (!stat)
    throw notFound(`The disk image ${file} does not exist; check the path given to --disk.`);
  if (!stat.isFile())
    throw badInput(`${file} is not a regular file; give a raw or fixed VHD disk image.`);
  const handle = await fs.open(file, 'r');
  try {
    const head = Buffer.alloc(512);
    const tail = Buffer.alloc(VHD_FOOTER);
    await handle.read(head, 0, Math.min(512, stat.size), 0);
    const unknown = unsupportedFormat(head);
    if (unknown)
      throw badInput(
        `The disk image ${file} is ${unknown}, which the sandbox does not take; convert it with \`qemu-img convert -O raw ${path.basename(file)} disk.raw\` (or -O vpc -o subformat=fixed).`,
      );
    if (stat.size === 0 || stat.size % 512 !== 0)
      throw badInput(
        `The disk image ${file} is ${stat.size} bytes, not a non-zero multiple of 512; a raw or fixed VHD image always is. Check that the file is complete.`,
      );

    await handle.read(tail, 0, VHD_FOOTER, stat.size - VHD_FOOTER);

    if (tail.subarray(0, 8).toString('latin1') !== 'conectix')
      return { path: file, format: 'raw', sizeBytes: stat.size };

    const diskType = tail.readUInt32BE(60);
    if (diskType !== 2)
      throw badInput(
        `The disk image ${file} is a ${diskType === 3 ? 'dynamic' : diskType === 4 ? 'differencing' : 'non-fixed'} VHD; Azure takes only fixed VHDs. Convert it with \`qemu-img convert -O vpc -o subformat=fixed\`.`,
      );
    const currentSize = Number(tail.readBigUInt64BE(48));
    if (currentSize !== stat.size - VHD_FOOTER)
      throw badInput(
        `The fixed VHD ${file} says its disk is ${currentSize} bytes but holds ${stat.size - VHD_FOOTER}; the file is damaged or truncated.`,
      );
    return { path: file, format: 'vhd', sizeBytes: currentSize };
  } finally {
    await handle.close();
  }
}

/** Names a container format found at the start of an image, or undefined for a plain disk. */
function unsupportedFormat(head: Buffer): string | undefined {
  const magic = head.subarray(0, 8).toString('latin1');
  if (magic.startsWith('QFI\xfb')) return 'a qcow2 image';
  if (magic === 'conectix') return 'a dynamic or differencing VHD (its copy of the footer leads)';
  if (magic === 'vhdxfile') return 'a VHDX image';
  if (magic.startsWith('KDMV')) return 'a VMDK image';
  if (head.subarray(0, 4).equals(Buffer.from([0x28, 0xb5, 0x2f, 0xfd])))
    return 'zstd-compressed (decompress it first with `zstd -d`)';
  if (head.subarray(0, 2).equals(Buffer.from([0x1f, 0x8b])))
    return 'gzip-compressed (decompress it first with `gunzip`)';
  if (head.subarray(0, 3).toString('latin1') === 'BZh' || magic.startsWith('\xfd7zXZ'))
    return 'compressed (decompress it first)';
  return undefined;
}
