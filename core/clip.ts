/**
 * Text from people and other systems, made safe to store and to repeat back.
 * PostgreSQL refuses the NUL character in text and jsonb, and an append-only
 * audit log must not grow by megabytes because someone pasted a huge value
 * into a field that was then refused: both are handled here, once.
 */

/** Characters kept of a string before it is cut, in messages that quote what someone sent. */
export const QUOTE_LENGTH = 120;

/**
 * The text cut to `max` characters, with a note saying how long it was, and
 * NUL characters replaced by U+FFFD so that PostgreSQL accepts it.
 */
export function clip(text: string, max: number): string {
  const clean = text.includes('\u0000') ? text.replaceAll('\u0000', '\uFFFD') : text;
  if (clean.length <= max) return clean;
  return `${clean.slice(0, max)}… (${clean.length} characters in all)`;
}

/** Every string inside `value` (objects and arrays included) clipped as by clip(); other values unchanged. */
export function clipDeep<T>(value: T, max: number): T {
  if (typeof value === 'string') return clip(value, max) as T;
  if (Array.isArray(value)) return value.map((v) => clipDeep(v, max)) as T;
  if (value !== null && typeof value === 'object' && !(value instanceof Date)) {
    const out: Record<string, unknown> = {};
    for (const [key, v] of Object.entries(value)) out[clip(key, max)] = clipDeep(v, max);
    return out as T;
  }
  return value;
}
