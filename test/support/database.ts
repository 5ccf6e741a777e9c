/**
 * A fresh database for one test file: embedded PGlite in a temporary folder by
 * default, or, when ACBA_TEST_DATABASE_URL points at a PostgreSQL server, a new
 * database created on that server and dropped afterwards. CI runs the whole
 * suite both ways.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import pg from 'pg';
import { openDatabase, type DatabaseHandle } from '../../core/db/database.ts';

export interface TestDatabase extends DatabaseHandle {
  /** The URL of the server database, or undefined for PGlite. */
  url?: string;
  dataDir: string;
  /** Closes and removes everything. */
  dispose(): Promise<void>;
}

/** The server URL for a new empty database, or undefined when tests run on PGlite. */
export async function createServerDatabase(): Promise<ScratchDatabase | undefined> {
  const base = process.env.ACBA_TEST_DATABASE_URL;
  return base ? createScratchDatabase(base, 'acba_test') : undefined;
}

export interface ScratchDatabase {
  url: string;
  drop(): Promise<void>;
}

/** Creates a new empty database, named prefix_<random>, on the server that `base` points at. */
export async function createScratchDatabase(
  base: string,
  prefix: string,
): Promise<ScratchDatabase> {
  const name = `${prefix}_${randomBytes(6).toString('hex')}`;
  const admin = new pg.Client({ connectionString: base });
  await admin.connect();
  await admin.query(`create database ${name}`);
  await admin.end();
  const url = new URL(base);
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    drop: async () => {
      const client = new pg.Client({ connectionString: base });
      await client.connect();
      await client.query(`drop database if exists ${name} with (force)`);
      await client.end();
    },
  };
}

export async function tempDir(prefix = 'acba-test-'): Promise<string> {
  return fs.mkdtemp(path.join(os.tmpdir(), prefix));
}

export async function openTestDatabase(): Promise<TestDatabase> {
  const dataDir = await tempDir();
  const server = await createServerDatabase();
  const handle = await openDatabase({ url: server?.url, dataDir });
  return {
    ...handle,
    url: server?.url,
    dataDir,
    dispose: async () => {
      await handle.close();
      await server?.drop();
      await fs.rm(dataDir, { recursive: true, force: true });
    },
  };
}
