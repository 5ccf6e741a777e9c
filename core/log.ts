/**
 * Structured logging (pino). Messages are constant strings; the facts go in
 * fields. Anything that looks like a secret (SAS signatures, keys, tokens,
 * passwords) is redacted before it can reach a log line.
 */
import { pino, type Logger } from 'pino';

export type { Logger };

const redactPaths = [
  '*.password',
  '*.secret',
  '*.clientSecret',
  '*.token',
  '*.accessToken',
  '*.authorization',
  '*.key',
  '*.kek',
  '*.sas',
  '*.accessSAS',
  'req.headers.authorization',
  'req.headers.cookie',
];

/** Removes the signature and token parts of a URL's query, for logs and messages. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    for (const name of ['sig', 'se', 'st', 'sv', 'token', 'code', 'skoid', 'sktid']) {
      if (parsed.searchParams.has(name)) parsed.searchParams.set(name, 'REDACTED');
    }
    return parsed.toString();
  } catch {
    return '[unparsable url]';
  }
}

/** The service's logger: JSON lines on stdout, or on `destination` (tests read them back). */
export function createLogger(
  options: { level?: string; name?: string; destination?: pino.DestinationStream } = {},
): Logger {
  return pino(
    {
      name: options.name ?? 'acba',
      level: options.level ?? 'info',
      redact: { paths: redactPaths, censor: '[REDACTED]' },
    },
    options.destination,
  );
}

/** A logger that drops everything, for tests that do not look at logs. */
export const silentLogger: Logger = pino({ level: 'silent' });
