// The `acba` command as operators and auditors run it: exit codes, one-line
// reasons, and the audit chain check on a database someone tampered with.
import fs from 'node:fs/promises';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startApp } from '../cli/app.ts';
import { appendAudit, serviceActor } from '../core/audit.ts';
import { loadConfig } from '../core/config.ts';
import { openDatabase } from '../core/db/database.ts';
import { runAcba, type CliResult } from './support/cli.ts';
import { createServerDatabase, tempDir } from './support/database.ts';

let dataDir: string;
let server: Awaited<ReturnType<typeof createServerDatabase>>;

function acba(args: string[]): Promise<CliResult> {
  return runAcba(args, { DATA_DIR: dataDir, ...(server ? { DATABASE_URL: server.url } : {}) });
}

beforeAll(async () => {
  dataDir = await tempDir('acba-cli-');
  server = await createServerDatabase();
});

afterAll(async () => {
  await server?.drop();
  await fs.rm(dataDir, { recursive: true, force: true });
});

describe('acba', () => {
  it('prints its commands with --help and exits 0', async () => {
    const result = await acba(['--help']);
    expect(result.code).toBe(0);
    expect(result.stdout).toContain('audit verify');
  });

  it('names an unknown command in one line and exits non-zero', async () => {
    const result = await acba(['restore-everything']);
    expect(result.code).not.toBe(0);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
    expect(result.stderr).toContain('restore-everything');
  });

  it('reports an intact audit chain, then the altered entry by number', async () => {
    const handle = await openDatabase({ url: server?.url, dataDir });
    for (const resource of ['request/1', 'request/2', 'request/3']) {
      await appendAudit(handle.db, {
        actor: serviceActor,
        channel: 'cli',
        action: 'test.event',
        resource,
        outcome: 'success',
      });
    }
    await handle.close();

    const intact = await acba(['audit', 'verify']);
    expect(intact.code).toBe(0);
    expect(intact.stdout).toContain('3 entries checked');

    // Someone with the database owner's powers switches the guard off and edits entry 2.
    const tamper = await openDatabase({ url: server?.url, dataDir });
    await sql`alter table audit_log disable trigger audit_log_no_update_delete`.execute(tamper.db);
    await sql`update audit_log set resource = 'request/99' where seq = 2`.execute(tamper.db);
    await tamper.close();

    const broken = await acba(['audit', 'verify', '--json']);
    expect(broken.code).toBe(1);
    expect(JSON.parse(broken.stdout)).toMatchObject({ ok: false, firstBroken: { seq: '2' } });

    const csv = await acba(['audit', 'export', '--format', 'csv']);
    expect(csv.code).toBe(0);
    const header = csv.stdout.split('\n').find((line) => !line.startsWith('#'));
    expect(header).toContain('prev_hash');
    expect(csv.stdout).toContain('request/99');
  });

  it('refuses to serve outside the sandbox without the bot registration, saying what to set', async () => {
    const config = loadConfig({
      PORT: '0',
      DATA_DIR: dataDir,
      ACBA_SANDBOX: '0',
      LOG_LEVEL: 'silent',
    });
    await expect(startApp(config)).rejects.toThrow(/MICROSOFT_APP_ID/);
  });

  it('reads which proxies to trust, and names the variable when it makes no sense', () => {
    const base = { PORT: '0', DATA_DIR: dataDir, LOG_LEVEL: 'silent' };
    expect(loadConfig(base).trustProxy).toBe(false);
    expect(loadConfig({ ...base, ACBA_TRUST_PROXY: '1' }).trustProxy).toBe(1);
    expect(loadConfig({ ...base, ACBA_TRUST_PROXY: 'loopback, 10.0.0.0/8' }).trustProxy).toBe(
      'loopback, 10.0.0.0/8',
    );
    expect(() => loadConfig({ ...base, ACBA_TRUST_PROXY: 'everyone!' })).toThrow(
      /ACBA_TRUST_PROXY/,
    );
  });
});
