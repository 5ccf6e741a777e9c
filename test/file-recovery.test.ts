// File-level recovery from every supported file system: a VM added to the
// sandbox from image files (GPT, MBR with logical partitions, partition-less,
// one as a fixed VHD) is backed up by the engine, then one appliance session
// over the restore point browses, searches and recovers the known files of
// each volume, compared by sha256. The shared fixture images, when present,
// ride along as extra disks of the same VM.
import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import { ClientSecretCredential } from '@azure/identity';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import yauzl from 'yauzl';
import type { Customer } from '../core/db/schema.ts';
import { silentLogger } from '../core/log.ts';
import { LinkSigner } from '../core/signing.ts';
import { createEngine, type Engine } from '../engine/engine.ts';
import { restorePointDisks } from '../engine/file-restore-point.ts';
import { FileRecoverySession } from '../engine/file-session.ts';
import { readManifest } from '../engine/repository/manifest.ts';
import { Repository } from '../engine/repository/repository.ts';
import { addVm } from '../sandbox/added-vms.ts';
import {
  ensureFileSystemImages,
  TEST_DISKS,
  TEST_FILE_MTIME,
  testFilesOf,
} from '../sandbox/file-system-images.ts';
import { startSandbox, type Sandbox } from '../sandbox/index.ts';
import { openTestDatabase, tempDir, type TestDatabase } from './support/database.ts';

const run = promisify(execFile);
const fixtures = path.resolve('../shared/fixtures/disk-images/rust-fatfs');
const haveFixtures = existsSync(fixtures);
const sha = (data: Buffer) => createHash('sha256').update(data).digest('hex');

let sandbox: Sandbox;
let database: TestDatabase;
let engine: Engine;
let server: ReturnType<express.Express['listen']>;
let dataDir: string;
let session: FileRecoverySession;
const abort = new AbortController();
const signer = new LinkSigner(randomBytes(32));
const kek = randomBytes(32);
/** Volume key (e.g. `gpt-ext4`) to session volume id, found through /hello.txt. */
const volumeOfKey = new Map<string, string>();
const fixtureVolumes: string[] = [];

beforeAll(async () => {
  const images = await ensureFileSystemImages('test/.cache/fs-images', silentLogger);
  dataDir = await tempDir('acba-files-');
  // One disk as Azure stores it: a fixed VHD, the raw disk followed by a 512-byte footer.
  const vhd = path.join(dataDir, 'bare-ext4.vhd');
  await run('qemu-img', [
    'convert',
    '-O',
    'vpc',
    '-o',
    'subformat=fixed,force_size=on',
    images['bare-ext4']!,
    vhd,
  ]);
  const disks = TEST_DISKS.map((d) => (d.name === 'bare-ext4' ? vhd : images[d.name]!));
  if (haveFixtures) disks.push(path.join(fixtures, 'fat12.img'), path.join(fixtures, 'fat16.img'));

  sandbox = await startSandbox({
    dataDir,
    armPort: 0,
    blobPort: 0,
    imageCacheDir: 'test/.cache/images',
  });
  // Added while the sandbox runs: it must list the VM without a restart.
  const added = await addVm(dataDir, { name: 'fs-lab', disks, osType: 'Linux' });
  const vhdDisk = added.disks[TEST_DISKS.findIndex((d) => d.name === 'bare-ext4')]!;
  expect(vhdDisk.format).toBe('vhd');
  expect(vhdDisk.sizeBytes).toBe((await fs.stat(images['bare-ext4']!)).size);

  database = await openTestDatabase();
  const seeded = sandbox.seed.customers[0]!;
  const customer: Customer = await database.db
    .insertInto('customers')
    .values({
      id: seeded.id,
      name: seeded.name,
      tenant_id: seeded.tenantId,
      subscription_id: seeded.subscriptionId,
    })
    .returningAll()
    .executeTakeFirstOrThrow();

  const app = express();
  server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const repository = {
    connectionString: sandbox.repositoryConnectionString,
    container: 'acba-repository',
    kek,
  };
  engine = await createEngine({
    db: database.db,
    log: silentLogger,
    credential: new ClientSecretCredential(
      sandbox.servicePrincipal.tenantId,
      sandbox.servicePrincipal.clientId,
      sandbox.servicePrincipal.clientSecret,
      { authorityHost: sandbox.authorityHost, disableInstanceDiscovery: true },
    ),
    resourceManagerUrl: sandbox.armUrl,
    repository,
    signer,
    publicUrl: baseUrl,
    diskResourceUrl: `${baseUrl}/engine`,
    downloadLinkMinutes: 60,
    notices: { restoreFinished: async () => undefined },
    workDir: path.join(dataDir, 'work'),
    azurePollIntervalMs: 50,
  });
  app.use('/engine', engine.diskRouter());

  const items = await engine.syncInventory(customer);
  const item = items.find((i) => i.name === 'fs-lab');
  expect(item, 'the ARM stand-in lists the added VM').toBeDefined();
  const restorePoint = await engine.backupVm(item!.id, 'test');
  const manifest = await readManifest(
    await Repository.open({ ...repository, db: database.db }),
    restorePoint,
  );
  expect(manifest.disks).toHaveLength(disks.length);

  session = await FileRecoverySession.open(
    { workDir: path.join(dataDir, 'work'), log: silentLogger, signal: abort.signal },
    restorePointDisks({
      signer,
      diskResourceUrl: `${baseUrl}/engine`,
      restorePointId: restorePoint.id,
      diskSizes: manifest.disks.map((d) => d.sizeBytes),
      minutes: 30,
    }),
  );
  for (const volume of session.volumes) {
    if (volume.diskIndex >= TEST_DISKS.length) {
      fixtureVolumes.push(volume.id);
      continue;
    }
    const local = await session.extract(volume.id, ['/hello.txt']);
    const text = await fs.readFile(local.localPath, 'utf8');
    volumeOfKey.set(text.match(/^Hello from (\S+)\.$/m)![1]!, volume.id);
  }
}, 900_000);

afterAll(async () => {
  // Also ends an appliance still starting when the set-up ran out of time.
  abort.abort();
  await session?.close();
  await engine?.close();
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  await database?.dispose();
  await sandbox?.close();
  if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
});

const volumes = TEST_DISKS.flatMap((disk) => disk.volumes.map((v) => ({ disk: disk.name, ...v })));

describe('file recovery from every supported file system', () => {
  it('finds each volume of the GPT, MBR and partition-less disks, all supported', () => {
    expect([...volumeOfKey.keys()].sort()).toEqual(volumes.map((v) => v.key).sort());
    expect(session.refusedDisks).toEqual([]);
    for (const volume of session.volumes) expect(volume.supported).toBe(true);
  });

  it.each(volumes)('$key: browses, searches and recovers the known files', async (volume) => {
    const id = volumeOfKey.get(volume.key)!;
    const expected = testFilesOf(volume.key);

    const root = await session.list(id, '/');
    const byName = new Map(root.map((e) => [e.name.toLowerCase(), e]));
    expect(byName.get('hello.txt')).toMatchObject({
      type: 'file',
      sizeBytes: expected.get('/hello.txt')!.length,
    });
    expect(byName.get('hello.txt')!.modifiedAt.getTime()).toBe(TEST_FILE_MTIME * 1000);
    expect(byName.get('docs')?.type).toBe('directory');
    expect(byName.get('data')?.type).toBe('directory');

    const found = await session.search(id, '/docs', '*.TXT'.toLowerCase());
    expect(found.map((e) => e.path.toLowerCase())).toEqual([
      '/docs/nested/deep/notes.txt',
      '/docs/readme.txt',
    ]);

    const blob = await session.extract(id, ['/data/blob.bin']);
    expect(blob.kind).toBe('file');
    expect(blob.sha256).toBe(sha(expected.get('/data/blob.bin')!));

    const zip = await session.extract(id, ['/docs', '/data', '/hello.txt'], volume.key);
    expect(zip).toMatchObject({ kind: 'zip', fileName: `${volume.key}.zip`, fileCount: 4 });
    const unzipped = await unzip(zip.localPath);
    expect([...unzipped].map(([name, data]) => [name.toLowerCase(), sha(data)]).sort()).toEqual(
      [...expected].map(([name, data]) => [name.slice(1), sha(data)]).sort(),
    );
  });
});

describe.skipIf(!haveFixtures)('file recovery from rust-fatfs images (shared fixtures)', () => {
  it('lists and recovers long.txt and a nested file from FAT12 and FAT16 without partitions', async () => {
    expect(fixtureVolumes).toHaveLength(2);
    for (const id of fixtureVolumes) {
      const root = await session.list(id, '/');
      expect(root.find((e) => e.name === 'long.txt')?.sizeBytes).toBe(14000);
      const nested = await session.search(id, '/', 'test.txt');
      expect(nested.map((e) => e.path)).toEqual(['/very/long/path/test.txt']);
      const long = await session.extract(id, ['/long.txt']);
      expect(long.sizeBytes).toBe(14000);
    }
  });
});

describe('the end of a session', () => {
  it('leaves no appliance running once the session is aborted', async () => {
    const pid = session.pid;
    expect(alive(pid)).toBe(true);
    expect(qemuOf().length).toBeGreaterThan(0);
    abort.abort();
    await waitFor(() => !alive(pid) && qemuOf().length === 0, 30_000);
    expect(session.closed).toBe(true);
    await expect(session.list(session.volumes[0]!.id, '/')).rejects.toThrow(/has ended/);
  });
});

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** qemu processes reading disks from this test's engine (orphaned ones included). */
/** qemu processes started by the session's guestfish server (its children). */
function qemuOf(): number[] {
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
        // pid (comm) state ppid ...: comm may hold spaces, so read after the last parenthesis.
        const comm = stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')'));
        const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
        return comm.startsWith('qemu') && ppid === session.pid;
      } catch {
        return false;
      }
    })
    .map(Number);
}

async function waitFor(check: () => boolean, ms: number): Promise<void> {
  const until = Date.now() + ms;
  while (!check()) {
    if (Date.now() > until) throw new Error('condition not reached in time');
    await new Promise((r) => setTimeout(r, 200));
  }
}

function unzip(file: string): Promise<Map<string, Buffer>> {
  return new Promise((resolve, reject) => {
    const files = new Map<string, Buffer>();
    yauzl.open(file, { lazyEntries: true }, (error, zip) => {
      if (error) return reject(error);
      zip.on('entry', (entry: yauzl.Entry) => {
        if (entry.fileName.endsWith('/')) return zip.readEntry();
        zip.openReadStream(entry, async (err, stream) => {
          if (err) return reject(err);
          const chunks: Buffer[] = [];
          for await (const chunk of stream) chunks.push(chunk as Buffer);
          files.set(entry.fileName, Buffer.concat(chunks));
          zip.readEntry();
        });
      });
      zip.on('end', () => resolve(files));
      zip.on('error', reject);
      zip.readEntry();
    });
  });
}
