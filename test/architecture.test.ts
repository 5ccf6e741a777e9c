// The folder tree is the architecture: bot and portal sit above approvals,
// approvals above the engine, and core below everything. This test reads every
// source file's imports and fails on an import that points upwards.
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const root = path.resolve(import.meta.dirname, '..');

/** For each layer, the top-level folders it must not import from. */
const forbidden: Record<string, string[]> = {
  core: ['engine', 'approvals', 'bot', 'portal', 'sandbox', 'cli'],
  engine: ['approvals', 'bot', 'portal', 'sandbox', 'cli'],
  approvals: ['bot', 'portal', 'sandbox', 'cli'],
  bot: ['portal', 'sandbox', 'cli'],
  portal: ['bot', 'sandbox', 'cli'],
  sandbox: ['engine', 'approvals', 'bot', 'portal', 'cli'],
};

function sourceFiles(dir: string): string[] {
  if (!fs.existsSync(dir)) return [];
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((entry) => {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) return entry.name === 'node_modules' ? [] : sourceFiles(full);
    return /\.(ts|js)$/.test(entry.name) ? [full] : [];
  });
}

function importsOf(file: string): string[] {
  const text = fs.readFileSync(file, 'utf8');
  return [
    ...text.matchAll(
      /(?:import|export)[^'"]*?from\s+['"]([^'"]+)['"]|import\(\s*['"]([^'"]+)['"]\s*\)/g,
    ),
  ]
    .map((m) => m[1] ?? m[2]!)
    .filter((spec) => spec.startsWith('.'));
}

describe('import direction between layers', () => {
  for (const [layer, banned] of Object.entries(forbidden)) {
    it(`${layer}/ imports nothing from ${banned.join(', ')}`, () => {
      const violations: string[] = [];
      for (const file of sourceFiles(path.join(root, layer))) {
        for (const spec of importsOf(file)) {
          const target = path
            .relative(root, path.resolve(path.dirname(file), spec))
            .split(path.sep)[0]!;
          if (banned.includes(target))
            violations.push(`${path.relative(root, file)} imports ${spec}`);
        }
      }
      expect(violations).toEqual([]);
    });
  }
});
