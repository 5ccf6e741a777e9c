/**
 * `acba licence set CUSTOMER [--instances N] [--storage-tb X] [--tasks N]` and
 * `acba licence show CUSTOMER [--json]`: the operators' hold on what each
 * customer bought. `none` removes a limit; a customer without a licence is
 * unlimited. Each change is in the audit trail with the operator's login name.
 */
import os from 'node:os';
import { parseArgs } from 'node:util';
import type { AuditActor } from '../core/audit.ts';
import type { Config } from '../core/config.ts';
import { openDatabase } from '../core/db/database.ts';
import { badInput, notFound } from '../core/errors.ts';
import { licenceView, setLicence, storedBytesOf, type LicenceView } from '../engine/licences.ts';

export const licenceUsage = `Usage:
  acba licence set CUSTOMER [--instances N] [--storage-tb X] [--tasks N]
      Sets the customer's limits: protected VMs and databases, repository storage in TB
      (10^12 bytes; backups warn from 90% and are refused at 100%), and tasks that run at
      once across all workers. "none" removes a limit; limits not given stay as they are.
  acba licence show CUSTOMER [--json]
      Shows the customer's limits and its stored bytes. A customer without a licence is unlimited.`;

export async function licenceCommand(config: Config, argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub === undefined || sub === '--help' || sub === '-h' || sub === 'help') {
    process.stdout.write(`${licenceUsage}\n`);
    return sub === undefined ? 1 : 0;
  }
  if (sub !== 'set' && sub !== 'show')
    throw badInput(
      `unknown licence command "${sub}"; use "acba licence set CUSTOMER ..." or "acba licence show CUSTOMER [--json]".`,
    );
  const { values, positionals } = parseArgs({
    args: rest,
    options: {
      instances: { type: 'string' },
      'storage-tb': { type: 'string' },
      tasks: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' },
    },
    allowPositionals: true,
  });
  if (values.help) {
    process.stdout.write(`${licenceUsage}\n`);
    return 0;
  }
  if (positionals.length !== 1) throw badInput(`name one customer: acba licence ${sub} CUSTOMER`);
  const customerId = positionals[0]!;
  const limits = {
    instances: limitOf('instances', values.instances),
    storageTb: limitOf('storage-tb', values['storage-tb']),
    tasks: limitOf('tasks', values.tasks),
  };
  if (sub === 'set' && Object.values(limits).every((v) => v === undefined))
    throw badInput(
      `give at least one limit: acba licence set ${customerId} --instances N --storage-tb X --tasks N`,
    );

  const handle = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir });
  try {
    const view =
      sub === 'set'
        ? await setLicence(handle.db, customerId, limits, operatorActor())
        : await showable(handle.db, customerId);
    const usedBytes = await storedBytesOf(handle.db, customerId);
    if (values.json) process.stdout.write(`${JSON.stringify({ ...view, usedBytes })}\n`);
    else process.stdout.write(`${describe(view, usedBytes)}\n`);
    return 0;
  } finally {
    await handle.close();
  }
}

async function showable(db: Parameters<typeof licenceView>[0], customerId: string) {
  const customer = await db
    .selectFrom('customers')
    .select('id')
    .where('id', '=', customerId)
    .executeTakeFirst();
  if (!customer)
    throw badInput(
      `customer ${customerId} does not exist; use the customer's id as the portal lists it.`,
    );
  return licenceView(db, customerId);
}

/** A limit as typed: a number, "none" (null: no limit), or absent (undefined: unchanged). */
function limitOf(name: string, raw: string | undefined): number | null | undefined {
  if (raw === undefined) return undefined;
  if (raw.trim().toLowerCase() === 'none') return null;
  const value = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(value))
    throw badInput(`--${name} takes a number or "none"; got "${raw}".`);
  return value;
}

function describe(view: LicenceView, usedBytes: number): string {
  const used = `${(usedBytes / 1e12).toFixed(3)} TB stored`;
  if (!view.licensed) return `Customer ${view.customerId}: no licence, unlimited (${used}).`;
  const limit = (value: number | null, unit: string) =>
    value === null ? 'unlimited' : `${value}${unit}`;
  return [
    `Customer ${view.customerId}:`,
    `  protected instances  ${limit(view.instances, '')}`,
    `  storage              ${limit(view.storageTb, ' TB')} (${used})`,
    `  concurrent tasks     ${limit(view.tasks, '')}`,
    `  set by ${view.updatedBy} at ${view.updatedAt?.toISOString()}`,
  ].join('\n');
}

/** The operator at the keyboard, as the audit trail names them. */
function operatorActor(): AuditActor {
  const login = os.userInfo().username;
  return { objectId: `cli:${login}`, tenantId: 'acba', name: login, role: 'operator' };
}
