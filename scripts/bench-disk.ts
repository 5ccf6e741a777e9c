/**
 * The disk the backup benchmark protects: a raw disk holding an ext4 file
 * system made by mke2fs from a folder of mixed data (text, already compressed
 * data, random data) with the rest of the disk left empty, and the change
 * between the first and second backup: about 5% of the used 4 KiB blocks
 * rewritten, in runs of 256 KiB to 4 MiB as when files are rewritten.
 *
 * Data comes from seeded generators (AES-CTR over zeros for random bytes, a
 * seeded word picker for text), so two runs build the same disk.
 */
import { execFile } from 'node:child_process';
import { createCipheriv, createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { compress } from 'zstd-napi';

const run = promisify(execFile);

const MiB = 1024 * 1024;
const FS_BLOCK = 4096;

/** Deterministic bytes that look random: AES-256-CTR over zeros, keyed by a label. */
export function pseudoRandom(label: string, length: number): Buffer {
  const key = createHash('sha256').update(label).digest();
  const cipher = createCipheriv('aes-256-ctr', key, Buffer.alloc(16));
  return cipher.update(Buffer.alloc(length));
}

/** A small seeded generator (xorshift32) for choices that must repeat from run to run. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0 || 1;
  return () => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state / 2 ** 32;
  };
}

const WORDS = (
  'backup restore snapshot disk volume policy retention approval request customer tenant ' +
  'server database export import region network storage account container blob block page ' +
  'range change schedule daily weekly monthly yearly time zone operator auditor requester ' +
  'approver decision reason ticket evidence chain hash manifest repository encryption key ' +
  'compression throughput latency the a of and to in is for on with as by at from that this'
).split(' ');

/** Log-like text: numbered lines of words, varied enough that zstd shrinks it about four times. */
function textChunk(random: () => number, bytes: number): Buffer {
  const lines: string[] = [];
  let size = 0;
  for (let line = 0; size < bytes; line++) {
    const count = 6 + Math.floor(random() * 14);
    const words: string[] = [];
    for (let i = 0; i < count; i++) words.push(WORDS[Math.floor(random() * WORDS.length)]!);
    const text = `${String(line).padStart(8, '0')} ${Math.floor(random() * 1e9)} ${words.join(' ')}\n`;
    lines.push(text);
    size += text.length;
  }
  return Buffer.from(lines.join('')).subarray(0, bytes);
}

export interface BenchDiskLayout {
  sizeBytes: number;
  textBytes: number;
  compressedBytes: number;
  randomBytes: number;
}

/** Used data about 55% of the disk: 20% text, 15% already compressed, 20% random. */
export function layoutFor(sizeBytes: number): BenchDiskLayout {
  return {
    sizeBytes,
    textBytes: Math.round(sizeBytes * 0.2),
    compressedBytes: Math.round(sizeBytes * 0.15),
    randomBytes: Math.round(sizeBytes * 0.2),
  };
}

/** Writes the folder of mixed data, then a raw disk image with ext4 made from it by mke2fs. */
export async function makeBenchDisk(
  workDir: string,
  layout: BenchDiskLayout,
  image: string,
): Promise<void> {
  const tree = path.join(workDir, 'tree');
  await fs.rm(tree, { recursive: true, force: true });
  await fs.mkdir(path.join(tree, 'var/log'), { recursive: true });
  await fs.mkdir(path.join(tree, 'srv/archive'), { recursive: true });
  await fs.mkdir(path.join(tree, 'srv/media'), { recursive: true });
  const random = seededRandom(20261203);

  const fileBytes = 16 * MiB;
  for (let written = 0, n = 0; written < layout.textBytes; written += fileBytes, n++) {
    const bytes = Math.min(fileBytes, layout.textBytes - written);
    await fs.writeFile(path.join(tree, `var/log/app-${n}.log`), textChunk(random, bytes));
  }
  for (let written = 0, n = 0; written < layout.compressedBytes; n++) {
    const packed = compress(textChunk(random, 4 * fileBytes));
    const bytes = Math.min(packed.length, layout.compressedBytes - written);
    await fs.writeFile(path.join(tree, `srv/archive/logs-${n}.zst`), packed.subarray(0, bytes));
    written += bytes;
  }
  for (let written = 0, n = 0; written < layout.randomBytes; written += fileBytes, n++) {
    const bytes = Math.min(fileBytes, layout.randomBytes - written);
    await fs.writeFile(
      path.join(tree, `srv/media/clip-${n}.bin`),
      pseudoRandom(`media-${n}`, bytes),
    );
  }

  await fs.rm(image, { force: true });
  await run(
    'mke2fs',
    ['-q', '-t', 'ext4', '-F', '-d', tree, image, `${layout.sizeBytes / 1024}k`],
    {
      env: { ...process.env, E2FSPROGS_FAKE_TIME: '1764720000' },
    },
  );
  await fs.rm(tree, { recursive: true, force: true });
}

/** Offsets of the image's 4 KiB blocks that hold anything but zeros. */
async function usedBlocks(image: string): Promise<number[]> {
  const handle = await fs.open(image, 'r');
  const used: number[] = [];
  const buffer = Buffer.alloc(16 * MiB);
  const zero = Buffer.alloc(FS_BLOCK);
  try {
    for (let offset = 0; ; offset += buffer.length) {
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, offset);
      if (bytesRead === 0) break;
      for (let at = 0; at < bytesRead; at += FS_BLOCK) {
        if (!buffer.subarray(at, at + FS_BLOCK).equals(zero)) used.push(offset + at);
      }
    }
  } finally {
    await handle.close();
  }
  return used;
}

/**
 * Rewrites about `fraction` of the used 4 KiB blocks of the image in place, in
 * runs of 64 to 1024 used blocks, and returns the bytes changed.
 */
export async function changeUsedBlocks(image: string, fraction: number): Promise<number> {
  const used = await usedBlocks(image);
  const target = Math.round(used.length * fraction);
  const random = seededRandom(5);
  const changed = new Set<number>();
  const handle = await fs.open(image, 'r+');
  try {
    while (changed.size < target) {
      const start = Math.floor(random() * used.length);
      const length = Math.min(64 + Math.floor(random() * 961), target - changed.size);
      for (let i = start; i < Math.min(start + length, used.length); i++) {
        const offset = used[i]!;
        if (changed.has(offset)) continue;
        changed.add(offset);
        await handle.write(pseudoRandom(`change-${offset}`, FS_BLOCK), 0, FS_BLOCK, offset);
      }
    }
  } finally {
    await handle.close();
  }
  return changed.size * FS_BLOCK;
}

/** SHA-256 of a file, streamed. */
export async function fileSha256(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 4 * MiB })) hash.update(chunk);
  return hash.digest('hex');
}
