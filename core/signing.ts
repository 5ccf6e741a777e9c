/**
 * Signed, expiring tokens for links that leave the service (file downloads,
 * the disk resource libguestfs reads). A token carries its purpose, the object
 * it grants and an expiry, all covered by an HMAC-SHA256 with the service's
 * signing key; nothing else in the URL is trusted.
 */
import { createHmac, timingSafeEqual } from 'node:crypto';
import { forbidden } from './errors.ts';

export interface SignedGrant {
  /** What the token may be used for, e.g. 'download' or 'disk'. */
  purpose: string;
  /** The object it grants access to. */
  subject: string;
  /** Expiry, in milliseconds since the epoch. */
  expiresAt: number;
}

export class LinkSigner {
  constructor(private readonly key: Buffer) {
    if (key.length < 32) throw new Error('The signing key must be at least 32 bytes.');
  }

  /** A URL-safe token for the grant. */
  sign(grant: SignedGrant): string {
    const body = Buffer.from(
      JSON.stringify([grant.purpose, grant.subject, grant.expiresAt]),
    ).toString('base64url');
    return `${body}.${this.mac(body)}`;
  }

  /** Checks a token for the given purpose and returns its grant; throws forbidden when forged, mismatched or expired. */
  verify(token: string, purpose: string, now = Date.now()): SignedGrant {
    const parts = token.split('.');
    const [body, mac] = parts;
    if (parts.length !== 2 || !body || !mac)
      throw forbidden('This link is malformed. Ask for a new one.');
    const expected = Buffer.from(this.mac(body));
    const given = Buffer.from(mac);
    if (expected.length !== given.length || !timingSafeEqual(expected, given)) {
      throw forbidden('This link is not valid. Ask for a new one.');
    }
    const [p, subject, expiresAt] = grantOf(body);
    if (p !== purpose) throw forbidden('This link is not valid here. Ask for a new one.');
    if (expiresAt <= now) throw forbidden('This link has expired. Ask for a new one.');
    return { purpose: p, subject, expiresAt };
  }

  private mac(body: string): string {
    return createHmac('sha256', this.key).update(body).digest('base64url');
  }
}

/** The signed body's fields; a body this service did not write (only possible with the key) counts as malformed. */
function grantOf(body: string): [string, string, number] {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(body, 'base64url').toString('utf8'));
  } catch {
    parsed = undefined;
  }
  if (
    !Array.isArray(parsed) ||
    typeof parsed[0] !== 'string' ||
    typeof parsed[1] !== 'string' ||
    typeof parsed[2] !== 'number'
  ) {
    throw forbidden('This link is malformed. Ask for a new one.');
  }
  return [parsed[0], parsed[1], parsed[2]];
}
