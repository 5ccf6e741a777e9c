/**
 * Azurite for one test file, started the way the sandbox starts it, on a free
 * port with its files in a temporary folder that goes away with it.
 */
import fs from 'node:fs/promises';
import net from 'node:net';
import { silentLogger } from '../../core/log.ts';
import { startAzurite, type AzuriteProcess } from '../../sandbox/azurite.ts';
import { tempDir } from './database.ts';

export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export async function startTestAzurite(): Promise<AzuriteProcess> {
  const location = await tempDir('acba-azurite-');
  const azurite = await startAzurite({ location, port: await freePort(), log: silentLogger });
  return {
    ...azurite,
    stop: async () => {
      await azurite.stop();
      await fs.rm(location, { recursive: true, force: true });
    },
  };
}
