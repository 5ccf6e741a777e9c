/**
 * Server-side rendering with eta. Templates live in ./views and always escape
 * interpolations; the helpers here turn dates, sizes and JSON into text that
 * templates print as plain, escaped strings.
 */
import path from 'node:path';
import { Eta } from 'eta';

const views = path.join(import.meta.dirname, 'views');

export const eta = new Eta({ views, autoEscape: true, cache: true });

function toDate(value: Date | string | null | undefined): Date | undefined {
  if (value === null || value === undefined) return undefined;
  const date = value instanceof Date ? value : new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/** Formatting helpers every template receives as `it.f`. */
export const formatters = {
  /** The raw ISO 8601 value, for `<time datetime>`. */
  iso(value: Date | string | null | undefined): string {
    return toDate(value)?.toISOString() ?? '';
  },

  /** Readable UTC, e.g. "2025-03-01 14:05 UTC". */
  utc(value: Date | string | null | undefined): string {
    const date = toDate(value);
    if (!date) return '–';
    return `${date.toISOString().slice(0, 16).replace('T', ' ')} UTC`;
  },

  /** Binary units, one decimal: "1.5 GiB". */
  bytes(value: number | string | bigint | null | undefined): string {
    let n = Number(value ?? 0);
    if (!Number.isFinite(n)) return String(value);
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
    let unit = 0;
    while (n >= 1024 && unit < units.length - 1) {
      n /= 1024;
      unit += 1;
    }
    return unit === 0 ? `${n} B` : `${n.toFixed(1)} ${units[unit]}`;
  },

  json(value: unknown): string {
    if (value === null || value === undefined) return '';
    const parsed = typeof value === 'string' ? safeParse(value) : value;
    return JSON.stringify(parsed, null, 2);
  },

  /** A disk's role for people: "OS" or "LUN 2". */
  diskRole(role: 'os' | number): string {
    return role === 'os' ? 'OS' : `LUN ${role}`;
  },
};

function safeParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

/** Renders a page template inside the layout. */
export async function renderPage(template: string, data: Record<string, unknown>): Promise<string> {
  return eta.renderAsync(template, { ...data, f: formatters });
}
