/**
 * File-level recovery with libguestfs. The appliance reads a restore point's
 * disks over HTTP from the engine's own byte-range resource (only the blocks
 * it needs), read-only; we look for the file on every mountable file system
 * and copy it out into the work folder.
 *
 * guestfish runs as a listening server (`--listen`) driven by `--remote`
 * commands, so one appliance launch (15-20 s here, as KVM is unusable and
 * qemu runs in TCG) serves all the checks. It is always shut down, also on
 * failure and on timeout.
 */
import { execFile, spawn } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { badInput, limitReached, notFound, unavailable } from '../core/errors.ts';
import { formatBytes } from '../core/format.ts';
import type { Logger } from '../core/log.ts';

const GUESTFISH = '/usr/bin/guestfish';
const DEFAULT_TIMEOUT_MS = 3 * 60 * 1000;
/** File systems we never try to mount. */
const UNMOUNTABLE = new Set(['swap', 'unknown', '', 'crypto_LUKS', 'LVM2_member']);
/** Case-insensitive file systems: the path's real spelling is looked up first. */
const CASE_INSENSITIVE = new Set(['ntfs', 'vfat', 'exfat', 'msdos']);

export interface FileRecoveryOptions {
  workDir: string;
  log: Logger;
  /** Whole-operation limit; the appliance is killed when it passes. */
  timeoutMs?: number;
  /** Largest file recoverFile copies out; larger ones are refused before copying. */
  maxFileBytes?: number;
}

/** Where the appliance reads a disk: an http(s) URL of a byte-range resource. */
export type DiskUrl = URL;

export interface RecoveredFile {
  localPath: string;
  fileName: string;
  sizeBytes: number;
  sha256: string;
  /** Index of the disk (in the order given) and the file system it was found on. */
  diskIndex: number;
  filesystem: string;
}

export interface FolderEntry {
  name: string;
  type: 'file' | 'directory' | 'symlink' | 'other';
  sizeBytes: number;
}

export interface FolderListing {
  filesystem: string;
  entries: FolderEntry[];
}

/** Checks a path asked for by a person: absolute, no `..`, no NUL; Windows `C:\x` becomes `/x`. */
export function normalizeGuestPath(input: string): string {
  if (input.includes('\0'))
    throw badInput(
      'The path contains a NUL character; give a plain absolute path such as /etc/hosts.',
    );
  let p = input.trim().replace(/\\/g, '/');
  p = p.replace(/^[A-Za-z]:\//, '/');
  if (!p.startsWith('/'))
    throw badInput(
      `\`${input}\` is not an absolute path; give the full path, such as /etc/nginx/nginx.conf or C:\\inetpub\\web.config.`,
    );
  const parts = p.split('/').filter((s) => s !== '' && s !== '.');
  if (parts.includes('..'))
    throw badInput(`\`${input}\` contains \`..\`; give the full path without \`..\`.`);
  return `/${parts.join('/')}`;
}

/** Finds `guestPath` on any file system of the disks and copies it into the work folder. */
export async function recoverFile(
  options: FileRecoveryOptions,
  disks: DiskUrl[],
  guestPath: string,
  describe: { vmName: string; takenAt: Date },
): Promise<RecoveredFile> {
  const wanted = normalizeGuestPath(guestPath);
  return withAppliance(options, disks, async (gf) => {
    for (const fs_ of await gf.filesystems()) {
      const found = await gf.locateFile(fs_, wanted);
      if (!found) continue;

      await fs.mkdir(options.workDir, { recursive: true });
      const localPath = path.join(options.workDir, `recovered-${randomUUID()}`);
      await gf.run(['mount-ro', fs_.device, '/']);
      try {
        const size = Number((await gf.run(['filesize', found])).trim());
        if (options.maxFileBytes !== undefined && size > options.maxFileBytes) {
          throw limitReached(
            `\`${wanted}\` is ${formatBytes(size)}; a file restore delivers files up to ${formatBytes(options.maxFileBytes)}. Ask an operator for a disk restore instead.`,
          );
        }
        await gf.run(['download', found, localPath]);
      } finally {
        await gf.run(['umount-all']);
      }
      const { size, sha256 } = await fileDigest(localPath);
      options.log.info(
        { device: fs_.device, filesystem: fs_.type, sizeBytes: size },
        'file_recovered',
      );
      return {
        localPath,
        fileName: path.posix.basename(found),
        sizeBytes: size,
        sha256,
        diskIndex: fs_.diskIndex,
        filesystem: `${fs_.device} (${fs_.type})`,
      };
    }
    throw notFound(
      `\`${wanted}\` was not found in the backup of ${describe.vmName} taken at ${describe.takenAt.toISOString()}; check the path (Linux paths are case-sensitive) and the restore point, then ask again.`,
    );
  });
}

/** Lists a folder on every file system of one disk where it exists. */
export async function listFolder(
  options: FileRecoveryOptions,
  disk: DiskUrl,
  guestPath: string,
): Promise<FolderListing[]> {
  const wanted = normalizeGuestPath(guestPath);
  return withAppliance(options, [disk], async (gf) => {
    const listings: FolderListing[] = [];
    for (const fs_ of await gf.filesystems()) {
      await gf.run(['mount-ro', fs_.device, '/']);
      try {
        if ((await gf.run(['is-dir', wanted])).trim() !== 'true') continue;
        const names = (await gf.run(['ls', wanted]))
          .split('\n')
          .filter((n) => n !== '')
          .slice(0, 1000);
        const entries: FolderEntry[] = [];
        for (const name of names) {
          const stat = parseStat(await gf.run(['lstatns', path.posix.join(wanted, name)]));
          entries.push({ name, type: fileType(stat.st_mode ?? 0), sizeBytes: stat.st_size ?? 0 });
        }
        listings.push({ filesystem: `${fs_.device} (${fs_.type})`, entries });
      } finally {
        await gf.run(['umount-all']);
      }
    }
    if (listings.length === 0)
      throw notFound(
        `The folder \`${wanted}\` was not found on this disk; check the path and ask again.`,
      );
    return listings;
  });
}

export interface Filesystem {
  device: string;
  type: string;
  diskIndex: number;
}

/** A running guestfish server and the commands we send it. */
export class Guestfish {
  constructor(
    private readonly pid: number,
    private readonly env: NodeJS.ProcessEnv,
    private readonly deadline: number,
  ) {}

  /**
   * Runs one guestfish command; throws with guestfish's own message on failure.
   *
   * A listening guestfish server exits at the first command that fails, which
   * would end the whole session on, say, a path that does not exist. A command
   * prefixed with '-' keeps the server alive; its failure then shows only as
   * an error line on stderr, which is what this checks.
   */
  run(args: string[]): Promise<string> {
    const timeout = Math.max(1000, this.deadline - Date.now());
    const [command, ...rest] = args;
    return new Promise((resolve, reject) => {
      execFile(
        GUESTFISH,
        [`--remote=${this.pid}`, '--', `-${command}`, ...rest],
        { env: this.env, timeout, maxBuffer: 16 * 1024 * 1024 },
        (error, stdout, stderr) => {
          const failure = /^(?:libguestfs: error: |guestfish: ).*$/m.exec(stderr)?.[0];
          if (error || failure) {
            const reason = error?.killed ? 'timed out' : failure || stderr.trim() || error?.message;
            reject(new Error(`guestfish ${command} failed: ${reason}`));
          } else resolve(stdout);
        },
      );
    });
  }

  async filesystems(): Promise<Filesystem[]> {
    const out = await this.run(['list-filesystems']);
    const devices = (await this.run(['list-devices'])).split('\n').filter((d) => d !== '');
    return out
      .split('\n')
      .map((line) => line.match(/^(\S+): (.*)$/))
      .filter((m): m is RegExpMatchArray => m !== null && !UNMOUNTABLE.has(m[2]!))
      .map((m) => ({
        device: m[1]!,
        type: m[2]!,
        diskIndex: Math.max(
          0,
          devices.findIndex((d) => m[1]!.startsWith(d)),
        ),
      }));
  }

  /** The file's real path on this file system, or undefined when it is not a regular file there. */
  async locateFile(fs_: Filesystem, wanted: string): Promise<string | undefined> {
    try {
      await this.run(['mount-ro', fs_.device, '/']);
    } catch {
      return undefined;
    }
    try {
      let real = wanted;
      if (CASE_INSENSITIVE.has(fs_.type))
        real = (await this.run(['case-sensitive-path', wanted]).catch(() => wanted)).trim();
      return (await this.run(['is-file', real])).trim() === 'true' ? real : undefined;
    } finally {
      await this.run(['umount-all']);
    }
  }
}

/** Adds the disks read-only over HTTP(S) to a started guestfish server and launches the appliance. */
export async function addDisksAndLaunch(gf: Guestfish, disks: DiskUrl[]): Promise<void> {
  for (const disk of disks) {
    const port = disk.port || (disk.protocol === 'https:' ? '443' : '80');
    const protocol = disk.protocol === 'https:' ? 'https' : 'http';
    await gf.run([
      'add-drive',
      `${disk.pathname}${disk.search}`,
      'readonly:true',
      'format:raw',
      `protocol:${protocol}`,
      `server:tcp:${disk.hostname}:${port}`,
    ]);
  }
  await gf.run(['run']);
}

/** The environment libguestfs needs here: the direct backend with software emulation. */
export function applianceEnv(): NodeJS.ProcessEnv {
  return { ...process.env, LIBGUESTFS_BACKEND: 'direct', LIBGUESTFS_BACKEND_SETTINGS: 'force_tcg' };
}

async function withAppliance<T>(
  options: FileRecoveryOptions,
  disks: DiskUrl[],
  work: (gf: Guestfish) => Promise<T>,
): Promise<T> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    LIBGUESTFS_BACKEND: 'direct',
    LIBGUESTFS_BACKEND_SETTINGS: 'force_tcg',
  };
  const deadline = Date.now() + (options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
  const pid = await startServer(env);
  const gf = new Guestfish(pid, env, deadline);
  const log = options.log.child({ guestfishPid: pid });

  const timeout = new Promise<never>((_, reject) => {
    const timer = setTimeout(
      () =>
        reject(
          unavailable(
            'File recovery took longer than allowed and was stopped; try again later or ask an operator.',
          ),
        ),
      Math.max(0, deadline - Date.now()),
    );
    timer.unref();
  });
  try {
    const task = (async () => {
      for (const disk of disks) {
        const port = disk.port || (disk.protocol === 'https:' ? '443' : '80');
        const protocol = disk.protocol === 'https:' ? 'https' : 'http';
        await gf.run([
          'add-drive',
          disk.pathname,
          'readonly:true',
          'format:raw',
          `protocol:${protocol}`,
          `server:tcp:${disk.hostname}:${port}`,
        ]);
      }
      const launched = Date.now();
      await gf.run(['run']);
      log.info({ launchMs: Date.now() - launched, disks: disks.length }, 'appliance_started');
      return work(gf);
    })();
    task.catch(() => {});
    return await Promise.race([task, timeout]);
  } finally {
    await stopServer(gf, pid, log);
  }
}

/** Starts `guestfish --listen`, which forks a server and prints its pid. */
export function startServer(env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(GUESTFISH, ['--listen', '--ro'], {
      env,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', (e) =>
      reject(
        unavailable(
          `libguestfs cannot start (${e.message}); an operator must install libguestfs-tools.`,
        ),
      ),
    );
    child.stdout.on('data', () => {
      const match = out.match(/GUESTFISH_PID=(\d+)/);
      if (match) resolve(Number(match[1]));
    });
    // The server keeps no pipe of ours; once the launcher exits, its output is complete.
    child.on('close', () => {
      const match = out.match(/GUESTFISH_PID=(\d+)/);
      if (match) resolve(Number(match[1]));
      else
        reject(unavailable(`libguestfs did not start: ${err.trim() || out.trim() || 'no output'}`));
    });
  });
}

export async function stopServer(gf: Guestfish, pid: number, log: Logger): Promise<void> {
  const exited = await Promise.race([
    gf.run(['exit']).then(
      () => true,
      () => false,
    ),
    new Promise<boolean>((r) => setTimeout(() => r(false), 10_000).unref()),
  ]);
  if (exited && !(await alive(pid, 5_000))) return;
  // The server's recovery process takes qemu down with it.
  try {
    process.kill(pid, 'SIGTERM');
    if (await alive(pid, 5_000)) process.kill(pid, 'SIGKILL');
  } catch {
    // Already gone.
  }
  log.warn({ pid }, 'appliance_killed');
}

async function alive(pid: number, waitMs: number): Promise<boolean> {
  const until = Date.now() + waitMs;
  for (;;) {
    try {
      process.kill(pid, 0);
    } catch {
      return false;
    }
    if (Date.now() >= until) return true;
    await new Promise((r) => setTimeout(r, 200));
  }
}

export function parseStat(text: string): Record<string, number> {
  const stat: Record<string, number> = {};
  for (const m of text.matchAll(/^\s*(st_\w+): (-?\d+)/gm)) stat[m[1]!] = Number(m[2]);
  return stat;
}

export function fileType(mode: number): FolderEntry['type'] {
  const kind = mode & 0o170000;
  if (kind === 0o100000) return 'file';
  if (kind === 0o040000) return 'directory';
  if (kind === 0o120000) return 'symlink';
  return 'other';
}

export async function fileDigest(file: string): Promise<{ size: number; sha256: string }> {
  const hash = createHash('sha256');
  let size = 0;
  for await (const chunk of createReadStream(file)) {
    hash.update(chunk as Buffer);
    size += (chunk as Buffer).length;
  }
  return { size, sha256: hash.digest('hex') };
}
