/**
 * Local mode (no Microsoft app id): Bot Framework checks no token, so the bot
 * trusts whatever an activity says about its sender. It therefore takes
 * activities only from this machine and only with a serviceUrl on this
 * machine, as the sandbox chat, the Bot Framework Emulator and the tests send
 * them. Otherwise anyone who can reach the port could approve requests in an
 * approver's name, or have the bot post download links to a server of their
 * choosing.
 */
import { isIP } from 'node:net';
import type { Activity } from 'botbuilder';
import type { Request } from 'express';

/** True for 127.0.0.0/8, ::1 and their IPv4-mapped forms. */
function isLoopbackAddress(address: string | undefined): boolean {
  if (!address) return false;
  const plain = address.startsWith('::ffff:') ? address.slice(7) : address;
  if (isIP(plain) === 4) return plain.startsWith('127.');
  return plain === '::1';
}

function isLoopbackUrl(url: string): boolean {
  try {
    const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
    return host === 'localhost' || isLoopbackAddress(host);
  } catch {
    return false;
  }
}

/**
 * Why an activity may not be processed without a Bot Framework token, or
 * undefined when it comes from this machine (the sandbox chat, the Emulator,
 * tests) and wants its replies sent to this machine.
 */
export function localModeProblem(req: Request): string | undefined {
  const forwarded =
    req.headers['x-forwarded-for'] !== undefined || req.headers.forwarded !== undefined;
  if (!isLoopbackAddress(req.socket.remoteAddress) || forwarded) {
    return 'This bot has no Microsoft app id, so it takes activities only from this machine (the sandbox chat or the Bot Framework Emulator). To receive activities from Teams, set MICROSOFT_APP_ID and MICROSOFT_APP_PASSWORD to the bot registration.';
  }
  if (!isLoopbackUrl((req.body as Partial<Activity>).serviceUrl!)) {
    return 'This bot has no Microsoft app id, so it replies only to a serviceUrl on this machine (the sandbox chat or the Bot Framework Emulator). To talk to Teams, set MICROSOFT_APP_ID and MICROSOFT_APP_PASSWORD to the bot registration.';
  }
  return undefined;
}
