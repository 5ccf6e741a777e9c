/**
 * Disk images with every file system that file-level recovery supports, made
 * by the real tools inside one libguestfs appliance: mkfs.fat (FAT12, FAT16,
 * FAT32), mkntfs, mke2fs (ext2, ext3, ext4), mkfs.xfs and mkfs.btrfs, on a GPT
 * disk, on MBR disks (primary and logical partitions) and on partition-less
 * disks. Each file system holds the same few known files, with contents
 * derived from its name, so a test can say exactly what it should get back.
 *
 * The images are sparse and cached by a hash of this build's description;
 * a lock folder makes concurrent builders wait for one build (see
 * disk-images.ts).
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../core/log.ts';
import { allExist, runGuestfish, withLock } from './disk-images.ts';

export type FileSystemKind =
  'fat12' | 'fat16' | 'fat32' | 'ntfs' | 'ext2' | 'ext3' | 'ext4' | 'xfs' | 'btrfs';

export interface TestVolume {
  /** Unique across all test disks, e.g. `gpt-ext4`; the files on the volume derive from it. */
  key: string;
  kind: FileSystemKind;
  sizeMiB: number;
  /** On MBR disks: a logical partition inside the extended one. */
  logical?: boolean;
}

export interface TestDisk {
  name: string;
  style: 'gpt' | 'mbr' | 'none';
  volumes: TestVolume[];
}

/** The modification time set on every test file: 2024-05-01T12:00:00Z (even seconds, for FAT). */
export const TEST_FILE_MTIME = 1714564800;

const kinds: FileSystemKind[] = [
  'fat12',
  'fat16',
  'fat32',
  'ntfs',
  'ext2',
  'ext3',
  'ext4',
  'xfs',
  'btrfs',
];
/** Smallest sizes that each mkfs accepts comfortably (XFS wants 300 MiB, FAT32 65525 clusters). */
const sizes: Record<FileSystemKind, number> = {
  fat12: 4,
  fat16: 24,
  fat32: 40,
  ntfs: 24,
  ext2: 16,
  ext3: 24,
  ext4: 24,
  xfs: 304,
  btrfs: 128,
};
const vol = (style: string, kind: FileSystemKind, logical = false): TestVolume => ({
  key: `${style}-${kind}`,
  kind,
  sizeMiB: sizes[kind],
  logical,
});

/** The test disks: one GPT disk with all nine, two MBR disks (the second with logical partitions), two bare ones. */
export const TEST_DISKS: TestDisk[] = [
  { name: 'gpt', style: 'gpt', volumes: kinds.map((k) => vol('gpt', k)) },
  {
    name: 'mbr-windows',
    style: 'mbr',
    volumes: (['fat12', 'fat16', 'fat32', 'ntfs'] as const).map((k) => vol('mbr', k)),
  },
  {
    name: 'mbr-linux',
    style: 'mbr',
    volumes: [
      vol('mbr', 'ext2'),
      vol('mbr', 'ext3'),
      vol('mbr', 'ext4'),
      vol('mbr', 'xfs', true),
      vol('mbr', 'btrfs', true),
    ],
  },
  { name: 'bare-ext4', style: 'none', volumes: [vol('bare', 'ext4')] },
  { name: 'bare-fat16', style: 'none', volumes: [vol('bare', 'fat16')] },
];

/** The files written on the volume `key`: path (absolute, `/`-separated) to content. */
export function testFilesOf(key: string): Map<string, Buffer> {
  const blob = Buffer.alloc(70_000);
  for (let offset = 0, i = 0; offset < blob.length; i++) {
    const digest = createHash('sha256').update(`${key}:${i}`).digest();
    offset += digest.copy(blob, offset);
  }
  return new Map([
    ['/hello.txt', Buffer.from(`Hello from ${key}.\n`)],
    ['/docs/readme.txt', Buffer.from(`Documents of ${key}.\nSecond line.\n`)],
    ['/docs/nested/deep/notes.txt', Buffer.from(`Nested notes on ${key}.\n`.repeat(20))],
    ['/data/blob.bin', blob],
  ]);
}

const MBR_IDS: Partial<Record<FileSystemKind, string>> = {
  fat12: '0x01',
  fat16: '0x06',
  fat32: '0x0c',
  ntfs: '0x07',
};
const BASIC_DATA_GUID = 'EBD0A0A2-B9E5-4433-87C0-68B6B72699C7';

function mkfsCommand(kind: FileSystemKind, device: string, label: string): string {
  switch (kind) {
    case 'fat12':
    case 'fat16':
    case 'fat32': {
      // guestfish's mkfs picks the FAT size by itself; mkfs.fat is told exactly.
      const bits = kind.slice(3);
      const cluster = kind === 'fat32' ? ' -s 1' : '';
      return `debug sh "udevadm settle; mkfs.fat -F ${bits}${cluster} -n ${label} ${device} >/dev/null"`;
    }
    default:
      return `mkfs ${kind} ${device} label:${label}`;
  }
}

function diskSizeMiB(disk: TestDisk): number {
  const total = disk.volumes.reduce((sum, v) => sum + v.sizeMiB, 0);
  return disk.style === 'none' ? total : total + 2 + disk.volumes.length;
}

/** One guestfish script creating every disk; uploads are file names in the work folder. */
function buildScript(): { script: string; uploads: Map<string, Buffer> } {
  const uploads = new Map<string, Buffer>();
  const lines: string[] = [];
  const fsLines: string[] = [];
  const sector = (mib: number) => mib * 2048;

  TEST_DISKS.forEach((disk, index) => {
    const dev = `/dev/sd${String.fromCharCode(97 + index)}`;
    const devices: string[] = [];
    if (disk.style === 'none') devices.push(dev);
    else {
      lines.push(`part-init ${dev} ${disk.style === 'gpt' ? 'gpt' : 'msdos'}`);
      let start = sector(1);
      let number = 0;
      const logicals = disk.volumes.filter((v) => v.logical);
      for (const volume of disk.volumes) {
        if (volume.logical && number < 4 && logicals.length > 0 && number === 3) {
          // Our only extended layout: partition 4 spans the rest, logicals start at 5.
          const extendedSectors = logicals.reduce((s, v) => s + sector(v.sizeMiB + 1), 0);
          lines.push(`part-add ${dev} e ${start} ${start + extendedSectors - 1}`);
          start += 2048;
          number = 4;
        }
        const end = start + sector(volume.sizeMiB) - 1;
        lines.push(`part-add ${dev} ${volume.logical ? 'l' : 'p'} ${start} ${end}`);
        number += 1;
        const mbrId = MBR_IDS[volume.kind];
        if (disk.style === 'mbr' && mbrId) lines.push(`part-set-mbr-id ${dev} ${number} ${mbrId}`);
        if (disk.style === 'gpt' && mbrId)
          lines.push(`part-set-gpt-type ${dev} ${number} ${BASIC_DATA_GUID}`);
        devices.push(`${dev}${number}`);
        start = end + 1 + (volume.logical ? 2048 : 0);
      }
    }

    disk.volumes.forEach((volume, i) => {
      const device = devices[i]!;
      const label = volume.kind.toUpperCase();
      fsLines.push(mkfsCommand(volume.kind, device, label), `mount ${device} /`);
      for (const [file, content] of testFilesOf(volume.key)) {
        const source = `file-${uploads.size}`;
        uploads.set(source, content);
        fsLines.push(`mkdir-p ${path.posix.dirname(file)}`, `upload ${source} ${file}`);
        fsLines.push(`utimens ${file} ${TEST_FILE_MTIME} 0 ${TEST_FILE_MTIME} 0`);
      }
      fsLines.push('umount-all');
    });
  });
  // Partition every disk first, then make file systems, so that udev has settled on the partitions.
  return { script: `${[...lines, 'list-partitions', ...fsLines].join('\n')}\n`, uploads };
}

/** The cache key: changes whenever the disks, the script or the file contents change. */
export function fileSystemImagesVersion(): string {
  const { script, uploads } = buildScript();
  const hash = createHash('sha256').update(script).update(JSON.stringify(TEST_DISKS));
  for (const [name, content] of uploads) hash.update(name).update(content);
  return `fs-${hash.digest('hex').slice(0, 12)}`;
}

/** Paths of the test disk images by disk name, building them first (one appliance launch) when missing. */
export async function ensureFileSystemImages(
  cacheDir: string,
  log: Logger,
): Promise<Record<string, string>> {
  const versionDir = path.join(path.resolve(cacheDir), fileSystemImagesVersion());
  const images = Object.fromEntries(
    TEST_DISKS.map((disk) => [disk.name, path.join(versionDir, `${disk.name}.raw`)]),
  );
  if (await allExist(Object.values(images))) return images;

  await fs.mkdir(versionDir, { recursive: true });
  await withLock(path.join(versionDir, '.lock'), async () => {
    if (await allExist(Object.values(images))) return;
    const started = Date.now();
    log.info({ cacheDir: versionDir }, 'file_system_images_building');
    const work = await fs.mkdtemp(path.join(versionDir, '.build-'));
    try {
      const { script, uploads } = buildScript();
      for (const [name, content] of uploads) await fs.writeFile(path.join(work, name), content);
      const args = TEST_DISKS.flatMap((disk) => [
        '-N',
        `${disk.name}.img=disk:${diskSizeMiB(disk)}M`,
      ]);
      await runGuestfish(args, script, work);
      // Renamed one by one; a complete set is only seen once the last exists.
      for (const disk of TEST_DISKS)
        await fs.rename(path.join(work, `${disk.name}.img`), images[disk.name]!);
    } finally {
      await fs.rm(work, { recursive: true, force: true });
    }
    log.info({ cacheDir: versionDir, ms: Date.now() - started }, 'file_system_images_built');
  });
  return images;
}
