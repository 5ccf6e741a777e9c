/**
 * `acba snapshot create ITEM`, `acba snapshot list [ITEM] [--json]` and
 * `acba snapshot delete ID`: an operator's manual snapshots of a VM that a
 * policy protects. They are kept in the VM's resource group until deleted
 * here; retention never removes them.
 *
 * The command talks to Azure itself. In sandbox mode that is the sandbox of
 * a running `acba serve` (its HTTPS port and CA), so that process must run.
 */
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ClientSecretCredential, DefaultAzureCredential } from '@azure/identity';
import type { AuditActor } from '../core/audit.ts';
import type { Config } from '../core/config.ts';
import { openDatabase } from '../core/db/database.ts';
import { badInput } from '../core/errors.ts';
import { createLogger } from '../core/log.ts';
import { createComputeClient, createVhdBlobs } from '../engine/azure.ts';
import {
  createManualSnapshot,
  deleteManualSnapshot,
  listManualSnapshots,
} from '../engine/vm-snapshots.ts';
import { ensureSandboxCa } from '../sandbox/index.ts';
import { buildSeed } from '../sandbox/seed.ts';
import { rerunTrusting } from './serve-command.ts';

const usage =
  'use "acba snapshot create ITEM", "acba snapshot list [ITEM] [--json]" or "acba snapshot delete ID"';

export async function snapshotCommand(config: Config, argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const { values, positionals } = parseArgs({
    args: rest,
    options: { json: { type: 'boolean' } },
    allowPositionals: true,
  });
  if (sub !== 'create' && sub !== 'list' && sub !== 'delete')
    throw badInput(`unknown snapshot command "${sub ?? ''}"; ${usage}.`);
  if (sub !== 'list' && positionals.length !== 1)
    throw badInput(
      sub === 'create'
        ? 'name one VM (its name or item id): acba snapshot create ITEM'
        : 'name one manual snapshot (its restore point id): acba snapshot delete ID',
    );
  if (sub !== 'list' && config.sandbox.enabled) {
    const { caCertPath } = await ensureSandboxCa(path.join(config.dataDir, 'sandbox', 'tls'));
    if (process.env.NODE_EXTRA_CA_CERTS !== caCertPath) return rerunTrusting(caCertPath);
  }

  const log = createLogger({ level: config.logLevel });
  const handle = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir });
  try {
    if (sub === 'list') {
      const points = await listManualSnapshots(handle.db, positionals[0]);
      if (values.json) process.stdout.write(`${JSON.stringify(points, null, 2)}\n`);
      else if (points.length === 0) process.stdout.write('No manual snapshots.\n');
      else
        for (const p of points)
          process.stdout.write(
            `${p.id}  item ${p.item_id}  ${p.created_at.toISOString()}  policy ${p.policy_name}  ${p.disks.length} disk(s)\n`,
          );
      return 0;
    }

    const deps = { db: handle.db, log, ...azureFor(config) };
    if (sub === 'create') {
      const point = await createManualSnapshot(deps, positionals[0]!, operatorActor());
      if (values.json) process.stdout.write(`${JSON.stringify(point)}\n`);
      else
        process.stdout.write(
          `Manual snapshot ${point.id} of item ${point.item_id} taken (${point.disks.length} disk(s)); it stays until "acba snapshot delete ${point.id}".\n`,
        );
      return 0;
    }
    await deleteManualSnapshot(deps, positionals[0]!, operatorActor());
    process.stdout.write(`Manual snapshot ${positionals[0]} deleted.\n`);
    return 0;
  } finally {
    await handle.close();
  }
}

/** Compute and VHD blob clients from the Azure settings, or for the sandbox of a running `acba serve`. */
function azureFor(config: Config) {
  let credential;
  let endpoint = config.azure.resourceManagerUrl;
  if (config.sandbox.enabled) {
    const { application } = buildSeed();
    endpoint = `https://localhost:${config.sandbox.armPort}`;
    credential = new ClientSecretCredential(
      application.tenantId,
      application.clientId,
      application.clientSecret,
      { authorityHost: endpoint, disableInstanceDiscovery: true },
    );
  } else {
    const { tenantId, clientId, clientSecret, authorityHost } = config.azure;
    credential =
      tenantId && clientId && clientSecret
        ? new ClientSecretCredential(
            tenantId,
            clientId,
            clientSecret,
            authorityHost ? { authorityHost } : {},
          )
        : new DefaultAzureCredential();
  }
  return {
    compute: (subscriptionId: string) =>
      createComputeClient({ credential, subscriptionId, endpoint }),
    vhdBlobs: createVhdBlobs({ credential, resourceManagerUrl: endpoint }),
  };
}

/** The operator at this terminal, as the audit log names them. */
function operatorActor(): AuditActor {
  const user = os.userInfo().username;
  return {
    objectId: `cli:${user}`,
    tenantId: 'acba',
    name: `${user} (acba CLI)`,
    role: 'operator',
  };
}
