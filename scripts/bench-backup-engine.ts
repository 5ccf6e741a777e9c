/**
 * One step of the backup benchmark on ACBA's side, in a process of its own so
 * that its peak memory is the engine's alone: `backup` runs the engine's
 * backup of the benchmark VM through the sandbox's ARM and disk endpoints into
 * the repository on Azurite; `restore` reads the newest restore point's disk
 * back through the engine's byte-range resource into a file, as a disk
 * restore does. Prints one JSON line with the figures; run by bench-backup.ts.
 */
import { once } from 'node:events';
import { createWriteStream } from 'node:fs';
import fs from 'node:fs/promises';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ClientSecretCredential } from '@azure/identity';
import express from 'express';
import pino from 'pino';
import { openDatabase } from '../core/db/database.ts';
import { LinkSigner } from '../core/signing.ts';
import { createEngine } from '../engine/engine.ts';
import { noNotices } from '../engine/notices.ts';

/** What bench-backup.ts hands each step, as JSON in ACBA_BENCH_STEP. */
export interface EngineStep {
  step: 'backup' | 'restore';
  databaseUrl?: string;
  databaseDir: string;
  workDir: string;
  armUrl: string;
  authorityHost: string;
  servicePrincipal: { tenantId: string; clientId: string; clientSecret: string };
  repositoryConnectionString: string;
  kekHex: string;
  signingKeyHex: string;
  customer: { id: string; name: string; tenantId: string; subscriptionId: string };
  vmName: string;
  /** restore: where the disk is written. */
  target?: string;
}

/** What a step prints. */
export interface EngineStepResult {
  seconds: number;
  diskBytes: number;
  /** backup: bytes downloaded from the snapshot. */
  readBytes?: number;
  /** backup: bytes the repository gained. */
  storedBytes?: number;
  peakRssBytes: number;
  /** Resident memory once the engine is loaded, before the step's work. */
  startRssBytes: number;
}

const config = JSON.parse(process.env.ACBA_BENCH_STEP ?? '{}') as EngineStep;

// The engine logs each disk it reads with the bytes it downloaded; the benchmark keeps that figure.
let readBytes = 0;
const log = pino(
  { level: 'info' },
  new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) {
        if (!/"msg":"disk_read(_incremental)?"/.test(line)) continue;
        readBytes += (JSON.parse(line) as { readBytes: number }).readBytes;
      }
      done();
    },
  }),
);

const database = await openDatabase({ url: config.databaseUrl, dataDir: config.databaseDir });
const signer = new LinkSigner(Buffer.from(config.signingKeyHex, 'hex'));
const app = express();
const server = app.listen(0, '127.0.0.1');
await once(server, 'listening');
const baseUrl = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;

const engine = await createEngine({
  db: database.db,
  log,
  credential: new ClientSecretCredential(
    config.servicePrincipal.tenantId,
    config.servicePrincipal.clientId,
    config.servicePrincipal.clientSecret,
    { authorityHost: config.authorityHost, disableInstanceDiscovery: true },
  ),
  resourceManagerUrl: config.armUrl,
  repository: {
    connectionString: config.repositoryConnectionString,
    container: 'acba-bench',
    kek: Buffer.from(config.kekHex, 'hex'),
  },
  signer,
  publicUrl: baseUrl,
  diskResourceUrl: `${baseUrl}/engine`,
  downloadLinkMinutes: 60,
  notices: noNotices,
  workDir: config.workDir,
  azurePollIntervalMs: 50,
});
app.use('/engine', engine.diskRouter());

try {
  const result = config.step === 'backup' ? await backup() : await restore();
  process.stdout.write(`${JSON.stringify(result)}\n`);
} finally {
  await engine.close();
  server.closeAllConnections();
  server.close();
  await database.close();
}

async function backup(): Promise<EngineStepResult> {
  await database.db
    .insertInto('customers')
    .values({
      id: config.customer.id,
      name: config.customer.name,
      tenant_id: config.customer.tenantId,
      subscription_id: config.customer.subscriptionId,
    })
    .onConflict((oc) => oc.column('id').doNothing())
    .execute();
  const customer = await database.db
    .selectFrom('customers')
    .selectAll()
    .where('id', '=', config.customer.id)
    .executeTakeFirstOrThrow();
  const items = await engine.syncInventory(customer);
  const item = items.find((i) => i.name === config.vmName);
  if (!item) throw new Error(`The sandbox has no VM ${config.vmName}.`);

  const startRssBytes = process.memoryUsage().rss;
  const started = process.hrtime.bigint();
  const restorePoint = await engine.backupVm(item.id, 'benchmark');
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;

  return {
    seconds,
    diskBytes: Number(restorePoint.size_bytes),
    readBytes,
    storedBytes: Number(restorePoint.stored_bytes),
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
    startRssBytes,
  };
}

async function restore(): Promise<EngineStepResult> {
  const newest = await database.db
    .selectFrom('restore_points')
    .select(['id', 'size_bytes'])
    .orderBy('created_at', 'desc')
    .executeTakeFirstOrThrow();
  const token = signer.sign({
    purpose: 'disk',
    subject: `${newest.id}/0`,
    expiresAt: Date.now() + 3600 * 1000,
  });

  const startRssBytes = process.memoryUsage().rss;
  const started = process.hrtime.bigint();
  const response = await new Promise<http.IncomingMessage>((resolve, reject) =>
    http.get(`${baseUrl}/engine/disks/${token}/disk.raw`, resolve).on('error', reject),
  );
  if (response.statusCode !== 200)
    throw new Error(`The disk resource answered ${response.statusCode}.`);
  await pipeline(response, createWriteStream(config.target!));
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;

  return {
    seconds,
    diskBytes: (await fs.stat(config.target!)).size,
    peakRssBytes: process.resourceUsage().maxRSS * 1024,
    startRssBytes,
  };
}
