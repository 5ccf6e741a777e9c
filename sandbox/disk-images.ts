/**
 * Disk images for the seeded VMs, made by real tools so that whatever reads
 * them later (partition parsers, libguestfs, file-level restore) meets real
 * GPT, MBR, ext4 and NTFS structures rather than a hand-made imitation.
 *
 * Both images come out of one guestfish launch (about 20 s under TCG), so they
 * are cached: the cache key is a hash of the build script and file contents,
 * which changes by itself when this file does. Several processes may start at
 * once with an empty cache (test workers); a lock folder makes one of them
 * build while the others wait, and images appear in the cache by rename.
 */
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import type { Logger } from '../core/log.ts';

export type ImageName = 'web-01' | 'win-01';

interface ImageFile {
  path: string;
  content: string;
  owner?: { uid: number; gid: number };
}

const webFiles: ImageFile[] = [
  { path: '/etc/hostname', content: 'web-01\n' },
  {
    path: '/etc/nginx/nginx.conf',
    content: `user www-data;
worker_processes auto;
pid /run/nginx.pid;
error_log /var/log/nginx/error.log warn;

events {
    worker_connections 768;
}

http {
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 65;
    server_tokens off;

    include /etc/nginx/mime.types;
    default_type application/octet-stream;

    access_log /var/log/nginx/access.log;
    gzip on;

    server {
        listen 80 default_server;
        listen [::]:80 default_server;
        server_name web-01.contoso.com;

        root /var/www/html;
        index index.html;

        location / {
            try_files $uri $uri/ =404;
        }
    }
}
`,
  },
  {
    path: '/var/www/html/index.html',
    content: `<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <title>Contoso</title>
</head>
<body>
  <h1>Welcome to Contoso</h1>
  <p>Served by web-01.</p>
</body>
</html>
`,
  },
  {
    path: '/home/azureuser/notes.txt',
    content:
      'Renew the TLS certificate for web-01.contoso.com before 30 June.\nAsk Megan about the new product page.\n',
    owner: { uid: 1000, gid: 1000 },
  },
];

const windowsFiles: ImageFile[] = [
  {
    path: '/Windows/System32/drivers/etc/hosts',
    content: [
      '# Copyright (c) 1993-2009 Microsoft Corp.',
      '#',
      '# This is a sample HOSTS file used by Microsoft TCP/IP for Windows.',
      '#',
      '# localhost name resolution is handled within DNS itself.',
      '#\t127.0.0.1       localhost',
      '#\t::1             localhost',
      '10.0.1.4\tweb-01.contoso.internal',
      '',
    ].join('\r\n'),
  },
  {
    path: '/Users/Public/Documents/report.txt',
    content:
      'Contoso quarterly report\r\n\r\nRevenue grew 4% over the previous quarter.\r\nNext review: 15 July.\r\n',
  },
];

/** Commands for one guestfish session that builds both images; `upload` sources are file names in the work folder. */
function buildScript(): { script: string; uploads: Map<string, string> } {
  const uploads = new Map<string, string>();
  const lines = [
    'part-disk /dev/sda gpt',
    'part-disk /dev/sdb mbr',
    'part-set-mbr-id /dev/sdb 1 0x07',
    'part-set-bootable /dev/sdb 1 true',
    'mkfs ext4 /dev/sda1 label:cloudimg-rootfs',
    'mkfs ntfs /dev/sdb1',
  ];

  const addFiles = (device: string, files: ImageFile[]) => {
    lines.push(`mount ${device} /`);
    for (const file of files) {
      const source = `file-${uploads.size}`;
      uploads.set(source, file.content);
      lines.push(`mkdir-p "${path.posix.dirname(file.path)}"`, `upload ${source} "${file.path}"`);
      if (file.owner)
        lines.push(
          `chown ${file.owner.uid} ${file.owner.gid} "${path.posix.dirname(file.path)}"`,
          `chown ${file.owner.uid} ${file.owner.gid} "${file.path}"`,
        );
    }
    lines.push('umount-all');
  };
  addFiles('/dev/sda1', webFiles);
  addFiles('/dev/sdb1', windowsFiles);

  return { script: `${lines.join('\n')}\n`, uploads };
}

const imageSizes: Record<ImageName, string> = { 'web-01': '64M', 'win-01': '32M' };

/** The cache key: changes whenever the script, the contents or the sizes change. */
export function imageVersion(): string {
  const { script, uploads } = buildScript();
  const hash = createHash('sha256')
    .update(script)
    .update(JSON.stringify([...uploads], null, 0))
    .update(JSON.stringify(imageSizes));
  return `v1-${hash.digest('hex').slice(0, 12)}`;
}

/** Paths of the cached images, building them first when the cache lacks this version. */
export async function ensureDiskImages(
  cacheDir: string,
  log: Logger,
): Promise<Record<ImageName, string>> {
  const versionDir = path.join(path.resolve(cacheDir), imageVersion());
  const images: Record<ImageName, string> = {
    'web-01': path.join(versionDir, 'web-01.raw'),
    'win-01': path.join(versionDir, 'win-01.raw'),
  };
  if (await allExist(Object.values(images))) return images;

  await fs.mkdir(versionDir, { recursive: true });
  await withLock(path.join(versionDir, '.lock'), async () => {
    if (await allExist(Object.values(images))) return;
    const started = Date.now();
    log.info({ cacheDir: versionDir }, 'sandbox_disk_images_building');
    await buildImages(versionDir, images);
    log.info({ cacheDir: versionDir, ms: Date.now() - started }, 'sandbox_disk_images_built');
  });
  return images;
}

async function buildImages(versionDir: string, images: Record<ImageName, string>): Promise<void> {
  const work = await fs.mkdtemp(path.join(versionDir, '.build-'));
  try {
    const { script, uploads } = buildScript();
    for (const [name, content] of uploads) await fs.writeFile(path.join(work, name), content);

    const args = [
      '-N',
      `web.img=disk:${imageSizes['web-01']}`,
      '-N',
      `win.img=disk:${imageSizes['win-01']}`,
    ];
    await runGuestfish(args, script, work);

    // The web image is renamed last: its presence marks a complete cache entry only once both exist.
    await fs.rename(path.join(work, 'win.img'), images['win-01']);
    await fs.rename(path.join(work, 'web.img'), images['web-01']);
  } finally {
    await fs.rm(work, { recursive: true, force: true });
  }
}

export function runGuestfish(args: string[], script: string, cwd: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn('guestfish', args, {
      cwd,
      stdio: ['pipe', 'pipe', 'pipe'],
      // The direct backend with software emulation works in containers without KVM or libvirt.
      env: {
        ...process.env,
        LIBGUESTFS_BACKEND: 'direct',
        LIBGUESTFS_BACKEND_SETTINGS: 'force_tcg',
      },
    });
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.on('error', (error) =>
      reject(
        new Error(
          `guestfish could not be started (${error.message}); install libguestfs-tools to build the sandbox disk images.`,
        ),
      ),
    );
    child.on('close', (code) => {
      if (code === 0) resolve();
      else
        reject(
          new Error(
            `guestfish exited with code ${code} while building the sandbox disk images: ${output.trim().slice(-2000)}`,
          ),
        );
    });
    child.stdin.end(script);
  });
}

export async function allExist(files: string[]): Promise<boolean> {
  const found = await Promise.all(
    files.map((file) =>
      fs.access(file).then(
        () => true,
        () => false,
      ),
    ),
  );
  return found.every(Boolean);
}

/** Holds a lock folder while fn runs; waits for another holder, and breaks a lock left for ten minutes. */
export async function withLock(lock: string, fn: () => Promise<void>): Promise<void> {
  const deadline = Date.now() + 15 * 60_000;
  for (;;) {
    try {
      await fs.mkdir(lock);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const stat = await fs.stat(lock).catch(() => undefined);
    if (stat && Date.now() - stat.mtimeMs > 10 * 60_000)
      await fs.rm(lock, { recursive: true, force: true });
    if (Date.now() > deadline)
      throw new Error(
        `Timed out waiting for ${lock}; remove it if no other sandbox is building images.`,
      );
    await new Promise((resolve) => setTimeout(resolve, 250));
  }

  try {
    await fn();
  } finally {
    await fs.rm(lock, { recursive: true, force: true });
  }
}
