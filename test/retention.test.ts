// Retention on real backups in the sandbox: an expired restore point goes,
// pruning deletes the packs nobody references, and the restore point that
// stays still serves its disk byte for byte. Pruning waits for backups.
import { ClientSecretCredential } from '@azure/identity';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../core/log.ts';
import { createComputeClient } from '../engine/azure.ts';
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

  it('an expired backup’s kept snapshot is deleted in Azure once retention runs with Azure access; the newest backup’s stays', async () => {
    const seeded = f.sandbox.seed.customers[0]!;
    const compute = createComputeClient({
      credential: new ClientSecretCredential(
        f.sandbox.servicePrincipal.tenantId,
        f.sandbox.servicePrincipal.clientId,
        f.sandbox.servicePrincipal.clientSecret,
        { authorityHost: f.sandbox.authorityHost, disableInstanceDiscovery: true },
      ),
      subscriptionId: seeded.subscriptionId,
      endpoint: f.sandbox.armUrl,
    });
    const snapshots = async () => {
      const names: string[] = [];
      for await (const s of compute.snapshots.listByResourceGroup(seeded.resourceGroup))
        if (s.name?.startsWith('acba-')) names.push(s.name);
      return names.sort();
    };
    // The previous test expired win-01's restore point without Azure access: its snapshot waited.
    expect(await snapshots()).toEqual([`acba-${f.web.id}-0`, `acba-${f.win.id}-0`].sort());

    await expireRestorePoints({
      db: f.database.db,
      repository: f.repository,
      log: silentLogger,
      compute: () => compute,
      pollIntervalMs: 50,
    });

    expect(await snapshots()).toEqual([`acba-${f.web.id}-0`]);
    expect(
      await f.database.db.selectFrom('disk_snapshots').select('backup_point_id').execute(),
    ).toEqual([{ backup_point_id: f.web.id }]);
  });
});
