/**
 * `acba export run REQUEST [--sas URL] [--json]` writes (or resumes) the exit
 * export of an approved exit_export request; `acba export verify DIR [--json]`
 * recomputes every checksum of a finished export and names each file that
 * differs (exit code 1). Progress goes to a terminal, and nowhere when piped.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import type { Config } from '../core/config.ts';
import { openDatabase } from '../core/db/database.ts';
import { badInput } from '../core/errors.ts';
import { formatBytes } from '../core/format.ts';
import { createLogger } from '../core/log.ts';
import { runExitExport, type ExportProgress } from '../engine/exit-export.ts';
import { verifyExport } from '../engine/export-verify.ts';
import { openConfiguredRepository } from './repository-key.ts';
import { terminalProgress } from './terminal-progress.ts';

export const exportUsage = `Usage:
  acba export run REQUEST [--sas URL] [--json]
      Writes the exit export of an approved exit_export request to the folder it names (under
      ACBA_EXPORT_DIR) or to its blob container, for which --sas gives a SAS URL with write and
      create permissions. Run it again after an interruption: files already complete are kept.
  acba export verify DIR [--json]
      Recomputes the SHA-256 of every file the export's manifest.json lists; exit code 1 naming
      each file that is missing or differs.`;

export async function exportCommand(config: Config, argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    process.stdout.write(`${exportUsage}\n`);
    return sub === undefined ? 1 : 0;
  }
  const { values, positionals } = parseArgs({
    args: rest,
    options: { sas: { type: 'string' }, json: { type: 'boolean' }, help: { type: 'boolean' } },
    allowPositionals: true,
  });
  if (values.help) {
    process.stdout.write(`${exportUsage}\n`);
    return 0;
  }
  if (sub === 'verify') {
    if (positionals.length !== 1) throw badInput('name the export folder: acba export verify DIR');
    return verify(positionals[0]!, values.json === true);
  }
  if (sub !== 'run')
    throw badInput(
      `unknown export command "${sub}"; use "acba export run REQUEST" or "acba export verify DIR".`,
    );
  if (positionals.length !== 1) throw badInput('name the request: acba export run REQUEST');
  return run(config, positionals[0]!, values.sas, values.json === true);
}

async function verify(dir: string, json: boolean): Promise<number> {
  const progress = terminalProgress();
  const result = await verifyExport(dir, (file) => progress?.(`checking ${file}`));
  progress?.('');
  if (json) process.stdout.write(`${JSON.stringify(result, null, 2)}\n`);
  else {
    process.stdout.write(
      `Checked ${result.checked} file(s), ${formatBytes(result.bytes)}: ${result.problems.length === 0 ? 'every checksum matches' : `${result.problems.length} differ`}.\n`,
    );
    for (const problem of result.problems) process.stdout.write(`  ${problem.message}\n`);
  }
  return result.problems.length === 0 ? 0 : 1;
}

async function run(
  config: Config,
  requestId: string,
  sasUrl: string | undefined,
  json: boolean,
): Promise<number> {
  const log = createLogger({ level: config.logLevel });
  const handle = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir });
  const abort = new AbortController();
  const stop = () =>
    abort.abort(new Error('stopped by the operator; run the command again to resume'));
  process.once('SIGINT', stop);
  try {
    const repository = await openConfiguredRepository(config, handle.db, 'export from it');
    const progress = terminalProgress();
    const summary = await runExitExport(
      {
        db: handle.db,
        log,
        repository,
        exportDir: config.exportDir,
        approvalCheck: {
          providerTenantId: config.providerTenantId,
          cooldownHours: config.approvals.approverCooldownHours,
        },
      },
      requestId,
      { sasUrl, signal: abort.signal, onProgress: (event) => progress?.(describe(event)) },
    );
    progress?.('');
    if (json) process.stdout.write(`${JSON.stringify(summary)}\n`);
    else
      process.stdout.write(
        `Exported ${summary.files} file(s) to ${summary.destination}: ${formatBytes(summary.writtenBytes)} written${summary.skippedFiles ? `, ${summary.skippedFiles} file(s) already complete` : ''}.\n`,
      );
    return 0;
  } finally {
    process.off('SIGINT', stop);
    await handle.close();
  }
}

function describe(event: ExportProgress): string {
  return `[${event.done}/${event.total}] ${event.state} ${path.basename(event.file)}${event.bytes === undefined ? '' : ` (${formatBytes(event.bytes)})`}`;
}
