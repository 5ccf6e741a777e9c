/**
 * Backup policies: what to protect (a customer's VMs and Azure SQL databases
 * by name, id or resource id, or anything with a tag), the
 * kind of protection (snapshots, backups or both), and schedules each with its
 * own retention, in one IANA time zone. Operators keep them as YAML files and
 * apply them with `acba policy apply FILE`.
 *
 * An item belongs to at most one policy. When two enabled policies of a
 * customer select the same item, the one with the higher priority protects it
 * (equal priorities: the name that sorts first) and the other skips it, and
 * says so when applied and in each run.
 */
import { z } from 'zod';
import { parse as parseYaml } from 'yaml';
import { appendAudit, serviceActor } from '../core/audit.ts';
import type { Db } from '../core/db/database.ts';
import type { Policy, ProtectedItem } from '../core/db/schema.ts';
import { badInput, notFound } from '../core/errors.ts';
import { arcDatabaseRefused, isArcSqlDatabase } from './resource-types.ts';
import { isValidZone, WEEKDAYS, type ScheduleKind, type ScheduleRule } from './schedule.ts';

const time = z
  .string()
  .regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'must be a time of day as HH:MM, e.g. "02:00"');
const weekdays = z.array(z.enum(WEEKDAYS)).min(1, 'must name at least one weekday');
const retention = {
  /** Years to keep backups made by this schedule. */
  retentionYears: z
    .union([z.literal(1), z.literal(3), z.literal(5), z.literal(10)], {
      error: 'must be 1, 3, 5 or 10',
    })
    .optional(),
  /** Snapshots made by this schedule to keep. */
  keepSnapshots: z.number().int().min(1).max(500).optional(),
};

const scheduleSchemas = {
  daily: z.strictObject({
    times: z.array(time).min(1, 'must list at least one time'),
    weekdays: weekdays.default([...WEEKDAYS]),
    ...retention,
  }),
  weekly: z.strictObject({ time, weekdays, ...retention }),
  monthly: z.union([
    z.strictObject({
      time,
      day: z.union([z.number().int().min(1).max(31), z.literal('last')], {
        error: 'must be a day of month 1–31 or "last"',
      }),
      ...retention,
    }),
    z.strictObject({
      time,
      weekday: z.enum(WEEKDAYS),
      week: z.union([z.literal(1), z.literal(2), z.literal(3), z.literal(4), z.literal('last')], {
        error: 'must be 1, 2, 3, 4 or "last"',
      }),
      ...retention,
    }),
  ]),
  yearly: z.strictObject({
    time,
    month: z.number().int().min(1).max(12),
    day: z.number().int().min(1).max(31),
    ...retention,
  }),
};

export const policySchema = z
  .strictObject({
    name: z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'must be lower-case letters, digits and -'),
    customer: z.string().min(1),
    priority: z.number().int().default(0),
    enabled: z.boolean().default(true),
    type: z.enum(['snapshots', 'backups', 'both']),
    timeZone: z.string().refine(isValidZone, 'must be an IANA time zone such as Europe/Berlin'),
    items: z
      .strictObject({
        vms: z.array(z.string().min(1)).default([]),
        /** Azure SQL databases as `server/database`, item id or resource id; they may be in any region. */
        databases: z.array(z.string().min(1)).default([]),
        tags: z.record(z.string(), z.string()).default({}),
      })
      .refine(
        (i) => i.vms.length + i.databases.length + Object.keys(i.tags).length > 0,
        'must name vms, databases or tags',
      ),
    schedules: z
      .strictObject({
        daily: scheduleSchemas.daily.optional(),
        weekly: scheduleSchemas.weekly.optional(),
        monthly: scheduleSchemas.monthly.optional(),
        yearly: scheduleSchemas.yearly.optional(),
      })
      .refine((s) => Object.values(s).some(Boolean), 'must define at least one schedule'),
  })
  .superRefine((policy, ctx) => {
    for (const [kind, schedule] of Object.entries(policy.schedules)) {
      if (!schedule) continue;
      if (policy.type !== 'snapshots' && schedule.retentionYears === undefined)
        ctx.addIssue({
          code: 'custom',
          path: ['schedules', kind, 'retentionYears'],
          message: `is required for ${policy.type}: 1, 3, 5 or 10`,
        });
      if (policy.type !== 'backups' && schedule.keepSnapshots === undefined)
        ctx.addIssue({
          code: 'custom',
          path: ['schedules', kind, 'keepSnapshots'],
          message: `is required for ${policy.type}: how many snapshots to keep`,
        });
    }
  });

export type PolicySpec = z.infer<typeof policySchema>;

const listSchema = z.strictObject({ policies: z.array(policySchema).min(1) });

/** Parses and validates a policy file (one policy, or `policies: [...]`); errors name the file and field. */
export function parsePolicyFile(text: string, fileName: string): PolicySpec[] {
  let document: unknown;
  try {
    document = parseYaml(text);
  } catch (error) {
    throw badInput(`${fileName} is not valid YAML: ${(error as Error).message.split('\n')[0]}`);
  }
  const isList = typeof document === 'object' && document !== null && 'policies' in document;
  const result = (isList ? listSchema : policySchema).safeParse(document);
  if (!result.success) {
    const problems = result.error.issues.map(
      (issue) => `${fieldPath(issue.path)} ${issue.message}`,
    );
    throw badInput(`${fileName}: ${problems.join('; ')}. Fix the file and apply it again.`, {
      problems,
    });
  }
  const specs = 'policies' in result.data ? result.data.policies : [result.data as PolicySpec];
  const names = specs.map((s) => s.name);
  const duplicate = names.find((n, i) => names.indexOf(n) !== i);
  if (duplicate) throw badInput(`${fileName}: policy ${duplicate} is defined twice.`);
  return specs;
}

function fieldPath(path: PropertyKey[]): string {
  if (path.length === 0) return '(document)';
  return path
    .map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i ? '.' : ''}${String(p)}`))
    .join('');
}

/** The schedule rules of a policy with their retention, in a fixed order. */
export function policySchedules(spec: PolicySpec): Array<{
  rule: ScheduleRule;
  retentionYears?: number;
  keepSnapshots?: number;
}> {
  const out: Array<{ rule: ScheduleRule; retentionYears?: number; keepSnapshots?: number }> = [];
  const kinds: ScheduleKind[] = ['daily', 'weekly', 'monthly', 'yearly'];
  for (const kind of kinds) {
    const s = spec.schedules[kind];
    if (!s) continue;
    const { retentionYears, keepSnapshots, ...rest } = s;
    out.push({ rule: { kind, ...rest } as ScheduleRule, retentionYears, keepSnapshots });
  }
  return out;
}

export interface ApplyResult {
  name: string;
  created: boolean;
  /** Items this policy selects that a higher-priority policy protects instead, and the reverse. */
  overlaps: string[];
}

/**
 * Creates or replaces policies. A policy's slots before its first application
 * never run; re-applying keeps that instant so history is not replayed.
 */
export async function applyPolicies(
  db: Db,
  specs: PolicySpec[],
  actor = serviceActor,
): Promise<ApplyResult[]> {
  // Checked for every policy first, so that a refused file changes nothing.
  for (const spec of specs) {
    const arc = [...spec.items.vms, ...(spec.items.databases ?? [])].find(isArcSqlDatabase);
    if (arc) {
      const refusal = arcDatabaseRefused(arc);
      throw badInput(
        `Policy ${spec.name} selects ${refusal.message} Remove it from the policy's items and apply the file again.`,
        refusal.details,
      );
    }
  }

  const results: ApplyResult[] = [];
  for (const spec of specs) {
    const customer = await db
      .selectFrom('customers')
      .select('id')
      .where('id', '=', spec.customer)
      .executeTakeFirst();
    if (!customer)
      throw notFound(
        `Policy ${spec.name} names customer ${spec.customer}, which does not exist; use the customer's id as listed in the portal.`,
      );

    const created = await db.transaction().execute(async (tx) => {
      const existing = await tx
        .selectFrom('policies')
        .select('name')
        .where('name', '=', spec.name)
        .executeTakeFirst();
      const row = {
        customer_id: spec.customer,
        priority: spec.priority,
        enabled: spec.enabled,
        type: spec.type,
        time_zone: spec.timeZone,
        spec: JSON.stringify(spec),
        updated_at: new Date(),
      };
      if (existing)
        await tx.updateTable('policies').set(row).where('name', '=', spec.name).execute();
      else
        await tx
          .insertInto('policies')
          .values({ name: spec.name, active_from: new Date(), ...row })
          .execute();

      await tx.deleteFrom('policy_items').where('policy_name', '=', spec.name).execute();
      const selectors = [
        ...spec.items.vms.map((value) => ({ selector: 'vm' as const, value })),
        ...(spec.items.databases ?? []).map((value) => ({ selector: 'database' as const, value })),
        ...Object.entries(spec.items.tags).map(([k, v]) => ({
          selector: 'tag' as const,
          value: `${k}=${v}`,
        })),
      ];
      await tx
        .insertInto('policy_items')
        .values(selectors.map((s) => ({ policy_name: spec.name, ...s })))
        .execute();
      return !existing;
    });

    await appendAudit(db, {
      actor,
      channel: 'cli',
      action: created ? 'policy.create' : 'policy.update',
      resource: `policy/${spec.name}`,
      outcome: 'success',
      details: { customerId: spec.customer, priority: spec.priority, type: spec.type },
    });
    results.push({ name: spec.name, created, overlaps: [] });
  }

  for (const result of results) {
    const policy = await getPolicy(db, result.name);
    const { skipped, lost } = await resolvePolicyItems(db, policy);
    result.overlaps = [
      ...skipped.map(
        (s) =>
          `${s.item.name} is protected by policy ${s.policy} (higher priority), not by ${policy.name}`,
      ),
      ...lost.map(
        (s) =>
          `${s.item.name} is no longer protected by policy ${s.policy}: ${policy.name} takes it (higher priority)`,
      ),
    ];
  }
  return results;
}

export async function getPolicy(db: Db, name: string): Promise<Policy> {
  const policy = await db
    .selectFrom('policies')
    .selectAll()
    .where('name', '=', name)
    .executeTakeFirst();
  if (!policy)
    throw notFound(
      `Policy ${name} does not exist; "acba policy list" shows the policies there are.`,
    );
  return policy;
}

export interface ResolvedItems {
  /** Items this policy protects. */
  items: ProtectedItem[];
  /** Items it selects but leaves to a policy of higher priority. */
  skipped: { item: ProtectedItem; policy: string }[];
  /** Items another, lower-priority policy selects but this one takes. */
  lost: { item: ProtectedItem; policy: string }[];
}

/** The customer's items that `policy` selects, split by who protects them. */
export async function resolvePolicyItems(db: Db, policy: Policy): Promise<ResolvedItems> {
  const items = await db
    .selectFrom('protected_items')
    .selectAll()
    .where('customer_id', '=', policy.customer_id)
    .orderBy('name')
    .execute();
  const policies = await db
    .selectFrom('policies')
    .selectAll()
    .where('customer_id', '=', policy.customer_id)
    .where('enabled', '=', true)
    .execute();
  const selectors = await db
    .selectFrom('policy_items')
    .selectAll()
    .where('policy_name', 'in', policies.map((p) => p.name).concat(policy.name))
    .execute();
  const selects = (name: string, item: ProtectedItem) =>
    selectors.some((s) => s.policy_name === name && matches(s.selector, s.value, item));
  const rank = (p: Pick<Policy, 'name' | 'priority'>) => [-p.priority, p.name] as const;
  const outranks = (a: Policy, b: Policy) => {
    const [pa, na] = rank(a);
    const [pb, nb] = rank(b);
    return pa < pb || (pa === pb && na < nb);
  };

  const result: ResolvedItems = { items: [], skipped: [], lost: [] };
  for (const item of items) {
    if (!selects(policy.name, item)) continue;
    const others = policies.filter((p) => p.name !== policy.name && selects(p.name, item));
    const winner = others.find((p) => outranks(p, policy));
    if (winner) result.skipped.push({ item, policy: winner.name });
    else {
      result.items.push(item);
      for (const other of others) result.lost.push({ item, policy: other.name });
    }
  }
  return result;
}

function matches(selector: 'vm' | 'database' | 'tag', value: string, item: ProtectedItem): boolean {
  if (selector !== 'tag') {
    if (item.kind !== (selector === 'vm' ? 'vm' : 'sql_database')) return false;
    return (
      value === item.id ||
      value.toLowerCase() === item.name.toLowerCase() ||
      value.toLowerCase() === item.resource_id.toLowerCase()
    );
  }
  const at = value.indexOf('=');
  const tags = (item.tags ?? {}) as Record<string, string>;
  return tags[value.slice(0, at)] === value.slice(at + 1);
}
