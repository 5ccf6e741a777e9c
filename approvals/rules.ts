/**
 * Input rules for written requests and decisions. Each check throws a
 * bad_input error that says what was given and what is needed, so the bot and
 * the portal can show the message as it is.
 */
import { badInput } from '../core/errors.ts';

export const MAX_PATH_LENGTH = 1024;
export const MIN_REASON_LENGTH = 20;
export const MAX_REASON_LENGTH = 4000;
/** The most characters a reason or comment may take as typed, spaces and line breaks included. */
export const MAX_TYPED_LENGTH = 6000;
export const MIN_COMMENT_LENGTH = 5;
export const MAX_TICKET_LENGTH = 100;
/** Ids of requests and restore points are UUIDs or short slugs; anything longer names nothing. */
export const MAX_ID_LENGTH = 100;

/** C0 and C1 control characters other than tab and line breaks. */
const CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f]/;
/**
 * Characters that change how the text around them is displayed without being
 * seen (bidirectional overrides and isolates, zero-width marks). In a path
 * they would let an approver read a different file name from the one restored.
 */
const INVISIBLE = /[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]/;

/** True when the id could name a stored row: not empty, not too long, plain printable text. */
export function plausibleId(id: string): boolean {
  return id !== '' && id.length <= MAX_ID_LENGTH && !CONTROL.test(id) && !/[\r\n\t]/.test(id);
}

/** Checks a file path inside a VM: absolute (Linux or Windows style), no `..`, at most 1024 characters. */
export function checkFilePath(path: string): string {
  const trimmed = path.trim();
  if (trimmed === '')
    throw badInput(
      'The file path is empty. Give the full path of the file, for example /etc/nginx/nginx.conf or C:\\inetpub\\web.config.',
    );
  if (trimmed.length > MAX_PATH_LENGTH) {
    throw badInput(
      `The file path is ${trimmed.length} characters long; at most ${MAX_PATH_LENGTH} are allowed.`,
    );
  }
  if (/[\u0000-\u001f\u007f-\u009f]/.test(trimmed))
    throw badInput('The file path contains control characters. Give the path as plain text.');
  if (INVISIBLE.test(trimmed)) {
    throw badInput(
      'The file path contains invisible formatting characters (such as right-to-left overrides or zero-width spaces), which would show the approver a different name from the file restored. Type the path again as plain text.',
    );
  }

  const absolute = trimmed.startsWith('/') || /^[A-Za-z]:[\\/]/.test(trimmed);
  if (!absolute) {
    throw badInput(
      `The file path "${trimmed}" is not absolute. Give the full path from the root, for example /etc/nginx/nginx.conf or C:\\inetpub\\web.config.`,
    );
  }
  if (trimmed.split(/[\\/]/).includes('..')) {
    throw badInput(
      `The file path "${trimmed}" contains "..". Give the file's full path without "..".`,
    );
  }
  return trimmed;
}

/** Refuses text that cannot be stored or shown faithfully: control characters, or far too long as typed. */
function checkWritten(what: string, text: string): void {
  if (CONTROL.test(text)) {
    throw badInput(
      `The ${what} contains control characters (such as NUL). Write it as plain text; line breaks are fine.`,
    );
  }
  if (text.trim().length > MAX_TYPED_LENGTH) {
    throw badInput(
      `The ${what} takes ${text.trim().length} characters with its spaces and line breaks; at most ${MAX_TYPED_LENGTH} are allowed. Shorten it.`,
    );
  }
}

/** Whitespace collapsed, for measuring what a person actually wrote. */
function normalizedText(text: string): string {
  return text.trim().replace(/\s+/g, ' ');
}

/**
 * A written reason: at least 20 characters of real text. Runs of one repeated
 * character or text without letters do not count as a reason.
 */
export function checkReason(reason: string | undefined): string {
  checkWritten('reason', reason ?? '');
  const text = normalizedText(reason ?? '');
  const needed = `Write at least ${MIN_REASON_LENGTH} characters saying why you need this restore (what happened, which incident or change), so the approver can decide.`;
  if (text === '') throw badInput(`A reason is required. ${needed}`);
  if (text.length < MIN_REASON_LENGTH) {
    throw badInput(`The reason is ${text.length} characters long. ${needed}`, {
      length: text.length,
      minLength: MIN_REASON_LENGTH,
    });
  }
  if (text.length > MAX_REASON_LENGTH) {
    throw badInput(
      `The reason is ${text.length} characters long; at most ${MAX_REASON_LENGTH} are allowed. Shorten it or put the details in a ticket.`,
    );
  }

  const letters = text.match(/\p{L}/gu) ?? [];
  const distinct = new Set(letters.map((c) => c.toLowerCase()));
  if (
    letters.length < MIN_REASON_LENGTH / 2 ||
    distinct.size < 5 ||
    !/\p{L}{2,}.*\s+.*\p{L}{2,}/u.test(text)
  ) {
    throw badInput(`The reason "${text.slice(0, 40)}" does not read as an explanation. ${needed}`);
  }
  return reason!.trim();
}

/** An approver's written comment: required, at least 5 characters. */
export function checkComment(comment: string | undefined): string {
  checkWritten('comment', comment ?? '');
  const text = normalizedText(comment ?? '');
  if (text.length < MIN_COMMENT_LENGTH) {
    const given =
      text === '' ? 'No comment was given' : `The comment is ${text.length} characters long`;
    throw badInput(
      `${given}. Write at least ${MIN_COMMENT_LENGTH} characters explaining the decision; it is kept in the audit trail.`,
    );
  }
  if (text.length > MAX_REASON_LENGTH) {
    throw badInput(
      `The comment is ${text.length} characters long; at most ${MAX_REASON_LENGTH} are allowed.`,
    );
  }
  return comment!.trim();
}

/** An optional ticket reference: one line, at most 100 characters. */
export function checkTicket(ticket: string | undefined): string | undefined {
  const text = (ticket ?? '').trim();
  if (text === '') return undefined;
  if (text.length > MAX_TICKET_LENGTH || /[\r\n]/.test(text) || CONTROL.test(text)) {
    throw badInput(
      `The ticket reference must be one line of plain text of at most ${MAX_TICKET_LENGTH} characters (it is ${text.length}).`,
    );
  }
  return text;
}

/** A time as people read it in messages: 2026-12-01 14:00 UTC. */
export function formatUtc(at: unknown): string {
  const d = toDate(at);
  return `${d.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
}

/**
 * A timestamp column as a Date. Columns typed Generated<Timestamp> in the schema
 * select as kysely's ColumnType wrapper in TypeScript, though they hold Dates.
 */
export function toDate(value: unknown): Date {
  return value instanceof Date ? value : new Date(value as string);
}
