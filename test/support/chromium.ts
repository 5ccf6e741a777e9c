/**
 * Debian's headless Chromium, driven by playwright-core, for tests that look
 * at pages as a person would. `sh scripts/setup.sh test` installs it; no
 * browser is ever downloaded. Screenshots go under test/.cache/screenshots/
 * (git-ignored), to look at when a page changes.
 */
import fs from 'node:fs/promises';
import path from 'node:path';
import { chromium, type Browser } from 'playwright-core';

const executablePath = '/usr/bin/chromium';

export const screenshotsDir = path.resolve('test/.cache/screenshots');

/** Starts one headless Chromium; close it in afterAll. */
export async function launchChromium(): Promise<Browser> {
  await fs.access(executablePath).catch(() => {
    throw new Error(
      `${executablePath} is missing: run "sh scripts/setup.sh test" to install Debian's chromium.`,
    );
  });
  return chromium.launch({
    executablePath,
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      // Pages under test may name hosts on the internet (Teams, Microsoft's CDN); tests reach none.
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1',
    ],
  });
}

/** The folder for a test's screenshots, created when missing. */
export async function screenshotFolder(...parts: string[]): Promise<string> {
  const folder = path.join(screenshotsDir, ...parts);
  await fs.mkdir(folder, { recursive: true });
  return folder;
}
