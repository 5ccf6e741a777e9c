/**
 * Azurite's blob service as the provider's repository storage, run as a
 * child process from the installed package.
 *
 * The child is started through a small inline launcher that exits when its
 * stdin closes: stdin is a pipe from this process, so if the parent dies in
 * any way (even SIGKILL) the pipe closes and Azurite goes with it instead of
 * lingering as an orphan that holds the port. Readiness and the real port
 * come from Azurite's own "listens on" line, so port 0 works without a
 * probe-then-bind race. Telemetry is switched off.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import path from 'node:path';
import type { Logger } from '../core/log.ts';

/** Azurite's published development account; the key is public and only valid against Azurite. */
const devAccountName = 'devstoreaccount1';
const devAccountKey =
  'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

export interface AzuriteProcess {
  port: number;
  connectionString: string;
  stop(): Promise<void>;
}

const launcher = [
  "process.stdin.on('end', () => process.exit(0));",
  "process.stdin.on('error', () => process.exit(0));",
  'process.stdin.resume();',
  // On SIGTERM Azurite closes its servers; letting go of stdin lets the process end once it has.
  "process.once('SIGTERM', () => { process.stdin.removeAllListeners('end'); process.stdin.destroy(); });",
  'require(process.env.ACBA_AZURITE_MAIN);',
].join(' ');

export async function startAzurite(options: {
  location: string;
  port: number;
  log: Logger;
  startTimeoutMs?: number;
}): Promise<AzuriteProcess> {
  await fs.mkdir(options.location, { recursive: true });
  const main = path.join(
    path.dirname(createRequire(import.meta.url).resolve('azurite/package.json')),
    'dist/src/blob/main.js',
  );

  // Azurite parses process.argv from index 2; with `node -e` the first extra argument takes index 1.
  const args = [
    '-e',
    launcher,
    'azurite-blob',
    '--blobHost',
    '127.0.0.1',
    '--blobPort',
    String(options.port),
    '--location',
    options.location,
    '--skipApiVersionCheck',
    '--loose',
    '--silent',
    '--disableTelemetry',
  ];
  const child = spawn(process.execPath, args, {
    stdio: ['pipe', 'pipe', 'pipe'],
    env: { ...process.env, ACBA_AZURITE_MAIN: main, NODE_OPTIONS: '' },
  });

  const port = await waitForListening(child, options.startTimeoutMs ?? 30_000);
  options.log.info({ port, location: options.location }, 'sandbox_azurite_started');

  return {
    port,
    connectionString: azuriteConnectionString(port),
    stop: () => stopChild(child),
  };
}

/** The connection string of the development account of an Azurite listening on this machine's port. */
export function azuriteConnectionString(port: number): string {
  return [
    'DefaultEndpointsProtocol=http',
    `AccountName=${devAccountName}`,
    `AccountKey=${devAccountKey}`,
    `BlobEndpoint=http://127.0.0.1:${port}/${devAccountName};`,
  ].join(';');
}

function waitForListening(child: ChildProcess, timeoutMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    let output = '';
    const timer = setTimeout(
      () =>
        fail(
          new Error(
            `Azurite did not start within ${timeoutMs} ms. Its output: ${output.trim().slice(-1000)}`,
          ),
        ),
      timeoutMs,
    );

    const onData = (chunk: Buffer) => {
      output += chunk.toString();
      const match = /successfully listens on https?:\/\/[^\s:]+:(\d+)/.exec(output);
      if (match) {
        clearTimeout(timer);
        child.off('exit', onExit);
        // Keep draining the pipes so a chatty child never blocks on a full buffer.
        child.stdout?.resume();
        child.stderr?.resume();
        resolve(Number(match[1]));
      }
    };
    const onExit = (code: number | null) =>
      fail(
        new Error(
          `Azurite exited with code ${code} before it was ready. Is the port in use? Its output: ${output.trim().slice(-1000)}`,
        ),
      );
    const fail = (error: Error) => {
      clearTimeout(timer);
      child.kill('SIGKILL');
      reject(error);
    };

    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', onExit);
    child.once('error', (error) =>
      fail(new Error(`Azurite could not be started: ${error.message}`)),
    );
  });
}

/** Asks Azurite to shut down (it saves its metadata on SIGTERM), and kills it if it has not gone in 5 s. */
function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), 5_000);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve();
    });
    child.kill('SIGTERM');
  });
}
