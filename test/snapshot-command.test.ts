// `acba snapshot create|list|delete` as an operator runs it against the
// sandbox of a running ACBA: the manual snapshot lands in the VM's resource
// group, is listed, and goes only when deleted by its id.
import fs from 'node:fs/promises';
import path from 'node:path';
import { ClientSecretCredential } from '@azure/identity';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase } from '../core/db/database.ts';
import { createComputeClient } from '../engine/azure.ts';
import { itemIdFor } from '../engine/inventory.ts';
import { applyPolicies, parsePolicyFile } from '../engine/policies.ts';
import { startSandbox, type Sandbox } from '../sandbox/index.ts';
import { runAcba, type CliResult } from './support/cli.ts';
import { createServerDatabase, tempDir } from './support/database.ts';

let dataDir: string;
let sandbox: Sandbox;
let server: Awaited<ReturnType<typeof createServerDatabase>>;

function acba(args: string[]): Promise<CliResult> {
  return runAcba(args, {
    DATA_DIR: dataDir,
    ACBA_SANDBOX: '1',
    ACBA_SANDBOX_ARM_PORT: new URL(sandbox.armUrl).port,
    NODE_EXTRA_CA_CERTS: path.join(dataDir, 'sandbox', 'tls', 'ca.pem'),
    ...(server ? { DATABASE_URL: server.url } : {}),
  });
}

async function snapshotsInAzure(): Promise<string[]> {
  const seeded = sandbox.seed.customers[0]!;
  const compute = createComputeClient({
    credential: new ClientSecretCredential(
      sandbox.servicePrincipal.tenantId,
      sandbox.servicePrincipal.clientId,
      sandbox.servicePrincipal.clientSecret,
      { authorityHost: sandbox.authorityHost, disableInstanceDiscovery: true },
    ),
    subscriptionId: seeded.subscriptionId,
    endpoint: sandbox.armUrl,
  });
  const names: string[] = [];
  for await (const s of compute.snapshots.listByResourceGroup(seeded.resourceGroup))
    names.push(s.name!);
  return names;
}

beforeAll(async () => {
  dataDir = await tempDir('acba-snapshot-cli-');
  server = await createServerDatabase();
  // The sandbox's CA where the command looks for it: under DATA_DIR, as `acba serve` makes it.
  const tls = path.join(dataDir, 'sandbox', 'tls');
  await fs.mkdir(tls, { recursive: true });
  for (const file of ['ca.pem', 'ca-key.pem'])
    await fs.copyFile(path.join('test/.cache/tls', file), path.join(tls, file));
  sandbox = await startSandbox({
    dataDir: path.join(dataDir, 'sandbox-state'),
    armPort: 0,
    blobPort: 0,
    imageCacheDir: 'test/.cache/images',
  });

  const handle = await openDatabase({ url: server?.url, dataDir });
  const seeded = sandbox.seed.customers[0]!;
  await handle.db
    .insertInto('customers')
    .values({
      id: seeded.id,
      name: seeded.name,
      tenant_id: seeded.tenantId,
      subscription_id: seeded.subscriptionId,
    })
    .execute();
  await handle.db
    .insertInto('protected_items')
    .values(
      seeded.vms.map((vm) => ({
        id: itemIdFor(vm.resourceId),
        customer_id: seeded.id,
        kind: 'vm' as const,
        name: vm.name,
        resource_id: vm.resourceId,
      })),
    )
    .execute();
  await applyPolicies(
    handle.db,
    parsePolicyFile(
      `
name: web-daily
customer: contoso
type: backups
timeZone: UTC
items: { vms: [web-01] }
schedules:
  daily: { times: ["02:00"], retentionYears: 1 }
`,
      'web.yaml',
    ),
  );
  await handle.close();
}, 300_000);

afterAll(async () => {
  await sandbox?.close();
  await server?.drop();
  if (dataDir) await fs.rm(dataDir, { recursive: true, force: true });
});

describe('acba snapshot', () => {
  it('takes a manual snapshot of a VM in a policy, lists it, and deletes it by id', async () => {
    const created = await acba(['snapshot', 'create', 'web-01', '--json']);
    expect(created.stderr).toBe('');
    expect(created.code).toBe(0);
    const point = JSON.parse(created.stdout) as { id: string; type: string };
    expect(point.type).toBe('manual_snapshot');
    expect(await snapshotsInAzure()).toContain(`acba-${point.id}-0`);

    const listed = await acba(['snapshot', 'list', '--json']);
    expect((JSON.parse(listed.stdout) as { id: string }[]).map((p) => p.id)).toEqual([point.id]);

    const deleted = await acba(['snapshot', 'delete', point.id]);
    expect(deleted.code).toBe(0);
    expect(deleted.stdout).toBe(`Manual snapshot ${point.id} deleted.\n`);
    expect(await snapshotsInAzure()).not.toContain(`acba-${point.id}-0`);
    expect((await acba(['snapshot', 'list'])).stdout).toBe('No manual snapshots.\n');
  });

  it('refuses a VM in no policy with a one-line reason and exit code 1', async () => {
    const result = await acba(['snapshot', 'create', 'win-01']);
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^acba: VM win-01 is in no enabled policy.*\n$/);
  });
});
