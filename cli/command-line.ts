/**
 * Conventions the operator commands share: usage text, whole-number
 * options checked with the bad value named, and listings printed as one text
 * line per row or as a JSON array.
 */
import type { Db } from '../core/db/database.ts';
import { badInput, notFound } from '../core/errors.ts';

/** Prints the usage text; exit code 0 when asked for, 1 when the command was incomplete. */
export function printUsage(usage: string, asked: boolean): number {
  process.stdout.write(`${usage}\n`);
  return asked ? 0 : 1;
}

/** An option's whole number of at least `min`, or undefined when not given. */
export function wholeNumberOption(
  name: string,
  raw: string | undefined,
  min: number,
): number | undefined {
  if (raw === undefined) return undefined;
  const value = Number(raw);
  if (raw.trim() === '' || !Number.isInteger(value) || value < min)
    throw badInput(`--${name} takes a whole number of at least ${min}; got "${raw.slice(0, 40)}".`);
  return value;
}

/** Writes the rows as a JSON array, or one line per row (`empty` when there are none). */
export function printRows<T>(
  rows: T[],
  json: boolean,
  line: (row: T) => string,
  empty: string,
): void {
  if (json) process.stdout.write(`${JSON.stringify(rows, null, 2)}\n`);
  else if (rows.length === 0) process.stdout.write(`${empty}\n`);
  else for (const row of rows) process.stdout.write(`${line(row)}\n`);
}

/** Refuses (not_found) a --customer that names no customer, pointing at the list of ids. */
export async function requireCustomer(db: Db, customerId: string | undefined): Promise<void> {
  if (customerId === undefined) return;
  const customer = await db
    .selectFrom('customers')
    .select('id')
    .where('id', '=', customerId)
    .executeTakeFirst();
  if (!customer)
    throw notFound(
      `There is no customer "${customerId.slice(0, 60)}"; "acba customers list" shows each customer's id.`,
    );
}
