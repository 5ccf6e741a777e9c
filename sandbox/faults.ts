/**
 * Injectable faults: tests tell the sandbox to answer the next few matching
 * requests with an error instead of doing the work, the way Azure does when it
 * throttles (429 with Retry-After), has a bad moment (500, 503), or reports a
 * long-running operation as Failed. The middleware sits in front of the ARM
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
  /**
   * Answer a long-running operation's status poll with status Failed and this
   * error (Azure's shape for a failed operation) instead of an HTTP error.
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

  /** Arms a fault; returns its handle for inspecting hits and removing it. */
  inject(spec: FaultSpec): InjectedFault {
    const fault: ActiveFault = { ...spec, id: this.nextId++, left: spec.times ?? 1, hits: [] };
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

      fault.left -= 1;
      if (fault.operationFailed) {
        fault.hits.push({ ...hit, faulted: true, status: 200 });
        res.status(200).json({
          name: req.path.split('/').pop(),
          status: 'Failed',
          startTime: new Date(hit.at).toISOString(),
          endTime: new Date().toISOString(),
          error: fault.operationFailed,
        });
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
