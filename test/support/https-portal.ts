/**
 * A second portal on the OIDC sandbox's database and identity provider, over
 * HTTPS with secure cookies, as a production installation with an https
 * ACBA_PUBLIC_URL runs it: the session cookie is SameSite=None, Secure and
 * Partitioned, which a portal inside Teams' frame needs.
 */
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { silentLogger } from '../../core/log.ts';
import { createPortal } from '../../portal/index.ts';
import { OidcSignIn } from '../../portal/oidc.ts';
import { entraFetch, entraHost } from '../../sandbox/identity.ts';
import { buildSeed } from '../../sandbox/seed.ts';
import { ensureServerCertificate } from '../../sandbox/tls.ts';
import type { OidcSandbox } from './oidc-sandbox.ts';

export interface HttpsPortal {
  /** e.g. https://localhost:43211, with the portal under /portal. */
  url: string;
  close(): Promise<void>;
}

export async function startHttpsPortal(sandbox: OidcSandbox): Promise<HttpsPortal> {
  const cert = ensureServerCertificate('test/.cache/tls');
  const app = express();
  const server = https.createServer({ cert: cert.certPem, key: cert.keyPem }, app);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `https://localhost:${(server.address() as AddressInfo).port}`;

  // The seed is deterministic: the same application the sandbox's identity provider knows.
  const { application } = buildSeed();
  const oidc = new OidcSignIn({
    issuer: `${entraHost}/organizations/v2.0`,
    clientId: application.clientId,
    clientSecret: application.clientSecret,
    redirectUri: `${url}/portal/sign-in/callback`,
    fetch: entraFetch(sandbox.identityUrl),
  });
  app.use(
    '/portal',
    createPortal({
      db: sandbox.database.db,
      log: silentLogger,
      providerTenantId: sandbox.providerTenantId,
      sessionSecret: Buffer.alloc(32, 3),
      secureCookies: true,
      verifyAudit: async () => ({ ok: true, checked: 0 }),
      signIn: { mode: 'oidc', oidc },
    }),
  );

  return {
    url,
    async close() {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
