// One file recovery session over a small ext4 disk made by mke2fs on the host
// and served over HTTP with Range, as the engine's disk resource serves a
// restore point: names with spaces and quotes list with their sizes, a search
// names what it finds by its full path, and a session cancelled while its
// appliance starts leaves no appliance behind.
import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import fs from 'node:fs/promises';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { promisify } from 'node:util';
import express from 'express';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { silentLogger } from '../core/log.ts';
import { FileRecoverySession, type SessionDisk } from '../engine/file-session.ts';
import { tempDir } from './support/database.ts';

const run = promisify(execFile);
let dir: string;
let server: ReturnType<express.Express['listen']>;
let disk: SessionDisk;
let session: FileRecoverySession;

const FILES: Record<string, string> = {
  'docs/plain.txt': 'plain\n',
  'docs/two words.txt': 'two words\n',
  'docs/it\'s "quoted".txt': 'quotes\n',
  'docs/deep/nested/notes.txt': 'notes in a nested folder\n',
};

beforeAll(async () => {
  dir = await tempDir('acba-session-');
  const tree = path.join(dir, 'tree');
  for (const [name, text] of Object.entries(FILES)) {
    await fs.mkdir(path.dirname(path.join(tree, name)), { recursive: true });
    await fs.writeFile(path.join(tree, name), text);
  }
  const image = path.join(dir, 'disk.raw');
  await run('mke2fs', ['-q', '-t', 'ext4', '-F', '-d', tree, image, '16M']);
  const data = await fs.readFile(image);

  const app = express();
  app.use('/disk', express.static(dir, { acceptRanges: true, etag: false }));
  server = app.listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  disk = {
    url: new URL(`http://127.0.0.1:${(server.address() as AddressInfo).port}/disk/disk.raw`),
    read: async (offset, length) => data.subarray(offset, offset + length),
    sizeBytes: data.length,
  };
  session = await FileRecoverySession.open({ workDir: dir, log: silentLogger }, [disk]);
}, 300_000);

afterAll(async () => {
  await session?.close();
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve));
  if (dir) await fs.rm(dir, { recursive: true, force: true });
});

describe('a file recovery session', () => {
  it('lists names with spaces and quotes with their sizes and types', async () => {
    const volume = session.volumes[0]!.id;
    const listed = await session.list(volume, '/docs');
    expect(listed.map((e) => [e.name, e.type, e.sizeBytes]).sort()).toEqual(
      [
        ['deep', 'directory', expect.any(Number)],
        ['it\'s "quoted".txt', 'file', FILES['docs/it\'s "quoted".txt']!.length],
        ['plain.txt', 'file', FILES['docs/plain.txt']!.length],
        ['two words.txt', 'file', FILES['docs/two words.txt']!.length],
      ].sort(),
    );
  });

  it('names what a search finds by its full path', async () => {
    const volume = session.volumes[0]!.id;
    const found = await session.search(volume, '/docs', '*.txt');
    expect(found.map((e) => e.path)).toEqual([
      '/docs/deep/nested/notes.txt',
      '/docs/it\'s "quoted".txt',
      '/docs/plain.txt',
      '/docs/two words.txt',
    ]);
    expect(found.find((e) => e.name === 'notes.txt')!.sizeBytes).toBe(
      FILES['docs/deep/nested/notes.txt']!.length,
    );
  });

  it('leaves no appliance running when cancelled while the appliance starts', async () => {
    const abort = new AbortController();
    const before = new Set(guestfishServers());
    const opening = FileRecoverySession.open(
      { workDir: dir, log: silentLogger, signal: abort.signal },
      [disk],
    );
    // Cancel once its guestfish server exists, while the appliance boots.
    for (let i = 0; i < 200 && guestfishServers().every((p) => before.has(p)); i++)
      await new Promise((resolve) => setTimeout(resolve, 50));
    abort.abort();
    await expect(opening).rejects.toThrow();
    const started = guestfishServers().filter((p) => !before.has(p));
    expect(started).toEqual([]);
  }, 120_000);
});

/**
 * Pids of guestfish servers (`guestfish --listen`) running now that this test
 * file started: they inherit its vitest worker id, which tells them apart
 * from the appliances other test files start at the same time.
 */
function guestfishServers(): number[] {
  const ours = `VITEST_WORKER_ID=${process.env.VITEST_WORKER_ID ?? ''}`;
  return readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .filter((p) => {
      try {
        if (!readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0').includes('--listen'))
          return false;
        return readFileSync(`/proc/${p}/environ`, 'utf8').split('\0').includes(ours);
      } catch {
        return false;
      }
    })
    .map(Number);
}
