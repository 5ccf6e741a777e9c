/**
 * Azure calls made on a person's behalf, with failures said in words. The SDK
 * already retries throttling (429, honouring Retry-After) and 5xx answers and
 * polls long-running operations; what still fails here is turned into one of
 * ACBA's error kinds with a message that names the step and the next move,
 * with URL query strings (SAS signatures) removed.
 */
import { badInput, conflict, isAcbaError, notFound, unavailable } from '../core/errors.ts';
import { safeNoticeText } from './notices.ts';

interface AzureFailure {
  statusCode?: number;
  code?: string;
  message?: string;
}

/** Runs one Azure step; a failure becomes an AcbaError whose message starts with `what`. */
export async function azureStep<T>(what: string, call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    throw describeAzureFailure(what, error);
  }
}

/** The AcbaError for a failed Azure step (ours pass through unchanged). */
export function describeAzureFailure(what: string, error: unknown): Error {
  if (isAcbaError(error)) return error;
  const failure = (error ?? {}) as AzureFailure;
  const detail = safeNoticeText(
    `${failure.code ? `${failure.code}: ` : ''}${failure.message ?? String(error)}`,
  );
  const status = failure.statusCode;
  if (status === 429)
    return unavailable(
      `${what} failed: Azure kept throttling the requests (${detail}). Try again in a few minutes.`,
    );
  if (status === 404) return notFound(`${what} failed: Azure did not find it (${detail}).`);
  if (status === 409) return conflict(`${what} failed: Azure refused it for now (${detail}).`);
  if (status === 400) return badInput(`${what} failed: Azure refused the request (${detail}).`);
  return unavailable(
    `${what} failed in Azure (${detail}). Try again later, or ask the operators to look at the service log.`,
  );
}

/** True when the error is Azure's answer that the resource does not exist (not a missing resource group). */
export function isResourceNotFound(error: unknown): boolean {
  const failure = (error ?? {}) as AzureFailure;
  return failure.statusCode === 404 && failure.code !== 'ResourceGroupNotFound';
}
