// What file-level recovery and the sandbox's add-vm refuse, with real tools
// making the disks (sgdisk, sfdisk, qemu-img) and no appliance launched:
// Azure Disk Encryption (LUKS, BitLocker), Windows dynamic disks (LDM on MBR
// and GPT), and image files that are missing, cut short or of another format.
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAcbaError } from '../core/errors.ts';
import { silentLogger } from '../core/log.ts';
import { diskRefusal } from '../engine/file-disk-check.ts';
import { FileRecoverySession } from '../engine/file-session.ts';
import { addVm, readAddedVms } from '../sandbox/added-vms.ts';
import { tempDir } from './support/database.ts';

const run = promisify(execFile);
let dir: string;

beforeAll(async () => {
  dir = await tempDir('acba-refusals-');
});
afterAll(async () => {
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

async function blankDisk(name: string, mib = 8): Promise<string> {
  const file = path.join(dir, name);
  await fs.writeFile(file, '');
  await fs.truncate(file, mib * 1024 * 1024);
  return file;
}

async function write(file: string, offset: number, data: Buffer): Promise<void> {
  const handle = await fs.open(file, 'r+');
  await handle.write(data, 0, data.length, offset);
  await handle.close();
}

async function refusalOf(file: string): Promise<string | undefined> {
  const handle = await fs.open(file, 'r');
  const { size } = await handle.stat();
  try {
    return await diskRefusal(async (offset, length) => {
      const buffer = Buffer.alloc(length);
      await handle.read(buffer, 0, length, offset);
      return buffer;
    }, size);
  } finally {
    await handle.close();
  }
}

describe('disks file-level recovery refuses', () => {
  it('a Windows dynamic disk on MBR (partition type 0x42)', async () => {
    const disk = await blankDisk('ldm-mbr.img');
    await run('sh', ['-c', `echo 'start=2048, type=42' | sfdisk -q ${disk}`]);
    expect(await refusalOf(disk)).toMatch(/dynamic disk \(LDM, MBR partition type 0x42\)/);
  });

  it('a Windows dynamic disk on GPT (LDM metadata and data partitions)', async () => {
    const disk = await blankDisk('ldm-gpt.img');
    await run('sgdisk', [
      '-n',
      '1:2048:4095',
      '-t',
      '1:4201',
      '-n',
      '2:4096:0',
      '-t',
      '2:4200',
      disk,
    ]);
    expect(await refusalOf(disk)).toMatch(/dynamic disk \(LDM partitions on GPT\)/);
  });

  it('a LUKS volume (Azure Disk Encryption on Linux) inside a GPT partition', async () => {
    const disk = await blankDisk('luks.img');
    await run('sgdisk', ['-n', '1:2048:0', disk]);
    await write(disk, 2048 * 512, Buffer.from('LUKS\xba\xbe\x00\x02', 'latin1'));
    expect(await refusalOf(disk)).toMatch(/Azure Disk Encryption \(a LUKS volume\)/);
  });

  it('a BitLocker volume (Azure Disk Encryption on Windows) on MBR', async () => {
    const disk = await blankDisk('bitlocker.img');
    await run('sh', ['-c', `echo 'start=2048, type=7' | sfdisk -q ${disk}`]);
    await write(disk, 2048 * 512 + 3, Buffer.from('-FVE-FS-', 'latin1'));
    expect(await refusalOf(disk)).toMatch(/Azure Disk Encryption \(a BitLocker volume\)/);
  });

  it('lets a plain GPT disk through', async () => {
    const disk = await blankDisk('plain.img');
    await run('sgdisk', ['-n', '1:2048:0', disk]);
    expect(await refusalOf(disk)).toBeUndefined();
  });

  it('a session whose every disk is refused fails before any appliance starts', async () => {
    const disk = await blankDisk('luks-bare.img');
    await write(disk, 0, Buffer.from('LUKS\xba\xbe\x00\x02', 'latin1'));
    const data = await fs.readFile(disk);
    const started = Date.now();
    const opening = FileRecoverySession.open({ workDir: dir, log: silentLogger }, [
      {
        url: new URL('http://127.0.0.1:9/never'),
        read: async (offset, length) => data.subarray(offset, offset + length),
        sizeBytes: data.length,
      },
    ]);
    await expect(opening).rejects.toThrow(/Disk 0 is refused: .*LUKS/);
    await opening.catch((error) => expect(isAcbaError(error, 'bad_input')).toBe(true));
    expect(Date.now() - started).toBeLessThan(5_000);
  });
});

describe('acba sandbox add-vm refuses', () => {
  it('a missing file, a size that is not a multiple of 512, and a qcow2 image', async () => {
    const dataDir = path.join(dir, 'data');
    await expect(
      addVm(dataDir, { name: 'lab-01', disks: [path.join(dir, 'nope.img')] }),
    ).rejects.toThrow(/nope\.img does not exist; check the path given to --disk/);

    const odd = path.join(dir, 'odd.img');
    await fs.writeFile(odd, Buffer.alloc(1000));
    await expect(addVm(dataDir, { name: 'lab-01', disks: [odd] })).rejects.toThrow(
      /is 1000 bytes, not a non-zero multiple of 512/,
    );

    const qcow = path.join(dir, 'disk.qcow2');
    await run('qemu-img', ['create', '-q', '-f', 'qcow2', qcow, '8M']);
    await expect(addVm(dataDir, { name: 'lab-01', disks: [qcow] })).rejects.toThrow(
      /is a qcow2 image, which the sandbox does not take; convert it/,
    );

    const dynamic = path.join(dir, 'dynamic.vhd');
    await run('qemu-img', ['create', '-q', '-f', 'vpc', '-o', 'subformat=dynamic', dynamic, '8M']);
    await expect(addVm(dataDir, { name: 'lab-01', disks: [dynamic] })).rejects.toThrow(
      /dynamic or differencing VHD/,
    );
    expect(await readAddedVms(path.join(dataDir, 'sandbox'))).toEqual([]);
  });

  it('a name the sandbox already has', async () => {
    const dataDir = path.join(dir, 'data2');
    const disk = await blankDisk('ok.img', 1);
    await addVm(dataDir, { name: 'lab-02', disks: [disk] });
    await expect(addVm(dataDir, { name: 'LAB-02', disks: [disk] })).rejects.toThrow(
      /already has a VM named LAB-02/,
    );
    await expect(addVm(dataDir, { name: 'web-01', disks: [disk] })).rejects.toThrow(/already has/);
    expect((await readAddedVms(path.join(dataDir, 'sandbox'))).map((v) => v.name)).toEqual([
      'lab-02',
    ]);
  });
});
