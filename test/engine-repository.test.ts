// The repository format against a real blob service (Azurite):
// round trip, deduplication, zero blocks, tamper detection and the KEK check.
import { createHash, randomBytes } from 'node:crypto';
import { BlobSASPermissions, BlobServiceClient } from '@azure/storage-blob';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAcbaError } from '../core/errors.ts';
import { silentLogger } from '../core/log.ts';
import { DiskImage, LruCache } from '../engine/disk-image.ts';
import { openSasDisk, readDisk } from '../engine/backup.ts';
import { IntegrityError, ObjectType } from '../engine/repository/crypto.ts';
import { BLOCK_SIZE, Repository } from '../engine/repository/repository.ts';
import type { AzuriteProcess } from '../sandbox/azurite.ts';
import { startTestAzurite } from './support/azurite.ts';
import { openTestDatabase, type TestDatabase } from './support/database.ts';

let azurite: AzuriteProcess;
let connectionString: string;
let database: TestDatabase;

beforeAll(async () => {
  azurite = await startTestAzurite();
  connectionString = azurite.connectionString;
  database = await openTestDatabase();
});

afterAll(async () => {
  await azurite?.stop();
  await database?.dispose();
});

function randomContainer(): string {
  return `repo-${randomBytes(6).toString('hex')}`;
}

describe('repository', () => {
  it('stores a block and reads it back, and a second copy of the same data is stored once', async () => {
    const repo = await Repository.open({
      connectionString,
      container: randomContainer(),
      kek: randomBytes(32),
      db: database.db,
    });
    const data = randomBytes(BLOCK_SIZE);

    const writer = repo.newWriter();
    const first = await writer.add(data);
    const again = await writer.add(Buffer.from(data));
    await writer.flush();
    const later = await repo.newWriter().add(Buffer.from(data));

    expect(first.storedBytes).toBeGreaterThan(0);
    expect(again).toEqual({ id: first.id, storedBytes: 0 });
    expect(later).toEqual({ id: first.id, storedBytes: 0 });
    expect((await repo.readBlock(first.id)).equals(data)).toBe(true);

    const packs: string[] = [];
    for await (const blob of repo.container.listBlobsFlat({ prefix: 'packs/' }))
      packs.push(blob.name);
    expect(packs).toHaveLength(1);
    expect(packs[0]).toMatch(/^packs\/([0-9a-f]{2})\/\1[0-9a-f]{62}$/);
  });

  it('compresses, and block ids are keyed: the same data in another repository gets another id', async () => {
    const text = Buffer.alloc(BLOCK_SIZE, 'all work and no play makes a dull backup\n');
    const otherDatabase = await openTestDatabase();
    const a = await Repository.open({
      connectionString,
      container: randomContainer(),
      kek: randomBytes(32),
      db: otherDatabase.db,
    });
    const b = await Repository.open({
      connectionString,
      container: randomContainer(),
      kek: randomBytes(32),
      db: database.db,
    });

    const storedA = await a.newWriter().add(text);
    const storedB = await b.newWriter().add(text);
    await otherDatabase.dispose();

    expect(storedA.storedBytes).toBeLessThan(BLOCK_SIZE / 100);
    expect(storedA.id).not.toBe(storedB.id);
  });

  it('detects a tampered block', async () => {
    const repo = await Repository.open({
      connectionString,
      container: randomContainer(),
      kek: randomBytes(32),
      db: database.db,
    });
    const writer = repo.newWriter();
    const { id } = await writer.add(randomBytes(4096));
    await writer.flush();

    const row = await database.db
      .selectFrom('repository_blocks')
      .selectAll()
      .where('id', '=', id)
      .executeTakeFirstOrThrow();
    const pack = repo.container.getBlockBlobClient(row.pack_path);
    const body = await pack.downloadToBuffer();
    body[Number(row.offset) + 100]! ^= 0x01;
    await pack.uploadData(body);

    await expect(repo.readBlock(id)).rejects.toThrow(IntegrityError);
  });

  it('refuses to open with the wrong KEK, naming the key file and the setting', async () => {
    const container = randomContainer();
    await Repository.open({ connectionString, container, kek: randomBytes(32), db: database.db });

    const error = await Repository.open({
      connectionString,
      container,
      kek: randomBytes(32),
      db: database.db,
    }).catch((e) => e);
    expect(isAcbaError(error, 'forbidden')).toBe(true);
    expect(error.message).toMatch(
      /keys\/\S+ in container .* cannot be unwrapped with the configured key-encryption key\. Set ACBA_REPOSITORY_KEK/,
    );
  });

  it('reopens with the right KEK and reads what was stored; objects are bound to their path', async () => {
    const container = randomContainer();
    const kek = randomBytes(32);
    const first = await Repository.open({ connectionString, container, kek, db: database.db });
    await first.putObject(
      'restore-points/c1/rp1',
      ObjectType.Manifest,
      Buffer.from('{"hello":"world"}'),
    );

    const second = await Repository.open({ connectionString, container, kek, db: database.db });
    expect(second.keyId).toBe(first.keyId);
    expect((await second.getObject('restore-points/c1/rp1', ObjectType.Manifest)).toString()).toBe(
      '{"hello":"world"}',
    );

    const copy = await second.container.getBlobClient('restore-points/c1/rp1').downloadToBuffer();
    await second.container.getBlockBlobClient('restore-points/c1/rp2').uploadData(copy);
    await expect(second.getObject('restore-points/c1/rp2', ObjectType.Manifest)).rejects.toThrow(
      IntegrityError,
    );
  });

  it('reads a disk from its page ranges: skips unwritten and all-zero blocks and reassembles the same bytes', async () => {
    const repo = await Repository.open({
      connectionString,
      container: randomContainer(),
      kek: randomBytes(32),
      db: database.db,
    });
    const size = 6 * BLOCK_SIZE + 512 * 3;
    const image = Buffer.alloc(size);
    randomBytes(4096).copy(image, 10 * 512); // block 0, partly written
    randomBytes(BLOCK_SIZE).copy(image, 2 * BLOCK_SIZE); // block 2, full
    image.copy(image, 4 * BLOCK_SIZE, 2 * BLOCK_SIZE, 3 * BLOCK_SIZE); // block 4 repeats block 2
    randomBytes(1024).copy(image, 6 * BLOCK_SIZE + 512); // the short last block

    const disk = BlobServiceClient.fromConnectionString(connectionString)
      .getContainerClient(repo.container.containerName)
      .getPageBlobClient('disk.vhd');
    await disk.create(size);
    for (const [offset, length] of [
      [0, BLOCK_SIZE],
      [2 * BLOCK_SIZE, BLOCK_SIZE],
      [4 * BLOCK_SIZE, BLOCK_SIZE],
      [6 * BLOCK_SIZE, 512 * 3],
    ] as const) {
      await disk.uploadPages(image.subarray(offset, offset + length), offset, length);
    }
    // Written, but zeros: must not be stored either.
    await disk.uploadPages(Buffer.alloc(BLOCK_SIZE), 5 * BLOCK_SIZE, BLOCK_SIZE);
    const sas = await disk.generateSasUrl({
      permissions: BlobSASPermissions.parse('r'),
      expiresOn: new Date(Date.now() + 3600_000),
    });

    const writer = repo.newWriter();
    const result = await readDisk(await openSasDisk(sas), writer, silentLogger);
    await writer.flush();

    expect(result.sizeBytes).toBe(size);
    expect(result.blocks.map((b) => (b === null ? null : 'id'))).toEqual([
      'id',
      null,
      'id',
      null,
      'id',
      null,
      'id',
    ]);
    expect(result.blocks[2]).toBe(result.blocks[4]);
    expect(result.readBytes).toBeLessThan(5 * BLOCK_SIZE);

    expect(result.sha256).toBe(createHash('sha256').update(image).digest('hex'));
    const restored = new DiskImage(
      repo,
      {
        name: 'd',
        role: 'os',
        resourceId: 'x',
        sizeBytes: size,
        sha256: result.sha256,
        blocks: result.blocks,
      },
      BLOCK_SIZE,
      new LruCache(4),
    );
    expect((await restored.read(0, size)).equals(image)).toBe(true);
    expect(
      (await restored.read(2 * BLOCK_SIZE - 7, 20)).equals(
        image.subarray(2 * BLOCK_SIZE - 7, 2 * BLOCK_SIZE + 13),
      ),
    ).toBe(true);
  });

  it('reads a long stretch of a disk spread over several packs in batches, byte for byte, and through a small cache', async () => {
    // Packs of about 3 blocks, so the 34 stored blocks land in several packs and batches cross them.
    const repo = await Repository.open({
      connectionString,
      container: randomContainer(),
      kek: randomBytes(32),
      db: database.db,
      packTargetBytes: 3 * BLOCK_SIZE,
    });
    const count = 40;
    const image = Buffer.alloc(count * BLOCK_SIZE);
    const writer = repo.newWriter();
    const blocks: (string | null)[] = [];
    for (let index = 0; index < count; index++) {
      if (index % 7 === 3) {
        blocks.push(null);
        continue;
      }
      const data = index % 5 === 0 ? Buffer.alloc(BLOCK_SIZE, index) : randomBytes(BLOCK_SIZE);
      data.copy(image, index * BLOCK_SIZE);
      blocks.push((await writer.add(data)).id);
    }
    await writer.flush();

    let packs = 0;
    for await (const _ of repo.container.listBlobsFlat({ prefix: 'packs/' })) packs++;
    expect(packs).toBeGreaterThan(5);

    const restored = new DiskImage(
      repo,
      { name: 'd', role: 'os', resourceId: 'x', sizeBytes: image.length, sha256: '', blocks },
      BLOCK_SIZE,
      new LruCache(4),
    );
    const start = 3 * BLOCK_SIZE + 100;
    const end = 37 * BLOCK_SIZE + 5;
    expect((await restored.read(start, end - start)).equals(image.subarray(start, end))).toBe(true);
    expect((await restored.read(0, image.length)).equals(image)).toBe(true);
  });

  it('reports a pack that failed to upload when the backup flushes, instead of referencing lost blocks', async () => {
    const repo = await Repository.open({
      connectionString,
      container: randomContainer(),
      kek: randomBytes(32),
      db: database.db,
      packTargetBytes: BLOCK_SIZE,
    });
    const writer = repo.newWriter();
    await writer.add(randomBytes(BLOCK_SIZE));
    await writer.flush();
    // The container disappears under the writer: the next packs cannot be uploaded.
    await repo.container.delete();

    const ids: string[] = [];
    const failure = await (async () => {
      for (let i = 0; i < 4; i++) ids.push((await writer.add(randomBytes(BLOCK_SIZE))).id);
      await writer.flush();
    })().catch((error: unknown) => error);

    expect(failure).toBeInstanceOf(Error);
    expect(String((failure as Error).message)).toMatch(/container/i);
    const recorded = await database.db
      .selectFrom('repository_blocks')
      .select('id')
      .where('id', 'in', ids.length > 0 ? ids : ['none'])
      .execute();
    expect(recorded).toEqual([]);
  });
});
