/**
 * Long-running operations as Azure Resource Manager reports them: the first
 * answer is 202 with an `Azure-AsyncOperation` URL (a status document that says
 * InProgress, then Succeeded) and a `Location` URL (202 while running, then
 * 200 with the operation's result). The SDK's poller follows the first and
 * fetches the final result from the second, or from the resource itself for
 * a PUT. An operation started with an error ends Failed, its status document
 * carrying the error.
 *
 * The work itself happens when the request arrives; an operation only counts
 * polls, so that clients really go through their polling loop, and finishes
 * on the poll after `pollsBeforeDone` answered "InProgress". `Retry-After: 0`
 * keeps tests fast while still exercising the loop.
 */
import { randomUUID } from 'node:crypto';

export interface OperationStart {
  subscriptionId: string;
  location: string;
  /** Runs once, when the operation turns Succeeded (for example: mark a snapshot created). */
  onSucceeded?: () => Promise<void>;
  /** Runs once when an injected fault fails the operation (for example: forget the half-made snapshot). */
  onFailed?: () => Promise<void>;
  /** The body of the final 200 from the Location URL, computed when it is served. */
  result?: () => unknown;
  /** Included as properties.output in the status document (ARM does this for disk operations). */
  output?: () => unknown;
  /** When set, the operation ends Failed with this error instead of Succeeded. */
  error?: { code: string; message: string };
  /** Where its status and result are served; the compute provider's paths by default. */
  paths?: OperationPaths;
}

/** The provider and the path segments of an operation's status and result URLs. */
export interface OperationPaths {
  provider: string;
  status: string;
  result: string;
  apiVersion: string;
}

interface Operation extends OperationStart {
  id: string;
  startTime: string;
  endTime?: string;
  pollsLeft: number;
  status: 'InProgress' | 'Succeeded' | 'Failed';
  finishing?: Promise<void>;
}

export type OperationHeaders = {
  'Azure-AsyncOperation': string;
  Location: string;
  'Retry-After': string;
};

export type OperationPoll =
  | { kind: 'unknown' }
  | { kind: 'running'; status: Record<string, unknown> }
  | { kind: 'failed'; status: Record<string, unknown> }
  | { kind: 'done'; status: Record<string, unknown>; result: unknown };

/** How long finished operations stay queryable. */
const retentionMs = 60 * 60 * 1000;

export class LongRunningOperations {
  private readonly operations = new Map<string, Operation>();

  constructor(
    private readonly baseUrl: string,
    private readonly pollsBeforeDone: number,
    private readonly computePaths: OperationPaths = {
      provider: 'Microsoft.Compute',
      status: 'DiskOperations',
      result: 'operations',
      apiVersion: '2024-03-02',
    },
  ) {}

  /** Registers an operation and returns the headers for the 202 that announces it. */
  start(start: OperationStart): OperationHeaders {
    this.forgetOld();
    const id = randomUUID();
    this.operations.set(id, {
      ...start,
      id,
      startTime: new Date().toISOString(),
      pollsLeft: this.pollsBeforeDone,
      status: 'InProgress',
    });

    const paths = start.paths ?? this.computePaths;
    const base = `${this.baseUrl}/subscriptions/${start.subscriptionId}/providers/${paths.provider}/locations/${start.location}`;
    return {
      'Azure-AsyncOperation': `${base}/${paths.status}/${id}?p=${encodeURIComponent(randomUUID())}&api-version=${paths.apiVersion}`,
      Location: `${base}/${paths.result}/${id}?monitor=true&api-version=${paths.apiVersion}`,
      'Retry-After': '0',
    };
  }

  /** One poll: counts towards completion and reports the state after it. */
  async poll(id: string): Promise<OperationPoll> {
    const operation = this.operations.get(id.toLowerCase());
    if (!operation) return { kind: 'unknown' };

    if (operation.status === 'InProgress') {
      if (operation.pollsLeft > 0) {
        operation.pollsLeft -= 1;
      } else {
        // Concurrent polls share one completion, so onSucceeded runs once.
        operation.finishing ??= this.finish(operation);
        await operation.finishing;
      }
    }

    const status: Record<string, unknown> = {
      startTime: operation.startTime,
      status: operation.status,
      name: operation.id,
    };
    if (operation.status === 'InProgress') return { kind: 'running', status };

    status.endTime = operation.endTime;
    if (operation.status === 'Failed')
      return { kind: 'failed', status: { ...status, error: operation.error } };
    const output = operation.output?.();
    if (output !== undefined) status.properties = { output };
    return { kind: 'done', status, result: operation.result?.() };
  }

  /** Fails a running operation (the sandbox's fault injection); false when it is unknown or over. */
  async fail(id: string, error: { code: string; message: string }): Promise<boolean> {
    const operation = this.operations.get(id.toLowerCase());
    if (!operation || operation.status !== 'InProgress') return false;
    operation.status = 'Failed';
    operation.error = error;
    operation.endTime = new Date().toISOString();
    await operation.onFailed?.();
    return true;
  }

  private async finish(operation: Operation): Promise<void> {
    if (!operation.error) await operation.onSucceeded?.();
    operation.status = operation.error ? 'Failed' : 'Succeeded';
    operation.endTime = new Date().toISOString();
  }

  private forgetOld(): void {
    const cutoff = Date.now() - retentionMs;
    for (const [id, operation] of this.operations) {
      if (new Date(operation.startTime).getTime() < cutoff) this.operations.delete(id);
    }
  }
}
