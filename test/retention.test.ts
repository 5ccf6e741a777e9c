// Retention on real backups in the sandbox: an expired restore point goes,
// pruning deletes the packs nobody references, and the restore point that
// stays still serves its disk byte for byte. Pruning waits for backups.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../core/log.ts';
import { tryLease } from '../engine/repository/leases.ts';
import { readManifest } from '../engine/repository/manifest.ts';
import { expireRestorePoints, prune } from '../engine/retention.ts';
import { packsInStorage, startFixture, type Fixture } from './retention-fixture.ts';

let f: Fixture;

beforeAll(async () => {
  f = await startFixture('acba-retention');
}, 300_000);

afterAll(async () => {
  await f?.close();
});

describe('retention', () => {
  it('defers pruning while a backup is in progress', async () => {
    const backup = (await tryLease(f.database.db, 'backup'))!;
    const packsBefore = await packsInStorage(f.repository);

    const report = await prune({ db: f.database.db, repository: f.repository, log: silentLogger });

    expect(report.ran).toBe(false);
    expect(await packsInStorage(f.repository)).toEqual(packsBefore);
    expect(await tryLease(f.database.db, 'prune')).toBeUndefined();
    await backup.release();
  });

  it('removes an expired restore point and its unreferenced packs; the other still restores byte for byte', async () => {
    const deps = { db: f.database.db, repository: f.repository, log: silentLogger };
    const webManifest = await readManifest(f.repository, f.web);
    const webBlocks = new Set(webManifest.disks.flatMap((d) => d.blocks).filter(Boolean));
    const packsBefore = await packsInStorage(f.repository);

    // Only win-01's restore point is past its expiry.
    await f.database.db
      .updateTable('restore_points')
      .set({ expires_at: new Date(Date.now() - 1000) })
      .where('id', '=', f.win.id)
      .execute();
    expect(await expireRestorePoints(deps)).toEqual([f.win.id]);
    expect(await f.database.db.selectFrom('restore_points').select('id').execute()).toEqual([
      { id: f.web.id },
    ]);
    await expect(readManifest(f.repository, f.win)).rejects.toThrow(/not in the repository/);

    const report = await prune(deps);

    expect(report.ran).toBe(true);
    expect(report.deletedPacks).toBeGreaterThan(0);
    const packsAfter = await packsInStorage(f.repository);
    expect(packsAfter.size).toBe(packsBefore.size - report.deletedPacks);
    // Every pack left holds a block of web-01; no index row points at a deleted pack.
    const rows = await f.database.db
      .selectFrom('repository_blocks')
      .select(['id', 'pack_path'])
      .execute();
    for (const pack of packsAfter)
      expect(rows.some((r) => r.pack_path === pack && webBlocks.has(r.id))).toBe(true);
    for (const row of rows) expect(packsAfter.has(row.pack_path)).toBe(true);
    for (const id of webBlocks) expect(rows.some((r) => r.id === id)).toBe(true);

    expect(await f.servedDiskSha256(f.web)).toBe(await f.originalDiskSha256(f.web));

    // Nothing more to do on a second round.
    expect((await prune(deps)).deletedPacks).toBe(0);
  });
});
