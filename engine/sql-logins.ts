/**
 * The SQL logins that Azure SQL's export and import need, one per logical
 * server. Operators keep them in a JSON file (ACBA_SQL_LOGINS_FILE), a secret
 * like any other, keyed by the server's resource id:
 *
 *   { "servers": { "/subscriptions/.../providers/Microsoft.Sql/servers/sql-1":
 *       { "administratorLogin": "backup", "administratorLoginPassword": "..." } } }
 *
 * Passwords never reach a log or the audit trail.
 */
import fs from 'node:fs';
import { z } from 'zod';
import { badInput } from '../core/errors.ts';

/** A SQL login of a logical server, for export and import. */
export interface SqlLogin {
  administratorLogin: string;
  administratorLoginPassword: string;
  /** 'Sql' (default) or 'ADPassword' for a Microsoft Entra user. */
  authenticationType?: 'Sql' | 'ADPassword';
}

/** The SQL login for a server, by its resource id; undefined when none is configured. */
export type SqlLogins = (serverResourceId: string) => SqlLogin | undefined;

const loginSchema = z.strictObject({
  administratorLogin: z.string().min(1),
  administratorLoginPassword: z.string().min(1),
  authenticationType: z.enum(['Sql', 'ADPassword']).optional(),
});
const fileSchema = z.strictObject({ servers: z.record(z.string(), loginSchema) });

/** Logins from a map of server resource id to login (ids compare case-insensitively, as in Azure). */
export function sqlLoginsOf(servers: Record<string, SqlLogin>): SqlLogins {
  const byId = new Map(Object.entries(servers).map(([id, login]) => [id.toLowerCase(), login]));
  return (serverResourceId) => byId.get(serverResourceId.toLowerCase());
}

/** Reads and validates the logins file; errors name the file and the field, never a password. */
export function loadSqlLogins(file: string): SqlLogins {
  let document: unknown;
  try {
    document = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    throw badInput(
      `ACBA_SQL_LOGINS_FILE ${file} cannot be read as JSON (${(error as NodeJS.ErrnoException).code ?? 'invalid JSON'}). Fix the file and start again.`,
    );
  }
  const parsed = fileSchema.safeParse(document);
  if (!parsed.success) {
    const problems = parsed.error.issues.map(
      (i) => `${i.path.join('.') || '(file)'}: ${i.message}`,
    );
    throw badInput(
      `ACBA_SQL_LOGINS_FILE ${file} is not valid (${problems.join('; ')}). Fix the file and start again.`,
    );
  }
  return sqlLoginsOf(parsed.data.servers);
}
