/**
 * Progress for long commands: drawn on stderr when it is a terminal, and not
 * at all when stderr is piped or redirected, so that scripts read only the
 * final result on stdout.
 */

/** A one-line progress display that rewrites itself; undefined when stderr is not a terminal. */
export function terminalProgress(): ((line: string) => void) | undefined {
  if (!process.stderr.isTTY) return undefined;
  return (line) => process.stderr.write(`\r\x1b[2K${fit(line)}`);
}

/**
 * A block of lines (one per item) redrawn in place on each call; undefined
 * when stderr is not a terminal. Call `clear()` before printing the summary.
 */
export function terminalBoard(): { draw(lines: string[]): void; clear(): void } | undefined {
  if (!process.stderr.isTTY) return undefined;
  let drawn = 0;
  const clear = () => {
    // Up to the first line drawn, then erase everything below it.
    if (drawn > 0) process.stderr.write(`\x1b[${drawn}F\x1b[0J`);
    drawn = 0;
  };
  return {
    draw(lines) {
      clear();
      for (const line of lines) process.stderr.write(`${fit(line)}\n`);
      drawn = lines.length;
    },
    clear,
  };
}

function fit(line: string): string {
  return line.slice(0, (process.stderr.columns ?? 80) - 1);
}
