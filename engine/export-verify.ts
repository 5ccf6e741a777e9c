/**
 * Checks an exit export in a folder against its manifest.json: every file
 * listed is there, has the listed size, and hashes to the listed SHA-256.
 * Reports each file that differs, not just the first.
 */
import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import fs from 'node:fs/promises';
import path from 'node:path';
import { badInput } from '../core/errors.ts';
import { EXPORT_MANIFEST, type ExportedFile } from './exit-export.ts';

export interface ExportProblem {
  path: string;
  problem: 'missing' | 'size' | 'checksum';
  /** In words, with what was expected and what was found. */
  message: string;
}

export interface ExportVerification {
  checked: number;
  bytes: number;
  problems: ExportProblem[];
}

/** Recomputes every checksum of the export in `dir`. */
export async function verifyExport(
  dir: string,
  onFile?: (file: string) => void,
): Promise<ExportVerification> {
  const manifestFile = path.join(dir, EXPORT_MANIFEST);
  const text = await fs.readFile(manifestFile, 'utf8').catch(() => {
    throw badInput(
      `${manifestFile} is missing: ${dir} is not a finished ACBA export (the manifest is written last). Run the export again to finish it.`,
    );
  });
  let listed: Array<Pick<ExportedFile, 'path' | 'bytes' | 'sha256'>>;
  try {
    const manifest = JSON.parse(text) as { readme?: ExportedFile; files: ExportedFile[] };
    listed = [...(manifest.readme ? [manifest.readme] : []), ...manifest.files];
    if (!Array.isArray(manifest.files)) throw new Error('no files');
  } catch {
    throw badInput(`${manifestFile} is not an ACBA export manifest (it does not parse as one).`);
  }

  const problems: ExportProblem[] = [];
  let bytes = 0;
  for (const file of listed) {
    onFile?.(file.path);
    const full = path.resolve(dir, file.path);
    if (!full.startsWith(path.resolve(dir) + path.sep))
      throw badInput(
        `The manifest names ${file.path}, outside the export folder; it is not to be trusted.`,
      );
    const stat = await fs.stat(full).catch(() => undefined);
    if (!stat) {
      problems.push({ path: file.path, problem: 'missing', message: `${file.path} is missing.` });
      continue;
    }
    if (stat.size !== file.bytes) {
      problems.push({
        path: file.path,
        problem: 'size',
        message: `${file.path} holds ${stat.size} bytes; the manifest says ${file.bytes}.`,
      });
      continue;
    }
    const hash = createHash('sha256');
    for await (const chunk of createReadStream(full)) hash.update(chunk as Buffer);
    const sha256 = hash.digest('hex');
    bytes += stat.size;
    if (sha256 !== file.sha256)
      problems.push({
        path: file.path,
        problem: 'checksum',
        message: `${file.path} has SHA-256 ${sha256}; the manifest says ${file.sha256}.`,
      });
  }
  return { checked: listed.length, bytes, problems };
}
