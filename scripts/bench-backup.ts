/**
 * Backup and restore of one disk by ACBA and by restic, in one run on this
 * machine, with the ratios between them. Not a test: it prints figures.
 *
 *   npm run bench [-- --size-gib 2] [-- --memory-gib 8] [-- --pglite] [-- --profile DIR]
 *
 * The disk holds ext4 with mixed data and empty space (see bench-disk.ts). It
 * becomes a VM of the sandbox; ACBA backs it up through the sandbox's ARM and
 * disk endpoints into its repository on Azurite (bench-backup-engine.ts, in a
 * process of its own), restic backs up the same raw file into a local
 * repository. Then about 5% of the used blocks change and both back it up
 * again, and both restore the second backup to a file. With --memory-gib,
 * ACBA also backs up a larger disk of the same make-up, to show that its peak
 * memory does not grow with the disk.
 *
 * The engine's database is a new one on the PostgreSQL server at
 * ACBA_BENCH_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/postgres),
 * dropped afterwards; --pglite uses the embedded PostgreSQL instead, whose
 * memory then counts against the engine. --profile DIR writes a CPU profile
 * of each engine step there (open it in Chrome's DevTools).
 */
import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs, promisify } from 'node:util';
import { addVm } from '../sandbox/added-vms.ts';
import { createScratchDatabase } from '../test/support/database.ts';
import { ensureSandboxCa, startSandbox, type Sandbox } from '../sandbox/index.ts';
import type { EngineStep, EngineStepResult } from './bench-backup-engine.ts';
import { changeUsedBlocks, fileSha256, layoutFor, makeBenchDisk } from './bench-disk.ts';

const run = promisify(execFile);
const GiB = 1024 ** 3;
const MiB = 1024 ** 2;

const { values: args } = parseArgs({
  options: {
    'size-gib': { type: 'string', default: '2' },
    'memory-gib': { type: 'string', default: '8' },
    pglite: { type: 'boolean', default: false },
    profile: { type: 'string' },
  },
});
const sizeGib = Number(args['size-gib']);
const memoryGib = Number(args['memory-gib']);
if (!Number.isInteger(sizeGib) || sizeGib < 1 || !Number.isInteger(memoryGib) || memoryGib < 0) {
  console.error('--size-gib must be a whole number of GiB (at least 1), --memory-gib 0 or more');
  process.exit(1);
}

await run('restic', ['version']).catch(() => {
  console.error('restic is not installed; install it with `sudo apt-get install restic` (Debian).');
  process.exit(1);
});

const workDir = await fs.mkdtemp(path.join(os.tmpdir(), 'acba-bench-'));
const tlsDir = path.join(workDir, 'tls');
const { caCertPath } = ensureSandboxCa(tlsDir);
const database = args.pglite
  ? undefined
  : await createScratchDatabase(
      process.env.ACBA_BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres',
      'acba_bench',
    );
const kekHex = randomBytes(32).toString('hex');
const signingKeyHex = randomBytes(32).toString('hex');
const resticEnv = {
  ...process.env,
  RESTIC_REPOSITORY: path.join(workDir, 'restic'),
  RESTIC_PASSWORD: 'benchmark',
  RESTIC_CACHE_DIR: path.join(workDir, 'restic-cache'),
};

let sandbox: Sandbox | undefined;
try {
  console.log(`acba bench: making a ${sizeGib} GiB disk with ext4 and mixed data`);
  const image = path.join(workDir, 'disk.raw');
  await makeBenchDisk(workDir, layoutFor(sizeGib * GiB), image);

  sandbox = await startSandbox({
    dataDir: workDir,
    armPort: 0,
    blobPort: 0,
    tlsDir,
    imageCacheDir: path.resolve('data/sandbox/images'),
  });
  const vm = await addVm(workDir, { name: 'bench-01', disks: [image] });
  const disk = vm.disks[0]!.file;
  await fs.rm(image);

  console.log('acba bench: first backups');
  const acba1 = await engineStep(sandbox, { step: 'backup', vmName: 'bench-01' });
  await run('restic', ['init', '--repository-version', '2'], { env: resticEnv });
  const restic1 = await resticBackup(disk);

  const changedBytes = await changeUsedBlocks(disk, 0.05);
  console.log(`acba bench: changed ${mib(changedBytes)} MiB of used blocks; second backups`);
  const acba2 = await engineStep(sandbox, { step: 'backup', vmName: 'bench-01' });
  const restic2 = await resticBackup(disk);

  console.log('acba bench: restores of the second backup');
  const sourceHash = await fileSha256(disk);
  const acbaTarget = path.join(workDir, 'acba-restore.raw');
  const acbaRestore = await engineStep(sandbox, {
    step: 'restore',
    vmName: 'bench-01',
    target: acbaTarget,
  });
  if ((await fileSha256(acbaTarget)) !== sourceHash)
    throw new Error('ACBA restored a disk that differs from the source.');
  await fs.rm(acbaTarget);
  const resticRestore = await resticRestoreLatest(path.join(workDir, 'restic-restore'));
  const resticFile = path.join(workDir, 'restic-restore', disk);
  if ((await fileSha256(resticFile)) !== sourceHash)
    throw new Error('restic restored a disk that differs from the source.');
  await fs.rm(path.join(workDir, 'restic-restore'), { recursive: true });

  const acbaRepository = await containerBytes(sandbox, 'acba-bench');
  const resticRepository = await folderBytes(path.join(workDir, 'restic'));

  let large: EngineStepResult | undefined;
  if (memoryGib > 0) {
    console.log(`acba bench: a ${memoryGib} GiB disk of the same make-up, for ACBA's memory`);
    const largeImage = path.join(workDir, 'large.raw');
    await makeBenchDisk(workDir, layoutFor(memoryGib * GiB), largeImage);
    await addVm(workDir, { name: 'bench-02', disks: [largeImage] });
    await fs.rm(largeImage);
    large = await engineStep(sandbox, { step: 'backup', vmName: 'bench-02' });
  }

  const diskBytes = acba1.diskBytes;
  const rows: Array<[string, string, string, string]> = [
    ['', 'ACBA', 'restic', 'ratio'],
    throughputRow('first backup', diskBytes, acba1.seconds, restic1.seconds),
    throughputRow('second backup', diskBytes, acba2.seconds, restic2.seconds),
    [
      'read on second backup',
      `${mib(acba2.readBytes!)} MiB (${ratio(acba2.readBytes!, changedBytes)}× changed)`,
      `${mib(diskBytes)} MiB (${ratio(diskBytes, changedBytes)}× changed)`,
      `${ratio(diskBytes, acba2.readBytes!)}× less`,
    ],
    [
      'repository size',
      `${mib(acbaRepository)} MiB`,
      `${mib(resticRepository)} MiB`,
      `${ratio(resticRepository, acbaRepository)}× smaller`,
    ],
    throughputRow('restore', diskBytes, acbaRestore.seconds, resticRestore.seconds),
    [
      'peak memory, first backup',
      `${mib(acba1.peakRssBytes)} MiB (${mib(acba1.startRssBytes)} loaded)`,
      `${mib(restic1.peakRssBytes)} MiB`,
      '',
    ],
    [
      'peak memory, restore',
      `${mib(acbaRestore.peakRssBytes)} MiB (${mib(acbaRestore.startRssBytes)} loaded)`,
      `${mib(resticRestore.peakRssBytes)} MiB`,
      '',
    ],
  ];
  if (large) {
    rows.push([
      `peak memory, ${memoryGib} GiB disk`,
      `${mib(large.peakRssBytes)} MiB (${mib(large.startRssBytes)} loaded)`,
      '',
      `${ratio(large.peakRssBytes, acba1.peakRssBytes)}× the ${sizeGib} GiB disk's`,
    ]);
  }
  console.log(
    `\n${sizeGib} GiB disk, ${mib(changedBytes)} MiB changed between backups, ${os.cpus().length} cores, database ${database ? 'PostgreSQL server' : 'PGlite'}\n`,
  );
  const widths = [0, 1, 2, 3].map((c) => Math.max(...rows.map((r) => r[c]!.length)));
  for (const row of rows) console.log(row.map((cell, c) => cell.padEnd(widths[c]!)).join('  '));
} finally {
  await sandbox?.close();
  await database?.drop();
  await fs.rm(workDir, { recursive: true, force: true });
}

function throughputRow(
  label: string,
  bytes: number,
  acbaSeconds: number,
  resticSeconds: number,
): [string, string, string, string] {
  const perSecond = (seconds: number) => `${Math.round(bytes / MiB / seconds)} MiB/s`;
  return [
    label,
    `${perSecond(acbaSeconds)} (${acbaSeconds.toFixed(1)} s)`,
    `${perSecond(resticSeconds)} (${resticSeconds.toFixed(1)} s)`,
    `${ratio(resticSeconds, acbaSeconds)}× restic`,
  ];
}

function mib(bytes: number): string {
  return (bytes / MiB).toFixed(bytes < 10 * MiB ? 1 : 0);
}

function ratio(a: number, b: number): string {
  return b === 0 ? '∞' : (a / b).toFixed(2);
}

/** Runs one engine step in its own Node.js process and returns what it printed. */
async function engineStep(
  sandbox: Sandbox,
  step: Pick<EngineStep, 'step' | 'vmName' | 'target'>,
): Promise<EngineStepResult> {
  const customer = sandbox.seed.customers[0]!;
  const config: EngineStep = {
    ...step,
    databaseUrl: database?.url,
    databaseDir: path.join(workDir, 'engine-db'),
    workDir: path.join(workDir, 'engine-work'),
    armUrl: sandbox.armUrl,
    authorityHost: sandbox.authorityHost,
    servicePrincipal: sandbox.servicePrincipal,
    repositoryConnectionString: sandbox.repositoryConnectionString,
    kekHex,
    signingKeyHex,
    customer: {
      id: customer.id,
      name: customer.name,
      tenantId: customer.tenantId,
      subscriptionId: customer.subscriptionId,
    },
  };
  const profile = args.profile ? ['--cpu-prof', '--cpu-prof-dir', path.resolve(args.profile)] : [];
  const script = ['--import', 'tsx', ...profile, 'scripts/bench-backup-engine.ts'];
  const child = spawn(process.execPath, script, {
    env: {
      ...process.env,
      NODE_EXTRA_CA_CERTS: caCertPath,
      ACBA_BENCH_STEP: JSON.stringify(config),
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
  if (code !== 0) throw new Error(`The engine's ${step.step} step ended with exit code ${code}.`);
  return JSON.parse(output.trim().split('\n').at(-1)!) as EngineStepResult;
}

interface ResticResult {
  seconds: number;
  peakRssBytes: number;
}

/** Runs restic under GNU time for its wall-clock time and peak memory. */
async function timedRestic(resticArgs: string[]): Promise<ResticResult> {
  const { stderr } = await run('/usr/bin/time', ['-f', 'bench %e %M', 'restic', ...resticArgs], {
    env: resticEnv,
    maxBuffer: 64 * MiB,
  });
  const line = stderr.split('\n').find((l) => l.startsWith('bench '));
  if (!line) throw new Error(`GNU time printed no figures for restic ${resticArgs[0]}.`);
  const [, seconds, kib] = line.split(' ');
  return { seconds: Number(seconds), peakRssBytes: Number(kib) * 1024 };
}

function resticBackup(file: string): Promise<ResticResult> {
  return timedRestic(['backup', '--quiet', '--host', 'bench', file]);
}

function resticRestoreLatest(target: string): Promise<ResticResult> {
  return timedRestic(['restore', 'latest', '--quiet', '--target', target]);
}

async function containerBytes(sandbox: Sandbox, container: string): Promise<number> {
  const { BlobServiceClient } = await import('@azure/storage-blob');
  const client = BlobServiceClient.fromConnectionString(sandbox.repositoryConnectionString);
  let total = 0;
  for await (const blob of client.getContainerClient(container).listBlobsFlat()) {
    total += blob.properties.contentLength ?? 0;
  }
  return total;
}

async function folderBytes(folder: string): Promise<number> {
  let total = 0;
  for (const entry of await fs.readdir(folder, { recursive: true, withFileTypes: true })) {
    if (entry.isFile()) total += (await fs.stat(path.join(entry.parentPath, entry.name))).size;
  }
  return total;
}
