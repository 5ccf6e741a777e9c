// The SQL logins file operators give with ACBA_SQL_LOGINS_FILE.
import fs from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAcbaError } from '../core/errors.ts';
import { loadSqlLogins } from '../engine/sql-logins.ts';
import { tempDir } from './support/database.ts';

const serverId =
  '/subscriptions/5e0f1f7a-0000-4000-8000-000000000001/resourceGroups/rg-prod/providers/Microsoft.Sql/servers/sql-contoso-weu';
let dir: string;

beforeAll(async () => {
  dir = await tempDir('acba-sql-logins-');
});

afterAll(async () => {
  await fs.rm(dir, { recursive: true, force: true });
});

async function write(name: string, content: unknown): Promise<string> {
  const file = path.join(dir, name);
  await fs.writeFile(file, typeof content === 'string' ? content : JSON.stringify(content));
  return file;
}

describe('SQL logins file', () => {
  it("finds a server's login by its resource id in any letter case, and no login for other servers", async () => {
    const logins = loadSqlLogins(
      await write('logins.json', {
        servers: {
          [serverId]: { administratorLogin: 'acba-backup', administratorLoginPassword: 's3cret!' },
        },
      }),
    );

    expect(logins(serverId.toUpperCase())).toEqual({
      administratorLogin: 'acba-backup',
      administratorLoginPassword: 's3cret!',
    });
    expect(logins(serverId.replace('sql-contoso-weu', 'sql-contoso-neu'))).toBeUndefined();
  });

  it('refuses a file with a missing password, naming the file and the field but no password', async () => {
    const file = await write('broken.json', {
      servers: {
        [serverId]: { administratorLogin: 'acba-backup' },
        other: { administratorLogin: 'x', administratorLoginPassword: 'do-not-print-me' },
      },
    });

    const error = (() => {
      try {
        loadSqlLogins(file);
      } catch (e) {
        return e;
      }
    })();
    expect(isAcbaError(error) && error.kind).toBe('bad_input');
    expect((error as Error).message).toContain(file);
    expect((error as Error).message).toContain('administratorLoginPassword');
    expect((error as Error).message).not.toContain('do-not-print-me');
  });

  it('refuses a file that is not JSON', async () => {
    const file = await write('not-json.json', 'servers: yes');
    expect(() => loadSqlLogins(file)).toThrow(/cannot be read as JSON/);
  });
});
