/**
 * `acba serve`: everything in one process until SIGINT or SIGTERM.
 * `acba web`: the same without taking jobs, for a split installation.
 * `acba worker`: only the job worker, for running several on other machines.
 *
 * In sandbox mode the process must trust the sandbox's own CA (the Azure SDK
 * and MSAL talk HTTPS to it). Node reads NODE_EXTRA_CA_CERTS only at start-up,
 * so when it is not set yet the command creates the CA (or, attaching to a
 * sandbox another process serves, takes its CA file) and runs itself again
 * with the variable set.
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import type { Config } from '../core/config.ts';
import { ensureSandboxCa } from '../sandbox/index.ts';
import { startApp, type AppRole } from './app.ts';

export async function serveCommand(config: Config, role: AppRole): Promise<number> {
  if (config.sandbox.enabled) {
    const caCertPath = config.sandbox.attachUrl
      ? config.sandbox.caFile
      : (await ensureSandboxCa(path.join(config.dataDir, 'sandbox', 'tls'))).caCertPath;
    if (process.env.NODE_EXTRA_CA_CERTS !== caCertPath) return rerunTrusting(caCertPath);
  }

  // A worker whose lease was taken back must not finish jobs that already run elsewhere.
  const onWorkerLeaseLost = () => {
    process.stderr.write('acba: this worker was declared dead by the others; stopping at once.\n');
    process.exit(75);
  };
  const app = await startApp(config, { role, onWorkerLeaseLost });
  app.log.info(
    {
      url: app.url,
      portal: `${app.url}/portal`,
      chat: app.sandbox ? `${app.url}/sandbox/teams` : undefined,
    },
    'acba_serving',
  );
  if (process.stdout.isTTY) {
    const where = app.sandbox
      ? `chat as a seeded user at ${app.url}/sandbox/teams/ and sign in to the portal at ${app.url}/portal`
      : `the portal is at ${app.url}/portal`;
    process.stdout.write(`\nACBA is running: ${where}. Press Ctrl-C to stop.\n\n`);
  }

  // Ctrl-C reaches this process more than once (from the terminal and from a
  // parent that forwards it); the first signal starts the shutdown and later
  // ones are ignored, so that the shutdown is never cut short.
  await new Promise<void>((resolve) => {
    process.on('SIGINT', resolve);
    process.on('SIGTERM', resolve);
  });
  app.log.info('acba_stopping');
  await app.close();
  app.log.info('acba_stopped');
  return 0;
}

/** Runs this command again in a child process that trusts the sandbox CA; resolves with its exit code. */
export function rerunTrusting(caCertPath: string): Promise<number> {
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: 'inherit',
    env: { ...process.env, NODE_EXTRA_CA_CERTS: caCertPath },
  });
  // Forward each signal once; the child shuts down on the first and ignores repeats.
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.on(signal, () => {
      if (child.exitCode === null) child.kill(signal);
    });
  }
  return new Promise((resolve) =>
    child.on('exit', (code, signal) => resolve(code ?? (signal ? 1 : 0))),
  );
}
