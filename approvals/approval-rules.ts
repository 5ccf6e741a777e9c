/**
 * How many approvals a request needs, as configuration. A rules file (JSON,
 * path in ACBA_APPROVAL_RULES) lists rules in order; the first whose kind
 * matches and whose `when` expression (adaptive-expressions, over `request`)
 * is true decides. When no configured rule matches, the safe default for the
 * kind applies. A request stores the number and the id of the rule, so later
 * changes to the rules do not change requests already written.
 */
import fs from 'node:fs';
import { Expression } from 'adaptive-expressions';
import { z } from 'zod';
import type { RequestKind } from '../core/db/schema.ts';
import { badInput, unavailable } from '../core/errors.ts';

export const REQUEST_KINDS = [
  'file_restore',
  'disk_restore',
  'vm_restore',
  'sql_restore',
  'data_access',
  'delete_restore_points',
  'change_retention',
  'exit_export',
] as const satisfies readonly RequestKind[];

/** Approvals needed when no configured rule matches: two where data is destroyed, weakened or leaves. */
export const DEFAULT_APPROVALS: Record<RequestKind, number> = {
  file_restore: 1,
  disk_restore: 1,
  vm_restore: 1,
  sql_restore: 1,
  data_access: 1,
  delete_restore_points: 2,
  change_retention: 2,
  exit_export: 2,
};

/** The most approvals a rule may ask for; more could never be given by a small team. */
export const MAX_APPROVALS = 5;

const ruleSchema = z.strictObject({
  id: z
    .string()
    .regex(/^[A-Za-z0-9_.-]{1,64}$/, 'use 1 to 64 letters, digits, dots, dashes or underscores'),
  /** One kind, a list of kinds, or '*' for every kind. */
  kind: z.union([z.literal('*'), z.enum(REQUEST_KINDS), z.array(z.enum(REQUEST_KINDS)).min(1)]),
  /** An adaptive-expressions condition over `request`; the rule always applies when absent. */
  when: z.string().min(1).max(2000).optional(),
  approvals: z.number().int().min(1).max(MAX_APPROVALS),
  description: z.string().max(500).optional(),
});

const fileSchema = z.strictObject({ rules: z.array(ruleSchema).max(200) });

export type ApprovalRuleSpec = z.infer<typeof ruleSchema>;

export interface ApprovalRule {
  id: string;
  kinds: '*' | RequestKind[];
  when?: Expression;
  whenText?: string;
  approvals: number;
}

/** What a request looks like to a rule's `when` expression. */
export interface RuleInput {
  kind: RequestKind;
  customerId: string;
  target: unknown;
  ticket?: string;
  requester: { objectId: string; tenantId: string };
}

export interface RuleOutcome {
  approvalsRequired: number;
  /** The configured rule's id, or default:<kind>. */
  ruleId: string;
}

/** Validates rules given as data; throws bad_input naming the first bad rule. */
export function parseApprovalRules(data: unknown, source = 'the approval rules'): ApprovalRule[] {
  const parsed = fileSchema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const [, index, field] = issue.path;
    const rules = (data as { rules?: Array<{ id?: unknown }> } | null)?.rules;
    const named =
      typeof index === 'number'
        ? `rule ${index + 1}${typeof rules?.[index]?.id === 'string' ? ` ("${rules[index]!.id}")` : ''}${field !== undefined ? `, field ${String(field)}` : ''}`
        : issue.path.join('.') || 'the file';
    throw badInput(
      `${source} are invalid at ${named}: ${issue.message}. Fix the file and start again.`,
      { source },
    );
  }

  const seen = new Set<string>();
  return parsed.data.rules.map((spec, index) => {
    if (seen.has(spec.id))
      throw badInput(
        `${source} name rule "${spec.id}" twice (again as rule ${index + 1}). Give each rule its own id.`,
      );
    seen.add(spec.id);

    let when: Expression | undefined;
    if (spec.when !== undefined) {
      try {
        when = Expression.parse(spec.when);
      } catch (error) {
        throw badInput(
          `${source} have a condition that does not parse in rule "${spec.id}": ${(error as Error).message}. Write it as an adaptive expression over request, for example request.target.replaceOriginal == true.`,
        );
      }
    }
    return {
      id: spec.id,
      kinds: spec.kind === '*' ? '*' : typeof spec.kind === 'string' ? [spec.kind] : spec.kind,
      when,
      whenText: spec.when,
      approvals: spec.approvals,
    };
  });
}

/** Reads and validates a JSON rules file; throws bad_input naming the file and the bad rule. */
export function loadApprovalRules(file: string): ApprovalRule[] {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (error) {
    throw badInput(
      `The approval rules file ${file} cannot be read (${(error as NodeJS.ErrnoException).code}). Fix ACBA_APPROVAL_RULES or unset it for the defaults.`,
    );
  }
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch (error) {
    throw badInput(
      `The approval rules file ${file} is not valid JSON (${(error as Error).message}). Fix the file and start again.`,
    );
  }
  return parseApprovalRules(data, `The approval rules in ${file}`);
}

/**
 * The approvals a request needs: the first configured rule that applies, else
 * the default for its kind. A condition that fails to evaluate refuses the
 * request rather than guessing, since a guess could lower the bar.
 */
export function evaluateApprovalRules(rules: ApprovalRule[], input: RuleInput): RuleOutcome {
  const state = { request: { ...input, ticket: input.ticket ?? null } };
  for (const rule of rules) {
    if (rule.kinds !== '*' && !rule.kinds.includes(input.kind)) continue;
    if (rule.when) {
      const { value, error } = rule.when.tryEvaluate(state);
      if (error || (typeof value !== 'boolean' && value !== null && value !== undefined)) {
        throw unavailable(
          `Approval rule "${rule.id}" could not be evaluated for this ${input.kind} request (${error ?? `it gave ${JSON.stringify(value)}, not true or false`}). Nothing was requested; an operator must fix the rule in ACBA_APPROVAL_RULES.`,
          { rule: rule.id },
        );
      }
      if (value !== true) continue;
    }
    return { approvalsRequired: rule.approvals, ruleId: rule.id };
  }
  return { approvalsRequired: DEFAULT_APPROVALS[input.kind], ruleId: `default:${input.kind}` };
}
