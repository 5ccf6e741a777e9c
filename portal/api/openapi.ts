/**
 * The OpenAPI 3.1 description of /api/v1, written by hand next to the routes
 * in ./index.ts. Row schemas name the fields callers use and allow the rest,
 * since the rows are the database's own.
 */

import { REQUEST_KINDS } from '../../approvals/index.ts';
import { REQUEST_STATUSES } from '../../core/db/schema.ts';
import { JOB_STATUSES } from '../../engine/job-catalog.ts';

const error = {
  type: 'object',
  required: ['error', 'message'],
  properties: {
    error: {
      type: 'string',
      enum: [
        'unauthenticated',
        'not_found',
        'bad_input',
        'conflict',
        'forbidden',
        'limit_reached',
        'unavailable',
        'internal',
      ],
    },
    message: { type: 'string', description: 'What went wrong and what to do next.' },
  },
};

const errorResponse = (description: string) => ({
  description,
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
});

const errors = {
  '400': errorResponse('A parameter is not valid.'),
  '401': errorResponse('The bearer token is missing, forged, expired or for another API.'),
  '403': errorResponse('The principal has no role in ACBA, or its tenant is not a customer.'),
};

const json = (schema: object, description = 'OK') => ({
  description,
  content: { 'application/json': { schema } },
});

const limit = {
  name: 'limit',
  in: 'query',
  required: false,
  schema: { type: 'integer', minimum: 1, maximum: 500, default: 200 },
};

const query = (name: string, description: string) => ({
  name,
  in: 'query',
  required: false,
  description,
  schema: { type: 'string', maxLength: 200 },
});

export const openApiDocument = {
  openapi: '3.1.0',
  info: {
    title: 'ACBA API',
    version: '1.0.0',
    description:
      "What the ACBA portal shows, as JSON, under the portal's rules: customers' staff see only their own tenant; provider staff see every customer. Authorize with an access token from Microsoft Entra ID issued for this installation's app (audience: its client id).",
  },
  servers: [{ url: '/api/v1' }],
  security: [{ entraId: [] }],
  components: {
    securitySchemes: {
      entraId: { type: 'http', scheme: 'bearer', bearerFormat: 'JWT' },
    },
    schemas: {
      Error: error,
      Viewer: {
        type: 'object',
        required: ['objectId', 'tenantId', 'name', 'roles', 'scope'],
        properties: {
          objectId: { type: 'string' },
          tenantId: { type: 'string' },
          name: { type: 'string' },
          roles: {
            type: 'array',
            items: { type: 'string', enum: ['requester', 'approver', 'operator', 'auditor'] },
          },
          scope: {
            oneOf: [
              {
                type: 'object',
                properties: { kind: { const: 'provider' } },
                required: ['kind'],
              },
              {
                type: 'object',
                properties: {
                  kind: { const: 'customer' },
                  customerId: { type: 'string' },
                  customerName: { type: 'string' },
                },
                required: ['kind', 'customerId', 'customerName'],
              },
            ],
          },
        },
      },
      RestorePoint: {
        type: 'object',
        required: ['id', 'customer_id', 'item_id', 'item_name', 'created_at'],
        properties: {
          id: { type: 'string' },
          customer_id: { type: 'string' },
          item_id: { type: 'string' },
          item_name: { type: 'string' },
          created_at: { type: 'string', format: 'date-time' },
          type: {
            type: 'string',
            enum: ['backup', 'snapshot', 'manual_snapshot'],
            description:
              'backup: in the repository; snapshot: Azure snapshots kept by a policy; manual_snapshot: taken by an operator, kept until deleted.',
          },
          disks: { description: 'The disks captured, with their sizes.' },
        },
      },
      Job: {
        type: 'object',
        description:
          'One backup run of one protected item (a job session) with its tasks, one per disk of a VM or one for a database.',
        required: ['id', 'customerId', 'itemId', 'itemName', 'status', 'startedAt', 'tasks'],
        properties: {
          id: { type: 'string' },
          customerId: { type: 'string' },
          customerName: { type: 'string' },
          itemId: { type: 'string' },
          itemName: { type: 'string' },
          trigger: { type: 'string', description: 'schedule, operator or startup.' },
          policyName: { type: ['string', 'null'] },
          status: { type: 'string', enum: JOB_STATUSES },
          startedAt: { type: 'string', format: 'date-time' },
          finishedAt: { type: ['string', 'null'], format: 'date-time' },
          bytesRead: { type: 'integer' },
          bytesStored: { type: 'integer' },
          warnings: { type: 'array', items: { type: 'string' } },
          errorKind: { type: ['string', 'null'] },
          error: { type: ['string', 'null'], description: 'Why it failed, without secrets.' },
          restorePointId: { type: ['string', 'null'] },
          tasks: { type: 'array', items: { $ref: '#/components/schemas/Task' } },
        },
      },
      Task: {
        type: 'object',
        required: ['id', 'kind', 'name', 'status', 'attempts', 'bytesDone'],
        properties: {
          id: { type: 'string' },
          kind: { type: 'string', description: 'disk or database.' },
          name: { type: 'string' },
          status: { type: 'string', enum: ['waiting', 'running', 'succeeded', 'failed'] },
          attempts: { type: 'integer' },
          bytesDone: { type: 'integer', description: 'Bytes read so far in the current attempt.' },
          bytesStored: { type: 'integer' },
          totalBytes: { type: ['integer', 'null'] },
          throughput: { type: ['integer', 'null'], description: 'Bytes per second.' },
          startedAt: { type: ['string', 'null'], format: 'date-time' },
          finishedAt: { type: ['string', 'null'], format: 'date-time' },
          error: { type: ['string', 'null'] },
        },
      },
      MonthlyUsage: {
        type: 'object',
        required: [
          'month',
          'customerId',
          'protectedInstances',
          'usedBytes',
          'peakTasks',
          'egressBytes',
        ],
        properties: {
          month: { type: 'string' },
          customerId: { type: 'string' },
          customerName: { type: 'string' },
          protectedInstances: { type: 'integer', description: 'The most on any day of the month' },
          licensedInstances: { type: ['integer', 'null'] },
          usedBytes: { type: 'integer', description: 'The most stored on any day of the month' },
          allocatedBytes: { type: ['integer', 'null'] },
          peakTasks: { type: 'integer' },
          licensedTasks: { type: ['integer', 'null'] },
          egressBytes: { type: 'integer', description: 'Delivered by restores and exports' },
          daysRecorded: { type: 'integer' },
        },
      },
      CustomerUsage: {
        type: 'object',
        required: ['customerId', 'licence', 'protectedInstances', 'storedBytes', 'days'],
        properties: {
          customerId: { type: 'string' },
          customerName: { type: 'string' },
          licence: {
            type: 'object',
            description: 'null limits are unlimited; licensed is false without a licence.',
            properties: {
              licensed: { type: 'boolean' },
              instances: { type: ['integer', 'null'] },
              storageTb: { type: ['number', 'null'] },
              tasks: { type: ['integer', 'null'] },
            },
          },
          protectedInstances: { type: 'integer' },
          storedBytes: { type: 'integer' },
          storageRatio: { type: ['number', 'null'] },
          peakTasksToday: { type: 'integer' },
          days: {
            type: 'array',
            items: {
              type: 'object',
              required: ['day', 'protectedInstances', 'storedBytes', 'peakTasks', 'egressBytes'],
              properties: {
                day: { type: 'string', format: 'date', description: 'UTC day.' },
                protectedInstances: { type: 'integer' },
                storedBytes: { type: 'integer' },
                peakTasks: { type: 'integer' },
                egressBytes: { type: 'integer' },
              },
            },
          },
        },
      },
      Request: {
        type: 'object',
        required: ['id', 'customer_id', 'status', 'created_at'],
        properties: {
          id: { type: 'string' },
          customer_id: { type: 'string' },
          kind: { type: 'string', enum: [...REQUEST_KINDS] },
          status: {
            type: 'string',
            enum: REQUEST_STATUSES,
          },
          requester_object_id: { type: 'string' },
          requester_tenant_id: { type: 'string' },
          reason: { type: 'string' },
          target: { description: 'What is to be restored, e.g. a file of a VM.' },
          created_at: { type: 'string', format: 'date-time' },
        },
        description:
          "Customers' staff do not get the provider's delivery details (approval_card, requester_conversation).",
      },
      Decision: {
        type: 'object',
        required: ['request_id', 'decision', 'approver_object_id', 'approver_tenant_id'],
        properties: {
          request_id: { type: 'string' },
          decision: { type: 'string', enum: ['approve', 'reject'] },
          approver_object_id: { type: 'string' },
          approver_tenant_id: { type: 'string' },
          comment: { type: 'string' },
          created_at: { type: 'string', format: 'date-time' },
        },
      },
      AuditEntry: {
        type: 'object',
        required: ['seq', 'at', 'action', 'hash'],
        properties: {
          seq: {
            type: 'string',
            description: 'Sequence number; pass as `before` for older entries.',
          },
          at: { type: 'string', format: 'date-time' },
          actor_object_id: { type: 'string' },
          actor_tenant_id: { type: 'string' },
          action: { type: 'string' },
          details: { type: 'object' },
          hash: { type: 'string' },
        },
      },
      Verification: {
        type: 'object',
        required: ['ok', 'checked'],
        properties: {
          ok: { type: 'boolean' },
          checked: { type: 'integer' },
          firstBroken: {
            type: 'object',
            properties: { seq: { type: 'string' }, problem: { type: 'string' } },
          },
        },
      },
    },
  },
  paths: {
    '/openapi.json': {
      get: {
        summary: 'This description',
        security: [],
        responses: { '200': { description: 'The OpenAPI document' } },
      },
    },
    '/me': {
      get: {
        summary: 'Who the token belongs to, with roles and scope',
        responses: { '200': json({ $ref: '#/components/schemas/Viewer' }), ...errors },
      },
    },
    '/restore-points': {
      get: {
        summary: 'Restore points, newest first',
        parameters: [
          {
            name: 'customer',
            in: 'query',
            required: false,
            schema: { type: 'string' },
            description: "Provider staff only; customers' staff always get their own.",
          },
          { name: 'item', in: 'query', required: false, schema: { type: 'string' } },
          limit,
        ],
        responses: {
          '200': json({
            type: 'object',
            required: ['restorePoints'],
            properties: {
              restorePoints: {
                type: 'array',
                items: { $ref: '#/components/schemas/RestorePoint' },
              },
            },
          }),
          ...errors,
        },
      },
    },
    '/jobs': {
      get: {
        summary:
          "Backup jobs (sessions) newest first, with their tasks' progress, throughput and outcome; a customer's staff see only their own",
        parameters: [
          {
            name: 'customer',
            in: 'query',
            required: false,
            schema: { type: 'string' },
            description: "Provider staff only; customers' staff always get their own.",
          },
          { name: 'item', in: 'query', required: false, schema: { type: 'string' } },
          {
            name: 'status',
            in: 'query',
            required: false,
            schema: { type: 'string', enum: JOB_STATUSES },
          },
          limit,
        ],
        responses: {
          '200': json({
            type: 'object',
            required: ['jobs'],
            properties: { jobs: { type: 'array', items: { $ref: '#/components/schemas/Job' } } },
          }),
          ...errors,
        },
      },
    },
    '/usage': {
      get: {
        summary:
          "Each customer's usage against its licence, and per UTC day; a customer's staff see only their own",
        parameters: [
          {
            name: 'customer',
            in: 'query',
            required: false,
            schema: { type: 'string' },
            description: "Provider staff only; customers' staff always get their own.",
          },
          {
            name: 'days',
            in: 'query',
            required: false,
            schema: { type: 'integer', minimum: 1, maximum: 366, default: 31 },
          },
        ],
        responses: {
          '200': json({
            type: 'object',
            required: ['customers'],
            properties: {
              customers: { type: 'array', items: { $ref: '#/components/schemas/CustomerUsage' } },
            },
          }),
          ...errors,
        },
      },
    },
    '/usage/monthly': {
      get: {
        summary:
          "Each customer's usage in one month, as invoices count it; a customer's staff see only their own",
        parameters: [
          {
            name: 'month',
            in: 'query',
            required: false,
            schema: { type: 'string', pattern: '^\\d{4}-\\d{2}$' },
            description: 'YYYY-MM; the current UTC month when left out.',
          },
          {
            name: 'customer',
            in: 'query',
            required: false,
            schema: { type: 'string' },
            description: "Provider staff only; customers' staff always get their own.",
          },
          {
            name: 'format',
            in: 'query',
            required: false,
            schema: { type: 'string', enum: ['json', 'csv'], default: 'json' },
          },
        ],
        responses: {
          '200': {
            description: 'The report',
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  required: ['month', 'customers'],
                  properties: {
                    month: { type: 'string' },
                    customers: {
                      type: 'array',
                      items: { $ref: '#/components/schemas/MonthlyUsage' },
                    },
                  },
                },
              },
              'text/csv': { schema: { type: 'string' } },
            },
          },
          ...errors,
        },
      },
    },
    '/requests': {
      get: {
        summary: 'Restore requests, newest first',
        parameters: [
          {
            name: 'status',
            in: 'query',
            required: false,
            schema: { $ref: '#/components/schemas/Request/properties/status' },
          },
          limit,
        ],
        responses: {
          '200': json({
            type: 'object',
            required: ['requests'],
            properties: {
              requests: { type: 'array', items: { $ref: '#/components/schemas/Request' } },
            },
          }),
          ...errors,
        },
      },
      post: {
        summary:
          "A customer's staff write a restore request; it waits for the provider's approvers under the approval rules",
        requestBody: {
          required: true,
          content: {
            'application/json': {
              schema: {
                type: 'object',
                required: ['kind', 'target', 'reason'],
                properties: {
                  kind: { $ref: '#/components/schemas/Request/properties/kind' },
                  target: {
                    type: 'object',
                    description:
                      'file_restore: {vmName, path, restorePointId?, at?}; disk_restore, vm_restore, sql_restore, exit_export and the others: the fields the portal and bot forms send (see the README).',
                  },
                  reason: { type: 'string', description: 'Why, in writing; approvers read it.' },
                  ticket: { type: 'string' },
                },
              },
            },
          },
        },
        responses: {
          '201': json(
            {
              type: 'object',
              required: ['request'],
              properties: { request: { $ref: '#/components/schemas/Request' } },
            },
            'The request, pending',
          ),
          ...errors,
        },
      },
    },
    '/requests/{id}': {
      get: {
        summary: 'One request with its decisions, oldest decision first',
        parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
        responses: {
          '200': json({
            type: 'object',
            required: ['request', 'decisions'],
            properties: {
              request: { $ref: '#/components/schemas/Request' },
              decisions: { type: 'array', items: { $ref: '#/components/schemas/Decision' } },
            },
          }),
          '404': errorResponse("No such request, or another customer's."),
          ...errors,
        },
      },
    },
    '/requests/{id}/decisions': {
      post: {
        summary:
          "An approver's written decision on a pending request, under the same rules as in Teams: never the requester, only the provider's approvers, one decision each",
        parameters: [{ name: 'id', in: 'path', required: true, schema: { type: 'string' } }],
        requestBody: {
          required: true,
          content: {
            'application/json': {
              schema: {
                type: 'object',
                required: ['decision', 'comment'],
                properties: {
                  decision: { type: 'string', enum: ['approve', 'reject'] },
                  comment: {
                    type: 'string',
                    description: 'Why; kept in the audit trail with the decision.',
                  },
                },
              },
            },
          },
        },
        responses: {
          '201': json(
            {
              type: 'object',
              required: ['request', 'decision'],
              properties: {
                request: { $ref: '#/components/schemas/Request' },
                decision: { $ref: '#/components/schemas/Decision' },
              },
            },
            'The decision was recorded; the request shows its new state.',
          ),
          '403': errorResponse(
            'Refused by segregation of duties (own request, customer staff, no approver role, newly granted role); the refusal is in the audit trail.',
          ),
          '404': errorResponse("No such request, or another customer's."),
          '409': errorResponse(
            'Already decided by this approver, settled by someone else, expired, or changed since it was written.',
          ),
          '400': errors['400'],
          '401': errors['401'],
        },
      },
    },
    '/audit': {
      get: {
        summary:
          "One page (50) of the audit trail, newest first, filtered by time, actor, customer, kind and outcome; a customer's staff see only their own",
        parameters: [
          {
            name: 'before',
            in: 'query',
            required: false,
            description: 'The next page: entries older than this sequence number (`olderBefore`).',
            schema: { type: 'string', pattern: '^[0-9]{1,18}$' },
          },
          query('from', 'Entries at or after this date (whole day, UTC) or ISO 8601 time.'),
          query('to', 'Entries before this time; a date means up to the end of that day (UTC).'),
          query('actor', "An Entra object id, or a person's display name (any case)."),
          query('customer', 'A customer id (provider staff; customers always see their own).'),
          query('kind', 'An action such as `request.approve`, or a family such as `request`.'),
          {
            name: 'outcome',
            in: 'query',
            required: false,
            schema: { type: 'string', enum: ['success', 'refused', 'failed'] },
          },
        ],
        responses: {
          '200': json({
            type: 'object',
            required: ['entries'],
            properties: {
              entries: { type: 'array', items: { $ref: '#/components/schemas/AuditEntry' } },
              olderBefore: { type: 'string' },
            },
          }),
          ...errors,
        },
      },
    },
    '/audit/verify': {
      post: {
        summary: "Recomputes the audit log's hash chain",
        responses: {
          '200': json({
            type: 'object',
            required: ['verification'],
            properties: { verification: { $ref: '#/components/schemas/Verification' } },
          }),
          ...errors,
        },
      },
    },
  },
} as const;
