/**
 * Audit exports for auditors, in CSV or JSON, with everything needed to
 * verify the chain offline and nothing else.
 *
 * Both formats hold every field the hash covers, the previous hash and the
 * hash, in sequence order. An entry's hash is SHA-256 (hex) over the canonical
 * JSON (keys sorted, no whitespace) of {prevHash, at, actorObjectId,
 * actorTenantId, actorName, actorRole, channel, action, resource, outcome,
 * details}, with `at` as ISO-8601 UTC with milliseconds; the first entry's
 * previous hash is 64 zeros.
 *
 * JSON: one object {format, hashAlgorithm, genesis, hashInput, exportedAt,
 * entries}. CSV: a first line starting with `#` that names the format, hash
 * algorithm and genesis as `key=value` pairs separated by `; `, then a header
 * line and one row per entry; `details` holds the entry's details as JSON.
 */
import fs from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { parse as parseCsv } from 'csv-parse/sync';
import { GENESIS_HASH } from './audit.ts';
import type { ChainEntry } from './audit-verify.ts';
import { csvCell } from './csv.ts';
import type { Db } from './db/database.ts';
import type { AuditEntry } from './db/schema.ts';
import { badInput } from './errors.ts';

export const EXPORT_FORMAT = 'acba-audit-export/1';
export const HASH_ALGORITHM = 'sha256';
export const HASH_INPUT =
  'sha256 hex of canonical JSON (sorted keys, no whitespace) of {prevHash, at (ISO-8601 UTC), actorObjectId, actorTenantId, actorName, actorRole, channel, action, resource, outcome, details}';

/** The columns of a CSV export, in order. */
export const EXPORT_COLUMNS = [
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

export interface ExportFile {
  format: string;
  hashAlgorithm: string;
  genesis: string;
  entries: ChainEntry[];
}

/** Writes the whole log to `out` in sequence order, reading it in pages. Returns the number of entries. */
export async function writeAuditExport(
  db: Db,
  format: 'csv' | 'json',
  out: Writable,
  pageSize = 5000,
): Promise<number> {
  const write = (text: string) =>
    out.write(text) ? Promise.resolve() : new Promise<void>((r) => out.once('drain', r));

  if (format === 'json') {
    const header = {
      format: EXPORT_FORMAT,
      hashAlgorithm: HASH_ALGORITHM,
      genesis: GENESIS_HASH,
      hashInput: HASH_INPUT,
      exportedAt: new Date().toISOString(),
    };
    await write(`${JSON.stringify(header).slice(0, -1)},"entries":[\n`);
  } else {
    await write(
      `# format=${EXPORT_FORMAT}; hashAlgorithm=${HASH_ALGORITHM}; genesis=${GENESIS_HASH}; hashInput=${HASH_INPUT.replace(/,/g, '')}\n`,
    );
    await write(`${EXPORT_COLUMNS.join(',')}\n`);
  }

  let after = '0';
  let count = 0;
  for (;;) {
    const page = (await db
      .selectFrom('audit_log')
      .selectAll()
      .where('seq', '>', after as never)
      .orderBy('seq', 'asc')
      .limit(pageSize)
      .execute()) as AuditEntry[];
    if (page.length === 0) break;

    let chunk = '';
    for (const row of page) {
      const entry = exportedEntry(row);
      if (format === 'json') chunk += `${count === 0 ? '' : ',\n'}${JSON.stringify(entry)}`;
      else chunk += `${EXPORT_COLUMNS.map((c) => csvCell(csvText(entry, c))).join(',')}\n`;
      count += 1;
    }
    await write(chunk);
    after = String(page[page.length - 1]!.seq);
  }

  if (format === 'json') await write('\n]}\n');
  return count;
}

/** Reads an export file (CSV or JSON, told apart by its first character). */
export async function readAuditExport(file: string): Promise<ExportFile> {
  let text: string;
  try {
    text = await fs.readFile(file, 'utf8');
  } catch (error) {
    throw badInput(
      `Cannot read the export file ${file} (${(error as NodeJS.ErrnoException).code ?? (error as Error).message}); give the path of a file made by "acba audit export".`,
    );
  }
  const parsed = text.trimStart().startsWith('{')
    ? parseJsonExport(text, file)
    : parseCsvExport(text, file);

  if (parsed.hashAlgorithm !== HASH_ALGORITHM) {
    throw badInput(
      `The export file ${file} names hash algorithm "${parsed.hashAlgorithm}"; this version of acba verifies ${HASH_ALGORITHM} only.`,
    );
  }
  if (!/^[0-9a-f]{64}$/.test(parsed.genesis)) {
    throw badInput(
      `The export file ${file} names no valid genesis hash; is it an acba audit export?`,
    );
  }
  return parsed;
}

function parseJsonExport(text: string, file: string): ExportFile {
  let data: Partial<ExportFile>;
  try {
    data = JSON.parse(text) as Partial<ExportFile>;
  } catch (error) {
    throw badInput(`The export file ${file} is not valid JSON (${(error as Error).message}).`);
  }
  if (!Array.isArray(data.entries)) {
    throw badInput(`The export file ${file} has no "entries" list; is it an acba audit export?`);
  }
  return {
    format: String(data.format ?? ''),
    hashAlgorithm: String(data.hashAlgorithm ?? ''),
    genesis: String(data.genesis ?? ''),
    entries: data.entries,
  };
}

function parseCsvExport(text: string, file: string): ExportFile {
  const firstLine = text.slice(0, text.indexOf('\n') >>> 0);
  if (!firstLine.startsWith('#')) {
    throw badInput(
      `The export file ${file} lacks its first line "# format=...; hashAlgorithm=...; genesis=..."; is it an acba audit export?`,
    );
  }
  const meta = new Map<string, string>();
  for (const pair of firstLine.slice(1).split(';')) {
    const at = pair.indexOf('=');
    if (at > 0) meta.set(pair.slice(0, at).trim(), pair.slice(at + 1).trim());
  }

  let rows: Record<string, string>[];
  try {
    rows = parseCsv(text, { comment: '#', columns: true, skip_empty_lines: true }) as Record<
      string,
      string
    >[];
  } catch (error) {
    throw badInput(`The export file ${file} is not valid CSV (${(error as Error).message}).`);
  }
  const missing = EXPORT_COLUMNS.filter((c) => rows.length > 0 && !(c in rows[0]!));
  if (missing.length > 0) {
    throw badInput(`The export file ${file} lacks the columns ${missing.join(', ')}.`);
  }

  const entries = rows.map((row) => ({
    ...(row as unknown as ChainEntry),
    // Unparseable details stay as text: the entry then fails its hash and is reported as altered.
    details: parseDetails(row.details ?? ''),
  }));
  return {
    format: meta.get('format') ?? '',
    hashAlgorithm: meta.get('hashAlgorithm') ?? '',
    genesis: meta.get('genesis') ?? '',
    entries,
  };
}

function parseDetails(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

function exportedEntry(row: AuditEntry): ChainEntry {
  return {
    seq: String(row.seq),
    at: new Date(row.at).toISOString(),
    actor_object_id: row.actor_object_id,
    actor_tenant_id: row.actor_tenant_id,
    actor_name: row.actor_name,
    actor_role: row.actor_role,
    channel: row.channel,
    action: row.action,
    resource: row.resource,
    outcome: row.outcome,
    details: row.details,
    prev_hash: row.prev_hash,
    hash: row.hash,
  };
}

function csvText(entry: ChainEntry, column: (typeof EXPORT_COLUMNS)[number]): string {
  return column === 'details' ? JSON.stringify(entry.details) : String(entry[column]);
}
