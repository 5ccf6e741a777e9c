/**
 * ACBA as real operating-system processes (`node bin/acba.js <command>`), for
 * tests of a split installation: free ports, start-up until /healthz answers,
 * each process's output kept in a file for the failure report, and stopping.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';

export interface AcbaProcess {
  name: string;
  child: ChildProcess;
  pid: number;
  /** The file holding the process's stdout and stderr. */
  logFile: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

/** A TCP port that was free a moment ago. */
export async function freePort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

/** Starts `acba <args>` with exactly `env` added to PATH and HOME, output into logDir/<name>.log. */
export function startAcba(
  name: string,
  args: string[],
  env: Record<string, string>,
  logDir: string,
): AcbaProcess {
  const logFile = path.join(logDir, `${name}.log`);
  const out = fs.openSync(logFile, 'a');
  const child = spawn(process.execPath, [path.resolve('bin/acba.js'), ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', out, out],
  });
  fs.closeSync(out);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  return { name, child, pid: child.pid!, logFile, exited };
}

/** Waits until GET url/healthz answers 200; fails early when the process exits. */
export async function waitHealthy(proc: AcbaProcess, url: string, timeoutMs = 90_000) {
  const end = Date.now() + timeoutMs;
  let exited = false;
  void proc.exited.then(() => (exited = true));
  while (Date.now() < end) {
    if (exited) throw new Error(`${proc.name} exited while starting:\n${tail(proc)}`);
    const ok = await fetch(`${url}/healthz`)
      .then((r) => r.status === 200)
      .catch(() => false);
    if (ok) return;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`${proc.name} did not become healthy within ${timeoutMs} ms:\n${tail(proc)}`);
}

/** Stops the process with SIGTERM (SIGKILL after `graceMs`) and waits for it to end. */
export async function stopAcba(proc: AcbaProcess, graceMs = 15_000): Promise<void> {
  if (proc.child.exitCode !== null || proc.child.signalCode !== null) return;
  proc.child.kill('SIGTERM');
  const timer = setTimeout(() => proc.child.kill('SIGKILL'), graceMs);
  await proc.exited;
  clearTimeout(timer);
}

/** The last lines the process wrote, for failure messages. */
export function tail(proc: AcbaProcess, lines = 40): string {
  const text = fs.existsSync(proc.logFile) ? fs.readFileSync(proc.logFile, 'utf8') : '';
  return text.split('\n').slice(-lines).join('\n');
}
