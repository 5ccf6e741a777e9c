/**
 * What a person typed to the bot, read forgivingly: any case, extra spaces,
 * quotes around the path, "from vm web-01", and Teams' <at> mentions in
 * channels. Anything unrecognized is 'help', never an error.
 */
import { parseRestoreTime } from './when.ts';

export type Command =
  | { kind: 'help' }
  | {
      kind: 'restore_file';
      path: string;
      vmName: string;
      at?: Date;
      atText?: string;
      dateOnly: boolean;
    }
  | { kind: 'bad_input'; message: string };

/** Message text without mentions, HTML and surplus whitespace. */
export function cleanText(text: unknown): string {
  // Teams always sends a string; anything else is treated as an empty message.
  return (typeof text === 'string' ? text : '')
    .replace(/<at\b[^>]*>[\s\S]*?<\/at>/gi, ' ')
    .replace(/<[^>]+>/g, ' ')
    .replace(/&nbsp;/gi, ' ')
    .replace(/&quot;/gi, '"')
    .replace(/&amp;/gi, '&')
    .replace(/&lt;/gi, '<')
    .replace(/&gt;/gi, '>')
    .replace(/[\u201c\u201d]/g, '"')
    .replace(/[\u2018\u2019]/g, "'")
    .replace(/\s+/g, ' ')
    .trim();
}

const quoted = String.raw`"([^"]+)"|'([^']+)'|(\S+)`;
const restorePattern = new RegExp(
  String.raw`^restore\s+(?:the\s+)?file\s+(?:${quoted})\s+from\s+(?:(?:the\s+)?vm\s+)?(?:"([^"]+)"|(\S+?))(?:\s+at\s+(.+?))?[.!]?$`,
  'i',
);

export function parseCommand(text: unknown, zone: string | undefined): Command {
  const clean = cleanText(text);
  const match = restorePattern.exec(clean);
  if (!match) {
    if (/^restore\b/i.test(clean)) {
      return {
        kind: 'bad_input',
        message:
          'I did not understand that restore. Write it like: restore file /etc/nginx/nginx.conf from web-01 at 2026-12-01 14:00 (the time is optional).',
      };
    }
    return { kind: 'help' };
  }

  const path = (match[1] ?? match[2] ?? match[3])!;
  const vmName = (match[4] ?? match[5])!;
  const atText = match[6];
  if (atText === undefined) return { kind: 'restore_file', path, vmName, dateOnly: false };

  const parsed = parseRestoreTime(atText.replace(/^"|"$/g, ''), zone);
  if (!parsed.ok) return { kind: 'bad_input', message: parsed.message };
  return {
    kind: 'restore_file',
    path,
    vmName,
    at: parsed.at,
    atText: atText.trim(),
    dateOnly: parsed.dateOnly,
  };
}
