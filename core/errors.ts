/**
 * The handful of error kinds ACBA uses everywhere. Each kind maps once to an
 * HTTP status (portal and API), to a bot reply, and to a job outcome, so that
 * code deep in a pipeline only says what went wrong and never how to show it.
 */

export type ErrorKind =
  'not_found' | 'bad_input' | 'conflict' | 'forbidden' | 'limit_reached' | 'unavailable';

/** An error meant for the person who caused it: the message names the object and the next step. */
export class AcbaError extends Error {
  constructor(
    readonly kind: ErrorKind,
    message: string,
    readonly details: Record<string, unknown> = {},
  ) {
    super(message);
    this.name = 'AcbaError';
  }
}

export const notFound = (message: string, details?: Record<string, unknown>) =>
  new AcbaError('not_found', message, details);
export const badInput = (message: string, details?: Record<string, unknown>) =>
  new AcbaError('bad_input', message, details);
export const conflict = (message: string, details?: Record<string, unknown>) =>
  new AcbaError('conflict', message, details);
export const forbidden = (message: string, details?: Record<string, unknown>) =>
  new AcbaError('forbidden', message, details);
export const limitReached = (message: string, details?: Record<string, unknown>) =>
  new AcbaError('limit_reached', message, details);
export const unavailable = (message: string, details?: Record<string, unknown>) =>
  new AcbaError('unavailable', message, details);

const httpStatusByKind: Record<ErrorKind, number> = {
  not_found: 404,
  bad_input: 400,
  conflict: 409,
  forbidden: 403,
  limit_reached: 429,
  unavailable: 503,
};

/**
 * What the HTTP layer itself refused before our code ran: a body that is not
 * valid JSON, too large, or a path that is not valid percent-encoding. Express
 * and its body parsers mark these with a 4xx `status` and a `type`.
 */
function clientErrorOf(error: unknown): { status: number; message: string } | undefined {
  if (error instanceof URIError) {
    return {
      status: 400,
      message: 'The address is not valid percent-encoding. Check the link and try again.',
    };
  }
  const e = error as { status?: unknown; type?: unknown; expose?: unknown } | null;
  if (!e || typeof e.status !== 'number' || e.status < 400 || e.status >= 500) return undefined;
  if (e.type === 'entity.too.large') {
    return { status: 413, message: 'The request body is too large. Send less text.' };
  }
  if (e.type === 'entity.parse.failed') {
    return { status: 400, message: 'The request body is not valid JSON. Send a JSON object.' };
  }
  if (e.expose === true) {
    return { status: e.status, message: 'The request could not be read. Check what was sent.' };
  }
  return undefined;
}

/** The HTTP status for an error; anything that is neither ours nor a refused request is a 500. */
export function httpStatusOf(error: unknown): number {
  if (error instanceof AcbaError) return httpStatusByKind[error.kind];
  return clientErrorOf(error)?.status ?? 500;
}

/** A message safe to show a person: ours verbatim, a refused request named, anything else generic. */
export function publicMessageOf(error: unknown): string {
  if (error instanceof AcbaError) return error.message;
  return (
    clientErrorOf(error)?.message ??
    'Something went wrong on our side. The operators have the details in the service log.'
  );
}

export function isAcbaError(error: unknown, kind?: ErrorKind): error is AcbaError {
  return error instanceof AcbaError && (kind === undefined || error.kind === kind);
}
