/**
 * The repository's cryptography: sealed objects (AES-256-GCM with a header
 * bound in as associated data), key wrapping under the KEK, and keyed block ids.
 * See ./repository.ts for how the pieces form the on-storage format.
 */
import { createCipheriv, createDecipheriv, createHmac, randomBytes } from 'node:crypto';

/** The four bytes every sealed object starts with. */
export const OBJECT_MAGIC = Buffer.from('ACB1', 'ascii');
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
/** magic (4) + type (1) + compression (1) + nonce (12). */
export const HEADER_BYTES = OBJECT_MAGIC.length + 2 + NONCE_BYTES;
/** What sealing adds to a payload: header and GCM tag. */
export const SEAL_OVERHEAD = HEADER_BYTES + TAG_BYTES;

/** What a sealed object holds; part of the header, so a block cannot pass for a manifest. */
export enum ObjectType {
  Block = 1,
  Manifest = 2,
  Delivery = 3,
  PackIndex = 4,
  Key = 5,
}

export enum Compression {
  None = 0,
  Zstd = 1,
}

/** Raised when a sealed object fails authentication or is malformed. */
export class IntegrityError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'IntegrityError';
  }
}

/**
 * Encrypts `payload` into a sealed object. `binding` (the object's id or path)
 * is authenticated but not stored, so an object moved to another name fails to open.
 */
export function seal(
  key: Buffer,
  type: ObjectType,
  compression: Compression,
  payload: Buffer,
  binding: string,
): Buffer {
  const nonce = randomBytes(NONCE_BYTES);
  const header = Buffer.concat([OBJECT_MAGIC, Buffer.from([type, compression]), nonce]);
  const cipher = createCipheriv('aes-256-gcm', key, nonce);
  cipher.setAAD(Buffer.concat([header, Buffer.from(binding, 'utf8')]));
  const body = Buffer.concat([cipher.update(payload), cipher.final()]);
  return Buffer.concat([header, body, cipher.getAuthTag()]);
}

/** Opens a sealed object; throws IntegrityError when it was altered, moved, or sealed with another key. */
export function open(
  key: Buffer,
  expectedType: ObjectType,
  sealed: Buffer,
  binding: string,
): { compression: Compression; payload: Buffer } {
  if (
    sealed.length < SEAL_OVERHEAD ||
    !sealed.subarray(0, OBJECT_MAGIC.length).equals(OBJECT_MAGIC)
  ) {
    throw new IntegrityError(`object ${binding} is not a repository object (bad header)`);
  }
  const header = sealed.subarray(0, HEADER_BYTES);
  const type = header[OBJECT_MAGIC.length];
  const compression = header[OBJECT_MAGIC.length + 1] as Compression;
  if (type !== expectedType) {
    throw new IntegrityError(`object ${binding} has type ${type}, expected ${expectedType}`);
  }
  const nonce = header.subarray(OBJECT_MAGIC.length + 2);
  const decipher = createDecipheriv('aes-256-gcm', key, nonce);
  decipher.setAAD(Buffer.concat([header, Buffer.from(binding, 'utf8')]));
  decipher.setAuthTag(sealed.subarray(sealed.length - TAG_BYTES));
  try {
    const payload = Buffer.concat([
      decipher.update(sealed.subarray(HEADER_BYTES, sealed.length - TAG_BYTES)),
      decipher.final(),
    ]);
    return { compression, payload };
  } catch {
    throw new IntegrityError(
      `object ${binding} failed authentication: it was altered or sealed with another key`,
    );
  }
}

/** The content-derived id of a block: HMAC-SHA256 under the repository's id key, hex. */
export function blockId(idKey: Buffer, plaintext: Buffer): string {
  return createHmac('sha256', idKey).update(plaintext).digest('hex');
}

export function newKey(): Buffer {
  return randomBytes(32);
}
