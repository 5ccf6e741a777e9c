/**
 * The sandbox's own certificate authority and the server certificate it signs.
 *
 * Clients trust the sandbox the way they would trust any private CA: the CA
 * certificate is handed to Node through NODE_EXTRA_CA_CERTS before the process
 * starts, so the real Azure SDKs verify TLS as usual and no code path turns
 * verification off. Everything here is synchronous (it shells out to the
 * `openssl` CLI) so that a test setup or a CLI can prepare the CA before it
 * spawns the processes that need it.
 *
 * A TLS folder holds `ca.pem`, `ca-key.pem` (the key sits beside the
 * certificate, which is how startSandbox recognises a usable CA), and
 * `server.pem` / `server-key.pem` for localhost and 127.0.0.1. Files are
 * reused while valid. Several processes may race to create them (test
 * workers), so creation happens under a lock folder and each file appears by
 * rename, the certificate last.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes, X509Certificate } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

export interface SandboxCa {
  caCertPath: string;
  caCertPem: string;
  caKeyPem: string;
}

export interface ServerCertificate {
  certPem: string;
  keyPem: string;
}

const caCertName = 'ca.pem';
const caKeyName = 'ca-key.pem';
const serverCertName = 'server.pem';
const serverKeyName = 'server-key.pem';
const dayMs = 24 * 60 * 60 * 1000;

/** Creates the sandbox CA in dir unless one is already there; synchronous and idempotent. */
export function ensureSandboxCa(dir: string): SandboxCa {
  const absolute = path.resolve(dir);
  const existing = readCa(absolute);
  if (existing) return existing;

  fs.mkdirSync(absolute, { recursive: true, mode: 0o700 });
  withLockSync(absolute, () => {
    if (readCa(absolute)) return;
    generateCa(absolute);
  });

  const created = readCa(absolute);
  if (!created)
    throw new Error(
      `The sandbox CA could not be created in ${absolute}. Check that openssl is installed and the folder is writable.`,
    );
  return created;
}

/** True when dir holds a CA certificate with its key beside it. */
export function hasCaWithKey(caCertPath: string): boolean {
  const dir = path.dirname(caCertPath);
  return (
    path.basename(caCertPath) === caCertName &&
    fs.existsSync(caCertPath) &&
    fs.existsSync(path.join(dir, caKeyName))
  );
}

/** A localhost server certificate signed by the CA in dir, reused while valid for another week. */
export function ensureServerCertificate(dir: string): ServerCertificate {
  const absolute = path.resolve(dir);
  const ca = ensureSandboxCa(absolute);
  const existing = readServerCertificate(absolute, ca);
  if (existing) return existing;

  withLockSync(absolute, () => {
    if (readServerCertificate(absolute, ca)) return;
    generateServerCertificate(absolute);
  });

  const created = readServerCertificate(absolute, ca);
  if (!created)
    throw new Error(`The sandbox server certificate could not be created in ${absolute}.`);
  return created;
}

function readCa(dir: string): SandboxCa | undefined {
  const caCertPath = path.join(dir, caCertName);
  try {
    const caKeyPem = fs.readFileSync(path.join(dir, caKeyName), 'utf8');
    const caCertPem = fs.readFileSync(caCertPath, 'utf8');
    return { caCertPath, caCertPem, caKeyPem };
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }
}

function readServerCertificate(dir: string, ca: SandboxCa): ServerCertificate | undefined {
  let certPem: string;
  let keyPem: string;
  try {
    keyPem = fs.readFileSync(path.join(dir, serverKeyName), 'utf8');
    certPem = fs.readFileSync(path.join(dir, serverCertName), 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw error;
  }

  // A certificate from an earlier CA, or one about to expire, is replaced.
  const cert = new X509Certificate(certPem);
  const caCert = new X509Certificate(ca.caCertPem);
  const signedByCa = cert.checkIssued(caCert) && cert.verify(caCert.publicKey);
  const stillValid = new Date(cert.validTo).getTime() > Date.now() + 7 * dayMs;
  return signedByCa && stillValid ? { certPem, keyPem } : undefined;
}

function generateCa(dir: string): void {
  const work = fs.mkdtempSync(path.join(dir, '.ca-'));
  try {
    const key = path.join(work, caKeyName);
    const cert = path.join(work, caCertName);
    openssl([
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-sha256',
      '-days',
      '3650',
      '-keyout',
      key,
      '-out',
      cert,
      '-subj',
      '/O=ACBA Sandbox/CN=ACBA Sandbox CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE,pathlen:0',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    fs.chmodSync(key, 0o600);
    fs.renameSync(key, path.join(dir, caKeyName));
    fs.renameSync(cert, path.join(dir, caCertName));
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

function generateServerCertificate(dir: string): void {
  const work = fs.mkdtempSync(path.join(dir, '.server-'));
  try {
    const key = path.join(work, serverKeyName);
    const csr = path.join(work, 'server.csr');
    const cert = path.join(work, serverCertName);
    const extensions = path.join(work, 'extensions.cnf');
    fs.writeFileSync(
      extensions,
      [
        'basicConstraints=critical,CA:FALSE',
        'keyUsage=critical,digitalSignature,keyEncipherment',
        'extendedKeyUsage=serverAuth',
        'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1',
        '',
      ].join('\n'),
    );

    openssl([
      'req',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-keyout',
      key,
      '-out',
      csr,
      '-subj',
      '/O=ACBA Sandbox/CN=localhost',
    ]);
    openssl([
      'x509',
      '-req',
      '-sha256',
      '-days',
      '825',
      '-in',
      csr,
      '-CA',
      path.join(dir, caCertName),
      '-CAkey',
      path.join(dir, caKeyName),
      '-set_serial',
      `0x${randomBytes(16).toString('hex')}`,
      '-extfile',
      extensions,
      '-out',
      cert,
    ]);

    fs.chmodSync(key, 0o600);
    fs.renameSync(key, path.join(dir, serverKeyName));
    fs.renameSync(cert, path.join(dir, serverCertName));
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

function openssl(args: string[]): void {
  try {
    execFileSync('openssl', args, { stdio: ['ignore', 'ignore', 'pipe'] });
  } catch (error) {
    const stderr = (error as { stderr?: Buffer }).stderr?.toString().trim();
    throw new Error(
      `openssl ${args[0]} failed while creating the sandbox certificates: ${stderr || (error as Error).message}`,
    );
  }
}

/**
 * Runs fn while holding dir/.lock (a folder, created atomically). Waiters
 * sleep in short steps; a lock older than a minute is taken to be left over
 * from a crashed process.
 */
function withLockSync(dir: string, fn: () => void): void {
  const lock = path.join(dir, '.lock');
  const deadline = Date.now() + 60_000;
  const sleeper = new Int32Array(new SharedArrayBuffer(4));

  for (;;) {
    try {
      fs.mkdirSync(lock);
      break;
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    }
    const age = Date.now() - (fs.statSync(lock, { throwIfNoEntry: false })?.mtimeMs ?? Date.now());
    if (age > 60_000) fs.rmSync(lock, { recursive: true, force: true });
    if (Date.now() > deadline)
      throw new Error(`Timed out waiting for ${lock}; remove it if no other sandbox is starting.`);
    Atomics.wait(sleeper, 0, 0, 50);
  }

  try {
    fn();
  } finally {
    fs.rmSync(lock, { recursive: true, force: true });
  }
}
