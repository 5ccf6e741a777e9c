/**
 * Runs the `acba` command as an operator would, in a child process, and
 * returns its exit code and output instead of throwing on a non-zero exit.
 */
import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

const run = promisify(execFile);
const bin = path.resolve(import.meta.dirname, '../../bin/acba.js');

/** `acba ARGS...` with the test's environment plus `env`; logs are silenced unless `env` says otherwise. */
export async function runAcba(
  args: string[],
  env: Record<string, string | undefined>,
): Promise<CliResult> {
  try {
    const { stdout, stderr } = await run(process.execPath, [bin, ...args], {
      env: { ...process.env, LOG_LEVEL: 'silent', ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as CliResult;
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}
