// An auditor runs `acba audit verify` on the database or on an export file and
// learns which entry was altered, removed or moved, with a non-zero exit.
import fs from 'node:fs/promises';
import path from 'node:path';
import { sql } from 'kysely';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { appendAudit, serviceActor } from '../core/audit.ts';
import { openDatabase } from '../core/db/database.ts';
import { runAcba } from './support/cli.ts';
import { createServerDatabase, tempDir } from './support/database.ts';

// The command starts through tsx; on a busy machine that takes a while.
vi.setConfig({ testTimeout: 600_000, hookTimeout: 600_000 });
const cleanups: Array<() => Promise<void>> = [];

afterEach(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup();
});

interface Install {
  dataDir: string;
  url?: string;
  acba(args: string[]): Promise<{ code: number; stdout: string; stderr: string }>;
  /** Runs SQL as the database owner with the append-only triggers switched off. */
  tamper(statements: string[]): Promise<void>;
}

/** A database with `count` chained entries about request/1..count. */
async function install(count = 5): Promise<Install> {
  const dataDir = await tempDir('acba-audit-verify-');
  const server = await createServerDatabase();
  cleanups.push(async () => {
    await server?.drop();
    await fs.rm(dataDir, { recursive: true, force: true });
  });

  const handle = await openDatabase({ url: server?.url, dataDir });
  for (let i = 1; i <= count; i += 1) {
    await appendAudit(handle.db, {
      actor: serviceActor,
      channel: 'cli',
      action: 'request.create',
      resource: `request/${i}`,
      outcome: 'success',
      details: { customerId: 'contoso', note: i === 2 ? 'a, "quoted"\nline # two' : 'plain' },
    });
  }
  await handle.close();

  return {
    dataDir,
    url: server?.url,
    acba: (args) =>
      runAcba(args, {
        DATA_DIR: dataDir,
        ACBA_REPOSITORY_CONNECTION_STRING: '',
        ...(server ? { DATABASE_URL: server.url } : {}),
      }),
    tamper: async (statements) => {
      const owner = await openDatabase({ url: server?.url, dataDir });
      await sql`alter table audit_log disable trigger audit_log_no_update_delete`.execute(owner.db);
      for (const statement of statements) await sql.raw(statement).execute(owner.db);
      await sql`alter table audit_log enable trigger audit_log_no_update_delete`.execute(owner.db);
      await owner.close();
    },
  };
}

async function verifyJson(acba: Install['acba'], args: string[] = []) {
  const result = await acba(['audit', 'verify', '--json', ...args]);
  return { code: result.code, report: JSON.parse(result.stdout) };
}

describe('acba audit verify on the database', () => {
  it('reports an intact chain with exit 0', async () => {
    const { acba } = await install(3);
    const result = await acba(['audit', 'verify']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('3 entries checked');
  });

  it('names the entry whose content was edited', async () => {
    const { acba, tamper } = await install();
    await tamper([`update audit_log set outcome = 'refused' where seq = 3`]);

    const result = await acba(['audit', 'verify']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/broken at entry 3 \(altered\)/);
  });

  it('names the entry that was deleted', async () => {
    const { acba, tamper } = await install();
    await tamper([`delete from audit_log where seq = 3`]);

    const { code, report } = await verifyJson(acba);
    expect(code).toBe(1);
    expect(report.firstBroken).toMatchObject({ seq: '4', kind: 'removed' });
    expect(report.firstBroken.problem).toContain('entry 3 was removed');
  });

  it('names the entry that was moved to another place in the order', async () => {
    const { acba, tamper } = await install();
    // Swap entries 2 and 3 through a free number.
    await tamper([
      'update audit_log set seq = 100 where seq = 2',
      'update audit_log set seq = 2 where seq = 3',
      'update audit_log set seq = 3 where seq = 100',
    ]);

    const { code, report } = await verifyJson(acba);
    expect(code).toBe(1);
    expect(report.firstBroken).toMatchObject({ seq: '2', kind: 'reordered' });
    expect(report.firstBroken.problem).toContain('should follow entry 3');
  });
});

describe('acba audit verify --file on an export', () => {
  for (const format of ['csv', 'json'] as const) {
    it(`verifies an untouched ${format} export with no database`, async () => {
      const { acba, dataDir } = await install();
      const file = path.join(dataDir, `audit.${format}`);
      expect((await acba(['audit', 'export', '--format', format, '--out', file])).code).toBe(0);
      // No database at hand: the export alone must do.
      await fs.rm(path.join(dataDir, 'pglite'), { recursive: true, force: true });

      const { code, report } = await verifyJson(acba, ['--file', file]);
      expect(code).toBe(0);
      expect(report).toMatchObject({ ok: true, checked: 5, head: { seq: '5' } });
    });
  }

  it('names the edited row of a CSV export, whose header names the hash', async () => {
    const { acba, dataDir } = await install();
    const file = path.join(dataDir, 'audit.csv');
    await acba(['audit', 'export', '--format', 'csv', '--out', file]);
    const text = await fs.readFile(file, 'utf8');
    expect(text.split('\n')[0]).toMatch(
      /^# format=acba-audit-export\/1; hashAlgorithm=sha256; genesis=0{64}/,
    );

    await fs.writeFile(file, text.replace('request/4', 'request/44'));
    const { code, report } = await verifyJson(acba, ['--file', file]);
    expect(code).toBe(1);
    expect(report.firstBroken).toMatchObject({ seq: '4', kind: 'altered' });
  });

  it('names removed, inserted and reordered entries of a JSON export', async () => {
    const { acba, dataDir } = await install();
    const file = path.join(dataDir, 'audit.json');
    await acba(['audit', 'export', '--format', 'json', '--out', file]);
    const original = JSON.parse(await fs.readFile(file, 'utf8'));
    const withEntries = async (entries: unknown[]) => {
      await fs.writeFile(file, JSON.stringify({ ...original, entries }));
      return verifyJson(acba, ['--file', file]);
    };
    const [e1, e2, e3, e4, e5] = original.entries;

    const removed = await withEntries([e1, e2, e4, e5]);
    expect(removed.code).toBe(1);
    expect(removed.report.firstBroken).toMatchObject({ seq: '4', kind: 'removed' });

    const reordered = await withEntries([e1, e3, e2, e4, e5]);
    expect(reordered.report.firstBroken).toMatchObject({ seq: '3', kind: 'reordered' });

    // A forged entry 3 that links to entry 2 correctly, with entries renumbered after it.
    const renumbered = [e3, e4, e5].map((e: { seq: string }) => ({
      ...e,
      seq: String(Number(e.seq) + 1),
    }));
    const inserted = await withEntries([
      e1,
      e2,
      { ...e2, seq: '3', prev_hash: e2.hash, hash: e3.hash },
      ...renumbered,
    ]);
    expect(inserted.code).toBe(1);
    expect(inserted.report.firstBroken.seq).toBe('3');
  });
});
