/**
 * Azure Resource Manager's compute surface, the part ACBA uses: virtual
 * machines (get, list; on managed or unmanaged disks), managed disks (get, list, grant and revoke access) and
 * snapshots (create, get, list, delete, grant and revoke access).
 *
 * Answers follow Azure's published REST examples in shape (ids, names, types,
 * properties, provisioningState) and in protocol: a bearer token from the
 * identity stand-in is required on every call, lists page through nextLink,
 * and writes are long-running operations (see long-running.ts). Errors use
 * ARM's `{ error: { code, message } }` body with Azure's codes. Any
 * api-version is accepted, since the SDKs move ahead of the versions the
 * fixtures were written for.
 *
 * VM lists come back one item per page by default, so that every client
 * walks nextLink the way it must against a large subscription.
 */
import { randomUUID } from 'node:crypto';
import express, { type NextFunction, type Request, type Response, type Router } from 'express';
import type { Logger } from '../core/log.ts';
import { diskJson, snapshotJson, virtualMachineJson } from './compute-json.ts';
import { ArmAuthError, type IdentityProvider } from './identity.ts';
import type { LongRunningOperations } from './long-running.ts';
import type { DiskBlobService } from './page-blobs.ts';
import {
  snapshotResourceId,
  type ComputeResources,
  type DiskRecord,
  type SnapshotRecord,
} from './resources.ts';
import type { SandboxSeed } from './seed.ts';
import type { VhdStore } from './vhd-store.ts';

export interface ArmComputeOptions {
  baseUrl: string;
  seed: SandboxSeed;
  resources: ComputeResources;
  /** The VHDs of VMs on unmanaged disks. */
  vhds: VhdStore;
  identity: IdentityProvider;
  blobs: DiskBlobService;
  operations: LongRunningOperations;
  /** Items per page for VM lists. */
  pageSize: number;
  log: Logger;
}

/** An ARM error answer: status plus Azure's error code. */
export class ArmError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'ArmError';
  }
}

const compute = '/providers/Microsoft.Compute';
const inGroup = `/resourceGroups/:resourceGroup${compute}`;

/** Routes for /subscriptions/...; mount at the server root. */
export function armComputeRouter(options: ArmComputeOptions): Router {
  const { resources, blobs, operations } = options;
  const router = express.Router({ mergeParams: true });
  const sub = express.Router({ mergeParams: true });
  router.use(
    '/subscriptions/:subscriptionId',
    armPreamble(options),
    express.json({ limit: '1mb' }),
    sub,
  );

  sub.get(`${compute}/virtualMachines`, (req, res) => {
    const vms = resources.listVirtualMachines(param(req, 'subscriptionId'));
    sendPage(
      req,
      res,
      options,
      vms.map((vm) => virtualMachineJson(vm, resources, options.vhds)),
    );
  });
  sub.get(`${inGroup}/virtualMachines`, (req, res) => {
    const vms = resources.listVirtualMachines(
      param(req, 'subscriptionId'),
      existingGroup(req, options),
    );
    sendPage(
      req,
      res,
      options,
      vms.map((vm) => virtualMachineJson(vm, resources, options.vhds)),
    );
  });
  sub.get(`${inGroup}/virtualMachines/:name`, (req, res) => {
    const vm = resources.getVirtualMachine(
      param(req, 'subscriptionId'),
      existingGroup(req, options),
      param(req, 'name'),
    );
    if (!vm) throw resourceNotFound('virtualMachines', req);
    res.json(virtualMachineJson(vm, resources, options.vhds));
  });

  sub.get(`${compute}/disks`, (req, res) => {
    res.json({
      value: resources.listDisks(param(req, 'subscriptionId')).map((disk) => diskJson(disk, blobs)),
    });
  });
  sub.get(`${inGroup}/disks`, (req, res) => {
    res.json({
      value: resources
        .listDisks(param(req, 'subscriptionId'), existingGroup(req, options))
        .map((disk) => diskJson(disk, blobs)),
    });
  });
  sub.get(`${inGroup}/disks/:name`, (req, res) => {
    res.json(diskJson(requireDisk(req, options), blobs));
  });
  sub.post(`${inGroup}/disks/:name/beginGetAccess`, (req, res) => {
    const disk = requireDisk(req, options);
    grantAccess(req, res, options, disk.id, disk.location);
  });
  sub.post(`${inGroup}/disks/:name/endGetAccess`, (req, res) => {
    const disk = requireDisk(req, options);
    blobs.revoke(disk.id);
    accepted(
      res,
      operations.start({ subscriptionId: disk.subscriptionId, location: disk.location }),
    );
  });

  sub.get(`${compute}/snapshots`, (req, res) => {
    res.json({
      value: resources
        .listSnapshots(param(req, 'subscriptionId'))
        .map((snapshot) => snapshotJson(snapshot, blobs)),
    });
  });
  sub.get(`${inGroup}/snapshots`, (req, res) => {
    res.json({
      value: resources
        .listSnapshots(param(req, 'subscriptionId'), existingGroup(req, options))
        .map((snapshot) => snapshotJson(snapshot, blobs)),
    });
  });
  sub.get(`${inGroup}/snapshots/:name`, (req, res) => {
    res.json(snapshotJson(requireSnapshot(req, options), blobs));
  });
  sub.put(`${inGroup}/snapshots/:name`, async (req, res) => {
    await putSnapshot(req, res, options);
  });
  sub.delete(`${inGroup}/snapshots/:name`, async (req, res) => {
    const id = snapshotResourceId(
      param(req, 'subscriptionId'),
      existingGroup(req, options),
      param(req, 'name'),
    );
    const snapshot = resources.getSnapshot(id);
    if (!snapshot) return void res.status(204).end();

    blobs.revoke(snapshot.id);
    await resources.deleteSnapshot(snapshot.id);
    options.log.info({ snapshotId: snapshot.id }, 'sandbox_snapshot_deleted');
    accepted(
      res,
      operations.start({ subscriptionId: snapshot.subscriptionId, location: snapshot.location }),
    );
  });
  sub.post(`${inGroup}/snapshots/:name/beginGetAccess`, (req, res) => {
    const snapshot = requireSnapshot(req, options);
    grantAccess(req, res, options, snapshot.id, snapshot.location);
  });
  sub.post(`${inGroup}/snapshots/:name/endGetAccess`, (req, res) => {
    const snapshot = requireSnapshot(req, options);
    blobs.revoke(snapshot.id);
    accepted(
      res,
      operations.start({ subscriptionId: snapshot.subscriptionId, location: snapshot.location }),
    );
  });

  sub.get(`${compute}/locations/:location/DiskOperations/:operationId`, async (req, res) => {
    const poll = await operations.poll(param(req, 'operationId'));
    if (poll.kind === 'unknown')
      throw new ArmError(
        404,
        'NotFound',
        `The operation '${param(req, 'operationId')}' was not found.`,
      );
    if (poll.kind === 'running') res.set('Retry-After', '0');
    res.json(poll.status);
  });
  sub.get(`${compute}/locations/:location/operations/:operationId`, async (req, res) => {
    const poll = await operations.poll(param(req, 'operationId'));
    if (poll.kind === 'unknown')
      throw new ArmError(
        404,
        'NotFound',
        `The operation '${param(req, 'operationId')}' was not found.`,
      );
    if (poll.kind === 'failed') return void res.status(200).json(poll.status);
    if (poll.kind === 'running')
      return void res
        .status(202)
        .set({ 'Retry-After': '0', Location: `${options.baseUrl}${req.originalUrl}` })
        .end();
    if (poll.result === undefined) return void res.status(200).end();
    res.status(200).json(poll.result);
  });

  sub.use((req) => {
    throw new ArmError(
      404,
      'InvalidResourceType',
      `The resource type could not be found for the path '${req.path}' in the namespace 'Microsoft.Compute' of this sandbox.`,
    );
  });
  router.use(armErrorHandler(options.log));
  return router;
}

/** Request ids, api-version, bearer token and subscription checks that come before every ARM route. */
export function armPreamble(options: Pick<ArmComputeOptions, 'identity' | 'seed'>) {
  return async (req: Request, res: Response, next: NextFunction) => {
    res.set({
      'x-ms-request-id': randomUUID(),
      'x-ms-correlation-request-id': req.header('x-ms-correlation-request-id') ?? randomUUID(),
    });
    const clientRequestId = req.header('x-ms-client-request-id');
    if (clientRequestId) res.set('x-ms-client-request-id', clientRequestId);

    try {
      const caller = await options.identity.verifyArmToken(req.header('authorization'));
      if (!req.query['api-version']) {
        throw new ArmError(
          400,
          'MissingApiVersionParameter',
          'The api-version query parameter (?api-version=) is required for all requests.',
        );
      }

      const subscriptionId = param(req, 'subscriptionId');
      const customer = options.seed.customers.find(
        (c) => c.subscriptionId.toLowerCase() === subscriptionId.toLowerCase(),
      );
      if (!customer)
        throw new ArmError(
          404,
          'SubscriptionNotFound',
          `The subscription '${subscriptionId}' could not be found.`,
        );

      // The provider reaches customer subscriptions through delegated access (Azure Lighthouse).
      const allowed = [customer.tenantId, options.seed.provider.tenantId].map((id) =>
        id.toLowerCase(),
      );
      if (!allowed.includes(caller.tenantId.toLowerCase())) {
        throw new ArmError(
          401,
          'InvalidAuthenticationTokenTenant',
          `The access token is from the wrong issuer '${caller.tenantId}'. It must match the tenant '${customer.tenantId}' associated with this subscription, or a tenant with delegated access to it.`,
        );
      }
      next();
    } catch (error) {
      next(error);
    }
  };
}

/** Turns errors of ARM routes into ARM's error answers; shared by every ARM surface of the sandbox. */
export function armErrorHandler(log: Logger) {
  return (error: unknown, req: Request, res: Response, next: NextFunction) => {
    if (res.headersSent) return next(error);
    if (error instanceof ArmAuthError) {
      res.set(
        'WWW-Authenticate',
        `Bearer authorization_uri="${'https://login.microsoftonline.com/common'}", error="invalid_token", error_description="${error.message.replace(/"/g, "'")}"`,
      );
      return void res.status(401).json({ error: { code: error.code, message: error.message } });
    }
    if (error instanceof ArmError)
      return void res
        .status(error.status)
        .json({ error: { code: error.code, message: error.message } });
    if ((error as { type?: string }).type === 'entity.parse.failed') {
      return void res.status(400).json({
        error: {
          code: 'InvalidRequestContent',
          message: 'The request content was invalid and could not be deserialized.',
        },
      });
    }

    log.error({ err: error, method: req.method, path: req.path }, 'sandbox_arm_request_failed');
    res.status(500).json({
      error: {
        code: 'InternalServerError',
        message: 'The sandbox failed to process the request; see its log.',
      },
    });
  };
}

async function putSnapshot(req: Request, res: Response, options: ArmComputeOptions): Promise<void> {
  const { resources, operations, blobs } = options;
  const subscriptionId = param(req, 'subscriptionId');
  const resourceGroup = existingGroup(req, options);
  const name = param(req, 'name');
  const body = (req.body ?? {}) as SnapshotBody;

  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]{0,78}[A-Za-z0-9_]$/.test(name)) {
    throw new ArmError(
      400,
      'InvalidResourceName',
      `The resource name '${name}' is invalid. Use 2 to 80 letters, digits, underscores, periods or hyphens, starting with a letter, digit or underscore.`,
    );
  }
  if (!body.location)
    throw new ArmError(
      400,
      'LocationRequired',
      'The location property is required for this definition.',
    );
  const creationData = body.properties?.creationData;
  if (creationData?.createOption !== 'Copy') {
    throw new ArmError(
      400,
      'InvalidParameter',
      `The sandbox creates snapshots with createOption 'Copy' only; got '${creationData?.createOption ?? ''}'. Parameter name: creationData.createOption.`,
    );
  }
  const sourceId = creationData.sourceResourceId ?? '';
  const source = resources.getDisk(sourceId) ?? resources.getSnapshot(sourceId);
  if (!source)
    throw new ArmError(
      404,
      'NotFound',
      `Resource ${sourceId} is not found. Parameter name: creationData.sourceResourceId.`,
    );
  if (normaliseLocation(source.location) !== normaliseLocation(body.location)) {
    throw new ArmError(
      400,
      'InvalidParameter',
      `The snapshot must be in the location of its source (${source.location}); copying across regions needs createOption 'CopyStart'.`,
    );
  }

  const id = snapshotResourceId(subscriptionId, resourceGroup, name);
  const existing = resources.getSnapshot(id);
  if (existing) {
    if (existing.sourceResourceId.toLowerCase() !== source.id.toLowerCase()) {
      throw new ArmError(
        409,
        'PropertyChangeNotAllowed',
        "Changing property 'sourceResourceId' is not allowed.",
      );
    }
    await resources.updateSnapshotTags(id, body.tags ?? existing.tags);
    return void res.status(200).json(snapshotJson(resources.getSnapshot(id) ?? existing, blobs));
  }

  const snapshot = await resources.createSnapshot({
    subscriptionId,
    resourceGroup,
    name,
    location: source.location,
    tags: body.tags ?? {},
    sourceResourceId: source.id,
    incremental: body.properties?.incremental === true,
  });
  options.log.info(
    { snapshotId: snapshot.id, sourceId: source.id, incremental: snapshot.incremental },
    'sandbox_snapshot_created',
  );

  accepted(
    res,
    operations.start({
      subscriptionId,
      location: snapshot.location,
      onSucceeded: () => resources.markSucceeded(snapshot.id),
      onFailed: async () => void (await resources.deleteSnapshot(snapshot.id)),
      output: () => {
        const current = resources.getSnapshot(snapshot.id);
        return current ? snapshotJson(current, blobs) : undefined;
      },
    }),
  );
}

function grantAccess(
  req: Request,
  res: Response,
  options: ArmComputeOptions,
  resourceId: string,
  location: string,
): void {
  const body = (req.body ?? {}) as { access?: string; durationInSeconds?: number };
  if (body.access !== 'Read') {
    throw new ArmError(
      400,
      'InvalidParameter',
      `The sandbox grants 'Read' access only; got '${body.access ?? ''}'. Parameter name: grantAccessData.access.`,
    );
  }
  const duration = Number(body.durationInSeconds);
  if (!Number.isInteger(duration) || duration < 1) {
    throw new ArmError(
      400,
      'InvalidParameter',
      'durationInSeconds must be a positive whole number of seconds. Parameter name: grantAccessData.durationInSeconds.',
    );
  }

  const accessSAS = options.blobs.grant(resourceId, duration);
  options.log.info({ resourceId, durationInSeconds: duration }, 'sandbox_access_granted');
  accepted(
    res,
    options.operations.start({
      subscriptionId: param(req, 'subscriptionId'),
      location,
      result: () => ({ accessSAS }),
      output: () => ({ accessSAS }),
    }),
  );
}

export function accepted(res: Response, headers: Record<string, string>): void {
  res.status(202).set(headers).end();
}

/** Sends one page of items with a nextLink to the next, by $skiptoken. */
function sendPage(req: Request, res: Response, options: ArmComputeOptions, items: unknown[]): void {
  const skip = Number(req.query.$skiptoken ?? 0) || 0;
  const page = items.slice(skip, skip + options.pageSize);
  const body: { value: unknown[]; nextLink?: string } = { value: page };

  if (skip + options.pageSize < items.length) {
    const next = new URL(`${options.baseUrl}${req.originalUrl}`);
    next.searchParams.set('$skiptoken', String(skip + options.pageSize));
    body.nextLink = next.toString();
  }
  res.json(body);
}

interface SnapshotBody {
  location?: string;
  tags?: Record<string, string>;
  properties?: {
    incremental?: boolean;
    creationData?: { createOption?: string; sourceResourceId?: string };
  };
}

export function param(req: Request, name: string): string {
  return String(req.params[name] ?? '');
}

/** The resource group of the route, which must exist in the subscription; returned as the seed spells it. */
export function existingGroup(req: Request, options: Pick<ArmComputeOptions, 'seed'>): string {
  const subscriptionId = param(req, 'subscriptionId').toLowerCase();
  const resourceGroup = param(req, 'resourceGroup').toLowerCase();
  const group = options.seed.customers
    .filter((c) => c.subscriptionId.toLowerCase() === subscriptionId)
    .flatMap((c) => [c.resourceGroup, ...c.otherResourceGroups])
    .find((g) => g.toLowerCase() === resourceGroup);
  if (!group)
    throw new ArmError(
      404,
      'ResourceGroupNotFound',
      `Resource group '${param(req, 'resourceGroup')}' could not be found.`,
    );
  return group;
}

export function requireDisk(
  req: Request,
  options: Pick<ArmComputeOptions, 'seed' | 'resources'>,
): DiskRecord {
  const resourceGroup = existingGroup(req, options);
  const disk = options.resources
    .listDisks(param(req, 'subscriptionId'), resourceGroup)
    .find((d) => d.name.toLowerCase() === param(req, 'name').toLowerCase());
  if (!disk) throw resourceNotFound('disks', req);
  return disk;
}

function requireSnapshot(req: Request, options: ArmComputeOptions): SnapshotRecord {
  const id = snapshotResourceId(
    param(req, 'subscriptionId'),
    existingGroup(req, options),
    param(req, 'name'),
  );
  const snapshot = options.resources.getSnapshot(id);
  if (!snapshot) throw resourceNotFound('snapshots', req);
  return snapshot;
}

export function resourceNotFound(type: string, req: Request): ArmError {
  return new ArmError(
    404,
    'ResourceNotFound',
    `The Resource 'Microsoft.Compute/${type}/${param(req, 'name')}' under resource group '${param(req, 'resourceGroup')}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix`,
  );
}

function normaliseLocation(location: string): string {
  return location.replace(/\s+/g, '').toLowerCase();
}
