/**
 * What a person typed to the bot, read forgivingly: any case, extra spaces,
 * quotes around names and paths, polite words around the command ("please
 * show me my requests"), and Teams' <at> mentions in channels. Anything
 * unrecognized is 'help' naming what was not understood, never an error.
 */
import { clip } from '../core/clip.ts';
import { parseRestoreTime } from './when.ts';

export type Command =
  /** `unknown` is what the person wrote when it was not a command (absent for help and greetings). */
  | { kind: 'help'; unknown?: string }
  | { kind: 'status' }
  /** `itemName` is absent when the person did not say which item. */
  | { kind: 'restore_points'; itemName?: string }
  | { kind: 'my_requests'; note?: string }
  | { kind: 'cancel'; requestId: string }
  | {
      kind: 'restore_file';
      path: string;
      vmName: string;
      at?: Date;
      atText?: string;
      dateOnly: boolean;
    }
  /** A disk, VM or SQL restore form for the VM or the SQL server `name`. */
  | { kind: 'restore_form'; form: 'disk_restore' | 'vm_restore' | 'sql_restore'; name: string }
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
/** A quoted or bare word as one capture group, for names and ids. */
const word = String.raw`["']?([^"'\s]+)["']?`;

/** Courtesies and filler before a command: "hi acba, could you please show me ...". */
const politePrefix =
  /^(?:(?:please|pls|kindly|hey|hi|hello|acba|(?:can|could|would|will) you|show(?: me)?|list|give me|get(?: me)?|tell me|display|check|view|see|let me see|i(?:'d| would) like to(?: see)?|i want to(?: see)?|what are|what's|what is)[\s,:]+)+/i;
const politeSuffix = /(?:[\s,]+(?:please|pls|thanks|thank you))*[\s?!.]*$/i;

const helpPattern =
  /^(?:help|\?|commands|menu|start|hi|hello|hey|what can you do|what do you do|how does (?:this|it) work)$/i;
const statusPattern =
  /^(?:(?:(?:my|our|the)\s+)?(?:backups?\s+)?status(?:\s+of\s+(?:(?:my|our|the)\s+)?backups)?|(?:how\s+are|how's|how\s+is)\s+(?:(?:my|our|the)\s+)?backups?(?:\s+doing)?|(?:(?:my|our|the)\s+)?backups)$/i;
const restorePointsPattern = new RegExp(
  String.raw`^(?:(?:my|our|the)\s+)?(?:restore[\s-]?points?|recovery[\s-]?points?|backups)(?:\s+(?:of|for|on|from))?(?:\s+(?:the\s+)?(?:vm|item|database|db))?(?:\s+${word})?$`,
  'i',
);
/** "web-01 restore points", "web-01's restore points". */
const itemFirstPattern = /^["']?([^"'\s]+?)["']?(?:'s)?\s+restore[\s-]?points?$/i;
const myRequestsPattern =
  /^(?:(?:my|our)\s+)?(?:(?:restore|open|pending)\s+)?requests?(?:\s+list)?$|^request\s+list$|^what did i ask for$/i;
const cancelPattern = new RegExp(
  String.raw`^(?:cancel|withdraw)(?:\s+(?:my|the))?(?:\s+request)?(?:\s+id)?:?(?:\s+${word})?$`,
  'i',
);
const restorePattern = new RegExp(
  String.raw`^restore\s+(?:the\s+)?file\s+(?:${quoted})\s+from\s+(?:(?:the\s+)?vm\s+)?(?:"([^"]+)"|(\S+?))(?:\s+at\s+(.+?))?[.!]?$`,
  'i',
);

const diskFormPattern = new RegExp(
  String.raw`^restore\s+(?:the\s+)?disks?\s+(?:(?:of|from|on)\s+)?(?:(?:the\s+)?vm\s+)?${word}$`,
  'i',
);
const vmFormPattern = new RegExp(
  String.raw`^restore\s+(?:the\s+)?(?:whole\s+)?vm\s+${word}$|^restore\s+${word}\s+as\s+a\s+new\s+vm$`,
  'i',
);
const sqlFormPattern = new RegExp(
  String.raw`^restore\s+(?:the\s+)?(?:sql\s+)?(?:databases?|dbs?|sql)\s+(?:(?:of|from|on)\s+)?(?:(?:the\s+)?server\s+)?${word}$`,
  'i',
);

/** The longest piece of what someone wrote that the help card repeats back. */
const ECHO_LENGTH = 60;

export function parseCommand(text: unknown, zone: string | undefined): Command {
  const clean = cleanText(text);
  const plain = clean.replace(politePrefix, '').replace(politeSuffix, '');
  if (plain === '' || helpPattern.test(plain)) return { kind: 'help' };
  const other = otherCommand(plain);
  if (other) return other;
  return restoreCommand(plain, clean, zone);
}

/** The commands besides restore file, or undefined. */
function otherCommand(plain: string): Command | undefined {
  if (statusPattern.test(plain)) return { kind: 'status' };

  const points = restorePointsPattern.exec(plain) ?? itemFirstPattern.exec(plain);
  if (points) return { kind: 'restore_points', itemName: points[1] };

  if (myRequestsPattern.test(plain)) return { kind: 'my_requests' };

  const cancel = cancelPattern.exec(plain);
  if (cancel?.[1]) return { kind: 'cancel', requestId: cancel[1] };
  if (cancel) {
    return {
      kind: 'my_requests',
      note: 'Which request? Write cancel followed by its id, for example cancel 6f1c2d3e-...; here are yours.',
    };
  }
  return undefined;
}

/** `restore disks of web-01`, `restore vm web-01`, `restore databases of sql-contoso-weu`. */
function restoreFormCommand(plain: string): Command | undefined {
  const disk = diskFormPattern.exec(plain);
  if (disk) return { kind: 'restore_form', form: 'disk_restore', name: disk[1]! };
  const vm = vmFormPattern.exec(plain);
  if (vm) return { kind: 'restore_form', form: 'vm_restore', name: (vm[1] ?? vm[2])! };
  const sql = sqlFormPattern.exec(plain);
  if (sql) return { kind: 'restore_form', form: 'sql_restore', name: sql[1]! };
  return undefined;
}

function restoreCommand(plain: string, clean: string, zone: string | undefined): Command {
  const form = restoreFormCommand(plain);
  if (form) return form;
  const match = restorePattern.exec(plain);
  if (!match) {
    if (/^restore\b/i.test(plain)) {
      return {
        kind: 'bad_input',
        message:
          'I did not understand that restore. Write it like: restore file /etc/nginx/nginx.conf from web-01 at 2026-12-01 14:00 (the time is optional), restore disks of web-01, restore vm web-01, or restore databases of sql-contoso-weu.',
      };
    }
    return { kind: 'help', unknown: clip(clean, ECHO_LENGTH) };
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
