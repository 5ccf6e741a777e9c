// Immutability of a restore point's objects (ACBA_REPOSITORY_IMMUTABILITY=on)
// against the blob service that runs here, Azurite. Azurite accepts the
// immutability headers on upload and in listings but stores no policy, and
// answers 501 to Set Immutability Policy, so what runs here is ACBA's side:
// it refuses to pretend an object is immutable when storage cannot make it
// so, and pruning with the setting on still deletes unprotected packs.
// Objects really kept by a policy are not exercised locally.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAcbaError } from '../core/errors.ts';
import { silentLogger } from '../core/log.ts';
import { ObjectType } from '../engine/repository/crypto.ts';
import { protectRestorePoint } from '../engine/repository/immutability.ts';
import { Repository } from '../engine/repository/repository.ts';
import { prune } from '../engine/retention.ts';
import type { AzuriteProcess } from '../sandbox/azurite.ts';
import { startTestAzurite } from './support/azurite.ts';
import { openTestDatabase, type TestDatabase } from './support/database.ts';

let azurite: AzuriteProcess;
let database: TestDatabase;

beforeAll(async () => {
  azurite = await startTestAzurite();
  database = await openTestDatabase();
});

afterAll(async () => {
  await azurite?.stop();
  await database?.dispose();
});

async function immutableRepository(db = database.db): Promise<Repository> {
  return Repository.open({
    connectionString: azurite.connectionString,
    container: `repo-worm-${randomBytes(6).toString('hex')}`,
    kek: randomBytes(32),
    db,
    immutable: true,
  });
}

async function packs(repository: Repository): Promise<string[]> {
  const names: string[] = [];
  for await (const blob of repository.container.listBlobsFlat({ prefix: 'packs/' }))
    names.push(blob.name);
  return names;
}

describe('repository immutability', () => {
  it('fails the restore point, naming the object, the container and the setting, when storage cannot make it immutable', async () => {
    const repository = await immutableRepository();
    const writer = repository.newWriter();
    const block = await writer.add(randomBytes(64 * 1024));
    await writer.flush();
    const manifestPath = `restore-points/c/${randomBytes(4).toString('hex')}`;
    await repository.putObject(manifestPath, ObjectType.Manifest, Buffer.from('{}'));
    const expiresAt = new Date(Date.now() + 30 * 86_400_000);

    const error = await protectRestorePoint(
      { db: database.db, container: repository.container },
      { manifestPath, blockIds: [block.id], expiresAt },
    ).catch((e) => e);

    expect(isAcbaError(error, 'unavailable')).toBe(true);
    expect(error.message).toMatch(
      new RegExp(
        `^Object (${manifestPath}|packs/[0-9a-f]{2}/[0-9a-f]{64}) in repository container ${repository.container.containerName} cannot be made immutable until ${expiresAt.toISOString()} \\(501 .*\\)\\. Enable version-level immutability on the container, or set ACBA_REPOSITORY_IMMUTABILITY=off\\.$`,
      ),
    );
  });

  it('prunes unreferenced packs that carry no immutability policy, and counts none as kept', async () => {
    // Its own database, so that only this repository's pack is in the index.
    const own = await openTestDatabase();
    try {
      const repository = await immutableRepository(own.db);
      const writer = repository.newWriter();
      await writer.add(randomBytes(64 * 1024));
      await writer.flush();
      expect(await packs(repository)).toHaveLength(1);

      const report = await prune({ db: own.db, repository, log: silentLogger });

      expect(report).toMatchObject({ ran: true, deletedPacks: 1, immutablePacksKept: 0 });
      expect(await packs(repository)).toEqual([]);
    } finally {
      await own.dispose();
    }
  });
});
