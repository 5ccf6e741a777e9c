/**
 * `acba repository check [--read-data] [--json]` and `acba repository prune`:
 * the repository's integrity per restore point, and retention on demand.
 * Exit code 1 when the check finds damage.
 */
import { parseArgs } from 'node:util';
import type { Config } from '../core/config.ts';
import { openDatabase } from '../core/db/database.ts';
import { badInput } from '../core/errors.ts';
import { createLogger } from '../core/log.ts';
import { checkRepository } from '../engine/repository/check.ts';
import { applyRetention } from '../engine/retention.ts';
import { openConfiguredRepository } from './repository-key.ts';

export async function repositoryCommand(config: Config, argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values } = parseArgs({
    args: rest,
    options: { json: { type: 'boolean' }, 'read-data': { type: 'boolean' } },
  });
  if (sub !== 'check' && sub !== 'prune') {
    throw badInput(
      `unknown repository command "${sub ?? ''}"; use "acba repository check [--read-data] [--json]" or "acba repository prune".`,
    );
  }
  const log = createLogger({ level: config.logLevel });
  const handle = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir });
  try {
    const repository = await openConfiguredRepository(config, handle.db, `${sub} it`);

    if (sub === 'prune') {
      const result = await applyRetention({ db: handle.db, repository, log });
      if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
      else
        process.stdout.write(
          `${result.expired.length} expired restore point(s) removed; ${result.prune.ran ? `${result.prune.deletedPacks} pack(s) deleted, ${result.prune.freedBytes} bytes freed${result.prune.immutablePacksKept > 0 ? `, ${result.prune.immutablePacksKept} unreferenced pack(s) kept until their immutability ends` : ''}` : 'pruning deferred: backups are running, try again later'}.\n`,
        );
      return 0;
    }

    const report = await checkRepository(handle.db, repository, log, {
      readData: values['read-data'] ?? false,
    });
    if (values.json) process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
    else {
      process.stdout.write(
        `Checked ${report.restorePoints} restore point(s), ${report.blocks} block(s)${report.readData ? ', data read' : ''}: ${report.ok ? 'no damage' : `${report.damaged.length} damaged`}.\n`,
      );
      for (const d of report.damaged) {
        process.stdout.write(
          `Restore point ${d.restorePointId} (item ${d.itemId}, ${d.createdAt}): ${d.damagedBlocks} damaged block(s)\n`,
        );
        for (const p of d.problems) process.stdout.write(`  ${p}\n`);
      }
    }
    return report.ok ? 0 : 1;
  } finally {
    await handle.close();
  }
}
