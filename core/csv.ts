/**
 * CSV as spreadsheets read it (RFC 4180): a cell is quoted when it holds a
 * quote, a comma, a line break, or a `#` (which some readers, ours included,
 * take for the start of a comment).
 */

/** One cell, quoted when it must be. */
export function csvCell(value: string): string {
  return /[",\n\r#]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

/** One line of cells, with its line break; null and undefined are empty cells. */
export function csvLine(values: readonly (string | number | null | undefined)[]): string {
  return `${values.map((v) => csvCell(v == null ? '' : String(v))).join(',')}\n`;
}
