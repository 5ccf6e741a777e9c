/**
 * The approval rules and the role mapping are configuration files that the
 * provider deploys. Whoever changes them changes who must approve what, so
 * every start-up compares each file with the version last recorded and, when
 * it differs (or appears or disappears), writes the new version's hash and
 * summary to the audit trail. Auditors see when the rules changed, and can
 * match the hash with the file in the provider's change management.
 */
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { appendAudit, serviceActor } from '../core/audit.ts';
import type { Db } from '../core/db/database.ts';

export interface ConfigurationFile {
  /** What the file configures, e.g. 'approval_rules' or 'role_mapping'. */
  name: string;
  /** Its path; undefined when the setting is unset and the built-in defaults apply. */
  file?: string;
  /** A short, reviewable summary of what is in force (rule ids and approvals, mapped roles). */
  summary: unknown;
}

const ACTION = 'configuration.change';

/** Records the configuration in force when it differs from the last recorded; true when it did. */
export async function recordConfiguration(db: Db, config: ConfigurationFile): Promise<boolean> {
  const sha256 = config.file
    ? createHash('sha256').update(fs.readFileSync(config.file)).digest('hex')
    : null;

  const last = await db
    .selectFrom('audit_log')
    .select('details')
    .where('action', '=', ACTION)
    .where('resource', '=', `configuration/${config.name}`)
    .orderBy('seq', 'desc')
    .limit(1)
    .executeTakeFirst();
  const previous = (last?.details as { sha256?: string | null } | undefined)?.sha256;
  if (last && previous === sha256) return false;

  await appendAudit(db, {
    actor: serviceActor,
    channel: 'cli',
    action: ACTION,
    resource: `configuration/${config.name}`,
    outcome: 'success',
    details: {
      file: config.file ?? null,
      sha256,
      previousSha256: previous ?? null,
      inForce: config.summary,
    },
  });
  return true;
}
