/**
 * One sandbox OpenID provider and portal for a whole test file: started
 * before its first test, closed after its last.
 */
import { afterAll, beforeAll } from 'vitest';
import { startOidcSandbox, type OidcSandbox, type OidcSandboxOptions } from './oidc-sandbox.ts';
import type { PortalClient } from './portal-client.ts';

/** Registers the file's hooks; the returned function gives the running sandbox inside tests. */
export function useOidcSandbox(options: OidcSandboxOptions = {}): () => OidcSandbox {
  let sandbox: OidcSandbox | undefined;
  beforeAll(async () => {
    sandbox = await startOidcSandbox(options);
  }, 180_000);
  afterAll(async () => {
    await sandbox?.close();
  });
  return () => {
    if (!sandbox) throw new Error('the OIDC sandbox is not running: use it inside tests only');
    return sandbox;
  };
}

/** The ids of the requests the signed-in client may see, from the portal's JSON answer. */
export async function visibleRequestIds(client: PortalClient): Promise<string[]> {
  const response = await client.get('/portal/requests', { accept: 'application/json' });
  if (response.status !== 200) throw new Error(`the requests page answered ${response.status}`);
  const body = (await response.json()) as { requests: Array<{ id: string }> };
  return body.requests.map((r) => r.id);
}
