/**
 * Injectable faults: tests tell the sandbox to answer the next few matching
 * requests with an error instead of doing the work, the way Azure does when it
 * throttles (429 with Retry-After) or has a bad moment (500, 503), or to fail
 * a long-running operation at its next status poll. The middleware sits in front of the ARM
 * routes, so the real SDK clients meet the faults through their own retry
 * and polling code.
 *
 * Error bodies have ARM's shape, `{ "error": { "code", "message" } }`. Each
 * fault served is remembered with its time, and so is the next request that
 * matched it afterwards, so a test can check that a client waited as long as
 * Retry-After asked.
 */
import type { NextFunction, Request, Response } from 'express';

export interface FaultSpec {
  /** HTTP method to match, e.g. 'PUT'; any method when absent. */
  method?: string;
  /** Matched against the request's path (without query); a string matches as a substring. */
  pathPattern: RegExp | string;
  /** The status to answer with: 429, 500, 503...; 200 with `operationFailed`. */
  status?: number;
  /** ARM error code; by default the one Azure uses for the status. */
  code?: string;
  message?: string;
  /** Sent as Retry-After (seconds). */
  retryAfterSeconds?: number;
  /** How many matching requests get the fault; 1 by default. */
  times?: number;
  /** Matching requests let through before the fault starts (a failure in the middle of a read); 0 by default. */
  after?: number;
  /**
   * Fail a long-running operation with this error: the poll answers status
   * Failed in Azure's shape, and what the operation changed is undone. Match
   * either a status poll's path (e.g. /DiskOperations/) to fail the operation
   * it asks about, or the request that starts one (a PUT, PATCH, POST or
   * DELETE, e.g. PATCH /virtualMachines/web-01) to fail that operation.
   */
  operationFailed?: { code: string; message: string };
}

/** One request the fault matched: answered with the fault, or let through after the fault ran out. */
export interface FaultHit {
  method: string;
  path: string;
  at: number;
  faulted: boolean;
  status?: number;
}

interface ActiveFault extends FaultSpec {
  id: number;
  left: number;
  /** Matching requests still to let through before the fault starts. */
  waiting: number;
  hits: FaultHit[];
}

const defaultCodes: Record<number, string> = {
  429: 'TooManyRequests',
  500: 'InternalServerError',
  502: 'BadGateway',
  503: 'ServiceUnavailable',
  504: 'GatewayTimeout',
};

/** Faults of one sandbox; reach it through `sandbox.faults`. */
export class SandboxFaults {
  private readonly faults: ActiveFault[] = [];
  private nextId = 1;

  /** @param failOperation fails a long-running operation by id, so its resource ends as Azure leaves it. */
  constructor(
    private readonly failOperation?: (
      id: string,
      error: { code: string; message: string },
    ) => Promise<boolean>,
  ) {}

  /** Arms a fault; returns its handle for inspecting hits and removing it. */
  inject(spec: FaultSpec): InjectedFault {
    const fault: ActiveFault = {
      ...spec,
      id: this.nextId++,
      left: spec.times ?? 1,
      waiting: spec.after ?? 0,
      hits: [],
    };
    this.faults.push(fault);
    return {
      hits: () => [...fault.hits],
      remaining: () => fault.left,
      remove: () => {
        const at = this.faults.indexOf(fault);
        if (at >= 0) this.faults.splice(at, 1);
      },
    };
  }

  /** Removes every fault. */
  clear(): void {
    this.faults.length = 0;
  }

  /** Express middleware; mount before the routes the faults stand in front of. */
  middleware() {
    return (req: Request, res: Response, next: NextFunction) => {
      const hit = { method: req.method, path: req.path, at: Date.now() };
      const matching = this.faults.filter((f) => matches(f, req));
      const fault = matching.find((f) => f.left > 0);
      // Spent faults still note the requests that came after them, for Retry-After checks.
      for (const spent of matching.filter((f) => f !== fault && f.hits.length < 100))
        spent.hits.push({ ...hit, faulted: false });
      if (!fault) return next();
      if (fault.waiting > 0) {
        fault.waiting -= 1;
        return next();
      }

      fault.left -= 1;
      if (fault.operationFailed && req.method !== 'GET') {
        fault.hits.push({ ...hit, faulted: true, status: 202 });
        this.failWhenStarted(res, fault.operationFailed);
        return next();
      }
      if (fault.operationFailed) {
        // The operation itself fails, and the status poll this request is answers with it.
        fault.hits.push({ ...hit, faulted: true, status: 200 });
        const id = req.path.split('/').pop() ?? '';
        void (this.failOperation?.(id, fault.operationFailed) ?? Promise.resolve(false)).then(
          () => next(),
          next,
        );
        return;
      }

      const status = fault.status ?? 500;
      fault.hits.push({ ...hit, faulted: true, status });
      if (fault.retryAfterSeconds !== undefined)
        res.set('Retry-After', String(fault.retryAfterSeconds));
      res.status(status).json({
        error: {
          code: fault.code ?? defaultCodes[status] ?? 'InternalServerError',
          message:
            fault.message ?? `The sandbox injected a ${status} for ${req.method} ${req.path}.`,
        },
      });
    };
  }

  /** Fails the operation the answer announces, before the answer leaves, so its first poll already sees Failed. */
  private failWhenStarted(res: Response, error: { code: string; message: string }): void {
    const end = res.end.bind(res) as (...args: unknown[]) => Response;
    res.end = ((...args: unknown[]) => {
      const status = String(res.getHeader('Azure-AsyncOperation') ?? '');
      const id = new URL(status, 'https://sandbox.invalid').pathname.split('/').pop() ?? '';
      const failing = id ? this.failOperation?.(id, error) : undefined;
      if (!failing) return end(...args);
      void failing.finally(() => end(...args));
      return res;
    }) as Response['end'];
  }
}

export interface InjectedFault {
  /** Requests this fault matched, in order, with their times. */
  hits(): FaultHit[];
  /** Faults still to serve. */
  remaining(): number;
  remove(): void;
}

function matches(fault: ActiveFault, req: Request): boolean {
  if (fault.method && fault.method.toUpperCase() !== req.method) return false;
  return typeof fault.pathPattern === 'string'
    ? req.path.includes(fault.pathPattern)
    : fault.pathPattern.test(req.path);
}
