/**
 * A file-level recovery session over a restore point's disks: one libguestfs
 * appliance, launched once, reading the disks read-only over HTTP from the
 * engine's byte-range resource. It lists the volumes it found, browses
 * folders, searches by name, and copies picked files and folders out (one
 * file as is, several or a folder as a zip).
 *
 * Disks with Azure Disk Encryption or LDM (dynamic disks) are refused before
 * launch and left out; volumes with a file system outside the supported list
 * are shown but refused. The appliance is always shut down: on close(), when
 * the session has been idle too long, when it reaches its lifetime, and when
 * the caller's AbortSignal fires.
 */
import { randomUUID } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import yazl from 'yazl';
import { badInput, limitReached, notFound, unavailable } from '../core/errors.ts';
import { formatBytes } from '../core/format.ts';
import type { Logger } from '../core/log.ts';
import { diskRefusal, type SectorReader } from './file-disk-check.ts';
import {
  addDisksAndLaunch,
  applianceEnv,
  fileDigest,
  fileType,
  Guestfish,
  normalizeGuestPath,
  parseStat,
  startServer,
  stopServer,
  type FolderEntry,
} from './file-recovery.ts';

/** Names guestfish would split or unquote inside a list argument. */
const LIST_UNSAFE = /[\s"'\\]/;
/** File systems file-level recovery supports, as libguestfs names them. */
export const SUPPORTED_FILE_SYSTEMS = new Set([
  'vfat',
  'msdos',
  'ntfs',
  'ext2',
  'ext3',
  'ext4',
  'xfs',
  'btrfs',
]);
const CASE_INSENSITIVE = new Set(['ntfs', 'vfat', 'msdos']);
const NOT_FILE_SYSTEMS = new Set(['swap', 'unknown', '', 'LVM2_member']);
const MAX_ENTRIES = 5000;

export interface SessionDisk {
  url: URL;
  read: SectorReader;
  sizeBytes: number;
}

export interface FileSessionOptions {
  workDir: string;
  log: Logger;
  /** Ends the session after this long without a call (default 10 minutes). */
  idleTimeoutMs?: number;
  /** Ends the session this long after it opened, whatever happens (default 1 hour). */
  maxLifetimeMs?: number;
  /** Largest total a single extract copies out (default 256 MiB). */
  maxExtractBytes?: number;
  signal?: AbortSignal;
}

export interface RecoveryVolume {
  /** Stable within the session, e.g. `disk0/sda1`. */
  id: string;
  diskIndex: number;
  device: string;
  fileSystem: string;
  label: string;
  supported: boolean;
}

export interface RefusedDisk {
  diskIndex: number;
  reason: string;
}

export interface BrowseEntry extends FolderEntry {
  /** Full path on the volume. */
  path: string;
  modifiedAt: Date;
}

export interface ExtractedFiles {
  localPath: string;
  /** The file's own name, or `<name>.zip` for several files or a folder. */
  fileName: string;
  kind: 'file' | 'zip';
  sizeBytes: number;
  sha256: string;
  /** Regular files copied out. */
  fileCount: number;
}

export class FileRecoverySession {
  private closing: Promise<void> | undefined;
  private idleTimer: NodeJS.Timeout | undefined;
  private lifeTimer: NodeJS.Timeout | undefined;
  private queue: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly gf: Guestfish,
    /** The guestfish server's pid; qemu is its child. */
    readonly pid: number,
    readonly volumes: RecoveryVolume[],
    readonly refusedDisks: RefusedDisk[],
    private readonly options: FileSessionOptions,
    private readonly log: Logger,
  ) {}

  /** Checks the disks, launches one appliance over the ones it may read, and finds their volumes. */
  static async open(
    options: FileSessionOptions,
    disks: SessionDisk[],
  ): Promise<FileRecoverySession> {
    const refusedDisks: RefusedDisk[] = [];
    const readable: number[] = [];
    for (const [diskIndex, disk] of disks.entries()) {
      const reason = await diskRefusal(disk.read, disk.sizeBytes);
      if (reason)
        refusedDisks.push({ diskIndex, reason: `Disk ${diskIndex} is refused: ${reason}` });
      else readable.push(diskIndex);
    }
    if (readable.length === 0)
      throw badInput(refusedDisks.map((r) => r.reason).join(' '), { refusedDisks });
    if (options.signal?.aborted)
      throw unavailable('File recovery was cancelled before it started.');

    const env = applianceEnv();
    const pid = await startServer(env);
    const gf = new Guestfish(pid, env, Date.now() + (options.maxLifetimeMs ?? 3_600_000));
    const log = options.log.child({ guestfishPid: pid });
    let volumes: RecoveryVolume[];
    // Cancelled while the appliance starts: stop it now, so nothing is left running.
    const stopOnAbort = () => void stopServer(gf, pid, log);
    options.signal?.addEventListener('abort', stopOnAbort, { once: true });
    try {
      const launched = Date.now();
      await addDisksAndLaunch(
        gf,
        readable.map((i) => disks[i]!.url),
      );
      log.info({ launchMs: Date.now() - launched, disks: readable.length }, 'appliance_started');
      volumes = await findVolumes(gf, readable);
      if (options.signal?.aborted)
        throw unavailable('File recovery was cancelled while it started.');
    } catch (error) {
      await stopServer(gf, pid, log);
      throw error;
    } finally {
      options.signal?.removeEventListener('abort', stopOnAbort);
    }

    const session = new FileRecoverySession(gf, pid, volumes, refusedDisks, options, log);
    session.lifeTimer = setTimeout(
      () => void session.expire('lifetime'),
      options.maxLifetimeMs ?? 3_600_000,
    );
    session.lifeTimer.unref();
    options.signal?.addEventListener('abort', () => void session.expire('aborted'), { once: true });
    session.touch();
    return session;
  }

  get closed(): boolean {
    return this.closing !== undefined;
  }

  /** Entries of a folder (name, type, size, modification time), sorted by name. */
  list(volumeId: string, folder: string): Promise<BrowseEntry[]> {
    return this.withVolume(volumeId, async (volume) => {
      const dir = await this.realPath(volume, normalizeGuestPath(folder));
      if ((await this.gf.run(['is-dir', dir])).trim() !== 'true')
        throw notFound(`The folder \`${folder}\` does not exist on ${volume.id}; check the path.`);
      const names = (await this.gf.run(['ls', dir])).split('\n').filter((n) => n !== '');
      if (names.length > MAX_ENTRIES)
        throw limitReached(
          `\`${dir}\` holds ${names.length} entries; search in it by name instead.`,
        );
      return this.stat(dir, names);
    });
  }

  /** Files and folders under `folder` whose name matches a glob (`*`, `?`), at most `limit`. */
  search(volumeId: string, folder: string, glob: string, limit = 500): Promise<BrowseEntry[]> {
    return this.withVolume(volumeId, async (volume) => {
      const dir = await this.realPath(volume, normalizeGuestPath(folder));
      if ((await this.gf.run(['is-dir', dir])).trim() !== 'true')
        throw notFound(`The folder \`${folder}\` does not exist on ${volume.id}; check the path.`);
      const pattern = globToRegExp(glob, CASE_INSENSITIVE.has(volume.fileSystem));
      const found = (await this.gf.run(['find', dir]))
        .split('\n')
        .filter((p) => p !== '' && pattern.test(path.posix.basename(p)))
        .slice(0, limit)
        // find names what it finds relative to dir (with or without a leading slash).
        .map((p) => path.posix.join(dir, p));
      return this.stat(dir, found);
    });
  }

  /**
   * Copies the picked paths out: one regular file as it is, anything else
   * (several paths, or a folder) as one zip named after `zipName`.
   */
  extract(
    volumeId: string,
    picked: string[],
    zipName = 'recovered-files',
  ): Promise<ExtractedFiles> {
    return this.withVolume(volumeId, async (volume) => {
      if (picked.length === 0) throw badInput('Pick at least one file or folder to recover.');
      const paths: Array<{ real: string; dir: boolean }> = [];
      for (const wanted of picked.map(normalizeGuestPath)) {
        const real = await this.realPath(volume, wanted);
        const dir = (await this.gf.run(['is-dir', real])).trim() === 'true';
        if (!dir && (await this.gf.run(['is-file', real])).trim() !== 'true')
          throw notFound(`\`${wanted}\` is not a file or folder on ${volume.id}; check the path.`);
        paths.push({ real, dir });
      }
      const limit = this.options.maxExtractBytes ?? 256 * 1024 * 1024;
      let total = 0;
      for (const p of paths) total += Number((await this.gf.run(['du', p.real])).trim()) * 1024;
      if (total > limit)
        throw limitReached(
          `The picked files take about ${formatBytes(total)}; a file recovery delivers up to ${formatBytes(limit)}. Pick fewer files or ask for a disk restore.`,
        );

      await fs.mkdir(this.options.workDir, { recursive: true });
      if (paths.length === 1 && !paths[0]!.dir) {
        const localPath = path.join(this.options.workDir, `recovered-${randomUUID()}`);
        await this.gf.run(['download', paths[0]!.real, localPath]);
        const digest = await fileDigest(localPath);
        return {
          localPath,
          fileName: path.posix.basename(paths[0]!.real),
          kind: 'file',
          sizeBytes: digest.size,
          sha256: digest.sha256,
          fileCount: 1,
        };
      }

      const staging = await fs.mkdtemp(path.join(this.options.workDir, 'staging-'));
      try {
        for (const p of paths) {
          if (p.dir) await this.gf.run(['copy-out', p.real, staging]);
          else
            await this.gf.run([
              'download',
              p.real,
              path.join(staging, path.posix.basename(p.real) || 'root'),
            ]);
        }
        const localPath = path.join(this.options.workDir, `recovered-${randomUUID()}.zip`);
        const fileCount = await zipFolder(staging, localPath);
        const digest = await fileDigest(localPath);
        const single = paths.length === 1 ? path.posix.basename(paths[0]!.real) : '';
        return {
          localPath,
          fileName: `${single || zipName}.zip`,
          kind: 'zip',
          sizeBytes: digest.size,
          sha256: digest.sha256,
          fileCount,
        };
      } finally {
        await fs.rm(staging, { recursive: true, force: true });
      }
    });
  }

  /** Shuts the appliance down; safe to call more than once. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearTimeout(this.idleTimer);
      clearTimeout(this.lifeTimer);
      await stopServer(this.gf, this.pid, this.log);
      this.log.info('file_session_closed');
    })();
    return this.closing;
  }

  private expire(why: 'idle' | 'lifetime' | 'aborted'): Promise<void> {
    if (!this.closed) this.log.info({ why }, 'file_session_expired');
    return this.close();
  }

  private touch(): void {
    clearTimeout(this.idleTimer);
    this.idleTimer = setTimeout(
      () => void this.expire('idle'),
      this.options.idleTimeoutMs ?? 600_000,
    );
    this.idleTimer.unref();
  }

  /** Runs one call with the volume mounted read-only at /; calls run one at a time. */
  private withVolume<T>(
    volumeId: string,
    work: (volume: RecoveryVolume) => Promise<T>,
  ): Promise<T> {
    const run = async () => {
      if (this.closed)
        throw unavailable(
          'This file recovery session has ended (closed or timed out); open a new one.',
        );
      const volume = this.volumes.find((v) => v.id === volumeId);
      if (!volume)
        throw notFound(
          `This restore point has no volume ${volumeId}; pick one of ${this.volumes.map((v) => v.id).join(', ') || 'none'}.`,
        );
      if (!volume.supported)
        throw badInput(
          `${volume.id} holds a ${volume.fileSystem} file system, which file-level recovery does not support (FAT, FAT32, NTFS, ext2/3/4, XFS, Btrfs); restore the whole disk instead.`,
        );
      this.touch();
      await this.gf.run(['mount-ro', volume.device, '/']);
      try {
        return await work(volume);
      } finally {
        await this.gf.run(['umount-all']).catch(() => undefined);
        this.touch();
      }
    };
    const next = this.queue.then(run, run);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** The path's real spelling on case-insensitive file systems. */
  private async realPath(volume: RecoveryVolume, wanted: string): Promise<string> {
    if (!CASE_INSENSITIVE.has(volume.fileSystem)) return wanted;
    return (await this.gf.run(['case-sensitive-path', wanted]).catch(() => wanted)).trim();
  }

  /**
   * Stats names relative to dir (or absolute paths). guestfish takes a list of
   * names as one argument split at white space, so plain names go in batches
   * through lstatnslist and names with white space or quotes one by one.
   */
  private async stat(dir: string, names: string[]): Promise<BrowseEntry[]> {
    const full = names.map((n) => (n.startsWith('/') ? n : path.posix.join(dir, n)));
    const plain = full.filter((p) => !LIST_UNSAFE.test(path.posix.relative(dir, p)));
    const stats = new Map<string, Record<string, number>>();
    for (let i = 0; i < plain.length; i += 200) {
      const batch = plain.slice(i, i + 200);
      const relative = batch.map((p) => path.posix.relative(dir, p)).join(' ');
      const out = await this.gf.run(['lstatnslist', dir, relative]);
      out
        .split(/^\[\d+\] = \{$/m)
        .slice(1)
        .forEach((block, j) => stats.set(batch[j]!, parseStat(block)));
    }
    for (const p of full) {
      if (!stats.has(p)) stats.set(p, parseStat(await this.gf.run(['lstatns', p])));
    }

    const entries = full.map((p) => {
      const stat = stats.get(p)!;
      return {
        name: path.posix.basename(p),
        path: p,
        type: fileType(stat.st_mode ?? 0),
        sizeBytes: stat.st_size ?? 0,
        modifiedAt: new Date((stat.st_mtime_sec ?? 0) * 1000),
      };
    });
    return entries.sort((a, b) => a.path.localeCompare(b.path));
  }
}

async function findVolumes(gf: Guestfish, diskIndices: number[]): Promise<RecoveryVolume[]> {
  const devices = (await gf.run(['list-devices'])).split('\n').filter((d) => d !== '');
  const volumes: RecoveryVolume[] = [];
  for (const line of (await gf.run(['list-filesystems'])).split('\n')) {
    const match = line.match(/^(\S+): (.*)$/);
    if (!match || NOT_FILE_SYSTEMS.has(match[2]!)) continue;
    const [, device, fileSystem] = match as unknown as [string, string, string];
    const position = devices.findIndex((d) => device === d || device.startsWith(d));
    const diskIndex = diskIndices[Math.max(0, position)]!;
    const label = (await gf.run(['vfs-label', device]).catch(() => '')).trim();
    volumes.push({
      id: `disk${diskIndex}/${device.replace(/^\/dev\//, '')}`,
      diskIndex,
      device,
      fileSystem,
      label,
      supported: SUPPORTED_FILE_SYSTEMS.has(fileSystem),
    });
  }
  return volumes;
}

/** A glob over one name: `*` any run, `?` one character, everything else literal. */
export function globToRegExp(glob: string, caseInsensitive: boolean): RegExp {
  if (glob.length === 0 || glob.length > 200 || glob.includes('/') || glob.includes('\0'))
    throw badInput(
      'Give a name pattern such as *.conf or report-??.txt (no folders, at most 200 characters).',
    );
  const body = [...glob]
    .map((c) => (c === '*' ? '.*' : c === '?' ? '.' : c.replace(/[.+^${}()|[\]\\]/g, '\\$&')))
    .join('');
  return new RegExp(`^${body}$`, caseInsensitive ? 'is' : 's');
}

/** Zips a folder's contents (names relative to it); returns how many files went in. */
async function zipFolder(folder: string, zipPath: string): Promise<number> {
  const zip = new yazl.ZipFile();
  const done = new Promise<void>((resolve, reject) => {
    const out = createWriteStream(zipPath);
    out.on('close', resolve);
    out.on('error', reject);
    zip.outputStream.on('error', reject).pipe(out);
  });
  let count = 0;
  const walk = async (dir: string, prefix: string): Promise<void> => {
    const entries = await fs.readdir(dir, { withFileTypes: true });
    if (entries.length === 0 && prefix) zip.addEmptyDirectory(prefix);
    for (const entry of entries.sort((a, b) => a.name.localeCompare(b.name))) {
      const full = path.join(dir, entry.name);
      const name = prefix ? `${prefix}/${entry.name}` : entry.name;
      if (entry.isDirectory()) await walk(full, name);
      else if (entry.isFile()) {
        const stat = await fs.stat(full);
        zip.addFile(full, name, { mtime: stat.mtime });
        count += 1;
      }
    }
  };
  await walk(folder, '');
  zip.end();
  await done;
  return count;
}
