/**
 * Runs once before the test workers start: creates the sandbox CA and points
 * NODE_EXTRA_CA_CERTS at it, so that every forked worker (which reads the
 * variable at start-up) trusts the sandbox's HTTPS server.
 */
import { ensureSandboxCa } from '../sandbox/index.ts';

export default function setup(): void {
  const { caCertPath } = ensureSandboxCa('test/.cache/tls');
  process.env.NODE_EXTRA_CA_CERTS = caCertPath;
}
