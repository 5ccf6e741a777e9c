// The repository check on real backups in the sandbox: a damaged block in a
// pack is found with --read-data and blamed on the restore point that uses
// it; a missing pack is found without reading data.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../core/log.ts';
import { checkRepository } from '../engine/repository/check.ts';
import { HEADER_BYTES } from '../engine/repository/crypto.ts';
import { readManifest } from '../engine/repository/manifest.ts';
import { startFixture, type Fixture } from './retention-fixture.ts';

let f: Fixture;

beforeAll(async () => {
  f = await startFixture('acba-check');
}, 300_000);

afterAll(async () => {
  await f?.close();
});

async function uniqueBlock(of: typeof f.web, notIn: typeof f.web) {
  const own = (await readManifest(f.repository, of)).disks.flatMap((d) => d.blocks);
  const other = new Set((await readManifest(f.repository, notIn)).disks.flatMap((d) => d.blocks));
  const id = own.find((b) => b && !other.has(b))!;
  return f.database.db
    .selectFrom('repository_blocks')
    .selectAll()
    .where('id', '=', id)
    .executeTakeFirstOrThrow();
}

describe('repository check', () => {
  it('finds nothing wrong in a sound repository, with or without reading data', async () => {
    const quick = await checkRepository(f.database.db, f.repository, silentLogger);
    expect(quick).toMatchObject({ ok: true, restorePoints: 2, damaged: [] });
    expect(quick.blocks).toBeGreaterThan(10);

    const full = await checkRepository(f.database.db, f.repository, silentLogger, {
      readData: true,
    });
    expect(full).toMatchObject({ ok: true, readData: true, damaged: [] });
  });

  it('names the restore point whose block was damaged in its pack', async () => {
    const block = await uniqueBlock(f.win, f.web);
    const blob = f.repository.container.getBlockBlobClient(block.pack_path);
    const pack = await blob.downloadToBuffer();
    pack[Number(block.offset) + HEADER_BYTES + 10]! ^= 0x01;
    await blob.uploadData(pack);

    // Without reading data the pack is there, so nothing shows.
    expect((await checkRepository(f.database.db, f.repository, silentLogger)).ok).toBe(true);

    const report = await checkRepository(f.database.db, f.repository, silentLogger, {
      readData: true,
    });
    expect(report.ok).toBe(false);
    expect(report.damaged.map((d) => d.restorePointId)).toEqual([f.win.id]);
    expect(report.damaged[0]!.damagedBlocks).toBe(1);
    expect(report.damaged[0]!.problems[0]).toContain(
      `block ${block.id} in pack ${block.pack_path}`,
    );
  });

  it('names the restore point whose pack is missing without reading data', async () => {
    const block = await uniqueBlock(f.web, f.win);
    await f.repository.container.getBlobClient(block.pack_path).delete();

    const report = await checkRepository(f.database.db, f.repository, silentLogger);
    expect(report.ok).toBe(false);
    const web = report.damaged.find((d) => d.restorePointId === f.web.id)!;
    expect(web.problems).toContain(`block ${block.id}: pack ${block.pack_path} is missing`);
  });
});
