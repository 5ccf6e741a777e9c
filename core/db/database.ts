/**
 * Opens ACBA's database: an embedded PostgreSQL (PGlite) under the data folder
 * when no DATABASE_URL is set, a real PostgreSQL server through `pg` when one
 * is. Both run the same migrations and the same SQL.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { PGlite } from '@electric-sql/pglite';
import { Kysely, Migrator, PostgresDialect, type Migration, type MigrationProvider } from 'kysely';
import { PGliteDialect } from 'kysely-pglite-dialect';
import pg from 'pg';
import { unavailable } from '../errors.ts';
import type { Database } from './schema.ts';
import * as m001 from './migrations/001_initial.ts';
import * as m002 from './migrations/002_approval_rules.ts';
import * as m003 from './migrations/003_audit_trail.ts';
import * as m004 from './migrations/004_policies.ts';
import * as m007 from './migrations/007_audit_actor_name.ts';
import * as m008 from './migrations/008_jobs_licences_usage.ts';
import * as m009 from './migrations/009_sql_databases.ts';
import * as m010 from './migrations/010_disk_snapshots.ts';
import * as m013 from './migrations/013_worker_leases.ts';

export type Db = Kysely<Database>;

/** Runs raw SQL, as pg-boss needs it: several statements at once when there are no parameters. */
export type ExecuteSql = (text: string, values?: unknown[]) => Promise<{ rows: any[] }>;

export interface DatabaseHandle {
  db: Db;
  executeSql: ExecuteSql;
  /** 'pglite' or 'postgres', for health reports. */
  engine: 'pglite' | 'postgres';
  close(): Promise<void>;
}

export interface DatabaseOptions {
  /** postgres:// URL; embedded PGlite when unset. */
  url?: string;
  /** Folder for the embedded database's files. */
  dataDir: string;
}

const migrations: Record<string, Migration> = {
  '001_initial': m001,
  '002_approval_rules': m002,
  '003_audit_trail': m003,
  '004_policies': m004,
  '007_audit_actor_name': m007,
  '008_jobs_licences_usage': m008,
  '009_sql_databases': m009,
  '010_disk_snapshots': m010,
  '013_worker_leases': m013,
};

const migrationProvider: MigrationProvider = {
  getMigrations: async () => migrations,
};

export async function openDatabase(options: DatabaseOptions): Promise<DatabaseHandle> {
  const handle = options.url ? openPostgres(options.url) : await openPglite(options.dataDir);
  await migrate(handle.db);
  return handle;
}

/** Applies every pending migration; throws with the failing migration's name. */
export async function migrate(db: Db): Promise<void> {
  // Migrations are numbered per change and may land in any order; each is
  // applied once, whatever came before it.
  const migrator = new Migrator({
    db,
    provider: migrationProvider,
    allowUnorderedMigrations: true,
  });
  const { error, results } = await migrator.migrateToLatest();
  if (error) {
    const failed = results?.find((r) => r.status === 'Error')?.migrationName ?? 'unknown';
    throw new Error(`Database migration ${failed} failed: ${(error as Error).message}`, {
      cause: error,
    });
  }
}

function openPostgres(url: string): DatabaseHandle {
  const pool = new pg.Pool({ connectionString: url, max: 10 });
  // An idle connection the server ends (a restart, an administrator, a failover) is dropped by the
  // pool and replaced on the next query, which reports any lasting failure; without a listener the
  // pool would rethrow the event and end the process.
  pool.on('error', () => {});
  const db = new Kysely<Database>({ dialect: new PostgresDialect({ pool }) });
  return {
    db,
    engine: 'postgres',
    executeSql: async (text, values) => {
      const result = await pool.query(text, values as any[]);
      return { rows: result.rows };
    },
    close: () => db.destroy(),
  };
}

async function openPglite(dataDir: string): Promise<DatabaseHandle> {
  const dir = path.join(dataDir, 'pglite');
  await fs.mkdir(dir, { recursive: true });
  const unlock = await lockEmbeddedDatabase(dir);
  let pglite: PGlite;
  try {
    pglite = await PGlite.create(dir);
  } catch (error) {
    await unlock();
    throw unavailable(
      `The embedded database in ${dir} could not be opened (${(error as Error).message}). If another process used it at the same time its files may be damaged: restore the data folder from a copy, or move ${dir} away to start with an empty database.`,
    );
  }
  const db = new Kysely<Database>({ dialect: new PGliteDialect(pglite) });
  return {
    db,
    engine: 'pglite',
    executeSql: async (text, values) => {
      if (!values || values.length === 0) {
        const results = await pglite.exec(text);
        return { rows: results.at(-1)?.rows ?? [] };
      }
      const result = await pglite.query(text, values);
      return { rows: result.rows as any[] };
    },
    // Destroying kysely closes PGlite through the dialect's driver.
    close: async () => {
      await db.destroy();
      if (!pglite.closed) await pglite.close();
      await unlock();
    },
  };
}

/**
 * The embedded database lives in one process: two processes opening the same
 * files would corrupt them. A lock file holding the owner's pid keeps a second
 * process out; a lock left by a process that no longer runs is taken over.
 */
async function lockEmbeddedDatabase(dir: string): Promise<() => Promise<void>> {
  const lockFile = path.join(dir, '..', 'pglite.lock');
  for (let attempt = 0; attempt < 2; attempt += 1) {
    try {
      await fs.writeFile(lockFile, String(process.pid), { flag: 'wx' });
      return () => fs.rm(lockFile, { force: true });
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const owner = Number((await fs.readFile(lockFile, 'utf8').catch(() => '')).trim());
    if (owner && owner !== process.pid && processRuns(owner)) {
      throw unavailable(
        `The embedded database in ${dir} is in use by another ACBA process (pid ${owner}). Stop that process first, or use a PostgreSQL server through DATABASE_URL to run several processes.`,
      );
    }
    await fs.rm(lockFile, { force: true });
  }
  throw unavailable(
    `Could not lock the embedded database in ${dir}; another process keeps taking it. Try again.`,
  );
}

function processRuns(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}
