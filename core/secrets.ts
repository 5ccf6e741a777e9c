/**
 * Keys the service needs when the operator has not configured them: generated
 * once and kept under the data folder with owner-only permissions, so that a
 * single-machine install works out of the box and keeps working after a
 * restart. Production installs set them explicitly (see .env.example).
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import path from 'node:path';

/** Returns the configured base64 key, or one stored under dataDir/secrets/name (created if missing). */
export async function keyFromConfigOrDataDir(
  configured: string | undefined,
  dataDir: string,
  name: string,
): Promise<Buffer> {
  if (configured) {
    const key = Buffer.from(configured, 'base64');
    if (key.length !== 32)
      throw new Error(
        `The configured ${name} must be 32 bytes encoded as base64; it decodes to ${key.length} bytes.`,
      );
    return key;
  }
  const dir = path.join(dataDir, 'secrets');
  const file = path.join(dir, name);
  try {
    return Buffer.from((await fs.readFile(file, 'utf8')).trim(), 'base64');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
  }
  await fs.mkdir(dir, { recursive: true, mode: 0o700 });
  const key = randomBytes(32);
  await fs
    .writeFile(file, key.toString('base64'), { mode: 0o600, flag: 'wx' })
    .catch(async (error) => {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    });
  return Buffer.from((await fs.readFile(file, 'utf8')).trim(), 'base64');
}
