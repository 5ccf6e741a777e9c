/**
 * `acba audit verify|export|anchor|role-sql`: for auditors and operators.
 * `verify --file` works on an export alone, with no database.
 */
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { anchorAuditHead, listAuditAnchors, type AnchorStore } from '../core/audit-anchor.ts';
import { readAuditExport, writeAuditExport } from '../core/audit-export.ts';
import { applicationRoleSql } from '../core/audit-role.ts';
import {
  verifyAuditChain,
  verifyEntries,
  type AuditAnchor,
  type ChainVerification,
} from '../core/audit-verify.ts';
import type { Config } from '../core/config.ts';
import { openDatabase } from '../core/db/database.ts';
import { badInput } from '../core/errors.ts';

const subcommands = ['verify', 'export', 'anchor', 'role-sql'];

export async function auditCommand(config: Config, argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: rest,
    allowPositionals: sub === 'role-sql',
    options: {
      json: { type: 'boolean' },
      format: { type: 'string' },
      out: { type: 'string' },
      file: { type: 'string' },
      anchors: { type: 'string' },
      'no-anchors': { type: 'boolean' },
    },
  });
  if (!sub || !subcommands.includes(sub)) {
    throw badInput(
      `unknown audit command "${sub ?? ''}"; use "acba audit verify [--file EXPORT]", "acba audit export --format csv|json", "acba audit anchor" or "acba audit role-sql ROLE".`,
    );
  }

  if (sub === 'role-sql') {
    if (positionals.length !== 1)
      throw badInput('name the application role: acba audit role-sql ROLE');
    process.stdout.write(`${applicationRoleSql(positionals[0]!).join(';\n')};\n`);
    return 0;
  }

  const store = anchorStore(config);
  if (sub === 'verify' && values.file) {
    const anchors = values['no-anchors'] ? [] : await loadAnchors(store, values.anchors);
    const exported = await readAuditExport(values.file);
    const result = await verifyEntries(exported.entries, anchors ?? [], exported.genesis);
    return report(result, anchors, values.json === true, values.file);
  }

  const handle = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir });
  try {
    if (sub === 'verify') {
      const anchors = values['no-anchors'] ? [] : await loadAnchors(store, values.anchors);
      const result = await verifyAuditChain(handle.db, { anchors: anchors ?? [] });
      return report(result, anchors, values.json === true, 'the database');
    }

    if (sub === 'anchor') {
      if (!store) {
        throw badInput(
          'ACBA_REPOSITORY_CONNECTION_STRING is not set; anchors go to the repository container, so set it to the repository storage account.',
        );
      }
      const anchor = await anchorAuditHead(handle.db, store);
      if (values.json) process.stdout.write(`${JSON.stringify(anchor ?? null)}\n`);
      else if (!anchor) process.stdout.write('The audit log is empty; nothing to anchor.\n');
      else
        process.stdout.write(
          `Anchored entry ${anchor.seq} as ${anchor.blobName}${anchor.created ? '' : ' (already anchored)'}${anchor.immutable ? ' with an immutability policy' : ', create-only'}.\n`,
        );
      return 0;
    }

    const format = values.format ?? 'json';
    if (format !== 'csv' && format !== 'json')
      throw badInput(`--format must be csv or json, not "${format}".`);
    const out = values.out ? fs.createWriteStream(values.out) : process.stdout;
    await writeAuditExport(handle.db, format, out);
    if (out !== process.stdout)
      await new Promise((resolve) => (out as fs.WriteStream).end(resolve));
    return 0;
  } finally {
    await handle.close();
  }
}

function anchorStore(config: Config): AnchorStore | undefined {
  const { connectionString, container } = config.repository;
  return connectionString ? { connectionString, container } : undefined;
}

/** Anchors from a folder of anchor files, else from the repository; undefined when neither is at hand. */
async function loadAnchors(
  store: AnchorStore | undefined,
  folder: string | undefined,
): Promise<AuditAnchor[] | undefined> {
  if (folder) {
    const names = fs.readdirSync(folder).filter((name) => name.endsWith('.json'));
    return names.map((name) => {
      const anchor = JSON.parse(fs.readFileSync(path.join(folder, name), 'utf8')) as AuditAnchor;
      return { seq: String(anchor.seq), hash: String(anchor.hash), at: String(anchor.at) };
    });
  }
  return store ? listAuditAnchors(store) : undefined;
}

function report(
  result: ChainVerification,
  anchors: AuditAnchor[] | undefined,
  json: boolean,
  source: string,
): number {
  if (json) {
    process.stdout.write(
      `${JSON.stringify({ ...result, anchorsChecked: anchors?.length ? result.anchorsChecked : 0 })}\n`,
    );
  } else if (result.ok) {
    const anchorNote = anchors
      ? `, ${result.anchorsChecked ?? 0} anchors match`
      : '; no anchors checked (set ACBA_REPOSITORY_CONNECTION_STRING or pass --anchors DIR)';
    process.stdout.write(
      `Audit chain intact in ${source}: ${result.checked} entries checked${anchorNote}.\n`,
    );
  } else {
    process.stderr.write(
      `acba: audit chain broken at entry ${result.firstBroken!.seq} (${result.firstBroken!.kind}): ${result.firstBroken!.problem}\n`,
    );
  }
  return result.ok ? 0 : 1;
}
