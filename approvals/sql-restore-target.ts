/**
 * What a SQL restore request names, checked before it is written: one or more
 * databases of ONE logical server (a database of another server needs a
 * request of its own), each with its restore point (the newest backup when
 * none is given), and where each goes: under a new name on the original
 * server (`<database>-restored-<yyyymmdd>`, the restore point's date, unless
 * a name is given), over the original database, or under a new name on
 * another logical server of the same customer. The engine checks names
 * against Azure again before it creates anything.
 */
import { z } from 'zod';
import { clip, QUOTE_LENGTH } from '../core/clip.ts';
import type { Db } from '../core/db/database.ts';
import type {
  Customer,
  ProtectedItem,
  SqlRestoreDatabase,
  SqlRestoreTarget,
} from '../core/db/schema.ts';
import { badInput, notFound } from '../core/errors.ts';
import { resolveRestorePoint } from './lookup.ts';

/** Azure SQL's rule for database names: up to 128 characters, none of <>*%&:\/?, not ending in a period or space. */
const databaseName = z
  .string()
  .trim()
  .regex(/^[^<>*%&:\\/?\x00-\x1f]{0,127}[^<>*%&:\\/?\x00-\x1f. ]$/, {
    message:
      'a database name has 1 to 128 characters, none of < > * % & : \\ / ?, and does not end in a period or space',
  });
const name = z.string().trim().min(1).max(200);

const databaseEntry = z.union([
  name,
  z.strictObject({
    database: name,
    restorePointId: z.string().trim().min(1).max(100).optional(),
    newName: databaseName.optional(),
  }),
]);

/** What a person gives for a SQL restore. */
export const sqlRestoreInput = z
  .strictObject({
    server: name.optional(),
    databases: z.array(databaseEntry).min(1).max(20),
    replaceOriginal: z.boolean().default(false),
    targetServer: name.optional(),
  })
  .refine((t) => !(t.replaceOriginal && t.targetServer), {
    message: 'a restore over the original database stays on its server; leave targetServer out',
    path: ['targetServer'],
  })
  .refine(
    (t) => !(t.replaceOriginal && t.databases.some((d) => typeof d !== 'string' && d.newName)),
    {
      message: 'a restore over the original database keeps its name; leave newName out',
      path: ['databases'],
    },
  );

export type SqlRestoreInput = z.infer<typeof sqlRestoreInput>;

/** The customer's protected SQL databases, with the server and database name of each. */
async function sqlItems(db: Db, customer: Customer): Promise<SqlItem[]> {
  const items = await db
    .selectFrom('protected_items')
    .selectAll()
    .where('customer_id', '=', customer.id)
    .where('kind', '=', 'sql_database')
    .orderBy('name')
    .execute();
  return items.map((item) => {
    const [server, database] = splitName(item.name);
    return { item, server: server!, database, serverId: serverIdOf(item.resource_id) };
  });
}

interface SqlItem {
  item: ProtectedItem;
  server: string;
  database: string;
  serverId: string;
}

/** Resolves a SQL restore request's target for the customer; throws bad_input or not_found naming the database. */
export async function resolveSqlRestoreTarget(
  db: Db,
  customer: Customer,
  input: SqlRestoreInput,
): Promise<SqlRestoreTarget> {
  const known = await sqlItems(db, customer);
  const entries = input.databases.map((d) => (typeof d === 'string' ? { database: d } : d));
  const server = oneServer(
    input.server,
    entries.map((e) => e.database),
  );

  const databases: SqlRestoreDatabase[] = [];
  for (const entry of entries) {
    const [, database] = splitName(entry.database, server);
    const found = known.find((k) => same(k.server, server) && same(k.database, database));
    if (!found) throw notFound(unknownDatabase(customer, known, server, database));
    const point = await resolveRestorePoint(db, found.item, undefined, entry.restorePointId);
    if (point.type !== 'backup')
      throw badInput(
        `Restore point ${point.id} of ${found.item.name} is a ${point.type.replace('_', ' ')}, not a backup; choose a backup restore point.`,
        { field: 'databases' },
      );
    const newName = input.replaceOriginal
      ? found.database
      : (entry.newName ?? `${found.database}-restored-${yyyymmdd(point.created_at)}`);
    databases.push({
      itemId: found.item.id,
      database: found.database,
      restorePointId: point.id,
      newName,
    });
  }
  refuseRepeats(databases);

  const target = input.targetServer
    ? resolveServer(customer, known, input.targetServer)
    : undefined;
  return {
    server: known.find((k) => same(k.server, server))!.server,
    databases,
    replaceOriginal: input.replaceOriginal,
    ...(target ? { targetServer: target.server, targetServerId: target.serverId } : {}),
  };
}

/** The one server every database is on; bad_input names the database on another one. */
function oneServer(given: string | undefined, databases: string[]): string {
  const servers = databases.map((d) => splitName(d, given)[0]);
  const server = given ?? servers.find((s) => s !== undefined);
  if (!server)
    throw badInput(
      'Name the logical server of the databases to restore: give server, or each database as server/database.',
      { field: 'server' },
    );
  const other = databases.find((_, i) => servers[i] !== undefined && !same(servers[i]!, server));
  if (other)
    throw badInput(
      `Database ${clip(other, QUOTE_LENGTH)} is not on server ${clip(server, QUOTE_LENGTH)}; one request restores databases of one logical server. Ask for it in a new request.`,
      { field: 'databases' },
    );
  return server;
}

function refuseRepeats(databases: SqlRestoreDatabase[]): void {
  const seen = new Set<string>();
  for (const d of databases) {
    if (seen.has(d.database.toLowerCase()))
      throw badInput(`Database ${d.database} is named twice; name each database once.`, {
        field: 'databases',
      });
    seen.add(d.database.toLowerCase());
  }
  const names = new Set<string>();
  for (const d of databases) {
    if (names.has(d.newName.toLowerCase()))
      throw badInput(
        `Two databases would be restored as ${d.newName}; give each a name of its own.`,
        { field: 'databases' },
      );
    names.add(d.newName.toLowerCase());
  }
}

function resolveServer(customer: Customer, known: SqlItem[], name: string): SqlItem {
  const found = known.find((k) => same(k.server, name));
  if (found) return found;
  const servers = [...new Set(known.map((k) => k.server))];
  throw notFound(
    `${customer.name} has no logical SQL server named "${clip(name, QUOTE_LENGTH)}" that ACBA knows. Choose one of ${servers.join(', ') || 'none'}.`,
    { field: 'targetServer' },
  );
}

function unknownDatabase(
  customer: Customer,
  known: SqlItem[],
  server: string,
  database: string,
): string {
  const there = known.filter((k) => same(k.server, server)).map((k) => k.database);
  const asked = `${clip(server, QUOTE_LENGTH)}/${clip(database, QUOTE_LENGTH)}`;
  return there.length > 0
    ? `There is no protected database ${asked}. Protected databases of ${clip(server, QUOTE_LENGTH)}: ${there.join(', ')}.`
    : `${customer.name} has no protected databases on a server named ${clip(server, QUOTE_LENGTH)}. Protected servers: ${[...new Set(known.map((k) => k.server))].join(', ') || 'none'}.`;
}

/** `server/database` into its parts; a bare database name is on `server`. */
function splitName(text: string, server?: string): [string | undefined, string] {
  const slash = text.indexOf('/');
  if (slash < 0) return [server, text.trim()];
  return [text.slice(0, slash).trim(), text.slice(slash + 1).trim()];
}

function serverIdOf(databaseId: string): string {
  return databaseId.replace(/\/databases\/[^/]+$/i, '');
}

function same(a: string, b: string): boolean {
  return a.toLowerCase() === b.toLowerCase();
}

function yyyymmdd(date: Date): string {
  return new Date(date).toISOString().slice(0, 10).replaceAll('-', '');
}
