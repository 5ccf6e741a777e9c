/**
 * ACBA roles from Entra ID: the app roles (`roles` claim) and group object ids
 * (`groups` claim) in a person's token are mapped to ACBA's roles by
 * configuration. The principals table stays the source for the sandbox's
 * seeded people and for when each role was granted.
 */
import fs from 'node:fs';
import { z } from 'zod';
import type { Role } from '../core/db/schema.ts';
import { badInput } from '../core/errors.ts';

const ROLES = ['requester', 'approver', 'operator', 'auditor'] as const satisfies readonly Role[];

/** Which app role values and group ids grant which ACBA role. */
export interface RoleMapping {
  appRoles?: Partial<Record<string, Role[]>>;
  groups?: Partial<Record<string, Role[]>>;
}

const mappingSchema = z.strictObject({
  appRoles: z.record(z.string().min(1), z.array(z.enum(ROLES))).optional(),
  groups: z.record(z.string().min(1), z.array(z.enum(ROLES))).optional(),
});

/** Validates a role mapping given as JSON data; throws bad_input naming the bad entry. */
export function parseRoleMapping(data: unknown): RoleMapping {
  const parsed = mappingSchema.safeParse(data);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw badInput(
      `The role mapping is invalid at ${issue.path.join('.') || 'the top'}: ${issue.message}. Map app role values or group ids to lists of requester, approver, operator, auditor.`,
    );
  }
  return parsed.data;
}

/** Reads a role mapping from a JSON file (ACBA_ROLE_MAPPING); throws bad_input naming the problem. */
export function loadRoleMapping(file: string): RoleMapping {
  let data: unknown;
  try {
    data = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    const why = (error as NodeJS.ErrnoException).code ?? (error as Error).message;
    throw badInput(
      `The role mapping file ${file} cannot be read as JSON (${why}). Fix ACBA_ROLE_MAPPING or unset it to keep roles in ACBA's own table.`,
    );
  }
  return parseRoleMapping(data);
}

/**
 * The ACBA roles a token's claims grant, sorted and without repeats. Claims of
 * the wrong type grant nothing; group ids are compared without regard to case.
 */
export function rolesFromClaims(claims: Record<string, unknown>, mapping: RoleMapping): Role[] {
  const strings = (value: unknown): string[] =>
    Array.isArray(value) ? value.filter((v): v is string => typeof v === 'string') : [];
  const granted = new Set<Role>();

  const appRoles = new Map(Object.entries(mapping.appRoles ?? {}));
  for (const appRole of strings(claims.roles)) {
    for (const role of appRoles.get(appRole) ?? []) granted.add(role);
  }
  const groups = new Map(
    Object.entries(mapping.groups ?? {}).map(([id, roles]) => [id.toLowerCase(), roles ?? []]),
  );
  for (const group of strings(claims.groups)) {
    for (const role of groups.get(group.toLowerCase()) ?? []) granted.add(role);
  }
  return [...granted].sort();
}
