// A backup that dies halfway leaves no restore point, and the next run picks up
// what the failed one had already uploaded: against the sandbox over HTTPS,
// with the disk's data answers failing part way through a read.
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DiskImage, LruCache } from '../engine/disk-image.ts';
import { readManifest } from '../engine/repository/manifest.ts';
import { BLOCK_SIZE } from '../engine/repository/repository.ts';
import { startSandboxEngine, type SandboxEngineWorld } from './support/sandbox-engine.ts';

const MiB = 2 ** 20;
let world: SandboxEngineWorld;

beforeAll(async () => {
  world = await startSandboxEngine();
}, 300_000);

afterAll(async () => {
  await world?.dispose();
});

const count = async (table: 'restore_points' | 'repository_blocks') =>
  Number(
    (
      await world.database.db
        .selectFrom(table)
        .select((eb) => eb.fn.countAll().as('n'))
        .executeTakeFirstOrThrow()
    ).n,
  );

describe('a backup that fails halfway', () => {
  it('leaves no restore point, and the next run stores only what the failed one had not uploaded', async () => {
    const engine = await world.engine({ jobSessions: { retry: { attempts: 1 } } });
    const item = world.items['web-01']!;
    const first = await engine.backupVm(item.id, 'operator');
    const diskName = first.disks[0]!.name;
    const group = item.resource_id.split('/providers/')[0];
    const diskId = `${group}/providers/Microsoft.Compute/disks/${diskName}`;

    // 48 MiB of new data that does not compress: three packs' worth.
    await world.sandbox.writeDisk(diskId, 8 * MiB, randomBytes(48 * MiB));
    const pointsBefore = await count('restore_points');
    const blocksBefore = await count('repository_blocks');
    // The disk's data answers fail after 40 reads, as when a worker loses its storage mid-disk.
    const fault = world.sandbox.faults.inject({
      method: 'GET',
      pathPattern: /^\/md-/,
      after: 40,
      status: 403,
      code: 'AuthenticationFailed',
      times: 10_000,
    });
    await expect(engine.backupVm(item.id, 'operator')).rejects.toThrow();
    fault.remove();

    expect(await count('restore_points')).toBe(pointsBefore);
    const uploaded = (await count('repository_blocks')) - blocksBefore;
    expect(uploaded).toBeGreaterThanOrEqual(16);

    const resumed = await engine.backupVm(item.id, 'operator');
    expect(Number(resumed.stored_bytes)).toBeLessThan((48 - uploaded + 2) * MiB);

    const manifest = await readManifest(await world.repository(), resumed);
    const disk = new DiskImage(
      await world.repository(),
      manifest.disks[0]!,
      manifest.blockSize ?? BLOCK_SIZE,
      new LruCache(8),
    );
    const expected = await fs.readFile(world.sandbox.diskFilePath(diskId)!);
    expect((await disk.read(0, disk.size)).equals(expected)).toBe(true);
  });
});
