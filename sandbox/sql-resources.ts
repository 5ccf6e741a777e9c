/**
 * The state of the sandbox's Azure SQL stand-in: logical servers (fixed by the
 * seed) and their databases, each holding tables of rows that exports write
 * into BACPAC files and imports read back.
 *
 * Seeded databases get generated rows derived from their names, so every
 * start has the same content; every server also has its `master` system
 * database, as in Azure. Copies and imports live in memory only: a restarted
 * sandbox starts from the seed again. Resource ids and names compare
 * case-insensitively, as in Azure.
 */
import { createHash } from 'node:crypto';
import type { SqlContent } from './bacpac.ts';
import { sqlServerResourceId, stableGuid, type SeedSqlServer } from './seed.ts';

export interface SqlServerRecord {
  id: string;
  name: string;
  subscriptionId: string;
  resourceGroup: string;
  location: string;
  administratorLogin: string;
  administratorLoginPassword: string;
}

export interface SqlDatabaseRecord {
  id: string;
  name: string;
  server: SqlServerRecord;
  location: string;
  tags: Record<string, string>;
  databaseId: string;
  creationDate: string;
  system: boolean;
  status: 'Creating' | 'Online';
  content: SqlContent;
  /** For copies: the database copied. */
  sourceDatabaseId?: string;
}

/** One export the sandbox ran, as tests compare it with what the backup stored. */
export interface SqlExportRecord {
  databaseId: string;
  blobUri: string;
  succeeded: boolean;
  sizeBytes: number;
  /** SHA-256 of the BACPAC the export wrote in full, hex; of the part written before a failure otherwise. */
  sha256: string;
}

const key = (text: string) => text.toLowerCase();

/** Where a server's long-running operations are reported: its subscription and region. */
export function operationScope(server: SqlServerRecord): {
  subscriptionId: string;
  location: string;
} {
  return { subscriptionId: server.subscriptionId, location: server.location };
}

export class SqlResources {
  private readonly servers = new Map<string, SqlServerRecord>();
  private readonly databases = new Map<string, SqlDatabaseRecord>();
  private exportFailures = 0;
  readonly exports: SqlExportRecord[] = [];

  constructor(seed: SeedSqlServer[]) {
    for (const spec of seed) {
      const server: SqlServerRecord = {
        id: sqlServerResourceId(spec.subscriptionId, spec.resourceGroup, spec.name),
        name: spec.name,
        subscriptionId: spec.subscriptionId,
        resourceGroup: spec.resourceGroup,
        location: spec.location,
        administratorLogin: spec.administratorLogin,
        administratorLoginPassword: spec.administratorLoginPassword,
      };
      this.servers.set(key(server.id), server);
      this.add(server, 'master', { tables: [] }, {}, true);
      for (const database of spec.databases)
        this.add(server, database.name, generatedContent(database), database.tags, false);
    }
  }

  listServers(subscriptionId: string, resourceGroup?: string): SqlServerRecord[] {
    return [...this.servers.values()].filter(
      (s) =>
        key(s.subscriptionId) === key(subscriptionId) &&
        (resourceGroup === undefined || key(s.resourceGroup) === key(resourceGroup)),
    );
  }

  getServer(
    subscriptionId: string,
    resourceGroup: string,
    name: string,
  ): SqlServerRecord | undefined {
    return this.servers.get(key(sqlServerResourceId(subscriptionId, resourceGroup, name)));
  }

  listDatabases(server: SqlServerRecord): SqlDatabaseRecord[] {
    return [...this.databases.values()].filter((d) => d.server === server);
  }

  getDatabase(server: SqlServerRecord, name: string): SqlDatabaseRecord | undefined {
    return this.databases.get(key(`${server.id}/databases/${name}`));
  }

  getDatabaseById(id: string): SqlDatabaseRecord | undefined {
    return this.databases.get(key(id));
  }

  /** A new database in state Creating, with a copy of `content`. */
  createDatabase(
    server: SqlServerRecord,
    name: string,
    content: SqlContent,
    tags: Record<string, string>,
    sourceDatabaseId?: string,
  ): SqlDatabaseRecord {
    const record = this.add(server, name, structuredClone(content), tags, false);
    record.status = 'Creating';
    record.sourceDatabaseId = sourceDatabaseId;
    return record;
  }

  /** Gives the database a new name (and so a new id) on its server. */
  renameDatabase(database: SqlDatabaseRecord, newName: string): void {
    this.databases.delete(key(database.id));
    database.name = newName;
    database.id = `${database.server.id}/databases/${newName}`;
    this.databases.set(key(database.id), database);
  }

  deleteDatabase(id: string): boolean {
    return this.databases.delete(key(id));
  }

  /** Makes the next `count` exports write part of their BACPAC and then fail. */
  failNextExports(count: number): void {
    this.exportFailures += count;
  }

  /** True when this export is to fail (and counts it). */
  takeExportFailure(): boolean {
    if (this.exportFailures === 0) return false;
    this.exportFailures -= 1;
    return true;
  }

  private add(
    server: SqlServerRecord,
    name: string,
    content: SqlContent,
    tags: Record<string, string>,
    system: boolean,
  ): SqlDatabaseRecord {
    const id = `${server.id}/databases/${name}`;
    const record: SqlDatabaseRecord = {
      id,
      name,
      server,
      location: server.location,
      tags,
      databaseId: stableGuid(`sql-database:${key(id)}:${Date.now()}`),
      creationDate: new Date().toISOString(),
      system,
      status: 'Online',
      content,
    };
    this.databases.set(key(id), record);
    return record;
  }
}

/** The rows of a seeded database: an id column, then values derived from the database's name. */
function generatedContent(spec: SeedSqlServer['databases'][number]): SqlContent {
  const rows: string[][] = [];
  for (let i = 1; i <= spec.table.rows; i++) {
    const digest = createHash('sha256').update(`${spec.name}:${i}`).digest('hex');
    rows.push(
      spec.table.columns.map((_, column) =>
        column === 0 ? String(i) : digest.slice(column * 8, column * 8 + 8 * column + 8),
      ),
    );
  }
  return {
    tables: [{ schema: 'dbo', name: spec.table.name, columns: spec.table.columns, rows }],
  };
}
