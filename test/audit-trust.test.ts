/**
 * Why an auditor can trust the trail even against someone with the database:
 * the application's own role cannot change or remove entries (PostgreSQL
 * refuses it, tested on PGlite and on the real server in CI), and the chain
 * head copied to write-once storage (Azurite here) exposes a log that was
 * rewritten and re-hashed from the start.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';
import { sql } from 'kysely';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { recordConfiguration } from '../approvals/index.ts';
import { appendAudit, auditEntryHash, serviceActor, verifyAuditChain } from '../core/audit.ts';
import { anchorAuditHead, listAuditAnchors, type AnchorStore } from '../core/audit-anchor.ts';
import { applicationRoleSql } from '../core/audit-role.ts';
import type { AzuriteProcess } from '../sandbox/azurite.ts';
import { startTestAzurite } from './support/azurite.ts';
import { openTestDatabase, tempDir, type TestDatabase } from './support/database.ts';

let database: TestDatabase;
let azurite: AzuriteProcess;

async function append(n: number, note = 'plain'): Promise<void> {
  for (let i = 0; i < n; i += 1) {
    await appendAudit(database.db, {
      actor: serviceActor,
      channel: 'cli',
      action: 'request.create',
      resource: `request/${randomBytes(3).toString('hex')}`,
      outcome: 'success',
      details: { customerId: 'contoso', note },
    });
  }
}

/** Runs statements as the owner with the append-only triggers off, as an intruder with the owner's password could. */
async function asIntruder(statements: Array<ReturnType<typeof sql>>): Promise<void> {
  await sql`alter table audit_log disable trigger audit_log_no_update_delete`.execute(database.db);
  try {
    for (const statement of statements) await statement.execute(database.db);
  } finally {
    await sql`alter table audit_log enable trigger audit_log_no_update_delete`.execute(database.db);
  }
}

beforeAll(async () => {
  database = await openTestDatabase();
  azurite = await startTestAzurite();
}, 120_000);

afterAll(async () => {
  await azurite?.stop();
  await database?.dispose();
});

describe("the application's database role", () => {
  const role = `acba_app_${randomBytes(4).toString('hex')}`;

  /** Runs `work` on one connection as the application role, then returns to the owner. */
  async function asApplication<T>(
    work: (run: (statement: ReturnType<typeof sql>) => Promise<unknown>) => Promise<T>,
  ) {
    return database.db.connection().execute(async (conn) => {
      await sql.raw(`set role ${role}`).execute(conn);
      try {
        return await work((statement) => statement.execute(conn));
      } finally {
        await sql`reset role`.execute(conn);
      }
    });
  }

  async function refusal(statement: ReturnType<typeof sql>): Promise<string> {
    const error = await asApplication((run) => run(statement)).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error, 'expected PostgreSQL to refuse the statement').toBeInstanceOf(Error);
    return error!.message;
  }

  beforeAll(async () => {
    await sql.raw(`create role ${role}`).execute(database.db);
    for (const statement of applicationRoleSql(role)) await sql.raw(statement).execute(database.db);
    await append(3);
  });

  afterAll(async () => {
    await sql.raw(`drop owned by ${role}`).execute(database.db);
    await sql.raw(`drop role ${role}`).execute(database.db);
  });

  it('appends and reads entries, and writes the other tables', async () => {
    await asApplication(async (run) => {
      await run(sql`insert into customers (id, name, tenant_id, subscription_id)
        values ('app-role-check', 'App Role Check', 'tenant-app-role', 'sub-app-role')`);
      await run(sql`update customers set name = 'Renamed' where id = 'app-role-check'`);
      await run(sql`select count(*) from audit_log`);
    });
    await asApplication(async (run) => {
      await run(sql`select pg_advisory_xact_lock(1)`);
    });
    const before = await verifyAuditChain(database.db);
    expect(before.ok).toBe(true);
  });

  it('cannot update, delete or truncate audit entries, nor switch off the triggers', async () => {
    expect(await refusal(sql`update audit_log set outcome = 'refused' where seq = 1`)).toMatch(
      /permission denied/,
    );
    expect(await refusal(sql`delete from audit_log where seq = 1`)).toMatch(/permission denied/);
    expect(await refusal(sql`truncate audit_log`)).toMatch(/permission denied/);
    expect(
      await refusal(sql`alter table audit_log disable trigger audit_log_no_update_delete`),
    ).toMatch(/must be owner/);
    expect(await refusal(sql`drop table audit_log`)).toMatch(/must be owner/);
    expect((await verifyAuditChain(database.db)).ok).toBe(true);
  });

  it('is refused by the triggers even as the owner, unless they are switched off', async () => {
    const error = await sql`delete from audit_log where seq = 1`.execute(database.db).then(
      () => undefined,
      (e: unknown) => e as Error,
    );
    expect(error?.message).toMatch(/append-only/);
  });
});

describe('anchors in write-once storage', () => {
  let store: AnchorStore;

  beforeAll(() => {
    store = {
      connectionString: azurite.connectionString,
      container: `repo-${randomBytes(4).toString('hex')}`,
    };
  });

  it('writes the head once, lists anchors in chain order, and never overwrites one', async () => {
    await append(2);
    const first = await anchorAuditHead(database.db, store);
    expect(first).toMatchObject({ created: true });
    expect(await anchorAuditHead(database.db, store)).toMatchObject({
      created: false,
      seq: first!.seq,
    });

    await append(3);
    const second = await anchorAuditHead(database.db, store);
    const anchors = await listAuditAnchors(store);
    expect(anchors.map((a) => a.seq)).toEqual([first!.seq, second!.seq]);
    expect(anchors.map((a) => a.hash)).toEqual([first!.hash, second!.hash]);

    const verdict = await verifyAuditChain(database.db, { anchors });
    expect(verdict).toMatchObject({ ok: true, anchorsChecked: 2 });
  });

  it('exposes a log whose tail was cut off, though the chain that is left is whole', async () => {
    const anchors = await listAuditAnchors(store);
    const last = anchors.at(-1)!;
    const saved = await database.db
      .selectFrom('audit_log')
      .selectAll()
      .where('seq', '>', String(Number(last.seq) - 2) as never)
      .orderBy('seq')
      .execute();

    await asIntruder([sql`delete from audit_log where seq > ${Number(last.seq) - 2}`]);
    try {
      expect((await verifyAuditChain(database.db)).ok).toBe(true);
      const verdict = await verifyAuditChain(database.db, { anchors });
      expect(verdict.ok).toBe(false);
      expect(verdict.firstBroken).toMatchObject({ kind: 'rewritten', seq: last.seq });
    } finally {
      await asIntruder([
        sql`insert into audit_log ${sql.raw(`(${Object.keys(saved[0]!).join(', ')})`)}
          select * from jsonb_populate_recordset(null::audit_log, ${JSON.stringify(saved)}::jsonb)`,
      ]);
    }
    expect((await verifyAuditChain(database.db, { anchors })).ok).toBe(true);
  });

  it('exposes an entry rewritten and every hash after it recomputed', async () => {
    const anchors = await listAuditAnchors(store);
    const rows = await database.db.selectFrom('audit_log').selectAll().orderBy('seq').execute();
    const victim = rows[1]!;

    // Re-chain from the altered entry on, so that every link checks out on its own.
    const statements = [];
    let prevHash = victim.prev_hash;
    for (const row of rows.slice(1)) {
      const outcome = row.seq === victim.seq ? 'refused' : row.outcome;
      const hash = auditEntryHash({
        prevHash,
        at: row.at,
        actorObjectId: row.actor_object_id,
        actorTenantId: row.actor_tenant_id,
        actorName: row.actor_name,
        actorRole: row.actor_role,
        channel: row.channel,
        action: row.action,
        resource: row.resource,
        outcome,
        details: row.details,
      });
      statements.push(
        sql`update audit_log set outcome = ${outcome}, prev_hash = ${prevHash}, hash = ${`${hash}-tmp`} where seq = ${row.seq}`,
      );
      prevHash = hash;
    }
    statements.push(
      sql`update audit_log set hash = replace(hash, '-tmp', '') where seq >= ${victim.seq}`,
    );
    await asIntruder(statements);

    expect((await verifyAuditChain(database.db)).ok).toBe(true);
    const verdict = await verifyAuditChain(database.db, { anchors });
    expect(verdict.ok).toBe(false);
    expect(verdict.firstBroken).toMatchObject({ kind: 'rewritten', seq: anchors[0]!.seq });
    expect(verdict.firstBroken!.problem).toContain(`entry ${anchors[0]!.seq}`);
  });
});

describe('changes to the approval configuration', () => {
  it('are written to the trail once per version, with the hash of the file in force', async () => {
    const dir = await tempDir('acba-rules-');
    const file = path.join(dir, 'rules.json');
    const record = () =>
      recordConfiguration(database.db, { name: 'approval_rules', file, summary: ['r1'] });

    await fs.writeFile(file, '{"rules": []}');
    expect(await record()).toBe(true);
    expect(await record()).toBe(false);
    await fs.writeFile(file, '{"rules": [{"id": "r1", "kind": "*", "approvals": 3}]}');
    expect(await record()).toBe(true);
    expect(await recordConfiguration(database.db, { name: 'approval_rules', summary: [] })).toBe(
      true,
    );

    const entries = await database.db
      .selectFrom('audit_log')
      .select(['details'])
      .where('action', '=', 'configuration.change')
      .where('resource', '=', 'configuration/approval_rules')
      .orderBy('seq')
      .execute();
    const hashes = entries.map((e) => (e.details as { sha256: string | null }).sha256);
    expect(hashes).toHaveLength(3);
    expect(hashes[0]).toMatch(/^[0-9a-f]{64}$/);
    expect(hashes[1]).not.toBe(hashes[0]);
    expect(hashes[2]).toBeNull();
    expect((entries[1]!.details as { previousSha256: string }).previousSha256).toBe(hashes[0]);
    await fs.rm(dir, { recursive: true, force: true });
  });
});
