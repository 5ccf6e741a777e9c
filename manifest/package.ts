/**
 * The Teams app package: the manifest template filled in from the
 * environment, the two icons Teams requires (drawn here with pngjs: a
 * 192x192 colour icon and a 32x32 outline icon, white on transparent), and a
 * zip with the three files at its root, as Teams' upload expects.
 *
 * Values are filled into the parsed template's strings, never into its text,
 * so a provider name with quotes cannot change the manifest's structure.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { PNG } from 'pngjs';
import yazl from 'yazl';
import { badInput } from '../core/errors.ts';

/** The variables `npm run package:teams` reads, with what each one is. */
export const packageVariables = {
  TEAMS_APP_ID: 'the Teams app id (a GUID of your choice, kept across versions)',
  MICROSOFT_APP_ID: "the Azure Bot registration's app id (a GUID)",
  ACBA_PUBLIC_URL: 'the https address people reach ACBA on',
  ACBA_PROVIDER_NAME: 'the provider name shown as the developer (at most 32 characters)',
} as const;

type PackageVariable = keyof typeof packageVariables;

const templatePath = path.join(import.meta.dirname, 'manifest.template.json');
const guid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
const accent = { r: 0x1f, g: 0x5a, b: 0xa6 };

/** Reads and checks the variables; one error names every missing or wrong one. */
export function packageSettings(env: NodeJS.ProcessEnv): Record<PackageVariable, string> {
  const names = Object.keys(packageVariables) as PackageVariable[];
  const value = (name: PackageVariable) => env[name]?.trim() ?? '';
  const missing = names.filter((name) => value(name) === '');
  if (missing.length > 0) {
    const list = missing.map((name) => `${name} (${packageVariables[name]})`).join(', ');
    throw badInput(`Set these environment variables to build the Teams package: ${list}.`);
  }

  const problems: string[] = [];
  for (const name of ['TEAMS_APP_ID', 'MICROSOFT_APP_ID'] as const)
    if (!guid.test(value(name))) problems.push(`${name} must be a GUID`);
  if (!/^https:\/\/[^/\s]+/i.test(value('ACBA_PUBLIC_URL')))
    problems.push('ACBA_PUBLIC_URL must be an https address (Teams loads nothing else)');
  if (value('ACBA_PROVIDER_NAME').length > 32)
    problems.push('ACBA_PROVIDER_NAME must be at most 32 characters');
  if (problems.length > 0)
    throw badInput(
      `The Teams package cannot be built: ${problems.join('; ')}. Fix them and run again.`,
    );

  return Object.fromEntries(names.map((name) => [name, value(name)])) as Record<
    PackageVariable,
    string
  >;
}

/** The manifest with every placeholder filled; throws when the template names an unknown one. */
export async function fillManifest(env: NodeJS.ProcessEnv): Promise<Record<string, unknown>> {
  const settings = packageSettings(env);
  const publicUrl = settings.ACBA_PUBLIC_URL.replace(/\/+$/, '');
  const values: Record<string, string> = {
    TEAMS_APP_ID: settings.TEAMS_APP_ID.toLowerCase(),
    MICROSOFT_APP_ID: settings.MICROSOFT_APP_ID.toLowerCase(),
    ACBA_PUBLIC_URL: publicUrl,
    ACBA_PUBLIC_HOST: new URL(publicUrl).host,
    PROVIDER_NAME: settings.ACBA_PROVIDER_NAME,
    SSO_CLIENT_ID: ssoClientId(env, settings.MICROSOFT_APP_ID),
  };
  const template = JSON.parse(await fs.readFile(templatePath, 'utf8')) as unknown;
  return fill(template, values) as Record<string, unknown>;
}

/**
 * The app registration Teams asks for the tab's single sign-on token: the
 * portal's (ACBA_OIDC_CLIENT_ID), whose id the portal checks as the token's
 * audience; the bot's own when the two share one registration.
 */
function ssoClientId(env: NodeJS.ProcessEnv, botAppId: string): string {
  const portal = env.ACBA_OIDC_CLIENT_ID?.trim();
  if (!portal) return botAppId.toLowerCase();
  if (!guid.test(portal))
    throw badInput(
      `ACBA_OIDC_CLIENT_ID must be the portal's app registration id (a GUID) for the Teams tab's single sign-on; got "${portal.slice(0, 40)}".`,
    );
  return portal.toLowerCase();
}

function fill(node: unknown, values: Record<string, string>): unknown {
  if (typeof node === 'string')
    return node.replace(/\{\{(\w+)\}\}/g, (_match, name: string) => {
      const value = values[name];
      if (value === undefined)
        throw new Error(
          `manifest.template.json names {{${name}}}, which the packager does not know`,
        );
      return value;
    });
  if (Array.isArray(node)) return node.map((item) => fill(item, values));
  if (node && typeof node === 'object')
    return Object.fromEntries(Object.entries(node).map(([k, v]) => [k, fill(v, values)]));
  return node;
}

/**
 * The icon's mark: a ring (the backup cycle) with a gap at the upper right and
 * a filled square (the data it keeps) at its centre. `inside(x, y)` takes
 * coordinates scaled to 0..1.
 */
function inside(x: number, y: number): boolean {
  const dx = x - 0.5;
  const dy = y - 0.5;
  const r = Math.hypot(dx, dy);
  const angle = Math.atan2(-dy, dx);
  const ring = r >= 0.28 && r <= 0.38 && !(angle > 0.35 && angle < 1.2);
  const square = Math.abs(dx) <= 0.1 && Math.abs(dy) <= 0.1;
  return ring || square;
}

/** Draws the mark at `size` pixels, 4x4 supersampled for smooth edges. */
function drawIcon(size: number, background: { r: number; g: number; b: number } | null): Buffer {
  const png = new PNG({ width: size, height: size, colorType: 6 });
  const samples = 4;
  for (let y = 0; y < size; y++) {
    for (let x = 0; x < size; x++) {
      let hits = 0;
      for (let sy = 0; sy < samples; sy++)
        for (let sx = 0; sx < samples; sx++)
          if (inside((x + (sx + 0.5) / samples) / size, (y + (sy + 0.5) / samples) / size)) hits++;
      const cover = hits / (samples * samples);
      const i = (y * size + x) * 4;
      if (background) {
        png.data[i] = Math.round(background.r + (255 - background.r) * cover);
        png.data[i + 1] = Math.round(background.g + (255 - background.g) * cover);
        png.data[i + 2] = Math.round(background.b + (255 - background.b) * cover);
        png.data[i + 3] = 255;
      } else {
        // The outline icon: white only, its shape carried by transparency.
        png.data[i] = png.data[i + 1] = png.data[i + 2] = 255;
        png.data[i + 3] = Math.round(255 * cover);
      }
    }
  }
  return PNG.sync.write(png);
}

/** The 192x192 colour icon: the white mark on the accent colour. */
export function colorIcon(): Buffer {
  return drawIcon(192, accent);
}

/** The 32x32 outline icon: the white mark on a transparent background. */
export function outlineIcon(): Buffer {
  return drawIcon(32, null);
}

/** Builds `<outDir>/acba-teams.zip` with manifest.json, color.png and outline.png; returns its path. */
export async function buildTeamsPackage(env: NodeJS.ProcessEnv, outDir: string): Promise<string> {
  const manifest = await fillManifest(env);
  await fs.mkdir(outDir, { recursive: true });
  const zipPath = path.join(outDir, 'acba-teams.zip');

  const zip = new yazl.ZipFile();
  // A fixed date keeps the zip identical for identical inputs.
  const mtime = new Date('2026-01-01T00:00:00Z');
  zip.addBuffer(Buffer.from(`${JSON.stringify(manifest, null, 2)}\n`), 'manifest.json', { mtime });
  zip.addBuffer(colorIcon(), 'color.png', { mtime });
  zip.addBuffer(outlineIcon(), 'outline.png', { mtime });
  zip.end();

  const chunks: Buffer[] = [];
  for await (const chunk of zip.outputStream) chunks.push(chunk as Buffer);
  await fs.writeFile(zipPath, Buffer.concat(chunks));
  return zipPath;
}
