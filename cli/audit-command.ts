/**
 * `acba audit verify` and `acba audit export`: for auditors and operators,
 * straight on the database.
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { verifyAuditChain } from '../core/audit.ts';
import type { Config } from '../core/config.ts';
import { openDatabase } from '../core/db/database.ts';
import { badInput } from '../core/errors.ts';

export async function auditCommand(config: Config, argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values } = parseArgs({
    args: rest,
    options: { json: { type: 'boolean' }, format: { type: 'string' }, out: { type: 'string' } },
  });
  if (sub !== 'verify' && sub !== 'export') {
    throw badInput(
      `unknown audit command "${sub ?? ''}"; use "acba audit verify" or "acba audit export --format csv|json".`,
    );
  }

  const handle = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir });
  try {
    if (sub === 'verify') {
      const result = await verifyAuditChain(handle.db);
      if (values.json) process.stdout.write(`${JSON.stringify(result)}\n`);
      else if (result.ok)
        process.stdout.write(`Audit chain intact: ${result.checked} entries checked.\n`);
      else
        process.stderr.write(
          `acba: audit chain broken at entry ${result.firstBroken!.seq}: ${result.firstBroken!.problem}\n`,
        );
      return result.ok ? 0 : 1;
    }

    const format = values.format ?? 'json';
    if (format !== 'csv' && format !== 'json')
      throw badInput(`--format must be csv or json, not "${format}".`);
    const out = values.out ? fs.createWriteStream(values.out) : process.stdout;
    const rows = await handle.db
      .selectFrom('audit_log')
      .selectAll()
      .orderBy('seq', 'asc')
      .execute();
    const columns = [
      'seq',
      'at',
      'actor_object_id',
      'actor_tenant_id',
      'actor_name',
      'actor_role',
      'channel',
      'action',
      'resource',
      'outcome',
      'details',
      'prev_hash',
      'hash',
    ] as const;
    if (format === 'json') {
      out.write(
        `${JSON.stringify({ hashAlgorithm: 'sha256', genesis: '0'.repeat(64), entries: rows }, null, 2)}\n`,
      );
    } else {
      out.write(`${columns.join(',')}\n`);
      for (const row of rows) {
        out.write(
          `${columns.map((c) => csvCell(c === 'details' ? JSON.stringify(row[c]) : c === 'at' ? new Date(row[c]).toISOString() : String(row[c]))).join(',')}\n`,
        );
      }
    }
    if (out !== process.stdout)
      await new Promise((resolve) => (out as fs.WriteStream).end(resolve));
    return 0;
  } finally {
    await handle.close();
  }
}

function csvCell(value: string): string {
  return /[",\n\r]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}
