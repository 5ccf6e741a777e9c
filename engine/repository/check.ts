/**
 * Repository check: for every restore point, its manifest opens and every
 * block it references is in the index and in a pack that exists; with
 * `readData`, every block is also read, authenticated, decompressed and
 * matched against its id. Damage is reported per restore point, so an
 * operator knows which restore points cannot be trusted. A block shared by
 * several restore points is checked once and blamed on each of them.
 */
import type { Db } from '../../core/db/database.ts';
import type { Logger } from '../../core/log.ts';
import { manifestBlockIds, readAnyManifest } from './manifest.ts';
import type { Repository } from './repository.ts';

export interface DamagedRestorePoint {
  restorePointId: string;
  itemId: string;
  customerId: string;
  createdAt: string;
  /** What is wrong, one line each (at most MAX_PROBLEMS; `damagedBlocks` counts all). */
  problems: string[];
  damagedBlocks: number;
}

export interface CheckReport {
  ok: boolean;
  restorePoints: number;
  /** Distinct blocks checked. */
  blocks: number;
  readData: boolean;
  damaged: DamagedRestorePoint[];
}

const MAX_PROBLEMS = 20;

export async function checkRepository(
  db: Db,
  repository: Repository,
  log: Logger,
  options: { readData?: boolean } = {},
): Promise<CheckReport> {
  const packs = new Set<string>();
  for await (const blob of repository.container.listBlobsFlat({ prefix: 'packs/' }))
    packs.add(blob.name);

  // Snapshot restore points live in Azure and hold no blocks.
  const points = await db
    .selectFrom('restore_points')
    .selectAll()
    .where('type', '=', 'backup')
    .orderBy('created_at')
    .execute();
  /** Block id → problem, or null when sound. */
  const verdicts = new Map<string, string | null>();
  const damaged: DamagedRestorePoint[] = [];

  for (const point of points) {
    const problems: string[] = [];
    let damagedBlocks = 0;
    const note = (problem: string) => {
      if (problems.length < MAX_PROBLEMS) problems.push(problem);
    };

    let ids: string[] = [];
    try {
      ids = [...new Set(manifestBlockIds(await readAnyManifest(repository, point)))];
    } catch (error) {
      note(`manifest ${point.manifest_path} cannot be read: ${(error as Error).message}`);
      damagedBlocks = 0;
    }

    await judgeBlocks(
      db,
      repository,
      packs,
      ids.filter((id) => !verdicts.has(id)),
      verdicts,
      options.readData ?? false,
    );
    for (const id of ids) {
      const problem = verdicts.get(id);
      if (problem) {
        damagedBlocks += 1;
        note(problem);
      }
    }

    if (problems.length > 0) {
      damaged.push({
        restorePointId: point.id,
        itemId: point.item_id,
        customerId: point.customer_id,
        createdAt: point.created_at.toISOString(),
        problems,
        damagedBlocks,
      });
      log.warn({ restorePointId: point.id, damagedBlocks }, 'restore_point_damaged');
    }
  }

  const report: CheckReport = {
    ok: damaged.length === 0,
    restorePoints: points.length,
    blocks: verdicts.size,
    readData: options.readData ?? false,
    damaged,
  };
  log.info(
    { ok: report.ok, restorePoints: report.restorePoints, blocks: report.blocks },
    'repository_checked',
  );
  return report;
}

async function judgeBlocks(
  db: Db,
  repository: Repository,
  packs: Set<string>,
  ids: string[],
  verdicts: Map<string, string | null>,
  readData: boolean,
): Promise<void> {
  for (let i = 0; i < ids.length; i += 500) {
    const batch = ids.slice(i, i + 500);
    const rows = await db
      .selectFrom('repository_blocks')
      .select(['id', 'pack_path'])
      .where('id', 'in', batch)
      .execute();
    const packOf = new Map(rows.map((r) => [r.id, r.pack_path]));
    for (const id of batch) {
      const pack = packOf.get(id);
      if (!pack) {
        verdicts.set(id, `block ${id} is not in the repository index`);
        continue;
      }
      if (!packs.has(pack)) {
        verdicts.set(id, `block ${id}: pack ${pack} is missing`);
        continue;
      }
      if (!readData) {
        verdicts.set(id, null);
        continue;
      }
      try {
        await repository.readBlock(id);
        verdicts.set(id, null);
      } catch (error) {
        verdicts.set(id, `block ${id} in pack ${pack} is damaged: ${(error as Error).message}`);
      }
    }
  }
}
