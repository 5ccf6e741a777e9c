/**
 * The Teams app package: `npm run package:teams` fills the manifest from the
 * environment, the filled manifest passes the official v1.17 schema bundled in
 * manifest/schema, and the zip holds exactly the manifest and the two icons
 * in the sizes Teams requires.
 */
import { execFile } from 'node:child_process';
import fs from 'node:fs/promises';
import path from 'node:path';
import { promisify } from 'node:util';
import { Ajv } from 'ajv';
import addFormatsModule from 'ajv-formats';
import { PNG } from 'pngjs';
import { describe, expect, it } from 'vitest';
import yauzl from 'yauzl';
import { buildTeamsPackage, fillManifest } from '../manifest/package.ts';
import { tempDir } from './support/database.ts';

const env = {
  TEAMS_APP_ID: '7d3c1f0e-4b2a-4e8f-9c61-2f5a0b8d9e11',
  MICROSOFT_APP_ID: '0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d',
  ACBA_PUBLIC_URL: 'https://backup.fabrikam.example/',
  ACBA_PROVIDER_NAME: 'Fabrikam "Managed" Services',
};

const addFormats = addFormatsModule as unknown as (ajv: Ajv) => Ajv;

async function validator() {
  const schema = JSON.parse(
    await fs.readFile('manifest/schema/MicrosoftTeams.schema.v1.17.json', 'utf8'),
  );
  // The file declares draft-04 but uses `const` (draft-06 and later); every
  // keyword it uses reads the same in draft-07, Ajv's default.
  delete schema.$schema;
  const ajv = new Ajv({ allErrors: true, strict: false });
  addFormats(ajv);
  return ajv.compile(schema);
}

async function unzip(file: string): Promise<Map<string, Buffer>> {
  const zip = await new Promise<yauzl.ZipFile>((resolve, reject) =>
    yauzl.open(file, { lazyEntries: false }, (error, opened) =>
      error ? reject(error) : resolve(opened),
    ),
  );
  const entries = new Map<string, Buffer>();
  await new Promise<void>((resolve, reject) => {
    zip.on('entry', (entry: yauzl.Entry) => {
      zip.openReadStream(entry, async (error, stream) => {
        if (error) return reject(error);
        const chunks: Buffer[] = [];
        for await (const chunk of stream) chunks.push(chunk as Buffer);
        entries.set(entry.fileName, Buffer.concat(chunks));
      });
    });
    zip.on('end', () => setTimeout(resolve, 50));
    zip.on('error', reject);
  });
  return entries;
}

describe('Teams app package', () => {
  it('fills the manifest so that it passes the official v1.17 schema', async () => {
    const manifest = await fillManifest(env);
    const validate = await validator();
    expect(validate(manifest), JSON.stringify(validate.errors)).toBe(true);

    expect(manifest.id).toBe(env.TEAMS_APP_ID);
    expect(JSON.stringify(manifest)).not.toContain('{{');
    expect(manifest.validDomains).toEqual(['backup.fabrikam.example']);
    expect((manifest.bots as Array<{ botId: string }>)[0]!.botId).toBe(env.MICROSOFT_APP_ID);
    expect((manifest.developer as { name: string }).name).toBe('Fabrikam "Managed" Services');
    expect((manifest.staticTabs as Array<{ contentUrl: string }>)[0]!.contentUrl).toBe(
      'https://backup.fabrikam.example/portal/teams-tab',
    );
  });

  it("asks Teams for the tab's sign-on token of the portal's app registration, whose id the portal checks", async () => {
    const shared = await fillManifest(env);
    expect(shared.webApplicationInfo).toEqual({
      id: env.MICROSOFT_APP_ID,
      resource: `api://backup.fabrikam.example/${env.MICROSOFT_APP_ID}`,
    });

    const portalId = '9f8e7d6c-5b4a-4c3d-8e2f-1a0b9c8d7e6f';
    const separate = await fillManifest({ ...env, ACBA_OIDC_CLIENT_ID: portalId });
    expect(separate.webApplicationInfo).toEqual({
      id: portalId,
      resource: `api://backup.fabrikam.example/${portalId}`,
    });
    await expect(fillManifest({ ...env, ACBA_OIDC_CLIENT_ID: 'portal' })).rejects.toThrow(
      'ACBA_OIDC_CLIENT_ID must be',
    );
  });

  it('has a schema check that fails for a broken manifest', async () => {
    const manifest = await fillManifest(env);
    const validate = await validator();
    expect(validate({ ...manifest, id: 'not-a-guid' })).toBe(false);
    expect(validate({ ...manifest, accentColor: undefined })).toBe(false);
  });

  it('builds a zip with the manifest, a 192x192 colour icon and a 32x32 white outline icon', async () => {
    const dir = await tempDir('acba-teams-');
    const zipPath = await buildTeamsPackage(env, dir);
    expect(path.basename(zipPath)).toBe('acba-teams.zip');

    const entries = await unzip(zipPath);
    expect([...entries.keys()].sort()).toEqual(['color.png', 'manifest.json', 'outline.png']);
    expect(JSON.parse(entries.get('manifest.json')!.toString('utf8'))).toEqual(
      await fillManifest(env),
    );

    const color = PNG.sync.read(entries.get('color.png')!);
    expect([color.width, color.height]).toEqual([192, 192]);
    const outline = PNG.sync.read(entries.get('outline.png')!);
    expect([outline.width, outline.height]).toEqual([32, 32]);
    let transparent = 0;
    let opaque = 0;
    for (let i = 0; i < outline.data.length; i += 4) {
      const alpha = outline.data[i + 3]!;
      if (alpha === 0) transparent++;
      if (alpha === 255) opaque++;
      if (alpha > 0) expect([...outline.data.subarray(i, i + 3)]).toEqual([255, 255, 255]);
    }
    expect(transparent).toBeGreaterThan(100);
    expect(opaque).toBeGreaterThan(50);
    await fs.rm(dir, { recursive: true, force: true });
  });

  it('refuses wrong values with a message naming each one', async () => {
    await expect(
      fillManifest({ ...env, TEAMS_APP_ID: 'acba', ACBA_PUBLIC_URL: 'http://backup.example' }),
    ).rejects.toThrow(/TEAMS_APP_ID must be a GUID; ACBA_PUBLIC_URL must be an https address/);
  });

  it('npm run package:teams names every missing variable and exits 1', async () => {
    const run = promisify(execFile)('npx', ['tsx', 'scripts/package-teams.ts'], {
      env: { PATH: process.env.PATH, HOME: process.env.HOME, ACBA_PUBLIC_URL: env.ACBA_PUBLIC_URL },
    });
    const failure = await run.then(
      () => undefined,
      (error: { code: number; stderr: string }) => error,
    );
    expect(failure?.code).toBe(1);
    expect(failure?.stderr).toMatch(/TEAMS_APP_ID .*MICROSOFT_APP_ID .*ACBA_PROVIDER_NAME/);
    expect(failure?.stderr).not.toMatch(/ACBA_PUBLIC_URL \(/);
  }, 60_000);
});
