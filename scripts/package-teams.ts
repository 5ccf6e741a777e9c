/**
 * `npm run package:teams`: builds manifest/dist/acba-teams.zip from the
 * environment (see manifest/package.ts for the variables). Exit code 1 with a
 * one-line reason when a variable is missing or wrong.
 */
import path from 'node:path';
import { publicMessageOf, isAcbaError } from '../core/errors.ts';
import { buildTeamsPackage } from '../manifest/package.ts';

const outDir = path.join(import.meta.dirname, '..', 'manifest', 'dist');

try {
  const zipPath = await buildTeamsPackage(process.env, outDir);
  console.log(`Teams app package written to ${path.relative(process.cwd(), zipPath)}`);
} catch (error) {
  console.error(isAcbaError(error) ? publicMessageOf(error) : error);
  process.exitCode = 1;
}
