/**
 * The sandbox's identity stand-in over HTTPS (with the test CA that
 * global-setup makes every worker trust) in front of a real portal and API on
 * an embedded database seeded with the sandbox's people, plus a second
 * customer, Northwind, whose data nobody from Contoso may see.
 */
import { createHash, randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import https from 'node:https';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import express from 'express';
import { importJWK, SignJWT, type JWK, type JWTPayload } from 'jose';
import { createApprovals, type Approvals, type RoleMapping } from '../../approvals/index.ts';
import { seedFromSandbox } from '../../cli/sandbox-seed.ts';
import type { Decision, RequestRow } from '../../core/db/schema.ts';
import type { JobQueue } from '../../engine/queue.ts';
import { silentLogger } from '../../core/log.ts';
import { createApi } from '../../portal/api/index.ts';
import { createPortal } from '../../portal/index.ts';
import { OidcSignIn } from '../../portal/oidc.ts';
import { entraFetch, entraHost, IdentityProvider } from '../../sandbox/identity.ts';
import { buildSeed, type SandboxUser } from '../../sandbox/seed.ts';
import { ensureServerCertificate } from '../../sandbox/tls.ts';
import { openTestDatabase, tempDir, type TestDatabase } from './database.ts';

export interface OidcSandbox {
  portalUrl: string;
  identityUrl: string;
  clientId: string;
  users: SandboxUser[];
  user(name: string): SandboxUser;
  providerTenantId: string;
  database: TestDatabase;
  /** An access token for the person, obtained through the login page and the code grant. */
  accessToken(name: string): Promise<string>;
  /** The approval workflow behind the portal and the API, when started with `approvals: true`. */
  approvals?: Approvals;
  /** Decisions the portal and the API announced to Teams, in order. */
  announced: Array<{ request: RequestRow; decision: Decision }>;
  /** A token signed with the stand-in's own key, for tokens it would never issue. */
  signWithIdentityKey(claims: JWTPayload, header?: { expired?: boolean }): Promise<string>;
  close(): Promise<void>;
}

export interface OidcSandboxOptions {
  /** Lets approvers decide in the portal and the API (approved work goes to a queue that only counts). */
  approvals?: boolean;
  /** Maps the tokens' app roles and groups to ACBA roles at every sign-in. */
  roleMapping?: RoleMapping;
}

export async function startOidcSandbox(options: OidcSandboxOptions = {}): Promise<OidcSandbox> {
  const world = buildSeed();
  const stateDir = await tempDir('acba-oidc-');
  const cert = ensureServerCertificate('test/.cache/tls');
  const server = https.createServer({ cert: cert.certPem, key: cert.keyPem });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const identityUrl = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const customerName = (tenantId: string) =>
    world.seed.customers.find((c) => c.tenantId === tenantId)?.name ?? world.seed.provider.name;
  const identity = await IdentityProvider.open({
    baseUrl: identityUrl,
    stateDir,
    tenantIds: [world.seed.provider.tenantId, ...world.seed.customers.map((c) => c.tenantId)],
    application: world.application,
    users: world.seed.users.map((u) => ({ ...u, organization: customerName(u.tenantId) })),
  });
  const idp = express();
  idp.use(identity.router());
  server.on('request', idp);

  const database = await openTestDatabase();
  await seedFromSandbox(database.db, world.seed);
  await seedNorthwind(database);

  const app = express();
  const portalServer = app.listen(0);
  await new Promise((resolve) => portalServer.once('listening', resolve));
  const portalUrl = `http://localhost:${(portalServer.address() as AddressInfo).port}`;
  const oidc = new OidcSignIn({
    issuer: `${entraHost}/organizations/v2.0`,
    clientId: world.application.clientId,
    clientSecret: world.application.clientSecret,
    redirectUri: `${portalUrl}/portal/sign-in/callback`,
    fetch: entraFetch(identityUrl),
  });
  const providerTenantId = world.seed.provider.tenantId;
  const verifyAudit = async () => ({ ok: true, checked: 0 });
  const announced: OidcSandbox['announced'] = [];
  const approvals = options.approvals
    ? createApprovals({ db: database.db, log: silentLogger, queue: idleQueue, providerTenantId })
    : undefined;
  const decisions = approvals && {
    approvals,
    announce: async (request: RequestRow, decision: Decision) => {
      announced.push({ request, decision });
    },
  };
  app.use(
    '/api/v1',
    createApi({
      db: database.db,
      log: silentLogger,
      providerTenantId,
      verifyAudit,
      oidc,
      decisions,
      roleMapping: options.roleMapping,
    }),
  );
  app.use(
    '/portal',
    createPortal({
      db: database.db,
      log: silentLogger,
      providerTenantId,
      sessionSecret: Buffer.alloc(32, 9),
      secureCookies: false,
      verifyAudit,
      signIn: { mode: 'oidc', oidc },
      decisions,
      roleMapping: options.roleMapping,
    }),
  );

  const user = (name: string) => {
    const found = world.seed.users.find((u) => u.displayName === name);
    if (!found) throw new Error(`no seeded user ${name}`);
    return found;
  };
  const keyFile = path.join(stateDir, 'identity-signing-key.json');

  return {
    portalUrl,
    identityUrl,
    clientId: world.application.clientId,
    users: world.seed.users,
    user,
    providerTenantId,
    database,
    approvals,
    announced,
    async accessToken(name) {
      const verifier = randomBytes(32).toString('base64url');
      const redirectUri = 'http://localhost/callback';
      const authorize = new URL(`${identityUrl}/organizations/oauth2/v2.0/authorize`);
      authorize.search = new URLSearchParams({
        client_id: world.application.clientId,
        redirect_uri: redirectUri,
        response_type: 'code',
        scope: 'openid profile',
        state: 's',
        nonce: 'n',
        code_challenge: createHash('sha256').update(verifier).digest('base64url'),
        code_challenge_method: 'S256',
      }).toString();
      const picked = await fetch(authorize, {
        method: 'POST',
        redirect: 'manual',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          ...Object.fromEntries(authorize.searchParams),
          login_oid: user(name).objectId,
        }).toString(),
      });
      const code = new URL(picked.headers.get('location')!).searchParams.get('code')!;
      const token = await fetch(`${identityUrl}/organizations/oauth2/v2.0/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({
          grant_type: 'authorization_code',
          client_id: world.application.clientId,
          client_secret: world.application.clientSecret,
          code,
          redirect_uri: redirectUri,
          code_verifier: verifier,
        }).toString(),
      });
      const body = (await token.json()) as { access_token: string };
      return body.access_token;
    },
    async signWithIdentityKey(claims, options = {}) {
      const key = JSON.parse(await fs.readFile(keyFile, 'utf8')) as {
        kid: string;
        privateJwk: JWK;
      };
      const now = Math.floor(Date.now() / 1000) - (options.expired ? 7200 : 0);
      return new SignJWT(claims)
        .setProtectedHeader({ alg: 'RS256', kid: key.kid })
        .setIssuedAt(now)
        .setExpirationTime(now + 3600)
        .sign(await importJWK(key.privateJwk, 'RS256'));
    },
    async close() {
      portalServer.closeAllConnections();
      server.closeAllConnections();
      await Promise.all([
        new Promise((resolve) => portalServer.close(resolve)),
        new Promise((resolve) => server.close(resolve)),
      ]);
      await database.dispose();
      await fs.rm(stateDir, { recursive: true, force: true });
    },
  };
}

/** Approved work goes nowhere: these tests are about deciding, not running. */
const idleQueue: JobQueue = {
  enqueueFileRestore: async () => {},
  enqueueBackup: async () => {},
};

/** A second customer with a VM, a restore point, a request and an audit entry. */
async function seedNorthwind(database: TestDatabase): Promise<void> {
  const db = database.db;
  await db
    .insertInto('customers')
    .values({
      id: 'northwind',
      name: 'Northwind',
      tenant_id: 'b0b0b0b0-0000-4000-8000-000000000001',
      subscription_id: 'sub-nw',
    })
    .execute();
  await db
    .insertInto('protected_items')
    .values([
      {
        id: 'item-nw',
        customer_id: 'northwind',
        kind: 'vm',
        name: 'nw-sql-01',
        resource_id: '/subs/nw/vm/sql01',
      },
      {
        id: 'item-co',
        customer_id: 'contoso',
        kind: 'vm',
        name: 'web-01',
        resource_id: '/subs/co/vm/web01',
      },
    ])
    .execute();
  const point = (id: string, customer: string, item: string) => ({
    id,
    customer_id: customer,
    item_id: item,
    created_at: '2026-11-30T02:00:00Z',
    expires_at: '2027-01-30T02:00:00Z',
    manifest_path: `m/${id}`,
    disks: JSON.stringify([
      { name: `${id}-os`, role: 'os', sizeBytes: 2 ** 30, storedBytes: 2 ** 28 },
    ]),
    size_bytes: 2 ** 30,
    stored_bytes: 2 ** 28,
  });
  await db
    .insertInto('restore_points')
    .values([point('rp-nw', 'northwind', 'item-nw'), point('rp-co', 'contoso', 'item-co')])
    .execute();
  const request = (id: string, customer: string, tenant: string, who: string) => ({
    id,
    customer_id: customer,
    kind: 'file_restore' as const,
    status: 'pending' as const,
    target: JSON.stringify({
      itemId: 'x',
      vmName: 'vm',
      path: '/etc/hosts',
      restorePointId: 'rp',
      restorePointTime: '2026-11-30T02:00:00Z',
    }),
    reason: `${who} needs the file back`,
    requester_object_id: `oid-${who}`,
    requester_tenant_id: tenant,
    requester_name: who,
    content_hash: `hash-${id}`,
    approvals_required: 1,
    created_at: new Date('2026-12-01T10:00:00Z') as never,
    expires_at: '2099-01-01T00:00:00Z',
    approval_card: JSON.stringify({ activityId: 'secret-delivery-detail' }) as never,
  });
  await db
    .insertInto('requests')
    .values([
      request('req-nw', 'northwind', 'b0b0b0b0-0000-4000-8000-000000000001', 'Nina Northwind'),
      request('req-co', 'contoso', 'contoso-tenant', 'Alex Wilber'),
    ])
    .execute();
  await db
    .insertInto('audit_log')
    .values({
      at: '2026-12-01T10:00:00Z',
      actor_object_id: 'oid-nina',
      actor_tenant_id: 'b0b0b0b0-0000-4000-8000-000000000001',
      actor_name: 'Nina Northwind',
      actor_role: 'requester',
      channel: 'bot' as const,
      action: 'request.create.northwind',
      resource: 'request/req-nw',
      outcome: 'success' as const,
      details: JSON.stringify({ customerId: 'northwind' }),
      prev_hash: 'h0',
      hash: 'h1',
    })
    .execute();
}
