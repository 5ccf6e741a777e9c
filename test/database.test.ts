/**
 * The PostgreSQL server may end a connection at any time (a restart, an
 * administrator, a failover). ACBA keeps serving: the next query opens a new
 * connection, and the ended one does not take the process down. Runs where a
 * server is given (ACBA_TEST_DATABASE_URL), as in CI.
 */
import { sql } from 'kysely';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openTestDatabase, type TestDatabase } from './support/database.ts';

describe.skipIf(!process.env.ACBA_TEST_DATABASE_URL)(
  'a PostgreSQL server that ends connections',
  () => {
    let database: TestDatabase;

    beforeAll(async () => {
      database = await openTestDatabase();
    });

    afterAll(async () => {
      await database?.dispose();
    });

    it('answers the next query after the server ended every idle connection', async () => {
      const before = await sql<{ pid: number }>`select pg_backend_pid() as pid`.execute(
        database.db,
      );
      const pid = before.rows[0]!.pid;

      const admin = new pg.Client({ connectionString: database.url });
      await admin.connect();
      await admin.query('select pg_terminate_backend($1)', [pid]);
      await admin.end();
      // Give the pool the moment it takes to hear that its connection is gone.
      await new Promise((resolve) => setTimeout(resolve, 200));

      const after = await sql<{ n: number }>`select 1 as n`.execute(database.db);
      expect(after.rows[0]!.n).toBe(1);
    });
  },
);
